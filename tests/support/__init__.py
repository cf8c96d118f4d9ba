"""What the tests and the benchmarks share: the clients that speak to a server and the tools
that measure it.

`bench/*.py` import these too (run from the repository root, which is then importable), so
a client fixed here is fixed for both. Nothing here needs pytest; the fixtures stay in
tests/conftest.py. Starting redis-server, nginx and app processes on free ports is product
tooling and stays in deploy/services.py (its `free_port` is the only one).
"""
