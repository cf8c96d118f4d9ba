"""Private messages across two app processes sharing one Redis: routed by the recipient's tag
to their sockets in both processes and to the sender's other tabs wherever they are, to nobody
else in either process; "online" is presence's view, so a person online only in the other
process can be written to, until they leave; one rate with chat, counted in Redis; never in the
shared history. (In one process: test_private.py.) Skipped with the reason where redis-server
is missing, failed instead under REQUIRE_E2E=1."""

from __future__ import annotations

import asyncio

from tests.support.cluster import Cluster
from tests.support.forms import http_session, log_in
from tests.support.wire import WireSocket


async def nothing_private_came(sockets: list[WireSocket], sender: WireSocket) -> None:
    """A public message sent after the private one reaches every socket, in both processes
    (the same Redis channel carries both, in order); a private message that had not come
    before it never will."""
    await sender.emit("chat", {"text": "barrier"})
    for socket in sockets:
        while (await socket.next("chat"))["text"] != "barrier":
            pass
        assert socket.pending("private") == 0


def test_a_private_message_reaches_the_recipient_and_the_senders_tabs_in_every_process_and_nobody_else(cluster: Cluster) -> None:
    a, b = cluster.start("--chat-rate", "6/minute"), cluster.start("--chat-rate", "6/minute")

    async def scenario() -> None:
        async with http_session() as http:
            async def tabs(name: str, *places: str) -> tuple[str, list[WireSocket]]:
                cookie = await log_in(http, a.url, name)
                sockets = [await WireSocket.connect(http, url, cookie, origin=url) for url in places]
                return (await sockets[0].next("welcome"))["tag"], sockets

            ada_tag, ada = await tabs("ada", a.url, b.url)
            bob_tag, [bob, bob_on_b] = await tabs("bob", a.url, b.url)
            _, carol = await tabs("carol", a.url, b.url)
            dave_tag, [dave] = await tabs("dave", b.url)  # online only in the other process
            for socket in (bob, bob_on_b):
                await socket.sees_online(["ada", "bob", "carol", "dave"])

            ack = await bob.call("private", {"to": ada_tag, "text": "to ada, both of her tabs", "id": "m1"})
            assert ack["ok"] is True, ack
            for socket in [*ada, bob_on_b]:
                assert await socket.next("private") == ack["message"]
            ack = await bob.call("private", {"to": dave_tag, "text": "to dave, in B only", "id": "m2"})
            assert ack["ok"] is True, ack
            for socket in (dave, bob_on_b):
                assert await socket.next("private") == ack["message"]
            # From the other process, to the sender's tab here.
            ack = await dave.call("private", {"to": bob_tag, "text": "back to bob", "id": "m3"})
            for socket in (bob, bob_on_b):
                assert await socket.next("private") == ack["message"]
            await nothing_private_came([*ada, bob, bob_on_b, *carol, dave], bob)

            # Never kept: a newcomer in either process gets the public messages only.
            _, [late] = await tabs("late", b.url)
            assert {message["text"] for message in (await late.next("history"))["messages"]} == {"barrier"}

            # One rate with chat, counted in Redis across processes: bob has sent 2 private
            # messages and a chat (6 per minute): 3 more, wherever, then refused.
            assert (await bob_on_b.call("chat", {"text": "four"}))["ok"] is True
            assert (await bob_on_b.call("private", {"to": ada_tag, "text": "five"}))["ok"] is True
            assert (await bob.call("chat", {"text": "six"}))["ok"] is True
            assert (await bob_on_b.call("private", {"to": ada_tag, "text": "seven"}))["reason"] == "rate"
            assert (await bob.call("chat", {"text": "eight"}))["reason"] == "rate"

            # Dave leaves B: once process A has heard it (its sockets are told he left), A
            # refuses a message to him, in words.
            await dave.close()
            await carol[0].sees_online(["ada", "bob", "carol", "late"])
            refusal = await carol[0].call("private", {"to": dave_tag, "text": "still there?"})
            assert refusal == {"ok": False, "reason": "offline", "message": f"#{dave_tag[:4]} is not online now: this message was not sent"}
            for socket in [*ada, bob, bob_on_b, *carol, late]:
                await socket.close()

    asyncio.run(scenario())
    for app in (a, b):
        assert "Traceback" not in app.log()
