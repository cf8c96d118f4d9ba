"""Debian's Chromium, as the browser tests launch it through Playwright (which never
downloads a browser): test_browser.py and test_cluster.py's page through `make cluster`."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def browser_missing() -> str | None:
    """Why no browser test can run here (for a skip), or None."""
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (make system-deps)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None
