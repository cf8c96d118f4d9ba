"""Sessions in Redis, shared by every process: the same meaning as the memory store.

Keys (all under the prefix, `tornado_app:` by default):
- `session:<id>`: a hash {u: username, t: logged in at, s: last seen, g: public tag}, with a Redis TTL of
  the idle TTL plus a minute, refreshed on every use (so that nothing outlives the sweep
  by long even if every process is down);
- `lru`: a sorted set of session ids scored by a use counter (`clock`): lowest is least
  recently used. All sessions share one TTL, so it is also the order in which they expire;
  eviction and the sweep take from its front, as the memory store's ordered dict does;
- `clock`: the use counter;
- channel `ended`: every session that ends anywhere, with its reason, so that each process
  disconnects its own sockets of it.

Each change is one Lua script, so that two processes logging people in at once can neither
overshoot `max_sessions` nor evict the wrong session, and a session ends exactly once.

A session this process created or read live from Redis less than its trusted window ago is
answered from memory, without a Redis round trip (a socket event or page load would otherwise
pay one each): its end, anywhere, comes on the `ended` channel and drops it at once. While
the subscription is down nothing is trusted, nor kept from a read that was under way while it
was renewed (an end published in between was never heard).

This also answers the second read of a connect (sockets.py `_on_connect` reads the session
before and after registering the socket) without a round trip, and safely: an end that lands
after the first read is heard either before the second (which then misses the cache: the end
dropped it) or after it, when the end's listener finds the registered socket and ends it.

A use answered from memory does not reach Redis, so the last-seen time there lags the
session's last use by up to the window, and every sweep and audit (any process's) reads only
Redis. The window is therefore `min(TRUSTED_SECONDS, ttl / 4)`: a session in use is read
through, and renewed in Redis, at least every quarter TTL, and it expires between
`ttl - window` and `ttl` (plus a sweep interval) after its last use: never while used at least
every three quarters of the TTL (a page reports every third). With a window of the whole TTL
(as before), a session in use expired whenever the TTL was 5 s or less.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from ..sessions import (
    Clock,
    EndReason,
    Session,
    SessionEndListener,
    check_limits,
    new_session_id,
    new_tag,
)
from ..settings import PRODUCTION
from .bus import RedisBus
from .values import session_fields, timestamp

KEY_GRACE_MS = 60_000  # a session hash outlives its idle TTL by this much in Redis
TRUSTED_SECONDS = 5.0  # a session seen live this recently is answered without asking Redis
TRUSTED_SHARE_OF_TTL = 0.25  # ... and never longer than this share of the idle TTL
SWEEP_BATCH = 1000  # sessions ended per sweep call at most

# Ends one session: its hash goes, it leaves the LRU set, and the other processes hear of it.
# Returns {id, username, logged_in_at, last_seen, reason, tag} or nothing.
_END = """
local function end_session(prefix, lru, channel, origin, id, reason)
  local key = prefix .. 'session:' .. id
  local f = redis.call('HMGET', key, 'u', 't', 's', 'g')
  redis.call('ZREM', lru, id)
  if not f[1] then return nil end
  redis.call('DEL', key)
  local ended = {id, f[1], f[2], f[3], reason, f[4]}
  redis.call('PUBLISH', channel, cjson.encode({origin, ended}))
  return ended
end
-- Whether a session last seen at `seen` (a hash field: anything could be there) is still
-- within its idle TTL. Garbage, NaN or a time far ahead counts as expired, so that one bad
-- hash can neither fail every script that meets it nor stop the sweep at the LRU front.
local function fresh(seen, now, ttl)
  local s = tonumber(seen)
  return s ~= nil and s == s and s <= now + 60 and now - s <= ttl
end
"""

CREATE = _END + """
local prefix, lru, counter, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local origin, id, username, now, max, ttl_ms, tag = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local evicted = {}
while redis.call('ZCARD', lru) >= max do
  local oldest = redis.call('ZRANGE', lru, 0, 0)[1]
  local ended = end_session(prefix, lru, channel, origin, oldest, 'evicted')
  if ended then table.insert(evicted, ended) end
end
local key = prefix .. 'session:' .. id
redis.call('HSET', key, 'u', username, 't', now, 's', now, 'g', tag)
redis.call('PEXPIRE', key, ttl_ms)
redis.call('ZADD', lru, redis.call('INCR', counter), id)
return cjson.encode(evicted)
"""

GET = _END + """
local prefix, lru, counter, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local origin, id, now, ttl, ttl_ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local key = prefix .. 'session:' .. id
local f = redis.call('HMGET', key, 'u', 't', 's', 'g')
if not f[1] then
  redis.call('ZREM', lru, id)
  return cjson.encode({'none'})
end
if not fresh(f[3], tonumber(now), ttl) then
  return cjson.encode({'expired', end_session(prefix, lru, channel, origin, id, 'expired')})
end
redis.call('HSET', key, 's', now)
redis.call('PEXPIRE', key, ttl_ms)
redis.call('ZADD', lru, redis.call('INCR', counter), id)
return cjson.encode({'live', {id, f[1], f[2], now, 'live', f[4]}})
"""

DELETE = _END + """
local ended = end_session(KEYS[1], KEYS[2], KEYS[4], ARGV[1], ARGV[2], ARGV[3])
return cjson.encode(ended and {ended} or {})
"""

SWEEP = _END + """
local prefix, lru, counter, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local origin, now, ttl, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local expired = {}
while #expired < batch do
  local oldest = redis.call('ZRANGE', lru, 0, 0)[1]
  if not oldest then break end
  local seen = redis.call('HGET', prefix .. 'session:' .. oldest, 's')
  if seen and fresh(seen, now, ttl) then break end
  local ended = end_session(prefix, lru, channel, origin, oldest, 'expired')
  if ended then table.insert(expired, ended) end
end
return cjson.encode(expired)
"""

# The sessions among ARGV[5..] that ended without this process hearing it (pub/sub was
# down): those with no hash any more, and the idle ones (ended here as expired). No renewal:
# an open socket alone must not keep a session alive.
AUDIT = _END + """
local prefix, lru, counter, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local origin, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local gone, expired = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local seen = redis.call('HGET', prefix .. 'session:' .. id, 's')
  if not seen then
    table.insert(gone, id)
  elseif not fresh(seen, now, ttl) then
    local ended = end_session(prefix, lru, channel, origin, id, 'expired')
    if ended then table.insert(expired, ended) end
  end
end
return cjson.encode({gone, expired})
"""

CLEAR = _END + """
local ended = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local one = end_session(KEYS[1], KEYS[2], KEYS[4], ARGV[1], id, 'shutdown')
  if one then table.insert(ended, one) end
end
return cjson.encode(ended)
"""


def _session(fields: list[Any]) -> Session:
    """[id, username, logged in at, last seen, reason or "live", tag] from a script or the `ended`
    channel, checked like client input (values.py): ValueError if anything in it is
    not what the app writes (a name the login form refuses, a time that is not a finite
    number, a tag of another shape, an unknown reason)."""
    session_id, username, logged_in_at, last_seen, _, tag = session_fields(fields)
    return Session(session_id, username, logged_in_at=logged_in_at, last_seen=last_seen, tag=tag)


class RedisSessionStore:
    """The SessionStore interface over Redis, for any number of processes at once."""

    def __init__(
        self,
        bus: RedisBus,
        ttl: float = PRODUCTION.session_ttl,
        max_sessions: int = PRODUCTION.max_sessions,
        clock: Clock = time.time,
    ) -> None:
        check_limits(ttl, max_sessions)
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._bus = bus
        self._clock = clock
        self._listeners: list[SessionEndListener] = []
        self._keys = [bus.prefix, bus.key("lru"), bus.key("clock"), bus.key("ended")]
        self._scripts = {name: bus.client.register_script(source) for name, source in
                         [("create", CREATE), ("get", GET), ("delete", DELETE), ("sweep", SWEEP), ("clear", CLEAR),
                                  ("audit", AUDIT)]}
        self._ttl_ms = str(int(ttl * 1000) + KEY_GRACE_MS)
        # How long a session read live from Redis is answered from memory: short against the
        # TTL, since those answers do not renew it in Redis (see the module's docstring).
        self.trusted_seconds = min(TRUSTED_SECONDS, ttl * TRUSTED_SHARE_OF_TTL)
        # Sessions seen live, with when (by the store's clock) and during which subscription
        # to `ended`, least recently seen first; at most max_sessions of them.
        self._trusted: OrderedDict[str, tuple[Session, float, int]] = OrderedDict()
        # How many session ends this process has heard of: an answer from Redis that crossed
        # an end on its way back (the `ended` message can overtake it) is never trusted.
        self._ends_heard = 0
        bus.on("ended", self._ended_elsewhere)

    def add_end_listener(self, listener: SessionEndListener) -> None:
        """Call `listener(session, reason)` whenever a session ends, here or in another process."""
        self._listeners.append(listener)

    async def start(self) -> None:
        await self._bus.start()

    async def close(self) -> None:
        """Disconnect from Redis. The sessions stay: another process (or this one, restarted)
        serves them."""
        await self._bus.close()

    async def create(self, username: str) -> Session:
        now = self._clock()
        session = Session(new_session_id(), username, logged_in_at=now, last_seen=now, tag=new_tag())
        evicted = await self._run("create", session.id, username, repr(now), self.max_sessions, self._ttl_ms, session.tag)
        await self._notify_all(evicted)
        self._trust(session, now, self._bus.subscription)
        return session

    async def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        now = self._clock()
        trusted = self._trusted.get(session_id)
        if trusted is not None and self._still_trusted(*trusted[1:], now):
            session = trusted[0]
            session.last_seen = now
            return session
        ends_heard, subscription = self._ends_heard, self._bus.subscription
        state, *rest = await self._run("get", session_id, repr(now), repr(self.ttl), self._ttl_ms)
        if state == "expired":
            await self._notify_all(rest)
        if state != "live":
            return None
        try:
            session = _session(rest[0])
        except ValueError as error:
            # Not what this app writes (someone with access to Redis, or a bug): no session,
            # said once, and ended so that it cannot come back.
            self._bus.ignored.skip("a session", rest[0], error)
            await self._run("delete", session_id, "gone")
            await self._notify(Session(session_id, "", logged_in_at=0, last_seen=0), "gone")
            return None
        if self._ends_heard == ends_heard and self._bus.subscribed.is_set() and self._bus.subscription == subscription:
            # Live when Redis ran the script, no end was heard since it was sent, and the
            # subscription to `ended` held throughout (an end published while it was being
            # renewed was never heard): any later end of this session will be heard, and will
            # drop it from the cache.
            self._trust(session, now, subscription)
        return session

    async def idle_left(self, session_id: str) -> float | None:
        """From the last use written to Redis, which is what every sweep reads: a use answered
        from memory (within the trusted window) does not move it, so this is never late."""
        seen = await self._bus.run(self._bus.client.hget(self._bus.key("session", session_id), "s"))
        if seen is None:
            return None
        try:
            last_seen = timestamp(seen)
        except ValueError:
            return 0.0  # the sweep ends a session with a bad time as expired
        return max(0.0, min(self.ttl, self.ttl - (self._clock() - last_seen)))

    def _still_trusted(self, seen_at: float, subscription: int, now: float) -> bool:
        """Read live from Redis within the trusted window, and every ending since then would
        have been heard."""
        return (0 <= now - seen_at < self.trusted_seconds and self._bus.subscribed.is_set()
                and subscription == self._bus.subscription)

    def _trust(self, session: Session, seen_at: float, subscription: int) -> None:
        self._trusted[session.id] = (session, seen_at, subscription)
        self._trusted.move_to_end(session.id)
        while len(self._trusted) > self.max_sessions:
            self._trusted.popitem(last=False)

    async def delete(self, session_id: str, reason: EndReason = "logout") -> Session | None:
        ended = await self._notify_all(await self._run("delete", session_id, reason))
        return ended[0] if ended else None

    async def sweep(self) -> int:
        expired = await self._run("sweep", repr(self._clock()), repr(self.ttl), SWEEP_BATCH)
        await self._notify_all(expired)
        return len(expired)

    async def audit(self, session_ids: Iterable[str]) -> None:
        """Tell the end listeners of any of these sessions that ended unheard (while the
        subscription to `ended` was down) or sits idle past its TTL, without renewing any."""
        ids = list(session_ids)
        if not ids:
            return
        gone, expired = await self._run("audit", repr(self._clock()), repr(self.ttl), *ids)
        await self._notify_all(expired)
        for session_id in gone:
            await self._notify(Session(session_id, "", logged_in_at=0, last_seen=0), "gone")

    async def clear(self) -> None:
        """End every session of every process, as "shutdown". The server never calls it (a
        stopping process leaves the sessions to the others); tests do."""
        await self._notify_all(await self._run("clear"))

    async def count(self) -> int:
        return int(await self._bus.run(self._bus.client.zcard(self._keys[1])))

    async def _run(self, script: str, *args: Any) -> Any:
        answer = await self._bus.run(self._scripts[script](keys=self._keys, args=[self._bus.process_id, *args]))
        return json.loads(answer)

    async def _ended_elsewhere(self, ended: list[Any]) -> None:
        # A message that is not what a script of ours publishes ends nothing: the bus skips
        # it with one line (ValueError). (A script's own answer, below, always ends its session.)
        session, reason = _session(ended), ended[4]
        await self._notify(session, reason)

    async def _notify_all(self, ended: list[list[Any]]) -> list[Session]:
        """Tell the listeners of sessions that a script of ours ended; an entry with bad
        fields is said once and still ends its session's sockets (Redis has ended it)."""
        sessions = []
        for fields in ended:
            try:
                session, reason = _session(fields), fields[4]
            except ValueError as error:
                self._bus.ignored.skip("an ended session", fields, error)
                if not (isinstance(fields, list) and fields and isinstance(fields[0], str)):
                    continue
                session, reason = Session(fields[0], "", logged_in_at=0, last_seen=0), "gone"
            await self._notify(session, reason)
            sessions.append(session)
        return sessions

    async def _notify(self, session: Session, reason: EndReason) -> None:
        self._ends_heard += 1
        self._trusted.pop(session.id, None)
        for listener in self._listeners:
            await listener(session, reason)
