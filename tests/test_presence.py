"""Presence: everyone hears who is online, promptly when quiet, coalesced under churn."""

from __future__ import annotations

import asyncio

import pytest

from .test_sockets import logged_in


@pytest.mark.gen_test
async def test_a_burst_of_arrivals_is_coalesced_into_few_presence_broadcasts(web_user, socket_client) -> None:
    """Presence is the latest set: under churn it goes out at most every 100 ms, last word current."""
    observer = await socket_client((await logged_in(web_user, "observer")).cookie_header)
    assert (await observer.next("presence"))["users"] == ["observer"]
    cookies = [(await logged_in(web_user, f"user{number}")).cookie_header for number in range(4)]
    await asyncio.gather(*(socket_client(cookie) for cookie in cookies))
    await asyncio.sleep(0.35)
    seen = []
    while observer.pending("presence"):
        seen.append(await observer.next("presence"))
    assert 1 <= len(seen) <= 2, seen
    assert seen[-1]["users"] == ["observer", "user0", "user1", "user2", "user3"]
