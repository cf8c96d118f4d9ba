"""A TCP proxy that can go dead while every connection stays open, for testing how the page
and the server notice a link that is down but was never closed (a dead Wi-Fi, a stalled
tunnel, a NAT that lost its mapping): no RST, no FIN, just silence both ways.

    with FreezableProxy("127.0.0.1", server.port) as proxy:
        page.goto(f"http://127.0.0.1:{proxy.port}/")
        proxy.freeze()      # from now on, not one byte crosses, in either direction
        ...
        proxy.thaw()        # the link is back

What freezing models: the proxy stops reading from both sides and holds any bytes it read but
had not forwarded yet, so each peer sees exactly what a dead link shows it: its writes go into
its own socket buffers and nothing comes back. Connections made during the freeze are accepted
(a tunnel's or a Wi-Fi's local end still answers) and reach the target only after the thaw.

What thawing models, by choice of `thaw(reset=...)`:
- `thaw()`: the link comes back as a real one does: everything held is forwarded and every
  connection goes on. Whatever a peer did meanwhile (gave up and closed) reaches the other
  then, as TCP's retransmissions would deliver it. New connections go through at once.
- `thaw(reset=True)`: the connections that lived through the freeze are aborted (RST) as a
  tunnel or NAT that lost its state does when the first packet returns; new ones go through.

It runs its own event loop in a thread, so it serves sync tests (Playwright's sync API) and
async ones alike; `freeze`, `thaw` and `close_all` return once they are in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, Self

from deploy.services import free_port

CHUNK = 65536


class _Link:
    """One client connection and its upstream connection, pumped both ways."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter, born: int) -> None:
        self.client = client
        self.upstream = upstream
        self.born = born  # how many freezes had begun when the client connected

    def abort(self) -> None:
        """Drop both sockets at once (RST where the kernel sends one), without a FIN."""
        for writer in (self.client, self.upstream):
            with contextlib.suppress(Exception):
                _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the peer gets a RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


class FreezableProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port`; see the module's docstring."""

    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy:{self.port}", daemon=True)
        self._server: asyncio.Server | None = None
        self._live: asyncio.Event | None = None  # set while bytes may flow
        self._links: set[_Link] = set()
        self._waiting: set[asyncio.StreamWriter] = set()  # accepted while frozen, not yet connected
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0  # connections accepted since start, frozen ones included
        self._freezes = 0  # freezes begun so far
        self._reset_below = 0  # connections born before this many freezes are to be aborted

    # --- the test's side (any thread but the proxy's own) ---

    def start(self) -> Self:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and end the thread."""
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def freeze(self) -> None:
        """From now on, no byte crosses either way; connections stay open."""
        self._call(self._freeze())

    def thaw(self, reset: bool = False) -> None:
        """Forward again; with `reset`, abort the connections that lived through the freeze."""
        self._call(self._thaw(reset))

    def close_all(self) -> None:
        """Abort every connection now (RST); the listener stays open."""
        self._call(self._close_all())

    @property
    def frozen(self) -> bool:
        return self._live is not None and not self._live.is_set()

    @property
    def open_links(self) -> int:
        return len(self._links)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # --- the proxy's loop ---

    async def _start(self) -> None:
        self._live = asyncio.Event()
        self._live.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._close_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _freeze(self) -> None:
        assert self._live is not None
        self._live.clear()
        self._freezes += 1

    async def _thaw(self, reset: bool) -> None:
        assert self._live is not None
        if reset:
            self._reset_below = self._freezes
            for link in [link for link in self._links if link.born < self._reset_below]:
                self._links.discard(link)
                link.abort()
        self._live.set()

    async def _close_all(self) -> None:
        for client in list(self._waiting):
            with contextlib.suppress(Exception):
                _abort(client)
        links, self._links = self._links, set()
        for link in links:
            link.abort()

    async def _accept(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        assert self._live is not None
        self.accepted += 1
        born = self._freezes
        accepting = asyncio.current_task()
        assert accepting is not None
        self._tasks.add(accepting)
        self._waiting.add(client)
        try:
            # A connection made on a dead link waits for it to come back, as a SYN that is
            # retransmitted until it gets through.
            await self._live.wait()
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(client)
            return
        finally:
            self._waiting.discard(client)
            self._tasks.discard(accepting)
        link = _Link(client, upstream, born)
        if born < self._reset_below:  # it was still connecting upstream when its link was reset
            link.abort()
            return
        self._links.add(link)
        pumps = [
            asyncio.ensure_future(self._pump(client_reader, upstream)),
            asyncio.ensure_future(self._pump(upstream_reader, client)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.difference_update(pumps)
            if link in self._links:
                self._links.discard(link)
                for writer in (client, upstream):
                    writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; waits while frozen, before reading and before writing, so
        nothing read just before a freeze slips through after it."""
        assert self._live is not None
        try:
            while True:
                await self._live.wait()
                data = await reader.read(CHUNK)
                await self._live.wait()
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return
