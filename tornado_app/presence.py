"""Who is online: sent once as a state, then only as versioned changes (Phoenix Presence's
`presence_state` and `presence_diff`), so that a change costs what changed, not everyone
times everyone.

A person (a session: name and public tag) is online while any of their sockets is, in this
process or another. `PresenceBook` counts where each person is online and remembers the
state last announced; every `PRESENCE_MIN_INTERVAL` at most, `PresenceBroadcaster` sends
the changes since (joins and leaves of the people touched, a person who came and went in
between not at all) with the next version; with thousands online, less often (at most
`PRESENCE_WRITES_PER_SECOND` socket writes a second). A newcomer gets the announced state and its
version; a page that sees a version gap asks for the state again (within its client's fair share:
presence_asks.py).

Where several processes serve one site, each shares its own joins and leaves through a
`PresenceSource` (redis/presence.py) and hears the others'; alone, it is the whole world
(`ThisProcessOnly`).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

import socketio

from .errors import BackendUnavailable
from .history import new_epoch
from .packet_json import RawJSON
from .registry import Person
from .skeleton import skeleton

PRESENCE_MIN_INTERVAL = 0.1  # seconds between two change batches; changes in between coalesce
# Socket writes a second that presence may cost (one per socket per batch, ~30 µs each
# measured by bench/crowd.py: about a tenth of a core): with thousands online the batches come
# less often (0.67 s apart at 2,000, 1.7 s at 5,000), so that the crowd's churn cannot take the
# core from everything else.
PRESENCE_WRITES_PER_SECOND = 3_000
YIELD_EVERY = 200  # recipients of a batch between two turns of the loop for everyone else

HERE = "here"  # where this process's own sockets put a person (the others: process ids)
DIFFS_KEPT = 100  # change batches remembered for pages that come back after a gap
PRESENCE_POSITION = re.compile(r"([A-Za-z0-9]{1,16}):(0|[1-9][0-9]{0,15})")


class PresenceListener(Protocol):
    """What a PresenceSource tells: people coming and going elsewhere."""

    def joined(self, where: str, people: Iterable[Person]) -> None: ...

    def left(self, where: str, people: Iterable[Person]) -> None: ...

    def replace(self, where: str, people: Iterable[Person]) -> None: ...

    def places(self) -> list[str]:
        """Every place with people known (HERE and other processes), so that a full read can
        empty the places of processes that are gone."""
        ...


class PresenceSource(Protocol):
    """Where the people online in other processes come from, and where ours go."""

    def start(self, listener: PresenceListener, here: Callable[[], list[Person]]) -> None:
        """Tell `listener` of the others' people (all of them first, then their changes);
        `here()` is this process's people, for a full write after an outage."""

    async def share(self, joins: list[Person], leaves: list[Person]) -> None:
        """Tell the other processes who came and went here."""

    async def stop(self) -> None: ...


class ThisProcessOnly:
    """One process is the whole site: nothing to share, nobody elsewhere."""

    def start(self, listener: PresenceListener, here: Callable[[], list[Person]]) -> None:
        pass

    async def share(self, joins: list[Person], leaves: list[Person]) -> None:
        pass

    async def stop(self) -> None:
        pass


def wire(people: Iterable[Person]) -> list[dict[str, str]]:
    # The skeleton tells the page which names look alike (skeleton.py): those show their tags.
    return [{"name": name, "tag": tag, "skeleton": skeleton(name)} for name, tag in people]


class PresenceBook:
    """Where each person is online, the state last announced, and what changed since.

    Every operation is O(people it names); only `state()` (for a newcomer) walks everyone.
    Versions count in an epoch of this process's life: a page that comes back to it with a
    version of the same epoch can be sent what changed since (`changes_since`), not everyone."""

    def __init__(self) -> None:
        self.epoch = new_epoch()
        self._diffs: deque[tuple[int, list[Person], list[Person]]] = deque(maxlen=DIFFS_KEPT)
        self._places: dict[Person, set[str]] = {}  # person -> "here" and/or process ids
        self._by_tag: dict[str, Person] = {}  # the people of _places by their tag (a private message's address)
        self._by_place: dict[str, set[Person]] = {}
        self._announced: set[Person] = set()
        self._touched: set[Person] = set()
        self.version = 0
        self._encoded: tuple[int, RawJSON] | None = None  # (version, the state as JSON)

    def add(self, where: str, person: Person) -> bool:
        """The person is online at `where`; True when that changes anything."""
        places = self._places.get(person)
        if places is None:
            places = self._places[person] = set()
            self._by_tag[person.tag] = person
        if where in places:
            return False
        places.add(where)
        self._by_place.setdefault(where, set()).add(person)
        self._touched.add(person)
        return True

    def remove(self, where: str, person: Person) -> bool:
        places = self._places.get(person)
        if places is None or where not in places:
            return False
        places.discard(where)
        if not places:
            del self._places[person]
            self._by_tag.pop(person.tag, None)
        at = self._by_place[where]
        at.discard(person)
        if not at:
            del self._by_place[where]
        self._touched.add(person)
        return True

    def replace(self, where: str, people: Iterable[Person]) -> bool:
        """Everyone online at `where` is exactly `people` (a full read of another process)."""
        wanted = set(people)
        before = self._by_place.get(where, set())
        changed = False
        for person in before - wanted:
            changed |= self.remove(where, person)
        for person in wanted - before:
            changed |= self.add(where, person)
        return changed

    def places(self) -> list[str]:
        return list(self._by_place)

    def online(self, tag: str) -> Person | None:
        """The person of this tag, if they are online now here or in another process (as
        heard: a join elsewhere arrives within milliseconds); O(1)."""
        return self._by_tag.get(tag)

    def people_at(self, where: str) -> list[Person]:
        return list(self._by_place.get(where, ()))

    def take_changes(self) -> tuple[int, list[Person], list[Person]] | None:
        """(new version, joins, leaves) since the last announcement, or None if nothing
        changed for anyone (someone who came and went in between is no change)."""
        joins, leaves = [], []
        for person in self._touched:
            online, announced = person in self._places, person in self._announced
            if online and not announced:
                joins.append(person)
                self._announced.add(person)
            elif announced and not online:
                leaves.append(person)
                self._announced.discard(person)
        self._touched.clear()
        if not joins and not leaves:
            return None
        self.version += 1
        self._diffs.append((self.version, joins, leaves))
        return self.version, sorted(joins), sorted(leaves)

    def changes_since(self, version: int) -> tuple[list[Person], list[Person]] | None:
        """(joins, leaves) from `version` of this epoch to now, or None when it is not one this
        book can tell from (the future, or older than the changes it remembers)."""
        if version > self.version or (version < self.version and (not self._diffs or self._diffs[0][0] > version + 1)):
            return None
        online_then: dict[Person, bool] = {}
        for diff_version, joins, leaves in self._diffs:
            if diff_version <= version:
                continue
            for person in joins:
                online_then.setdefault(person, False)
            for person in leaves:
                online_then.setdefault(person, True)
        joined = sorted(person for person, was in online_then.items() if not was and person in self._announced)
        left = sorted(person for person, was in online_then.items() if was and person not in self._announced)
        return joined, left

    def state(self) -> dict[str, object]:
        """The announced state and its version: what a newcomer starts from."""
        return {"version": self.version, "epoch": self.epoch, "people": wire(sorted(self._announced))}

    def encoded_state(self) -> RawJSON:
        """The state as JSON, built and encoded once per version: each newcomer, and each page
        that asks again, costs the send, not a sort and an encoding of everyone (2 ms for
        1,000 online; thousands of newcomers a minute)."""
        if self._encoded is None or self._encoded[0] != self.version:
            self._encoded = (self.version, RawJSON.of(self.state()))
        return self._encoded[1]


class PresenceBroadcaster:
    """Tells every socket of this process who comes and goes: the changes of each interval
    in one `presence_diff`, on the next loop turn when things are quiet, at most once per
    `min_interval` under churn. Also the listener of the PresenceSource (other processes)."""

    def __init__(self, sio: socketio.AsyncServer, min_interval: float, source: PresenceSource,
                 on_batch: Callable[[int], None] = lambda changes: None) -> None:
        self._sio = sio
        self._on_batch = on_batch  # told each diff's size (joins and leaves), for the metrics
        self._source = source
        self._min_interval = min_interval
        self.book = PresenceBook()
        self._last_sent = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._unshared_joins: set[Person] = set()
        self._unshared_leaves: set[Person] = set()

    def start(self) -> None:
        self._source.start(self, self.here)

    def here(self) -> list[Person]:
        """This process's own people."""
        return self.book.people_at(HERE)

    # --- this process's sockets ----------------------------------------------------------

    def came_online(self, person: Person) -> None:
        """A person's first socket in this process."""
        if self.book.add(HERE, person):
            self._unshared_leaves.discard(person)
            self._unshared_joins.add(person)
            self._schedule()

    def went_offline(self, person: Person) -> None:
        """A person's last socket in this process closed."""
        if self.book.remove(HERE, person):
            self._unshared_joins.discard(person)
            self._unshared_leaves.add(person)
            self._schedule()

    # --- other processes (PresenceListener) ----------------------------------------------

    def joined(self, where: str, people: Iterable[Person]) -> None:
        added = [self.book.add(where, person) for person in people]  # each one, then any()
        if any(added):
            self._schedule()

    def left(self, where: str, people: Iterable[Person]) -> None:
        removed = [self.book.remove(where, person) for person in people]  # each one, then any()
        if any(removed):
            self._schedule()

    def replace(self, where: str, people: Iterable[Person]) -> None:
        if self.book.replace(where, people):
            self._schedule()

    def places(self) -> list[str]:
        return self.book.places()

    def online(self, tag: str) -> Person | None:
        """The person of this tag, if online now anywhere (PresenceBook.online)."""
        return self.book.online(tag)

    # --- telling the sockets -------------------------------------------------------------

    def state(self) -> RawJSON:
        """The state to start from, encoded (once per version)."""
        return self.book.encoded_state()

    async def tell(self, sid: str, since: object = None) -> None:
        """Send one socket (a newcomer) the state to start from; or, to a page that comes back
        with `since` ("<epoch>:<version>" of this book), what changed since then."""
        match = PRESENCE_POSITION.fullmatch(since) if isinstance(since, str) and len(since) <= 40 else None
        changes = self.book.changes_since(int(match[2])) if match is not None and match[1] == self.book.epoch else None
        if changes is None or match is None:
            await self._sio.manager.emit("presence_state", self.book.encoded_state(), namespace="/", room=sid, ignore_queue=True)
            return
        joins, leaves = changes
        diff = {"version": self.book.version, "since": int(match[2]), "joins": wire(joins), "leaves": wire(leaves)}
        await self._sio.manager.emit("presence_diff", diff, namespace="/", room=sid, ignore_queue=True)

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        interval = max(self._min_interval, len(self._sio.eio.sockets) / PRESENCE_WRITES_PER_SECOND)
        delay = max(0.0, self._last_sent + interval - loop.time())
        self._timer = loop.call_later(delay, self._send)

    def _send(self) -> None:
        self._timer = None
        self._last_sent = asyncio.get_running_loop().time()
        task = asyncio.ensure_future(self._broadcast())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _broadcast(self) -> None:
        joins, leaves = sorted(self._unshared_joins), sorted(self._unshared_leaves)
        self._unshared_joins.clear()
        self._unshared_leaves.clear()
        changes = self.book.take_changes()
        if changes is not None:
            # To this process's sockets only: each process tells its own.
            version, joined, left = changes
            self._on_batch(len(joined) + len(left))
            # Sliced: the page applies diffs by version, so another emit may come between.
            await self._sio.manager.emit("presence_diff", {"version": version, "joins": wire(joined), "leaves": wire(left)},
                                         namespace="/", ignore_queue=True, yield_every=YIELD_EVERY)
        if joins or leaves:
            try:
                await self._source.share(joins, leaves)
            except BackendUnavailable:
                pass  # the source writes its whole set again once the store is back

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
