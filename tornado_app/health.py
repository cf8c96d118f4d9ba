"""`GET /healthz` and `GET /readyz`: what a load balancer or an orchestrator probes.

Probes come by address (`http://10.0.0.7:8000/readyz`), so these two paths, for GET and
HEAD only, are answered whatever the `Host` header (app.TornadoApp.find_handler); everything
else still answers only to the server's names (origins.py: DNS rebinding). What they give a
foreign page is one word about this process's state, the same for everyone: no session, no
cookie is read or set, nothing of the backend's address. They are logged at DEBUG, not once
per probe at INFO (app.log_request), and they touch no rate counter (ratelimit.py) nor any
Engine.IO session. The cap on open connections per address (admission.py) counts a
probe's connection at accept(), before its path is known, like any other: it counts open
connections, not requests, so a balancer probing over one connection at a time never
reaches it. Behind a proxy, where each request is counted for the address its headers
name, a probe is counted for no one (admission._Gate): that address may be at its cap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from tornado.httputil import HTTPServerRequest
from tornado.web import RequestHandler

if TYPE_CHECKING:
    from .backend import Backend

HEALTH_PATH = "/healthz"
READINESS_PATH = "/readyz"
PROBE_PATHS = frozenset({HEALTH_PATH, READINESS_PATH})
PROBE_METHODS = frozenset({"GET", "HEAD"})
# A backend slower than this to answer a PING counts as unavailable: a balancer's probe
# times out after a few seconds, and its answer must come before that.
READINESS_TIMEOUT_SECONDS = 1.0
RETRY_AFTER_SECONDS = 5


def is_probe(request: HTTPServerRequest) -> bool:
    """A GET or HEAD of exactly /healthz or /readyz (no trailing slash, any query)."""
    return request.method in PROBE_METHODS and request.path in PROBE_PATHS


class ProbedApplication(Protocol):
    """What the probes need of their application (app.TornadoApp)."""

    stopping: bool
    backend: Backend  # whether it answers: readiness


class ProbeHandler(RequestHandler):
    """A short plain-text answer that no cache keeps; no session, no XSRF, no cookie."""

    application: ProbedApplication  # type: ignore[assignment]  # what our app has beyond Tornado's Application

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def check_xsrf_cookie(self) -> None:
        """Only GET and HEAD reach these handlers: nothing to check."""

    def compute_etag(self) -> None:
        """No ETag: the answer is a state of this moment, never to be revalidated."""

    def answer(self, status: int, text: str) -> None:
        self.set_status(status)
        if status == 503:
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.finish(text + "\n")


class HealthHandler(ProbeHandler):
    """`/healthz`: 200 "ok" whenever this process's event loop runs. It is answered by that
    loop, so a loop stuck in a long computation or a deadlock gives no answer at all: the
    prober's timeout is the failure. It does not look at Redis: a process that lives while
    Redis is away is not to be restarted for it (that is /readyz's business)."""

    def get(self) -> None:
        self.answer(200, "ok")

    head = get


class ReadinessHandler(ProbeHandler):
    """`/readyz`: 200 "ready" while this process should be sent new clients; 503 with the
    reason ("draining": it is stopping; "store unavailable": the backend did not answer a
    PING within READINESS_TIMEOUT_SECONDS) and Retry-After otherwise."""

    async def get(self) -> None:
        answers = self.application.stopping or await self.application.backend.answers(READINESS_TIMEOUT_SECONDS)
        if self.application.stopping:  # also when the stop began while the PING was out
            self.answer(503, "draining")
        elif not answers:
            self.answer(503, "store unavailable")
        else:
            self.answer(200, "ready")

    head = get

