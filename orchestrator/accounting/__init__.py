"""Accounting: the ledger of a job's cost and the results it gives back.

Imports config and errors only; every layer above may use it.
"""
