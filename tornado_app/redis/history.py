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
"""

from __future__ import annotations

import secrets
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
from .values import BadValue, chat_message, history_count, history_epoch

# The epoch in force; a new one (and a new stream) if the count is gone, or if any of the
# three keys is not what we write (anyone who can write to Redis could have put anything).
_EPOCH = """
local function epoch_of(stream, count, epoch_key, fresh)
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
  return fresh
end
"""

# Returns {'repeat', epoch, n, body or false, 1 if announced else 0} or {'new', epoch, n}.
ADD = _EPOCH + """
local stream, count, epoch_key, sent, told = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local body, client_id, keep, fresh, remembered, sent_ttl_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6]
local epoch = epoch_of(stream, count, epoch_key, fresh)
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
local stream, count, epoch_key = KEYS[1], KEYS[2], KEYS[3]
local epoch = epoch_of(stream, count, epoch_key, ARGV[1])
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


class RedisHistory:
    def __init__(self, bus: RedisBus, size: int = PRODUCTION.history, sent_ttl: float = 3600) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        self.size = size
        self._kept = kept_for_catch_up(size)
        self._sent_ttl_ms = int(sent_ttl * 1000)
        self._bus = bus
        self._keys = [bus.key("chat"), bus.key("chat:count"), bus.key("chat:epoch")]
        self._scripts = {name: bus.client.register_script(source) for name, source in
                         [("add", ADD), ("recent", RECENT), ("since", SINCE), ("announce", ANNOUNCE)]}

    async def add(self, message: Message, sender: str, client_id: str | None) -> Stored:
        body = packet_json.dumps(message, separators=(",", ":"))  # UTF-8, as sent
        keys = [*self._keys, self._bus.key("chat", "sent", sender), self._bus.key("chat", "told", sender)]
        # A message without a client id gets one of ours ("~" is never in a client's): the
        # bus retries a command that timed out, and a hung Redis runs both once it wakes.
        once = client_id or "~" + secrets.token_hex(8)
        answer = await self._run("add", keys, body, once, self._kept, new_epoch(), SENT_REMEMBERED, self._sent_ttl_ms)
        try:
            epoch, n = history_epoch(answer[1]), history_count(answer[2])
            if answer[0] == b"new":
                return Stored({**message, "position": position(epoch, n)}, new=True)
            return Stored(self._entry(epoch, n, answer[3]) if answer[3] else None, new=False, announced=answer[4] == 1)
        except (BadValue, IndexError, TypeError) as error:
            self._bus.ignored.skip("chat", answer, BadValue(str(error)))
            return Stored(None, new=False)

    async def recent(self) -> Recent:
        epoch, n, entries = await self._run("recent", self._keys, new_epoch(), self.size)
        return self._page(epoch, n, reversed(entries))

    async def since(self, after: str) -> Recent | None:
        parsed = parse_position(after)
        if parsed is None:
            return None
        answer = await self._run("since", self._keys, parsed[0], parsed[1], self._kept)
        return self._page(*answer) if answer else None

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

    @staticmethod
    def _entry(epoch: str, n: int, body: object) -> Message:
        return {**chat_message(body), "position": position(epoch, n)}
