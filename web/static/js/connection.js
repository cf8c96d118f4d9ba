/*
 * The socket itself: opening it, the state badge and transport line on the Socket card, and
 * the handshake log, which tells each step of the connection as it happens. What a refusal
 * or a disconnect means for the session is session.js's to say; this module hands it over.
 */

import { byId, clockTime, el, pad } from "./dom.js";

const MAX_LOG_ENTRIES = 200;

// Socket.IO's disconnect reasons, in words a person reads in the log.
const DISCONNECT_WORDS = {
  "io server disconnect": "the server closed this connection",
  "io client disconnect": "this page closed the connection",
  "ping timeout": "the server stopped answering",
  "transport close": "the connection was lost",
  "transport error": "the connection failed",
  "parse error": "the server sent something unreadable",
};

function inWords(reason) {
  return DISCONNECT_WORDS[reason] || String(reason);
}

// Times are counted from page load, which is what a handshake's steps are measured against.
const pageStart = performance.now();

function elapsed(ms) {
  if (ms < 1000) {
    return "+" + Math.round(ms) + " ms";
  }
  if (ms < 60000) {
    return "+" + (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  }
  const seconds = Math.floor(ms / 1000);
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor(seconds / 60) % 60;
  return "+" + (hours ? hours + ":" + pad(minutes) : minutes) + ":" + pad(seconds % 60);
}

/** The handshake log: returns log(text, kind), kind being info (the default), ok, warn or error. */
export function makeHandshakeLog(list) {
  // The newest line stays in view while the reader is at the bottom, also when the log's box
  // shrinks (the Online card above it grows with the people online).
  let atBottom = true;
  list.addEventListener("scroll", () => {
    atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
  }, { passive: true });
  if (window.ResizeObserver) {
    new ResizeObserver(() => {
      if (atBottom) {
        list.scrollTop = list.scrollHeight;
      }
    }).observe(list);
  }

  return function log(text, kind) {
    const now = new Date();
    const entry = el("li", "log-entry log-" + (kind || "info"));
    const time = el("time", "log-time", elapsed(performance.now() - pageStart));
    time.dateTime = now.toISOString();
    time.title = clockTime(now) + "." + pad(now.getMilliseconds(), 3);
    entry.append(time, el("span", "log-text", text));
    list.append(entry);
    while (list.childElementCount > MAX_LOG_ENTRIES) {
      list.firstElementChild.remove();
    }
    list.scrollTop = list.scrollHeight;
    atBottom = true;
  };
}

/** The Socket card's badge, reason line and transport line. */
export function makeSocketBadge(root, shared) {
  const badge = byId("socket-state");
  const reasonLine = byId("socket-reason");
  const transportLine = byId("socket-transport");

  function show(next, reason) {
    badge.textContent = next;
    badge.dataset.state = next;
    root.dataset.socketState = next;
    reasonLine.textContent = reason || "";
    reasonLine.hidden = !reason;
    transportLine.hidden = next !== "connected" && !(next === "connecting" && !reason);
    if (next === "connecting") {
      transportLine.textContent = "Opening the connection…";
    }
  }

  function showTransport(engine) {
    if (shared.state === "connected" && engine && engine.transport) {
      transportLine.textContent = "Transport: " + engine.transport.name;
    }
  }

  return { show, showTransport };
}

/**
 * Opens the socket and tells its story in the log; returns it, or null when the Socket.IO
 * client script did not load. `resumeFrom()` says where the page is ({history, presence},
 * either may be missing), asked afresh on every (re)connect.
 */
export function connect({ shared, log, badge, setState, session, chat, resumeFrom }) {
  log("page loaded, cookie sent automatically by the browser");
  if (!/(?:^|;\s*)session=/.test(document.cookie)) {
    log("document.cookie cannot see the session cookie: it is HttpOnly");
  }

  if (typeof window.io !== "function") {
    setState("disconnected", "the Socket.IO client script did not load");
    log("error: /static/socket.io.min.js did not load", "error");
    return null;
  }

  // Long-polling first, then an upgrade to WebSocket. The cookie rides along on every
  // request because the page and the socket share an origin. The auth says only where the
  // page is in the history and the presence list; the session is the cookie's, checked by
  // the server on every connect before it sends anything missed.
  //
  // The reconnect delay has jitter, so that pages dropped together do not come back
  // together. The first attempt waits 1 s +/- 75%: 0.25 to 1.75 s, and each next attempt
  // twice as long (+/- 75%), at most 5 s. A server that drains on SIGTERM ends its sockets a
  // batch every 0.25 s (tornado_app/drain.py): each batch's pages then come back to the
  // other servers spread over 1.5 s, overlapping the next batches', so the others see a
  // steady rate. A crash drops every page at once: the jitter alone spreads them over
  // 1.5 s instead of the client's default 1 s (+/- 50%). Not sooner than 0.25 s, so
  // that a page does not knock again at once on a server that is going away.
  const socket = window.io({
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
    randomizationFactor: 0.75,
    auth: (reply) => {
      const where = resumeFrom();
      reply(Object.fromEntries(Object.entries(where).filter(([, value]) => value !== undefined)));
    },
  });
  const manager = socket.io;
  let lastDisconnectReason = "";
  log("opening Socket.IO connection to /socket.io/");

  manager.on("open", () => {
    const engine = manager.engine;
    log("transport: " + engine.transport.name);
    engine.on("upgrading", (transport) => log("probing " + transport.name + "…"));
    engine.on("upgrade", (transport) => {
      log("upgraded to " + transport.name, "ok");
      badge.showTransport(engine);
    });
  });

  manager.on("reconnect_attempt", (attempt) => {
    setState("connecting", "reconnecting (attempt " + attempt + ")");
    log("reconnect attempt " + attempt + (lastDisconnectReason ? " (" + inWords(lastDisconnectReason) + ")" : ""));
  });

  // Events the server emits from its connect handler arrive BEFORE the client's own
  // `connect` event, so `welcome` is the first sign of acceptance, not `connect`.
  socket.on("welcome", (data) => {
    lastDisconnectReason = "";
    const name = session.welcomed(data);
    chat.readyToType();
    badge.showTransport(manager.engine);
    log("server accepted: welcome as " + name, "ok");
  });

  socket.on("connect", () => {
    if (shared.state !== "connected") {
      setState("connected");
      session.clearHelp();
    }
    badge.showTransport(manager.engine);
    log("connect: Socket.IO session open");
  });

  socket.on("connect_error", (err) => {
    const message = (err && err.message) || "unknown error";
    if (socket.active) {
      // A network problem: the client retries on its own.
      setState("connecting", "the server cannot be reached; retrying");
      log("connect_error: " + message + " (will retry)", "warn");
      return;
    }
    log("connect_error: " + message, "error");
    session.refused(message, () => socket.connect());
  });

  socket.on("ended", (data) => {
    const reason = session.ended(data);
    if (reason === "shutdown") {
      // The server is stopping (a restart, a deploy), not ending the session: the page goes
      // to another server of the site, or back to this one; in Redis mode the session goes on.
      log("server: stopping; this page reconnects, to another server or to this one when it is back", "warn");
    } else {
      log("server: session ended (" + (reason || "no reason given") + ")", "warn");
    }
  });

  socket.on("disconnect", (reason) => {
    lastDisconnectReason = reason;
    log("disconnected: " + inWords(reason), "error");
    session.disconnected(reason);
  });

  return socket;
}
