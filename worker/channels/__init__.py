"""Pluggable channel adapters: one module per channel, an explicit registry."""
