"""The runtime: runs compiled graphs over a job's items chunk by chunk, real-time turns, cost reports.

Imports review, planning, graph and below; only the service and the command line import it.
"""
