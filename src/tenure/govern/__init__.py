"""Governance: consent (and, later, auth, roles, erasure and pseudonymization)."""
