"""Several app processes sharing one Redis, as a test starts them (the `cluster` fixture).

Each process is deploy/services.py's AppProcess; the Redis is the test's own (conftest's
`redis_url`). test_cluster.py and test_redis_values.py use it.
"""

from __future__ import annotations

from pathlib import Path

from deploy.services import AppProcess

SECRET = "a-secret-shared-by-every-process"


class Cluster:
    """App processes on one Redis, started (and stopped) by the test."""

    def __init__(self, redis_url: str, workdir: Path) -> None:
        self.redis_url = redis_url
        self.workdir = workdir
        self.apps: list[AppProcess] = []

    def start(self, *args: str, name: str | None = None, port: int | None = None) -> AppProcess:
        """One more process on this Redis, with `args` for its command line; its log is
        `<name>.log` in the test's directory."""
        log = self.workdir / f"{name or f'app{len(self.apps) + 1}'}.log"
        # Secrets through the environment, as in deployment: never on a command line.
        # Every simulated person logs in from 127.0.0.1: the per-address rates are lifted here
        # (tests/test_ratelimit.py attacks them, across processes too).
        app = AppProcess(log, "--log-level", "info", "--login-rate", "off", "--connect-rate", "off", *args, port=port,
                         env={"TORNADO_APP_COOKIE_SECRET": SECRET, "TORNADO_APP_REDIS_URL": self.redis_url})
        self.apps.append(app)
        return app

    def stop(self) -> None:
        for app in self.apps:
            app.stop()
