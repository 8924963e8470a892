"""The shared sentence encoder: one ONNX artifact, one copy per process or one Ray actor.

:mod:`orchestrator.embedding.artifact` is the artifact on disk (built once by
``orchestrator skills build`` or the first ``skills train``, never copied into a skill);
:mod:`orchestrator.embedding.encoder` runs it on ONNX Runtime with a cache of recent texts;
:mod:`orchestrator.embedding.shared` hands every skill of a process, or every skill actor of a Ray
cluster, the same instance.
"""
