"""The chat in Redis, shared by every process: a Redis Stream whose entry ids are the
messages' positions (`<n>-0`, n counted by `chat:count`), so that a page can catch up through
any process, and after every process restarted.

Keys (under the prefix):
- `chat`: the stream, one entry per message (field `m`: the message as JSON, UTF-8 as sent),
  trimmed to about `kept_for_catch_up(size)` entries (`MAXLEN ~`: never fewer);
- `chat:count`: the last n given out;
- `chat:epoch`: the word that names this count. A Redis that lost the count (restarted empty,
  a key evicted) starts a new epoch and a new stream, so that no old position is mistaken for
  one of the new count;
- `chat:sent:<session id>`: the session's last client message ids, scored by the n each got,
  expiring `sent_ttl` (an hour) after the session's last message;
- `chat:told:<session id>`: those of them that were sent to everyone (`announce`): a repeat
  of one that is not (Redis ran the first after the app gave up on it, or the process that
  kept it ended before sending it) is sent by whoever gets the repeat.

Each operation is one Lua script, so that two processes posting at once can neither share an
n nor post one retry twice.

Channel `chat:changed` (under the prefix): every script that changes what `recent` answers
(a message added, a new epoch begun) says the chat's new position there, in the same script,
to every process, this one included.

Each process keeps its last `recent` answer and gives it to the connects that follow (a Redis
round trip and the checking of `size` entries saved per connect; a page coming back whose
missed messages it holds, or none, is answered from it too) until it hears that the chat
changed: on that channel, by its own `add`, or by any broadcast python-socketio's Redis manager
delivers here (`changed`, wired in backend.py). The last one matters: a chat's broadcast and
its word on `chat:changed` come over two connections, in either order, and a newcomer that
joins after the broadcast was delivered here must find the message in its history. An answer
that crossed a change on its way back, or was asked while the subscription was down, is not
kept; none is kept longer than `RECENT_TRUSTED_SECONDS`, which bounds anything unheard (a key
evicted or deleted by hand).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import ResponseError

from .. import packet_json
from ..errors import BackendUnavailable
from ..history import (
    SENT_REMEMBERED,
    Message,
    Recent,
    Stored,
    kept_for_catch_up,
    new_epoch,
    parse_position,
    position,
)
from ..settings import PRODUCTION
from .bus import RedisBus
from .values import BadValue, CheckedMessages, history_count, history_epoch

# The epoch in force; a new one (and a new stream) if the count is gone, or if any of the
# three keys is not what we write (anyone who can write to Redis could have put anything).
_EPOCH = """
local function epoch_of(stream, count, epoch_key, fresh, channel)
  local epoch = redis.call('GET', epoch_key)
  local n = redis.call('GET', count)
  local kind = redis.call('TYPE', stream).ok
  if epoch and string.match(epoch, '^%w+$') and #epoch <= 16 and n and string.match(n, '^%d+$')
      and (kind == 'stream' or kind == 'none') then
    return epoch
  end
  redis.call('SET', epoch_key, fresh)
  redis.call('SET', count, 0)
  redis.call('DEL', stream)
  redis.call('PUBLISH', channel, cjson.encode({'', fresh .. ':0'}))
  return fresh
end
"""

# Returns {'repeat', epoch, n, body or false, 1 if announced else 0} or {'new', epoch, n}.
ADD = _EPOCH + """
local stream, count, epoch_key, channel, sent, told = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local body, client_id, keep, fresh, remembered, sent_ttl_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6]
local epoch = epoch_of(stream, count, epoch_key, fresh, channel)
if redis.call('TYPE', sent).ok ~= 'zset' then redis.call('DEL', sent) end
if client_id ~= '' then
  local earlier = redis.call('ZSCORE', sent, client_id)
  if earlier then
    local found = redis.call('XRANGE', stream, earlier .. '-0', earlier .. '-0')
    return {'repeat', epoch, earlier, found[1] and found[1][2][2] or false, redis.call('ZSCORE', told, client_id) and 1 or 0}
  end
end
local n = redis.call('INCR', count)
if keep > 0 then
  redis.call('XADD', stream, 'MAXLEN', '~', keep, n .. '-0', 'm', body)
end
if client_id ~= '' then
  redis.call('ZADD', sent, n, client_id)
  redis.call('ZREMRANGEBYRANK', sent, 0, -remembered - 1)
  redis.call('PEXPIRE', sent, sent_ttl_ms)
end
redis.call('PUBLISH', channel, cjson.encode({'', epoch .. ':' .. n}))
return {'new', epoch, n}
"""

# A client id's message was sent to everyone.
ANNOUNCE = """
local told, client_id, n, remembered, ttl_ms = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if redis.call('TYPE', told).ok ~= 'zset' then redis.call('DEL', told) end
redis.call('ZADD', told, n, client_id)
redis.call('ZREMRANGEBYRANK', told, 0, -remembered - 1)
redis.call('PEXPIRE', told, ttl_ms)
"""

# Returns {epoch, n, entries}: the last ARGV[2] entries, newest first.
RECENT = _EPOCH + """
local stream, count, epoch_key, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local epoch = epoch_of(stream, count, epoch_key, ARGV[1], channel)
local size = tonumber(ARGV[2])
local entries = {}
if size > 0 then entries = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', size) end
return {epoch, redis.call('GET', count), entries}
"""

# Returns {epoch, n, entries after ARGV[2], oldest first} or {} when they cannot all be told.
SINCE = """
local stream, count, epoch_key = KEYS[1], KEYS[2], KEYS[3]
local asked_epoch, after, most = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local epoch, n = redis.call('GET', epoch_key), tonumber(redis.call('GET', count))
if epoch ~= asked_epoch or n == nil or after > n or redis.call('TYPE', stream).ok ~= 'stream' and after < n then
  return {}
end
if after == n then return {epoch, n, {}} end
local entries = redis.call('XRANGE', stream, '(' .. after .. '-0', '+', 'COUNT', most + 1)
if #entries == 0 or #entries > most or entries[1][1] ~= (after + 1) .. '-0' then return {} end
return {epoch, n, entries}
"""


RECENT_TRUSTED_SECONDS = 5.0  # the longest a `recent` answer is given again without asking Redis


class RedisHistory:
    def __init__(self, bus: RedisBus, size: int = PRODUCTION.history, sent_ttl: float = 3600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        self.size = size
        self._kept = kept_for_catch_up(size)
        self._sent_ttl_ms = int(sent_ttl * 1000)
        self._bus = bus
        self._clock = clock
        # stream, count, epoch, and the channel that says each change (the module's docstring)
        self._keys = [bus.key("chat"), bus.key("chat:count"), bus.key("chat:epoch"), bus.key("chat:changed")]
        self._scripts = {name: bus.client.register_script(source) for name, source in
                         [("add", ADD), ("recent", RECENT), ("since", SINCE), ("announce", ANNOUNCE)]}
        self._checked = CheckedMessages(max(2 * size, 1))  # entries already checked, by their bytes
        # The last `recent` answer, when it was read (the clock's), and in which subscription.
        self._recent: tuple[Recent, float, int] | None = None
        # The read of it under way, and how many changes had been heard when it was sent.
        self._reading: tuple[asyncio.Task[Recent], int] | None = None
        # Changes heard so far: an answer read across one is not kept.
        self._changes = 0
        bus.on("chat:changed", self._heard)

    def changed(self) -> None:
        """The chat may have changed (a broadcast is being delivered here, say): the next
        `recent` asks Redis."""
        self._changes += 1
        self._recent = None

    async def add(self, message: Message, sender: str, client_id: str | None) -> Stored:
        body = packet_json.dumps(message, separators=(",", ":"))  # UTF-8, as sent
        keys = [*self._keys, self._bus.key("chat", "sent", sender), self._bus.key("chat", "told", sender)]
        # A message without a client id gets one of ours ("~" is never in a client's): the
        # bus retries a command that timed out, and a hung Redis runs both once it wakes.
        once = client_id or "~" + secrets.token_hex(8)
        try:
            answer = await self._run("add", keys, body, once, self._kept, new_epoch(), SENT_REMEMBERED, self._sent_ttl_ms)
        finally:
            self.changed()  # whatever came back: Redis may have run it (its news comes on `chat:changed` too)
        try:
            epoch, n = history_epoch(answer[1]), history_count(answer[2])
            if answer[0] == b"new":
                return Stored({**message, "position": position(epoch, n)}, new=True)
            return Stored(self._entry(epoch, n, answer[3]) if answer[3] else None, new=False, announced=answer[4] == 1)
        except (BadValue, IndexError, TypeError) as error:
            self._bus.ignored.skip("chat", answer, BadValue(str(error)))
            return Stored(None, new=False)

    async def recent(self) -> Recent:
        """The last `size` messages: the answer kept from Redis while no change was heard
        since (the module's docstring), the same object each time, so that a caller may encode
        it once; else read from Redis, once for every connect that asks meanwhile (a crowd of
        connects under way when a message comes would each send one)."""
        now = self._clock()
        kept = self._current(now)
        if kept is not None:
            return kept
        reading = self._reading
        # Joined only if sent after the last change heard: then Redis ran it after that change.
        if reading is None or reading[1] != self._changes:
            read = self._read(now, self._changes, self._bus.subscription)
            reading = self._reading = (asyncio.ensure_future(read), self._changes)
            reading[0].add_done_callback(self._read_done)
        return await asyncio.shield(reading[0])  # one caller cancelled: the others still wait for it

    async def _read(self, now: float, changes: int, subscription: int) -> Recent:
        """Kept if no change was heard since it was asked for (`changes` then), in one subscription."""
        epoch, n, entries = await self._run("recent", self._keys, new_epoch(), self.size)
        page = self._page(epoch, n, reversed(entries))
        if self._changes == changes and self._listening(subscription):
            self._recent = (page, now, subscription)
        return page

    def _read_done(self, task: asyncio.Task[Recent]) -> None:
        if self._reading is not None and self._reading[0] is task:
            self._reading = None
        if not task.cancelled():
            task.exception()  # said to the callers who waited (if every one was cancelled: to none)

    def _current(self, now: float) -> Recent | None:
        """The kept answer, if no change was heard since it was read (nor too long ago)."""
        kept = self._recent
        if kept is not None and 0 <= now - kept[1] < RECENT_TRUSTED_SECONDS and self._listening(kept[2]):
            return kept[0]
        return None

    def _listening(self, subscription: int) -> bool:
        """Subscribed to `chat:changed` since `subscription` began: every change since was heard."""
        return self._bus.subscribed.is_set() and self._bus.subscription == subscription

    async def _heard(self, payload: object) -> None:
        """A script (of any process, this one too) changed the chat, which is now at the
        position `payload`. A kept answer read at that position already holds the change
        (a count only grows within its epoch): this process's own add, read again since."""
        kept = self._recent
        self._changes += 1  # an answer under way may have been read before the change
        if kept is None or kept[0].position != payload:
            self._recent = None
        if not isinstance(payload, str) or parse_position(payload) is None:
            raise BadValue("not a chat position")  # the bus skips it, with one line

    async def since(self, after: str) -> Recent | None:
        parsed = parse_position(after)
        if parsed is None:
            return None
        # From the newcomers' answer (read once for a crowd, see recent): all a page that was
        # away briefly missed is in it; one further behind is then asked of Redis.
        missed = self._missed(await self.recent(), *parsed)
        if missed is not None:
            return missed
        answer = await self._run("since", self._keys, parsed[0], parsed[1], self._kept)
        return self._page(*answer) if answer else None

    @staticmethod
    def _missed(kept: Recent, epoch: str, after: int) -> Recent | None:
        """What came after `epoch:after`, from the kept answer when it holds all of it (a page
        coming back after a short gap, or none: a crowd reconnecting after a restart); None
        when it does not (Redis is asked)."""
        kept_epoch, newest = parse_position(kept.position) or ("", -1)
        if epoch != kept_epoch or not 0 <= after <= newest:
            return None
        missed = kept.messages[len(kept.messages) - (newest - after):] if after < newest else []
        first = parse_position(missed[0]["position"]) if missed else None
        # Every one of them there: none trimmed from the answer, nor skipped as bad.
        if len(missed) != newest - after or (first is not None and first[1] != after + 1):
            return None
        return Recent(missed, kept.position)

    async def announce(self, sender: str, client_id: str, stored: Stored) -> None:
        n = parse_position(stored.message["position"])[1] if stored.message else 0  # type: ignore[index]
        await self._run("announce", [self._bus.key("chat", "told", sender)], client_id, n, SENT_REMEMBERED,
                        self._sent_ttl_ms)

    def forget_sender(self, sender: str) -> None:
        """Nothing to do: the ids expire in Redis `sent_ttl` after the session's last message."""

    async def _run(self, script: str, keys: list[str], *args: Any) -> Any:
        try:
            return await self._bus.run(self._scripts[script](keys=keys, args=args), writes=script != "since")
        except ResponseError as error:  # a script error: not one a client can cause
            self._bus.ignored.skip("chat", keys[0], BadValue(str(error)))
            raise BackendUnavailable(str(error)) from None

    def _page(self, epoch: object, n: object, entries: Any) -> Recent:
        """The entries that are what the app writes; any other is skipped (and logged once),
        so that one bad entry can neither fail every connect nor reach anyone."""
        checked_epoch, checked_n = history_epoch(epoch), history_count(n)
        messages: list[Message] = []
        for entry in entries:
            try:
                entry_id, fields = entry
                if len(fields) != 2 or fields[0] != b"m":
                    raise BadValue("not a chat entry (one field, m)")
                messages.append(self._entry(checked_epoch, history_count(entry_id.split(b"-")[0]), fields[1]))
            except (BadValue, ValueError, TypeError, IndexError, AttributeError) as error:
                self._bus.ignored.skip("chat", entry, error)
        return Recent(messages, position(checked_epoch, checked_n))

    def _entry(self, epoch: str, n: int, body: object) -> Message:
        return {**self._checked.check(body), "position": position(epoch, n)}
