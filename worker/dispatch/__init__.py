"""Delivery engine: per-account lanes over a database outbox (DESIGN decisions 1-5)."""
