"""bench/profile_path.py: its figures come from the right pstats fields, grouped by library and
divided by the operations; and, run briefly against a real server, the profile holds the
whoami handler once per round trip, the measured operations only."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bench.profile_path import Row, by_group, describe, group_of, main, render, rows

SITE = "/venv/lib/python3.11/site-packages"
OURS = ("/work/repo/tornado_app/sockets.py", 345, "_on_whoami")
SEND = ("~", 0, "<method 'send' of '_socket.socket' objects>")
WRITE = (f"{SITE}/tornado/iostream.py", 519, "write")


def test_functions_are_grouped_by_the_library_they_live_in() -> None:
    assert group_of(OURS) == "ours"
    assert group_of(("/work/repo/tornado_app/patches/engineio_server.py", 170, "wait")) == "ours"
    assert group_of(WRITE) == "tornado"
    assert group_of((f"{SITE}/engineio/async_server.py", 1, "f")) == "engineio"
    assert group_of((f"{SITE}/socketio/packet.py", 1, "f")) == "socketio"
    assert group_of(("/usr/lib/python3.11/asyncio/tasks.py", 1, "f")) == "asyncio"
    assert group_of(("~", 0, "<method 'call_soon' of 'uvloop.loop.Loop' objects>")) == "asyncio"
    assert group_of(SEND) == "builtins"
    assert group_of((f"{SITE}/bidict/_base.py", 1, "f")) == "bidict"
    assert group_of(("/usr/lib/python3.11/json/encoder.py", 1, "f")) == "stdlib"


def test_names_are_short_enough_to_look_up() -> None:
    assert describe(WRITE) == "tornado/iostream.py:519(write)"
    assert describe(SEND) == SEND[2]
    assert describe(("/usr/lib/python3.11/json/encoder.py", 2, "encode")) == "json/encoder.py:2(encode)"


def test_rows_read_total_calls_own_and_cumulative_time_per_function() -> None:
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = {OURS: (1000, 1000, 0.010, 0.200, {}), SEND: (1000, 2000, 0.030, 0.030, {}), WRITE: (900, 1000, 0.020, 0.050, {})}
    table = {row.key: row for row in rows(stats)}
    assert table[SEND] == Row(SEND, 2000, 0.030, 0.030)
    assert by_group(table.values()) == {"builtins": (0.030, 2000), "tornado": (0.020, 1000), "ours": (0.010, 1000)}


def test_the_table_is_per_operation() -> None:
    text = render([Row(OURS, 1000, 0.010, 0.200), Row(SEND, 2000, 0.030, 0.030)], ops=1000, path="ack", top=5)
    assert text.splitlines()[0] == "ack: 1000 operations profiled, 0.040 s CPU in the profile: 40.0 us and 3 Python and C calls per operation"
    assert "builtins               30.0   75.0%       2.0" in text
    lines = text.splitlines()
    assert lines[-2] == "     2.00     30.0     30.0  builtins   " + SEND[2]  # by own time: send first
    assert lines[-1] == "     1.00     10.0    200.0  ours       tornado_app/sockets.py:345(_on_whoami)"
    by_cum = render([Row(OURS, 1000, 0.010, 0.200), Row(SEND, 2000, 0.030, 0.030)], ops=1000, path="ack", top=1, sort="cumtime")
    assert by_cum.splitlines()[-1].endswith("(_on_whoami)")


@pytest.mark.process
def test_a_short_profile_of_whoami_holds_one_handler_call_per_round_trip() -> None:
    """300 profiled round trips after 200 that are not: the handler is called exactly 300
    times (so the warm-up, the login and the connect are outside the profile)."""
    printed: list[str] = []
    assert main(["--path", "ack", "--ops", "300", "--top", "400", "--no-pin"], print_=printed.append) == 0
    text = "\n".join(printed)
    handler = [line for line in text.splitlines() if line.endswith("(_on_whoami)")]
    assert len(handler) == 1, text
    assert re.match(r"\s+1\.00\s", handler[0]), handler  # calls per operation
    assert "ours" in text and "engineio" in text and "tornado" in text
