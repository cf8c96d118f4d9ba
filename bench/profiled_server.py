"""`python -m tornado_app` under a cProfile that the driver switches on and off with signals,
so that a profile holds the measured operations only (bench/profile_path.py), not the
start, the logins or the connects made before them.

    python -m bench.profiled_server [tornado_app's arguments]    # PROFILE_OUT=FILE.prof

SIGUSR1 starts the profile and then creates PROFILE_OUT + ".on" (the driver waits for it
before the first operation); SIGUSR2 stops it and writes the stats to PROFILE_OUT (the
driver waits for that file). The app itself uses neither signal (SIGTERM drains, SIGINT
stops). The timer is time.process_time: CPU, as the harness's per-phase figures are, so
that the time the loop waits in epoll is not counted.

The handlers are plain signal.signal ones: Python runs them on the main thread, the loop's,
between two bytecodes; the loop is woken by the wakeup fd it installs for its own SIGTERM
handler, so an idle server starts profiling at once.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from tornado_app.cli import main

START, STOP = signal.SIGUSR1, signal.SIGUSR2


class Toggle:
    """One cProfile.Profile, enabled and dumped on signals."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.profile = cProfile.Profile(time.process_time)

    def start(self, signum: int, frame: FrameType | None) -> None:
        self.profile.enable()
        Path(f"{self.out}.on").touch()

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.profile.disable()
        self.profile.dump_stats(self.out)


def run() -> int:
    toggle = Toggle(Path(os.environ["PROFILE_OUT"]))
    signal.signal(START, toggle.start)
    signal.signal(STOP, toggle.stop)
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(run())
