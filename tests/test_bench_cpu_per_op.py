"""bench/cpu_per_op.py, without a process: the per-operation figures come from the right
phases divided by the right counts, the rounds are summarised as medians with their spread,
and each of ours is held against its own peer with the issue's targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import cpu_per_op
from bench.cpu_per_op import (
    LOGOUT_NA,
    METRICS,
    broadcast_cpu_ms,
    cpu_per_connect_ms,
    cpu_per_whoami_ms,
    figures,
    load,
    ratio_row,
    render,
    spread,
)

PARAMS = {"connects": 2000, "concurrency": 50, "rtt": 5000, "fanout_clients": 500, "fanout_msgs": 20, "rss_sockets": 1000}


def result(name: str, started: str = "2026-12-05T11:00:00Z", *, connect: float = 2.0, rtt: float = 0.78,
           fanout: float = 0.6, rtt_count: int = 5000, **fields: Any) -> dict[str, Any]:
    """A harness result as load/bench.js writes it, with the fields cpu_per_op.py reads."""
    return {
        "name": name, "started_at": started, "params": dict(PARAMS), "rtt_count": rtt_count,
        "phases": {"connect": {"server_cpu_s": connect}, "rtt": {"server_cpu_s": rtt}, "fanout": {"server_cpu_s": fanout}},
        "connect_per_s": 800.0, "connect_unloaded_p50_ms": 1.3, "rtt_p50_ms": 0.2, "fanout_ms": 9.0,
        "rss_kb_per_socket": 42.0, "logout_disconnect_ms": None, **fields,
    }


def connects_only(name: str, fanout: float, started: str = "2026-12-05T11:00:30Z") -> dict[str, Any]:
    run = result(name, started, fanout=fanout)
    run["params"]["fanout_msgs"] = 0
    return run


def test_cpu_per_connect_is_the_connect_phase_over_the_connects() -> None:
    assert cpu_per_connect_ms(result("x", connect=2.45)) == 2.45 / 2000 * 1000


def test_cpu_per_whoami_counts_the_warm_up_round_trips() -> None:
    """5,000 timed + 200 warm-up acks in the phase: 0.78 s / 5,200, not / 5,000."""
    assert cpu_per_whoami_ms(result("x", rtt=0.78)) == 0.78 / 5200 * 1000
    assert cpu_per_whoami_ms(result("x", rtt=0.5, rtt_count=800)) == 0.5 / 1000 * 1000  # a phase cut short


def test_a_missing_phase_is_no_figure_rather_than_zero() -> None:
    run = result("x")
    del run["phases"]["connect"]
    run["phases"]["rtt"]["server_cpu_s"] = None  # run.sh without --pid
    assert cpu_per_connect_ms(run) is None
    assert cpu_per_whoami_ms(run) is None


def test_the_broadcasts_alone_are_the_difference_of_the_two_fan_out_phases_per_chat() -> None:
    assert broadcast_cpu_ms(result("x", fanout=0.61), connects_only("x", 0.49)) == (0.61 - 0.49) / 20 * 1000
    # the second run cost 50 % more per connect (a busy machine): its fan-out connects are scaled back
    slower = connects_only("x", 0.75)
    slower["phases"]["connect"]["server_cpu_s"] = 3.0
    assert round(broadcast_cpu_ms(result("x", fanout=0.61, connect=2.0), slower) or 0, 6) == round((0.61 - 0.5) / 20 * 1000, 6)
    other_k = connects_only("x", 0.49)
    other_k["params"]["fanout_clients"] = 100
    assert broadcast_cpu_ms(result("x", fanout=0.61), other_k) is None  # not the same connects


def test_rounds_are_medians_with_their_spread_and_pair_round_by_round() -> None:
    runs = [result("x", f"2026-12-05T11:0{i}:00Z", connect=c, fanout=f) for i, (c, f) in enumerate([(2.0, 0.60), (2.4, 0.70), (2.2, 0.62)])]
    others = [connects_only("x", f, f"2026-12-05T11:0{i}:30Z") for i, f in enumerate([0.50, 0.60, 0.42])]
    for run, other in zip(runs, others, strict=True):
        other["phases"]["connect"] = run["phases"]["connect"]  # as fast as its main run
    out = figures(runs, others)
    connect = out["cpu_connect_ms"]
    assert connect is not None
    assert (connect.median, connect.low, connect.high, connect.count) == (1.1, 1.0, 1.2, 3)
    broadcast = out["cpu_broadcast_ms"]
    assert broadcast is not None  # per round: 5, 5, 10 ms per chat (not median 0.62 - median 0.5 = 6)
    assert round(broadcast.median, 6) == 5.0
    assert round(broadcast.high, 6) == 10.0
    assert spread([None, None]) is None
    # round 2's connects-only run is missing: round 3 is not paired with round 2's
    lonely = figures(runs, [others[0], others[2]])["cpu_broadcast_ms"]
    assert lonely is not None
    assert lonely.count == 2
    assert round(lonely.high, 6) == 10.0


def test_ratios_hold_each_metric_to_its_own_target_and_direction() -> None:
    by_key = {metric.key: metric for metric in METRICS}
    peer, ours = spread([0.55]), spread([1.10])
    assert ratio_row(by_key["cpu_connect_ms"], ours, peer) == ("2.00x", "<= 1.5x", "missed")
    assert ratio_row(by_key["cpu_connect_ms"], spread([0.80]), peer) == ("1.45x", "<= 1.5x", "met")
    # connects per second: higher is better, at least 0.8x
    assert ratio_row(by_key["connect_per_s"], spread([1300.0]), spread([1500.0])) == ("0.87x", ">= 0.8x", "met")
    assert ratio_row(by_key["connect_per_s"], spread([1000.0]), spread([1500.0]))[2] == "missed"
    assert ratio_row(by_key["fanout_ms"], None, peer) == ("n/a", "<= 1x", "")
    # a miss by less than the second decimal is not shown as the target itself
    assert ratio_row(by_key["rss_kb_per_socket"], spread([42.5]), spread([38.6])) == ("1.101x", "<= 1.1x", "missed")
    assert ratio_row(by_key["rss_kb_per_socket"], spread([42.4]), spread([38.6])) == ("1.10x", "<= 1.1x", "met")


def test_the_table_pairs_each_of_ours_with_its_peer_and_says_why_logout_is_missing() -> None:
    groups = {
        "node-seed": [result("node-seed", connect=1.1, logout_disconnect_ms=0.52)],
        "tornado-app": [result("tornado-app", connect=2.4)],
        "node-redis": [result("node-redis", connect=1.6)],
        "tornado-app-redis": [result("tornado-app-redis", connect=2.8)],
        "flask-socketio": [result("flask-socketio", connect=4.0)],
    }
    text = render(groups, {})
    assert "tornado-app against node-seed" in text
    assert "tornado-app-redis against node-redis" in text
    assert "flask-socketio against" not in text
    assert "tornado-app-no-fast-path against" not in text  # not in this sitting
    connect_rows = [line for line in text.splitlines() if line.startswith("| server CPU per authenticated connect")]
    assert connect_rows[0] == "| server CPU per authenticated connect (ms) | 0.550 | 1.20 | 0.800 | 1.40 | 2.00 |"
    assert "| 0.550 | 1.20 | 2.18x | <= 1.5x | missed |" in connect_rows[1]
    assert "| 0.800 | 1.40 | 1.75x | <= 1.5x | missed |" in connect_rows[2]
    logout = next(line for line in text.splitlines() if line.startswith("| logout"))
    assert logout == f"| logout to disconnect p50 (ms) | 0.520 | {LOGOUT_NA} | n/a | {LOGOUT_NA} | n/a |"


def test_load_groups_by_name_in_the_order_the_rounds_started(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text(json.dumps(result("x", "2026-12-05T11:00:00Z", connect=1.0)))
    (tmp_path / "a.json").write_text(json.dumps(result("x", "2026-12-05T12:00:00Z", connect=3.0)))
    (tmp_path / "cut.json").write_text('{"name": "x", "phas')  # a run that never finished writing
    groups = load(tmp_path.glob("*.json"))
    assert [run["phases"]["connect"]["server_cpu_s"] for run in groups["x"]] == [1.0, 3.0]


def test_main_reads_the_connects_only_runs_beside_the_results(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "fanout-connects").mkdir()
    (tmp_path / "t.json").write_text(json.dumps(result("tornado-app", fanout=0.61)))
    (tmp_path / "fanout-connects" / "t.json").write_text(json.dumps(connects_only("tornado-app", 0.51)))
    assert cpu_per_op.main([str(tmp_path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "broadcasts alone" in line)
    assert row == "| server CPU per chat to K, broadcasts alone (ms) [2] | 5.00 |"
    assert cpu_per_op.main([str(tmp_path / "fanout-connects" / "none")]) == 1
