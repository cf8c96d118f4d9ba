"""Who is online as a page sees it, for every client here (and the presence unit tests)."""

from __future__ import annotations

import asyncio
from typing import Any


class PresenceView:
    """Who is online as a page sees it: the `presence_state`, then each `presence_diff` in
    version order (a diff before the state, or after a gap, waits; a gap is `gapped`)."""

    def __init__(self) -> None:
        self.people: dict[str, str] = {}  # tag -> name
        self.version: int | None = None
        self.gapped = False
        self._held: dict[int, dict[str, Any]] = {}

    def event(self, name: str, data: Any) -> None:
        """Take one `presence_state` or `presence_diff` (any other event is not ours)."""
        if name == "presence_state":
            self.people = {person["tag"]: person["name"] for person in data["people"]}
            self.version, self.gapped = data["version"], False
            self._apply_held()
        elif name == "presence_diff" and "since" in data:
            # The net change from `since` to `version`, for a page that came back holding `since`.
            if self.version == data["since"]:
                self._apply(data)
                self.version = data["version"]
                self._apply_held()
        elif name == "presence_diff":
            self._held[data["version"]] = data
            if self.version is not None:
                self._apply_held()
                self.gapped = bool(self._held)

    def _apply_held(self) -> None:
        assert self.version is not None
        for version in sorted(self._held):
            if version <= self.version:
                del self._held[version]
            elif version == self.version + 1:
                self._apply(self._held.pop(version))
                self.version = version

    def _apply(self, diff: dict[str, Any]) -> None:
        for person in diff["leaves"]:
            self.people.pop(person["tag"], None)
        for person in diff["joins"]:
            self.people[person["tag"]] = person["name"]

    def names(self) -> list[str]:
        """One name per person online, sorted (a name twice for two people of that name)."""
        return sorted(self.people.values())

    async def until(self, names: list[str], timeout: float = 10) -> None:
        """Wait until this view of who is online is `names` (in any order, one per person)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.names() != sorted(names):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"online is {self.names()}, not {sorted(names)}")
            await asyncio.sleep(0.01)
