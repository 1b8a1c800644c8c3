"""`siyu api`: the HTTP face: the operator API (`api.operator`), the console
(`worker.console`), inbound webhooks, unsubscribe links and /metrics, in one FastAPI app
(`api.app.create_app`). Nothing is imported here, so that the console can use `api.auth`
without importing the app that mounts it."""
