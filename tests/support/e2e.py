"""The e2e switch: a test whose browser, window, redis-server or nginx is missing is skipped
with the reason, and fails instead under REQUIRE_E2E=1 (CI sets it, so nothing is skipped
there without anyone noticing). The one support module that needs pytest."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def e2e_unavailable(reason: str) -> NoReturn:
    """Skip a browser or window test whose tools are missing; fail instead under REQUIRE_E2E=1."""
    if os.environ.get("REQUIRE_E2E") == "1":
        pytest.fail(f"REQUIRE_E2E=1 but {reason}", pytrace=False)
    pytest.skip(reason)
