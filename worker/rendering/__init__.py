"""The parts of message rendering; import the public API from `worker.render`.

errors.py    TemplateError, and Jinja exceptions translated to it with file and line
sandbox.py   the sandboxed environment, loading, rendering with error mapping
tracking.py  track(url) and the opaque recipient token
messages.py  RecipientView, MessageRenderer, check_length, validate_template
"""
