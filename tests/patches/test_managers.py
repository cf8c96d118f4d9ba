"""patches/managers.py: a leave in O(1) that leaves python-socketio's state exactly as its own
manager does. (The direct emit is tested with the engineio server, test_engineio_server.py.)"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from typing import Any

import pytest
import socketio

from tests.support.redis_manager import stop_started_manager
from tornado_app.patches.managers import DirectManager


class FakeSocketServer:
    """What a client manager asks of its server outside emit: the packet class and new ids."""

    def __init__(self) -> None:
        self.packet_class = socketio.packet.Packet
        self.eio = self
        self._ids = iter(range(1, 1_000_000))

    def generate_id(self) -> str:
        return f"s{next(self._ids)}"


def manager_state(manager: socketio.AsyncManager) -> dict[str, Any]:
    return {
        "rooms": {namespace: {room: dict(sids) for room, sids in rooms.items()} for namespace, rooms in manager.rooms.items()},
        "callbacks": sorted(manager.callbacks),
        "pending_connect": {namespace: sorted(sids) for namespace, sids in manager.pending_connect.items()},
        "pending_disconnect": {namespace: sorted(sids) for namespace, sids in manager.pending_disconnect.items()},
    }


@pytest.mark.parametrize("seed", range(5))
def test_the_o1_leave_leaves_rooms_pending_state_and_callbacks_as_python_socketio_does(seed: int) -> None:
    """The same random operations on DirectManager and on python-socketio's own AsyncManager:
    after each one, the same rooms, pending state and callbacks, and the same answers."""
    ours, theirs = DirectManager(), socketio.AsyncManager()
    for manager in (ours, theirs):
        manager.set_server(FakeSocketServer())
    chooser = random.Random(seed)
    namespaces, rooms = ["/", "/chat"], ["people", "alice", "bob", None]
    sids: list[tuple[str, str]] = []  # (sid, namespace) as the managers gave them
    eio_sids = [f"e{number}" for number in range(12)]

    async def both(operation: str, *args: Any, **kwargs: Any) -> Any:
        answers = []
        for manager in (ours, theirs):
            try:
                answer = getattr(manager, operation)(*args, **kwargs)
                answer = await answer if inspect.isawaitable(answer) else answer
                if inspect.iscoroutine(answer):
                    # AsyncManager.connect of an eio sid connected already: BaseManager.connect
                    # calls the async pre_connect without awaiting it (python-socketio's own quirk).
                    answer.close()
                    answer = "a coroutine"
                answers.append(answer)
            except Exception as error:  # noqa: BLE001 (the same error from both is the point)
                answers.append(type(error))
        assert answers[0] == answers[1], (operation, args)
        return answers[0]

    async def scenario() -> None:
        for _ in range(600):
            namespace = chooser.choice(namespaces)
            known = [sid for sid, space in sids if space == namespace] or ["nobody"]
            sid = chooser.choice(known)
            step = chooser.choice(["pre_connect", "connect", "connect_new", "enter_room", "leave_room", "close_room",
                                   "pre_disconnect", "disconnect", "callback", "disconnect"])
            if step == "pre_connect":
                new = await both("pre_connect", chooser.choice(eio_sids), namespace)
                if new is not None:
                    sids.append((new, namespace))
            elif step == "connect":
                await both("connect", sid, namespace)
            elif step == "connect_new":  # a complete connect: the sid given is an eio sid
                new = await both("connect", chooser.choice(eio_sids), namespace)
                if new is not None:
                    sids.append((new, namespace))
            elif step == "enter_room":
                await both("enter_room", sid, namespace, chooser.choice([*rooms, sid]))
            elif step == "leave_room":
                await both("leave_room", sid, namespace, chooser.choice([*rooms, sid]))
            elif step == "close_room":
                await both("close_room", chooser.choice(rooms), namespace)
            elif step == "pre_disconnect" and sid != "nobody":
                await both("pre_disconnect", sid, namespace)
            elif step == "callback":
                await both("_generate_ack_id", sid, print)
            else:
                await both("disconnect", sid, namespace)
            assert manager_state(ours) == manager_state(theirs)
            for known_sid, space in sids:
                for question in ("is_connected", "is_pre_connected", "eio_sid_from_sid", "get_rooms"):
                    await both(question, known_sid, space)
            for space in ours.rooms_of:  # rooms_of is exactly the rooms' membership, inverted
                assert {sid: set(table) for sid, table in ours.rooms_of[space].items()} == {
                    sid: {room for room, members in theirs.rooms[space].items() if sid in members}
                    for sid in {sid for members in theirs.rooms[space].values() for sid in members}}
            assert set(ours.rooms_of) == set(theirs.rooms)

    asyncio.run(scenario())


def test_a_wave_of_sockets_leaves_in_linear_time() -> None:
    """20,000 sockets in their own room and one shared room all leave: python-socketio's
    manager took tens of seconds for this (a copy of the room table per leave)."""
    manager = DirectManager()
    manager.set_server(FakeSocketServer())

    async def scenario() -> float:
        sids = [await manager.connect(f"e{number}", "/") for number in range(20_000)]
        for sid in sids:
            await manager.enter_room(sid, "/", "people")
        started = time.perf_counter()
        for sid in sids:
            manager.pre_disconnect(sid, "/")
            await manager.disconnect(sid, "/")
        return time.perf_counter() - started

    elapsed = asyncio.run(scenario())
    assert manager.rooms == {} and manager.rooms_of == {} and not manager.pending_disconnect
    assert elapsed < 3.0, elapsed  # ~0.1 s; python-socketio's own: ~20 s on the same machine


# --- a broadcast to the other processes (DirectRedisManager._publish) ------------------------


class FlakyRedis:
    """python-socketio's Redis client as `_publish` uses it: `publish` fails with each of
    `failures` in turn, then answers 1."""

    def __init__(self, calls: list[str], failures: list[Exception]) -> None:
        self.calls = calls
        self.failures = failures

    async def publish(self, channel: str, body: str) -> int:
        self.calls.append(body)
        if self.failures:
            raise self.failures.pop(0)
        return 1


@pytest.mark.parametrize(
    ("failures", "publishes", "answer"),
    [("timeout", 1, None), ("connection", 2, 1), ("connection connection", 2, None), ("", 1, 1)],
    ids=["timed-out-never-sent-again", "connection-lost-sent-again", "connection-lost-twice", "healthy"],
)
def test_a_broadcast_whose_answer_is_late_is_not_sent_again_and_a_lost_connection_is_tried_once_more(
    failures: str, publishes: int, answer: int | None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A publish that timed out may have been run by Redis (the other processes then
    delivered it): sent again it would arrive twice. One whose connection failed is sent once
    more on a new one, as python-socketio does. (That emit reaches `_publish`, and what it
    uses of python-socketio: test_internals.py.)"""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from tornado_app.patches.managers import DirectRedisManager

    calls: list[str] = []
    errors = {"timeout": RedisTimeoutError("Timeout reading"), "connection": RedisConnectionError("Connection closed")}
    manager = DirectRedisManager("redis://127.0.0.1:1/0", channel="c", write_only=True)
    assert manager.redis_options["socket_timeout"] == 2.0 and manager.redis_options["retry"].get_retries() == 0
    connects: list[int] = []

    def connect() -> None:  # python-socketio's _redis_connect, on our flaky client
        connects.append(1)
        manager.redis = FlakyRedis(calls, failures_left)
        manager.connected = True

    failures_left: list[Exception] = [errors[name] for name in failures.split()]
    monkeypatch.setattr(manager, "_redis_connect", connect)
    assert asyncio.run(manager._publish({"event": "chat"})) == answer
    assert len(calls) == publishes
    assert len(connects) == publishes  # a new connection after a failed one, as python-socketio makes


@pytest.mark.process
def test_a_started_redis_manager_says_when_its_channel_is_subscribed_and_hears_what_follows(redis_url: str) -> None:
    """python-socketio starts its manager at the first Engine.IO connection and subscribes in
    the background, with no sign: a broadcast from another process just after a process
    accepted its first socket went unheard (1 in 4 runs of test_cluster.py's chat across two
    processes). `start_manager` starts it at once and waits for `subscribed`, set from
    SUBSCRIBE's confirmation (`_redis_connect`, `_redis_listen_with_retries`): then Redis
    counts the subscriber, and a broadcast published next reaches this process's sockets."""
    import redis.asyncio

    from tornado_app.patches.guard import ProtocolGuardedServer
    from tornado_app.patches.managers import DirectRedisManager

    channel = f"test-subscribed-{random.randrange(1 << 30)}"

    async def scenario() -> None:
        manager = DirectRedisManager(redis_url, channel=channel)
        sio = ProtocolGuardedServer(async_mode="tornado", client_manager=manager,
                                    session_id_of=lambda handler: None, connect_timeout=10.0)
        assert not sio.manager_initialized  # python-socketio's: started at the first connection
        other = redis.asyncio.Redis.from_url(redis_url)
        try:
            assert await other.pubsub_numsub(channel) == [(channel.encode(), 0)]
            assert await sio.start_manager(10)
            assert manager.subscribed.is_set()
            assert await other.pubsub_numsub(channel) == [(channel.encode(), 1)]
            heard: list[Any] = []
            arrived = asyncio.Event()

            async def handle_emit(message: dict[str, Any]) -> None:  # what a broadcast becomes here
                heard.append(message["event"])
                arrived.set()

            manager._handle_emit = handle_emit  # type: ignore[method-assign]
            await other.publish(channel, manager.json.dumps({"method": "emit", "event": "chat", "data": {},
                                                             "namespace": "/", "host_id": "another process"}))
            await asyncio.wait_for(arrived.wait(), 10)
            assert heard == ["chat"]
        finally:
            await stop_started_manager(manager)
            await other.aclose()

    asyncio.run(scenario())


@pytest.mark.process
def test_the_redis_manager_calls_before_delivery_before_a_broadcast_reaches_a_socket_here(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """python-socketio delivers another process's broadcast (and this process's own) through
    `_handle_emit`: `before_delivery`'s callbacks run first, once per broadcast (the chat
    history in Redis reads itself again after them: redis/history.py)."""
    import redis.asyncio

    from tornado_app.patches.guard import ProtocolGuardedServer
    from tornado_app.patches.managers import DirectRedisManager

    channel = f"test-before-delivery-{random.randrange(1 << 30)}"
    order: list[str] = []
    delivered = asyncio.Event()

    async def deliver(self: Any, event: str, data: Any, *args: Any, **kwargs: Any) -> None:  # DirectManager.emit
        order.append(f"delivered {event}")
        delivered.set()

    monkeypatch.setattr(DirectManager, "emit", deliver)

    async def scenario() -> None:
        manager = DirectRedisManager(redis_url, channel=channel)
        manager.before_delivery.append(lambda: order.append("before"))
        sio = ProtocolGuardedServer(async_mode="tornado", client_manager=manager,
                                    session_id_of=lambda handler: None, connect_timeout=10.0)
        other = redis.asyncio.Redis.from_url(redis_url)
        try:
            assert await sio.start_manager(10)
            await other.publish(channel, manager.json.dumps({"method": "emit", "event": "chat", "data": [{}],
                                                             "namespace": "/", "host_id": "another process"}))
            await asyncio.wait_for(delivered.wait(), 10)
            assert order == ["before", "delivered chat"]
            order.clear()
            await manager.emit("presence", {}, namespace="/")  # this process's own broadcast
            assert order[:2] == ["before", "delivered presence"]
        finally:
            await stop_started_manager(manager)
            await other.aclose()

    asyncio.run(scenario())


def test_the_in_memory_manager_has_nothing_to_subscribe() -> None:
    """One process: start_manager has nothing to wait for."""
    from tornado_app.patches.guard import ProtocolGuardedServer

    sio = ProtocolGuardedServer(async_mode="tornado", client_manager=DirectManager(),
                                session_id_of=lambda handler: None, connect_timeout=10.0)
    assert asyncio.run(sio.start_manager(0.01)) is True
    assert sio.manager_initialized
