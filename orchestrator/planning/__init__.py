"""Planning: the big model turns a task into a graph spec; plan schemas and the plan cache.

Imports graph and below; the runtime imports it.
"""
