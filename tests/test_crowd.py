"""The crowd of bench/crowd.py, small: what each person receives must not grow with the crowd."""

from __future__ import annotations

import pytest

from bench.crowd import Config, run

pytestmark = pytest.mark.process  # bench/crowd.py starts the server it measures


def test_what_each_person_receives_does_not_grow_with_the_crowd() -> None:
    """20 and then 80 people, 5 coming and going a second for 2 s: with the whole list sent per change
    (before issue 15 item 1), each person received 4x as much at 80 as at 20."""
    small, large = run([20, 80], Config(churn=5, seconds=2, wave=0, pin=False, concurrency=20))
    assert small["newcomer_state_bytes"] and large["newcomer_state_bytes"]  # the newcomers were told who is online
    assert large["bytes_per_socket_per_s"] <= 2 * small["bytes_per_socket_per_s"], (small, large)
