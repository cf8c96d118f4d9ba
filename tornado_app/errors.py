"""The one name for "the shared backend is away", whichever part of it was asked.

Sessions, chat history and presence live in this process (never away) or in Redis, which
can be. A request that needs it then gets a plain answer ("try again"), never a traceback:
handlers and socket events catch `BackendUnavailable`, and the backend logs the outage once.
"""


class BackendUnavailable(Exception):
    """The shared backend (Redis) cannot answer now: this request cannot be answered now."""


class BackendUnreachable(Exception):
    """The shared backend cannot be used at start (it does not answer, or it refused this
    process: a password, a database); the message says where and what happened, in one line."""
