"""Inbound replies: classify a learner's message, answer it from the course knowledge, or hand
it to a person (DESIGN 12, 15; the contract's "Reply assistant content")."""
