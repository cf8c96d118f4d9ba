#!/usr/bin/env python3
"""Server CPU per operation, from the shared harness's result files (../shared/bench), and
each of ours against its peer with issue 25's targets: the last table `make bench-compare`
prints.

Why CPU per operation: on a shared 2-core machine the rates and latencies move with whatever
else runs, and a rate is capped by the load generator's core; the server's own CPU seconds for
a phase, divided by the operations in it, do not depend on whether the load kept up. The
harness reads them from /proc per phase (`phases.<phase>.server_cpu_s`, 0.01 s resolution:
with 2,000 connects or 5,200 round trips the per-operation figure is good to well under 1 %).

    bench/cpu_per_op.py RESULTS_DIR      # RESULTS_DIR/*.json, and RESULTS_DIR/fanout-connects/*.json

Standard library only: it runs wherever the harness ran.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Result = Mapping[str, Any]
"""One harness result file, as JSON (load/bench.js's output)."""

RTT_WARMUP = 200
"""load/bench.js's `rttWarmup`: whoami round trips before the timed ones, inside the rtt phase
(and so inside its server CPU); the result file does not record it, and no option changes it
in run.sh's defaults."""

PEERS = {"tornado-app": "node-seed", "tornado-app-no-fast-path": "node-seed", "tornado-app-redis": "node-redis",
         "tornado-app-before": "node-seed", "tornado-app-redis-before": "node-redis"}
"""Each of our names and the peer it is held against (issue 25: the Redis mode against the
Node peer on Redis)."""

CONNECTS_ONLY_DIR = "fanout-connects"
"""Where bench/compare.sh puts each server's second run: the fan-out phase with no message
(--fanout-msgs 0), i.e. only connecting and closing its K clients."""

EN_DASH = "\u2013"
"""Between a spread's min and max, as summarize.js writes it (a hyphen would read as a minus)."""

LOGOUT_NA = "n/a [3]"
"""Ours' logout cell: footnote [3] says why (the harness's token, our promise)."""


def _phase_cpu(result: Result, phase: str) -> float | None:
    value = result.get("phases", {}).get(phase, {}).get("server_cpu_s")
    return float(value) if isinstance(value, int | float) else None


def _per(total: float | None, count: float | None, scale: float = 1.0) -> float | None:
    if total is None or not count:
        return None
    return total / count * scale


def cpu_per_connect_ms(result: Result) -> float | None:
    """Connect phase CPU / connects: one authenticated connect, its `welcome`, its disconnect."""
    return _per(_phase_cpu(result, "connect"), result.get("params", {}).get("connects"), 1000)


def cpu_per_whoami_ms(result: Result) -> float | None:
    """rtt phase CPU / (timed round trips + the 200 warm-up ones): the phase also connects and
    closes one socket, one connect's CPU (about 1 ms) in 0.3 s or more: left in."""
    timed = result.get("rtt_count", result.get("params", {}).get("rtt"))
    return _per(_phase_cpu(result, "rtt"), timed + RTT_WARMUP if timed else None, 1000)


def cpu_fanout_s(result: Result) -> float | None:
    """The whole fan-out phase: connecting K clients, the chats, closing them (the issue's figure)."""
    return _phase_cpu(result, "fanout")


def field(name: str) -> Callable[[Result], float | None]:
    def get(result: Result) -> float | None:
        value = result.get(name)
        return float(value) if isinstance(value, int | float) else None
    return get


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    get: Callable[[Result], float | None] | None
    """The figure of one run, or None for one that needs two runs (cpu_broadcast_ms)."""
    target: float | None = None
    """The issue's bound on ours / peer's, or None where it sets none."""
    higher_is_better: bool = False

    def met(self, ratio: float) -> bool:
        assert self.target is not None
        return ratio >= self.target if self.higher_is_better else ratio <= self.target


METRICS = [
    Metric("cpu_connect_ms", "server CPU per authenticated connect (ms)", cpu_per_connect_ms, 1.5),
    Metric("cpu_whoami_ms", "server CPU per whoami round trip (ms)", cpu_per_whoami_ms, 1.5),
    Metric("cpu_fanout_s", "server CPU, fan-out phase (s) [1]", cpu_fanout_s, 1.5),
    Metric("cpu_broadcast_ms", "server CPU per chat to K, broadcasts alone (ms) [2]", None),
    Metric("rss_kb_per_socket", "RSS per idle socket (KiB)", field("rss_kb_per_socket"), 1.1),
    Metric("connect_per_s", "connects per second", field("connect_per_s"), 0.8, higher_is_better=True),
    Metric("connect_unloaded_p50_ms", "one connect at a time, p50 (ms)", field("connect_unloaded_p50_ms"), 1.3),
    Metric("rtt_p50_ms", "whoami p50 (ms)", field("rtt_p50_ms"), 1.3),
    Metric("fanout_ms", "fan-out p50 (ms)", field("fanout_ms"), 1.0),
    Metric("logout_disconnect_ms", "logout to disconnect p50 (ms)", field("logout_disconnect_ms")),
]
"""The rows, in the issue's order; cpu_broadcast_ms needs two runs (broadcast_cpu_ms)."""


def load(paths: Iterable[Path]) -> dict[str, list[dict[str, Any]]]:
    """Result files grouped by their `name`, each group in the order the runs started (the
    rounds); files that are not JSON objects (a run cut short) are left out, as summarize.js does."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(paths):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(result, dict):
            groups.setdefault(result.get("name") or path.name, []).append(result)
    for runs in groups.values():
        runs.sort(key=lambda run: str(run.get("started_at", "")))
    return groups


def broadcast_cpu_ms(run: Result, connects_only: Result) -> float | None:
    """Server CPU per chat fanned out to K, the broadcasts alone: the fan-out phase's CPU minus
    that of the same phase with no chat (K clients connected and closed the same way), the
    latter scaled by the two runs' CPU per connect in their connect phases (each run has one,
    just before): on a shared machine a whole run can cost 50 % more, which would otherwise
    show as broadcasts costing less than nothing.

    Subtracting K x CPU-per-connect of the connect phase instead is not sound: there each
    socket lives a moment among ~50, here 500 are held at once (ours tells each newcomer who
    is there), and the connects are 80-100 % of the phase, so a 10 % error in them is larger
    than the broadcasts. The two runs differ in the chats only."""
    whole, connects = _phase_cpu(run, "fanout"), _phase_cpu(connects_only, "fanout")
    msgs = run.get("params", {}).get("fanout_msgs")
    if whole is None or connects is None or not msgs:
        return None
    if connects_only.get("params", {}).get("fanout_clients") != run.get("params", {}).get("fanout_clients"):
        return None
    this_run, that_run = cpu_per_connect_ms(run), cpu_per_connect_ms(connects_only)
    if this_run and that_run:
        connects *= this_run / that_run
    return (whole - connects) / msgs * 1000


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    count: int


def spread(values: Iterable[float | None]) -> Spread | None:
    """Median with min and max over the rounds that have a figure; None when none has."""
    present = [value for value in values if value is not None]
    if not present:
        return None
    return Spread(statistics.median(present), min(present), max(present), len(present))


def figures(runs: Sequence[Result], connects_only: Sequence[Result]) -> dict[str, Spread | None]:
    """Each metric's spread over one name's rounds (the broadcasts alone: round by round)."""
    out = {metric.key: spread(metric.get(run) for run in runs) for metric in METRICS if metric.get is not None}
    out["cpu_broadcast_ms"] = spread(broadcast_cpu_ms(run, other) for run, other in pairs(runs, connects_only))
    return out


def pairs(runs: Sequence[Result], connects_only: Sequence[Result]) -> Iterator[tuple[Result, Result]]:
    """Each main run with the connects-only run that started after it and before the next
    main run (compare.sh runs them back to back); a round whose second run is missing has none."""
    for index, run in enumerate(runs):
        after = str(run.get("started_at", ""))
        before = str(runs[index + 1].get("started_at", "")) if index + 1 < len(runs) else None
        match = [other for other in connects_only
                 if str(other.get("started_at", "")) > after and (before is None or str(other.get("started_at", "")) < before)]
        if match:
            yield run, match[0]


def fmt(value: float) -> str:
    """As summarize.js writes its figures: three significant-ish digits."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if magnitude < 1 else f"{value:.2f}"


def cell(figure: Spread | None) -> str:
    if figure is None:
        return "n/a"
    if figure.count == 1:
        return fmt(figure.median)
    return f"{fmt(figure.median)} ({fmt(figure.low)}{EN_DASH}{fmt(figure.high)})"


def logout_cell(name: str, runs: Sequence[Result], figure: Spread | None) -> str:
    """Ours has no logout figure from the harness: say why rather than a bare n/a."""
    if figure is None and name in PEERS:
        return LOGOUT_NA
    return cell(figure)


def ratio_row(metric: Metric, ours: Spread | None, peer: Spread | None) -> tuple[str, str, str]:
    """(ratio, target, verdict) of ours' median to the peer's median."""
    target = "-" if metric.target is None else (">= " if metric.higher_is_better else "<= ") + f"{metric.target:g}x"
    if ours is None or peer is None or peer.median == 0:
        return "n/a", target, ""
    ratio = ours.median / peer.median
    verdict = "" if metric.target is None else ("met" if metric.met(ratio) else "missed")
    shown = f"{ratio:.2f}"
    if verdict == "missed" and float(shown) == metric.target:  # 1.104 is not "1.10x, missed"
        shown = f"{ratio:.3f}"
    return f"{shown}x", target, verdict


def sizes(groups: Mapping[str, Sequence[Result]]) -> str:
    params: Mapping[str, Any] = next((runs[0].get("params", {}) for runs in groups.values() if runs), {})
    return (f"{params.get('connects')} connects at concurrency {params.get('concurrency')}, "
            f"{params.get('rtt')} + {RTT_WARMUP} whoami round trips, "
            f"{params.get('fanout_msgs')} chats to K = {params.get('fanout_clients')} clients, "
            f"{params.get('rss_sockets')} idle sockets")


def render(groups: Mapping[str, Sequence[Result]], connects_only: Mapping[str, Sequence[Result]]) -> str:
    """The two tables (all names; then each of ours against its peer) and their notes, as
    Markdown like summarize.js's."""
    names = list(groups)
    table = {name: figures(groups[name], connects_only.get(name, [])) for name in names}
    rounds = max((len(runs) for runs in groups.values()), default=0)
    lines = [f"Server CPU per operation and the issue's other figures: median (min{EN_DASH}max) of {rounds} round(s); {sizes(groups)}.", ""]
    lines.append("| operation | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for metric in METRICS:
        cells = [logout_cell(name, groups[name], table[name][metric.key]) if metric.key == "logout_disconnect_ms"
                 else cell(table[name][metric.key]) for name in names]
        lines.append(f"| {metric.label} | " + " | ".join(cells) + " |")
    for ours, peer in PEERS.items():
        if ours not in table or peer not in table:
            continue
        lines += ["", f"{ours} against {peer} (ratio of the medians; target from issue 25)", ""]
        lines.append(f"| operation | {peer} | {ours} | ratio | target | |")
        lines.append("|---|---|---|---|---|---|")
        for metric in METRICS:
            if metric.key == "logout_disconnect_ms":
                continue
            ratio, target, verdict = ratio_row(metric, table[ours][metric.key], table[peer][metric.key])
            lines.append(f"| {metric.label} | {cell(table[peer][metric.key])} | {cell(table[ours][metric.key])} | {ratio} | {target} | {verdict} |")
    lines += [
        "",
        "[1] The harness's fan-out phase (load/bench.js phaseFanout) connects its K clients, sends the",
        "    chats, then closes the clients: connecting dominates its CPU. The issue's target is on the",
        "    phase as a whole.",
        "[2] The fan-out phase's CPU minus that of a second run of the same server whose fan-out phase",
        f"    sends no chat (--fanout-msgs 0, in {CONNECTS_ONLY_DIR}/), scaled by the two runs' CPU per",
        "    connect, per chat; each chat reaches K clients. Round by round. The difference of two",
        "    phases of 0.5 s or more: a guide to where the fan-out's CPU goes (bench/bench.py and",
        "    bench/profile_path.py --path broadcast measure the broadcasts alone directly).",
        "[3] The harness posts /logout with the XSRF token of the login page; ours binds the logout's",
        "    token to the session (a promise, kept), so it answers 403: compare.sh leaves that phase",
        "    out for ours. `make bench` times our logout.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    results = Path(argv[0])
    groups = load(results.glob("*.json"))
    if not groups:
        print(f"cpu_per_op.py: no result files in {results}", file=sys.stderr)
        return 1
    print(render(groups, load((results / CONNECTS_ONLY_DIR).glob("*.json"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
