"""Persistence: SQLModel tables and engine/session helpers."""
