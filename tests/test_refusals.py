"""refusals.py: a flood of refusals is a few log lines with counts."""

from __future__ import annotations

import logging

import pytest

from tornado_app.refusals import RefusalReport


def test_a_flood_of_refusals_is_one_line_per_ten_seconds_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    report = RefusalReport("refused things", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="tornado_app.refusals"):
        for second in range(25):
            now[0] = float(second)
            for _ in range(1000):
                report.refused("the latest from 192.0.2.7")
    assert report.total == 25_000
    assert [record.getMessage() for record in caplog.records] == [
        "refused things: the latest from 192.0.2.7",
        "refused things: the latest from 192.0.2.7 (9999 more since the last report)",
        "refused things: the latest from 192.0.2.7 (9999 more since the last report)",
    ]


def test_a_refusal_reported_at_debug_is_counted_and_silent_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """The logged-out page's socket probe (sockets.py): designed to be refused, so DEBUG; a
    DEBUG run still gets the same lines with their counts."""
    now = [0.0]
    report = RefusalReport("refused things", clock=lambda: now[0], level=logging.DEBUG)
    with caplog.at_level(logging.INFO, logger="tornado_app.refusals"):
        report.refused("the latest from 192.0.2.7")
    assert caplog.records == []
    with caplog.at_level(logging.DEBUG, logger="tornado_app.refusals"):
        for second in (1.0, 5.0, 12.0):
            now[0] = second
            report.refused("the latest from 192.0.2.7")
    assert report.total == 4
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [
        (logging.DEBUG, "refused things: the latest from 192.0.2.7 (2 more since the last report)"),
    ]
