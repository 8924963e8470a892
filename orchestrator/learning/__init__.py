"""Learning: datasets, training, evaluation, calibration (single and chained), distillation, builds.

Sits beside the runtime: imports graph specs, the registry, the LLM audit and the store; only the
command line and the service import it.
"""
