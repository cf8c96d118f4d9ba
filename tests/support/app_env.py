"""The environment an app process a test starts runs with, for the store it is parametrized
over: "memory", or the test Redis (conftest's `redis_url`) for any other name."""

from __future__ import annotations

import pytest


def app_env(request: pytest.FixtureRequest, store: str) -> dict[str, str]:
    """The environment of `python -m tornado_app` (deploy.services.AppProcess) for a store:
    "memory", or the test Redis for any other name; every process shares the cookie secret."""
    env = {"TORNADO_APP_COOKIE_SECRET": "a-secret-shared-by-every-process"}
    if store != "memory":
        env["TORNADO_APP_REDIS_URL"] = request.getfixturevalue("redis_url")
    return env
