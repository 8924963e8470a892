"""Graphs: the spec, its validation against a registry, compilation to LangGraph, the cascade,
and the two ends of a chunk (items in, results out). Imports executors, llm and below.
"""
