"""What the tests and the benchmarks share: the clients that speak to a server and the tools
that measure it.

`bench/*.py` import these too (run from the repository root, which is then importable), so
a client fixed here is fixed for both. The fixtures and hooks stay in tests/conftest.py;
the modules the tests alone use are the only ones that import pytest (e2e.py, app_env.py,
make_cluster.py, process_marker.py). Starting redis-server, nginx and app processes on free
ports is product tooling and stays in deploy/services.py (its `free_port` is the only one).

Clients: wire.py (the bare Socket.IO client over a WebSocket, cheap enough for thousands),
raw.py (a WebSocket written by hand, for clients that misbehave on purpose), polling.py
(long-polling, then an upgrade when the test says), socketio_client.py (python-socketio's
own, the reference), web_user.py (a browser's HTTP side), forms.py (login and logout), with
protocol.py (the packets) and presence.py (who is online, as a page sees it).
Attacks: attacks.py, hostile.py (the hostile mix), attacked.py (a server watched under them).
Processes and measuring: processes.py, cluster.py, make_cluster.py, app_env.py, sentinel.py,
measure.py, waiting.py; the browser: browser.py; a dead link: proxy.py. Scenarios shared with a
benchmark: state_flood.py; another local user (run as `nobody`): local_user.py, started by
other_user.py. For the tests: constants.py (the app fixture's values, the paths), clock.py
(FakeClock), e2e.py (skip, or fail under REQUIRE_E2E=1), and process_marker.py (the `process`
marker and its guard).
"""
