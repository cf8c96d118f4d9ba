#!/usr/bin/env python3
"""The page on a slow link (issue 26, item 6): Chromium with DevTools network throttling
(400 ms latency, 50 KB/s each way, as the issue measured), a cold cache each time. Two
figures, medians of --runs: the first page (logged out: navigation start to its load event)
and login to connected (the form's submit to the page's "connected" badge), with the bytes
each took on the wire.

    .venv/bin/python bench/slow_link.py                                  # this checkout
    .venv/bin/python bench/slow_link.py --checkout before=/tmp/main --checkout after=.

Each checkout runs its own server (`python -m tornado_app` with the checkout as its working
directory, so its code is imported); with several, the runs alternate between them, so that
the machine's load falls on each alike. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browser_missing

CONNECTED_TIMEOUT_MS = 120_000


class Server:
    """`python -m tornado_app --port 0` run in `checkout`, until closed."""

    def __init__(self, label: str, checkout: Path) -> None:
        self.label = label
        self.process = subprocess.Popen([sys.executable, "-m", "tornado_app", "--port", "0"], cwd=checkout,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if not first.startswith("Serving on "):
            self.close()
            raise SystemExit(f"{label}: the server did not start in {checkout} (run `python -m tornado_app --port 0` there to see why)")
        self.url = first.split()[2]

    def close(self) -> None:
        """Ctrl-C: a stop at once (SIGTERM would drain its sockets first, over seconds)."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def throttled_page(browser: Any, latency_ms: float, bytes_per_second: float) -> tuple[Any, Any, list[int]]:
    """A page in a fresh context (an empty cache, no cookies) behind DevTools' throttling,
    and the list its finished loads add their encoded (wire) sizes to."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    devtools = context.new_cdp_session(page)
    devtools.send("Network.enable")
    devtools.send("Network.setCacheDisabled", {"cacheDisabled": False})
    devtools.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": latency_ms,
        "downloadThroughput": bytes_per_second, "uploadThroughput": bytes_per_second,
    })
    wire: list[int] = []
    devtools.on("Network.loadingFinished", lambda event: wire.append(int(event["encodedDataLength"])))
    return context, page, wire


def one_run(browser: Any, url: str, latency_ms: float, bytes_per_second: float, name: str) -> dict[str, float]:
    context, page, wire = throttled_page(browser, latency_ms, bytes_per_second)
    try:
        page.goto(url, wait_until="load", timeout=CONNECTED_TIMEOUT_MS)
        first_page_ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        first_page_bytes = sum(wire)
        wire.clear()
        page.fill("#username", name)
        started = time.monotonic()
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#socket-state[data-state=connected]", timeout=CONNECTED_TIMEOUT_MS)
        connected_ms = (time.monotonic() - started) * 1000
        return {"first_page_ms": first_page_ms, "first_page_bytes": first_page_bytes,
                "login_to_connected_ms": connected_ms, "login_bytes": sum(wire)}
    finally:
        context.close()


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", action="append", metavar="LABEL=DIR",
                        help="a checkout to measure (repeatable; default: this one, as 'this')")
    parser.add_argument("--runs", type=int, default=5, help="runs per checkout (default: %(default)s)")
    parser.add_argument("--latency-ms", type=float, default=400, help="added latency per request (default: %(default)s)")
    parser.add_argument("--kib-per-second", type=float, default=50, help="download and upload, KiB/s (default: %(default)s)")
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        raise SystemExit(missing)
    checkouts = [(spec.partition("=")[0], Path(spec.partition("=")[2]).resolve()) for spec in (args.checkout or [f"this={ROOT}"])]
    bytes_per_second = args.kib_per_second * 1024

    from playwright.sync_api import sync_playwright

    servers = [Server(label, checkout) for label, checkout in checkouts]
    results: dict[str, list[dict[str, float]]] = {server.label: [] for server in servers}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            for run in range(args.runs):
                for server in servers:
                    measured = one_run(browser, server.url, args.latency_ms, bytes_per_second, f"Slow {run}")
                    results[server.label].append(measured)
                    print(f"{server.label:>8} run {run + 1}: first page {measured['first_page_ms']:6.0f} ms "
                          f"({measured['first_page_bytes'] / 1024:5.1f} KiB), login to connected "
                          f"{measured['login_to_connected_ms']:6.0f} ms ({measured['login_bytes'] / 1024:5.1f} KiB)", flush=True)
            browser.close()
    finally:
        for server in servers:
            server.close()
    print(f"\n{args.latency_ms:.0f} ms latency, {args.kib_per_second:g} KiB/s each way, cold cache; medians of {args.runs}:")
    print(f"{'':>8}  {'first page':>12}  {'on the wire':>11}  {'login to connected':>18}  {'on the wire':>11}")
    medians = {label: summary(runs) for label, runs in results.items()}
    for label, median in medians.items():
        print(f"{label:>8}  {median['first_page_ms']:9.0f} ms  {median['first_page_bytes'] / 1024:7.1f} KiB  "
              f"{median['login_to_connected_ms']:15.0f} ms  {median['login_bytes'] / 1024:7.1f} KiB")
    print(json.dumps({"latency_ms": args.latency_ms, "kib_per_second": args.kib_per_second, "runs": args.runs, "medians": medians}))


if __name__ == "__main__":
    main()
