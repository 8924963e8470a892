"""The big model: the gateway, providers, the embedded model, the audit log and the PII guard.

Imports registry, store, accounting and below; graph and the layers above import it.
"""
