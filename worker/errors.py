"""The root of siyu's own exceptions.

    SiyuError
    ├── UserError            bad input or configuration; the message says what to fix
    │   ├── NotFound         a named entity does not exist
    │   ├── Conflict         the request does not fit the entity's current state
    │   └── ServiceUnavailable   the database or Redis cannot be reached
    └── ChannelError         (worker.channels.errors) a channel adapter's outcome

The CLI prints a `UserError` as one line on stderr and exits non-zero, without a traceback.
"""


class SiyuError(Exception):
    """Root of every exception siyu raises on purpose."""


class UserError(SiyuError):
    """Input or configuration a person must fix; `str(exc)` says what and where."""


class NotFound(UserError):
    """A named entity (campaign, account, segment, contact) does not exist."""


class Conflict(UserError):
    """What was asked does not fit the current state (a running campaign edited, a name taken)."""


class ServiceUnavailable(UserError):
    """A service siyu depends on (database, Redis, a channel endpoint) cannot be reached."""
