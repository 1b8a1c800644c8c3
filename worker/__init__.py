"""siyu: private-domain messaging automation (segments, templates, paced multi-account dispatch)."""

__version__ = "0.1.0"
