"""make cluster's rolling restart (`kill -USR1 <cluster pid>`): the app processes restarted one
at a time, each taken out of nginx and drained first, so that a deploy logs nobody out and
never leaves the site without a process.

For each app in turn:
1. wait until every app is up (one that is in its supervisor's back-off is waited for: two
   down at once is what this avoids);
2. mark it `down` in nginx's configuration and reload nginx (SIGHUP: connections already open
   stay on the old workers), and wait until the reload serves (new workers, the old ones no
   longer taking connections): from then on no new page, login or socket goes to it;
3. SIGTERM it: it drains over --drain-seconds, ending its sockets in batches, each page
   reconnecting (through nginx, to another process) still logged in; wait for its exit, at
   most the drain and DRAIN_MARGIN seconds, then SIGKILL;
4. start it again (the supervisor's own restart: same socket, flags, environment) and wait
   for its /readyz to say 200 (`app 1 back (pid M)`); if it does not start, the supervisor
   retries it as after any end, and the rolling restart waits;
5. mark it up and reload nginx, wait until the reload serves, then the next app.

It is a state machine ticked by the supervisor's loop (deploy/cluster.py `supervise`), so that
the other parts are still watched and restarted meanwhile, and Ctrl-C stops everything at
any step. The app being restarted is `held` from its supervisor: its end is not a crash.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Collection
from enum import Enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import subprocess
    from types import FrameType

    from deploy.cluster import Supervised

DRAIN_MARGIN = 10.0  # seconds after the drain for an app to close its listeners and Redis and exit
RELOAD_SECONDS = 10.0  # how long nginx may take to serve with a new configuration


class Restartable(Protocol):
    """An app's service as the rolling restart uses it (deploy/services.py AppProcess)."""

    process: subprocess.Popen[str]

    @property
    def where(self) -> str: ...


class Front(Protocol):
    """nginx's service as the rolling restart uses it (deploy/services.py Nginx)."""

    def set_down(self, down: Collection[str]) -> None: ...

    def reloaded(self) -> bool: ...


class RestartRequests:
    """SIGUSR1s received and not yet handled (counted by the signal handler, read by the loop)."""

    def __init__(self) -> None:
        self.pending = 0

    def listen(self) -> None:
        """Count each SIGUSR1 from now on (its default action would end the cluster)."""
        signal.signal(signal.SIGUSR1, self._received)

    def _received(self, signum: int, frame: FrameType | None) -> None:
        self.pending += 1

    def take(self) -> int:
        taken, self.pending = self.pending, 0
        return taken


class Step(Enum):
    IDLE = "idle"
    WAITING = "waiting for every app to be up"
    TAKING_OUT = "taking it out of nginx"
    DRAINING = "draining"
    STARTING = "starting it again"
    PUTTING_BACK = "putting it back into nginx"


class RollingRestart:
    """The rolling restart of `apps` behind `nginx`, one at a time; `tick` moves it on."""

    def __init__(self, apps: list[Supervised], nginx: Supervised, drain_seconds: float, say: Callable[[str], None],
                 requests: RestartRequests) -> None:
        self.apps = apps
        self.nginx = nginx
        self.drain_seconds = drain_seconds
        self.say = say
        self.requests = requests
        self.step = Step.IDLE
        self.index = 0  # the app being restarted
        self.began = 0.0  # time.monotonic() when it began
        self.deadline = 0.0  # when the current step has waited long enough
        self.draining_pid = 0
        self.drain_began = 0.0
        self.said_waiting = False

    @property
    def app(self) -> Supervised:
        return self.apps[self.index]

    def _service(self, part: Supervised) -> Restartable:
        return part.service  # type: ignore[return-value]  # an app's: AppProcess

    def _nginx(self) -> Front:
        return self.nginx.service  # type: ignore[return-value]  # nginx's: Nginx

    def tick(self, now: float) -> None:
        """Take in any SIGUSR1, then move the restart on by whatever has happened."""
        if self.requests.take():
            self._asked(now)
        if self.step is Step.WAITING:
            self._wait_for_every_app(now)
        elif self.step is Step.TAKING_OUT:
            self._wait_for_reload(now, then=self._drain)
        elif self.step is Step.DRAINING:
            self._wait_for_exit(now)
        elif self.step is Step.STARTING:
            self._wait_until_back(now)
        elif self.step is Step.PUTTING_BACK:
            self._wait_for_reload(now, then=self._next)

    def _asked(self, now: float) -> None:
        if self.step is not Step.IDLE:
            self.say(f"rolling restart already under way (app {self.index + 1} of {len(self.apps)}: {self.step.value}); "
                     "this SIGUSR1 is ignored")
            return
        self.say(f"rolling restart (SIGUSR1): {len(self.apps)} app{'s' if len(self.apps) != 1 else ''}, one at a time, "
                 f"each drained over {self.drain_seconds:g} s")
        self.began = now
        self.index = 0
        self._begin_app()

    def _begin_app(self) -> None:
        self.step = Step.WAITING
        self.said_waiting = False

    def _wait_for_every_app(self, now: float) -> None:
        away = [part.name for part in self.apps if part.restart_at is not None or part.held]
        if away:
            if not self.said_waiting:
                self.say(f"rolling restart: waiting for {', '.join(away)} to be back before draining {self.app.name}")
                self.said_waiting = True
            return
        self.app.held = True  # from here its end is ours, not a crash
        others = [self._service(part).where for part in self.apps if part is not self.app]
        if others:  # the only app is not taken out: nginx would have nowhere to send anyone
            self._take_out_of_nginx({self._service(self.app).where}, now)
        else:
            self._drain(now)

    def _take_out_of_nginx(self, down: set[str], now: float) -> None:
        self._nginx().set_down(down)
        self.step = Step.TAKING_OUT
        self.deadline = now + RELOAD_SECONDS

    def _wait_for_reload(self, now: float, then: Callable[[float], None]) -> None:
        if self._nginx().reloaded():
            then(now)
        elif now >= self.deadline:
            self.say(f"rolling restart: nginx did not reload within {RELOAD_SECONDS:g} s (see its log); going on")
            then(now)

    def _drain(self, now: float) -> None:
        self.draining_pid = self.app.pid
        self.say(f"rolling restart: {self.app.name} draining (pid {self.draining_pid})")
        self._service(self.app).process.send_signal(signal.SIGTERM)
        self.step = Step.DRAINING
        self.drain_began = now
        self.deadline = now + self.drain_seconds + DRAIN_MARGIN

    def _wait_for_exit(self, now: float) -> None:
        process = self._service(self.app).process
        status = process.poll()
        if status is None:
            if now >= self.deadline:
                self.say(f"rolling restart: {self.app.name} (pid {self.draining_pid}) still running "
                         f"{now - self.drain_began:.0f} s after SIGTERM; killing it")
                process.kill()
                self.deadline = float("inf")  # SIGKILL: it ends
            return
        how = f"exited (status {status})" if status >= 0 else f"killed by {signal.Signals(-status).name}"
        self.say(f"rolling restart: {self.app.name} (pid {self.draining_pid}) {how} after {now - self.drain_began:.1f} s")
        self.app.start_again_now()  # the supervisor starts it and says `app N back (pid M)`
        self.step = Step.STARTING

    def _wait_until_back(self, now: float) -> None:
        if self.app.restart_at is None and self._service(self.app).process.poll() is None:
            if len(self.apps) > 1:
                self._take_out_of_nginx(set(), now)
                self.step = Step.PUTTING_BACK
            else:
                self._next(now)

    def _next(self, now: float) -> None:
        self.index += 1
        if self.index < len(self.apps):
            self._begin_app()
            return
        self.step = Step.IDLE
        self.say(f"rolling restart done in {time.monotonic() - self.began:.1f} s")
