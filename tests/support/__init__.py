"""Helpers shared by test modules (real services started for a test, and their clean-up)."""
