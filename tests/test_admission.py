"""admission.py's small parts: what a per-address cap counts by, the proxy's client address,
and refusals logged a few lines at a time (the attacks themselves are in test_server.py)."""

from __future__ import annotations

import asyncio

import pytest
from tornado.httputil import HTTPHeaders

from tornado_app import admission
from tornado_app.admission import (
    AdmittingHTTPServer,
    BodyBudget,
    ConnectionCounter,
    client_key,
    proxied_client_ip,
)
from tornado_app.app import TornadoApp


def test_an_ipv6_host_counts_by_its_64_and_ipv4_by_its_address() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("not an address") == "not an address"


def test_client_keys_are_remembered_within_a_bound_that_a_flood_of_addresses_cannot_grow() -> None:
    """client_key is asked three times per connect: an address seen is not parsed again
    (memo.py), and a flood of new addresses keeps the memo at its bound."""
    client_key.cache_clear()
    try:
        assert [client_key("192.0.2.7") for _ in range(3)] == ["192.0.2.7"] * 3
        assert (client_key.cache_info().misses, client_key.cache_info().hits) == (1, 2)
        for n in range(2 * admission.CLIENT_KEYS_KEPT):
            assert client_key(f"2001:db8:1:{n + 1:x}::1") == f"2001:db8:1:{n + 1:x}::/64"
        assert client_key.cache_info().currsize == admission.CLIENT_KEYS_KEPT
        long = "x" * (admission.CLIENT_KEY_LONGEST + 1)
        assert client_key(long) == long
        assert client_key.cache_info().currsize == admission.CLIENT_KEYS_KEPT
    finally:
        client_key.cache_clear()


def test_the_proxys_client_address_is_read_as_tornado_reads_it() -> None:
    assert proxied_client_ip(HTTPHeaders({"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}), "127.0.0.1") == "203.0.113.9"
    assert proxied_client_ip(HTTPHeaders({"X-Real-Ip": "203.0.113.5", "X-Forwarded-For": "198.51.100.1"}), "127.0.0.1") == "203.0.113.5"
    assert proxied_client_ip(HTTPHeaders({"X-Forwarded-For": "<script>"}), "127.0.0.1") == "127.0.0.1"
    assert proxied_client_ip(HTTPHeaders(), "127.0.0.1") == "127.0.0.1"


def test_a_counter_holds_each_address_to_its_limit_and_forgets_addresses_at_zero() -> None:
    counter = ConnectionCounter(2)
    assert [counter.try_add("a") for _ in range(3)] == [True, True, False]
    assert counter.try_add("b")
    counter.release("a")
    assert counter.try_add("a")
    for key in ("a", "a", "b"):
        counter.release(key)
    assert counter.open == {}


def test_a_body_budget_holds_each_client_to_its_share_and_the_server_to_its_total() -> None:
    budget = BodyBudget(total=100, share=40)
    assert budget.reserve("a", 30) == "reserved"
    assert budget.reserve("a", 20) == "over the client's share"
    assert budget.reserve("b", 40) == "reserved"
    assert budget.reserve("c", 31) == "over the server's budget"
    assert budget.reserve("c", 30) == "reserved"
    assert (budget.in_flight, budget.high_water) == (100, 100)
    for key, size in (("a", 30), ("b", 40), ("c", 30)):
        budget.release(key, size)
    assert (budget.in_flight, budget.by_client, budget.high_water) == (0, {}, 100)


@pytest.mark.gen_test
async def test_a_heap_trim_still_waiting_when_the_server_stops_never_runs(app: TornadoApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a wave of bodies, a trim of the heap waits a moment (heap.py); a server stopped
    meanwhile leaves nothing behind to run."""
    trims: list[bool] = []
    monkeypatch.setattr(admission, "give_back", lambda: trims.append(True))
    monkeypatch.setattr(admission, "TRIM_DELAY_SECONDS", 0.05)
    for stopped in (False, True):
        server = AdmittingHTTPServer(app, max_body_bytes_in_flight=admission.TRIM_AFTER_BYTES * 16)  # a share of 1/16 holds it
        assert server.bodies.reserve("a", admission.TRIM_AFTER_BYTES) == "reserved"
        server.body_done("a", admission.TRIM_AFTER_BYTES)  # the wave is over: a trim is due
        if stopped:
            server.stop()
        await asyncio.sleep(0.3)
        assert trims == [True], f"stopped={stopped}: {trims}"  # the running server trimmed once; the stopped one never
        if not stopped:
            server.stop()
