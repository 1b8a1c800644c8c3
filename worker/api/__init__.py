"""`siyu api`: the HTTP face (inbound webhooks now; the operator routes and console later)."""

from worker.api.app import create_app

__all__ = ["create_app"]
