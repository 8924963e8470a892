"""The HTTP job service (FastAPI): routes, the service's state, settings, auth, problems, metrics.

Below the command line: imports runtime and everything under it; only the CLI imports it.
"""
