"""Playing another local user: tests/support/local_user.py run as uid `nobody`.

A server on 127.0.0.1 shares the address with every user of the machine (issue 21, items 7
and 11); the attacker of those tests must really be another uid, which needs root to start.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "local_user.py"
OTHER_USER = "nobody"
SYSTEM_PYTHON = "/usr/bin/python3"  # the other user may not be able to run this checkout's virtualenv


def unavailable() -> str | None:
    """Why another uid cannot be played here, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "another uid is needed to play another local user: run the tests as root"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is needed to run a script as {OTHER_USER}"
    return None


def as_another_user(port: int, *args: str, timeout: float = 180) -> dict:
    """Run local_user.py as `nobody` (standard library only, handed over on stdin); its JSON."""
    result = subprocess.run([SYSTEM_PYTHON, "-", str(port), *args], input=SCRIPT.read_text(), user=OTHER_USER,
                            cwd="/", capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
