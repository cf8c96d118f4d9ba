"""How fast a dead link is noticed: the Engine.IO ping interval and timeout, defined once for
the command line, the app factory, the socket server and the desktop launcher.

A link can die without a word (a Wi-Fi that drops, a tunnel or NAT that stalls): no FIN, no
RST, so only silence tells. Both ends time that silence with these two figures, which the
server sends the page in the Engine.IO handshake:
- the page (Socket.IO's JS client) gives the link up when no ping has come for
  `interval + timeout` seconds, and shows "reconnecting": at most 8 + 5 = 13 s after the link
  died, within the 15 s the page promises (Socket.IO's own 25 + 20 took up to 45 s);
- the server pings `interval` seconds after each pong and drops a socket whose next pong has
  not come `timeout` seconds after the ping: a WebSocket that sent no frame for
  `interval + timeout` (13 s), a long-polling one at its next sweep, once a second (14 s at
  most: patches/engineio_server.py). So a dead page leaves the others' presence lists that
  fast, not after 25 + 20 s (or 65 s).

The price is a ping and a pong per socket every `interval` seconds instead of every 25:
bench/idle.py measures it on idle sockets (the README's figures). `timeout` must cover a slow
network's round trip plus a busy server's delay: 5 s is far beyond both on a working link.
"""

from __future__ import annotations

# Whole seconds: engineio sends the page int(interval) (a 7.5 s interval would be told as 7).
DEFAULT_PING_INTERVAL = 8  # seconds between the server's pings
DEFAULT_PING_TIMEOUT = 5  # seconds a pong may take before the link counts as dead
