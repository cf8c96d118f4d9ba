"""The values the in-process app fixture is built with (tests/conftest.py `app`), which tests
that build their own app or check a limit name too, and the repository's paths."""

from __future__ import annotations

from pathlib import Path

TEST_SECRET = "test-cookie-secret-not-for-production"
ALLOWED_ORIGIN = "http://allowed.example"
SESSION_TTL = 60
MAX_SESSIONS = 5

ROOT = Path(__file__).resolve().parent.parent.parent
# Where the browser and window tests write their screenshots (`make clean` removes it).
OUTPUT_DIR = ROOT / "test-output"

# The transports a client may use: WebSocket straight away, or long-polling then upgrade.
TRANSPORTS = {"websocket": ["websocket"], "polling-upgrade": ["polling", "websocket"]}
