"""Playing another local user: tests/support/local_user.py run as uid `nobody`.

A server on 127.0.0.1 shares the address with every user of the machine (issue 21, items 7
and 11); the attacker of those tests must really be another uid, which needs root to start.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "local_user.py"
OTHER_USER = "nobody"
# The other user may not be able to run this checkout's virtualenv (or a Python under /root):
# the first of these that it can run.
PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")


@functools.cache
def _python() -> str | None:
    for python in dict.fromkeys([*PYTHONS, shutil.which("python3") or PYTHONS[0]]):
        try:
            if subprocess.run([python, "-c", "pass"], user=OTHER_USER, cwd="/", check=False, capture_output=True, timeout=30).returncode == 0:
                return python
        except OSError:
            continue
    return None


def unavailable() -> str | None:
    """Why another uid cannot be played here, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "another uid is needed to play another local user: run the tests as root"
    if _python() is None:
        return f"no python3 that {OTHER_USER} can run (tried {', '.join(PYTHONS)} and the one on PATH)"
    return None


def as_another_user(port: int, *args: str, timeout: float = 180) -> dict:
    """Run local_user.py as `nobody` (standard library only, handed over on stdin); its JSON."""
    python = _python()
    assert python is not None, unavailable()
    result = subprocess.run([python, "-", str(port), *args], input=SCRIPT.read_text(), user=OTHER_USER,
                            cwd="/", check=False, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
