"""Use cases the CLI and the API share: each takes an engine and returns plain data."""
