#!/usr/bin/env python3
"""`make cluster`: one site served by several processes on this machine, as in production.

It starts redis-server with a generated password, N app processes (`python -m tornado_app`,
default: one per core) and nginx in front of them on one port (deploy/nginx.conf: sticky per
client address, WebSocket upgrades passed, X-Forwarded-* set), every file in a private
temporary directory. It prints the URL; Ctrl-C (or SIGTERM) stops all of it and removes the
directory.

The Redis URL (with its password) and the cookie secret reach the app processes only through
$TORNADO_APP_REDIS_URL and $TORNADO_APP_COOKIE_SECRET: a command line is world-readable in
/proc/PID/cmdline, and the secret with one session id from Redis makes a cookie that works.

    .venv/bin/python deploy/cluster.py --help
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.services import AppProcess, Nginx, RedisServer, Service, ServiceMissing, free_port  # noqa: E402
from tornado_app.cli import COOKIE_SECRET_ENV, REDIS_URL_ENV  # noqa: E402
from tornado_app.redis.bus import redacted  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Serve the site from several processes behind nginx, sharing Redis.")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="app processes (default: one per core, %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="nginx's port on 127.0.0.1 (default: %(default)s; 0 picks a free one)")
    parser.add_argument("--redis-url", default=os.environ.get(REDIS_URL_ENV) or None,
                        help=f"use this Redis instead of starting one (default: ${REDIS_URL_ENV}; prefer the variable, "
                        "since a password on a command line is readable by every local user)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    started: list[Service] = []
    with tempfile.TemporaryDirectory(prefix="tornado-app-cluster-") as workdir:
        try:
            redis_url = args.redis_url
            if redis_url is None:
                redis = RedisServer(Path(workdir))
                started.append(redis)
                redis_url = redis.url
            port = args.port or free_port()
            secret = os.environ.get(COOKIE_SECRET_ENV) or secrets.token_urlsafe(32)
            apps = [
                AppProcess(Path(workdir) / f"app{number}.log", "--behind-proxy",
                           "--allowed-host", f"127.0.0.1:{port}", "--allowed-host", f"localhost:{port}",
                           env={COOKIE_SECRET_ENV: secret, REDIS_URL_ENV: redis_url})
                for number in range(1, args.processes + 1)
            ]
            started.extend(apps)
            nginx = Nginx(Path(workdir), [app.port for app in apps], port=port)
            started.append(nginx)
        except ServiceMissing as missing:
            print(f"make cluster: {missing}", file=sys.stderr)
            return 2
        except (RuntimeError, OSError) as error:
            print(f"make cluster: {error}", file=sys.stderr)
            for service in reversed(started):
                service.stop()
            return 2
        except KeyboardInterrupt:
            for service in reversed(started):
                service.stop()
            return 0
        print(f"Serving on {nginx.url}/  ({len(apps)} processes on ports {', '.join(str(app.port) for app in apps)}, "
              f"Redis at {redacted(redis_url)}; logs in {workdir}; Ctrl-C to stop)", flush=True)
        try:
            while all(service.process.poll() is None for service in started):
                time.sleep(0.5)
            dead = [service for service in started if service.process.poll() is not None]
            print(f"make cluster: {dead[0].process.args[0]} stopped (status {dead[0].process.returncode}); stopping the rest",
                  file=sys.stderr)
            status = 1
        except KeyboardInterrupt:
            status = 0
        for service in [nginx, *apps, *started[:1 if args.redis_url is None else 0]]:
            service.stop()
        print("stopped", flush=True)
        return status


if __name__ == "__main__":
    sys.exit(main())
