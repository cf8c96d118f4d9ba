/*
 * Session Sockets: the live view.
 *
 * Plain JavaScript with no build step. The page's Content-Security-Policy allows no inline
 * script or style, so the template hands data over in data-* attributes, and everything a
 * person typed (usernames, chat text) goes into the page with textContent, never innerHTML.
 *
 * Socket events, as the server sends them:
 *   welcome  {username}               the server accepted this socket
 *   presence {users: [sorted names]}  who is online
 *   chat     {username, text, time}   a message for everyone (time in unix seconds)
 *   error    {message}                a chat message was refused; the socket stays up
 * and as this page sends them:
 *   whoami   (with an ack)             answered with {username, logged_in_at}
 *   chat     {text}                    1 to 500 characters
 */
(function () {
  "use strict";

  const root = document.getElementById("live-view");
  if (!root) {
    return; // Only the logged-in index page has a live view.
  }

  const MAX_LOG_ENTRIES = 200;
  const MAX_MESSAGES = 300;
  const WHOAMI_TIMEOUT_MS = 5000;
  const HUES = 8; // .hue-0 to .hue-7 in app.css

  const byId = (id) => document.getElementById(id);
  const ui = {
    state: byId("socket-state"),
    reason: byId("socket-reason"),
    transport: byId("socket-transport"),
    help: {
      refused: byId("help-refused"),
      ended: byId("help-ended"),
      lost: byId("help-lost"),
    },
    loggedInAt: byId("logged-in-at"),
    sessionStatus: byId("session-status"),
    whoamiButton: byId("whoami-button"),
    whoamiResult: byId("whoami-result"),
    whoamiHint: byId("whoami-hint"),
    chatScroll: byId("chat-scroll"),
    chatEmpty: byId("chat-empty"),
    chatMessages: byId("chat-messages"),
    chatNotice: byId("chat-notice"),
    chatForm: byId("chat-form"),
    chatInput: byId("chat-input"),
    chatCount: byId("chat-count"),
    chatSend: byId("chat-send"),
    onlineCard: byId("online-card"),
    onlineUsers: byId("online-users"),
    onlineCount: byId("online-count"),
    onlineStale: byId("online-stale"),
    log: byId("handshake-log"),
  };

  const MAX_CHAT_LENGTH = Number(ui.chatInput.getAttribute("maxlength")) || 500;
  let me = root.dataset.username || "";
  let state = "connecting";
  let lastDisconnectReason = "";

  // ---- small helpers -------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function pad(number, width) {
    return String(number).padStart(width || 2, "0");
  }

  function clockTime(date) {
    return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function shortTime(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function hueClass(name) {
    let hash = 0;
    for (const char of name) {
      hash = (hash * 31 + char.codePointAt(0)) >>> 0;
    }
    return "hue-" + (hash % HUES);
  }

  function avatar(name) {
    // The initial is drawn by CSS from data-initial, so the element's text stays the bare name.
    const node = el("span", "avatar " + hueClass(name));
    node.dataset.initial = (Array.from(name.trim())[0] || "?").toUpperCase();
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  // ---- the handshake log ---------------------------------------------------------------

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

  function log(text, kind) {
    const now = new Date();
    const entry = el("li", "log-entry log-" + (kind || "info"));
    const time = el("time", "log-time", elapsed(performance.now() - pageStart));
    time.dateTime = now.toISOString();
    time.title = clockTime(now) + "." + pad(now.getMilliseconds(), 3);
    entry.append(time, el("span", "log-text", text));
    ui.log.append(entry);
    while (ui.log.childElementCount > MAX_LOG_ENTRIES) {
      ui.log.firstElementChild.remove();
    }
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  // ---- connection state ----------------------------------------------------------------

  function setState(next, reason) {
    state = next;
    ui.state.textContent = next;
    ui.state.dataset.state = next;
    root.dataset.socketState = next;
    ui.reason.textContent = reason || "";
    ui.reason.hidden = !reason;

    const live = next === "connected";
    ui.chatInput.disabled = !live;
    ui.chatSend.disabled = !live;
    ui.whoamiButton.disabled = !live;
    ui.onlineCard.classList.toggle("is-stale", !live);
    ui.onlineStale.hidden = live || ui.onlineUsers.childElementCount === 0;
    ui.chatInput.placeholder = live ? "Write a message…" : "Not connected";
    ui.transport.hidden = !live && !(next === "connecting" && !reason);
    if (next === "connecting") {
      ui.transport.textContent = "Opening the connection…";
    }
    if (!live) {
      // Answers and refusals that came over a socket which is gone are stale.
      ui.whoamiResult.replaceChildren();
      showChatNotice("");
    }
    ui.whoamiHint.hidden = !live || ui.whoamiResult.childElementCount > 0;
  }

  function setSessionStatus(text, gone) {
    ui.sessionStatus.textContent = text;
    ui.sessionStatus.classList.toggle("is-gone", gone);
  }

  function showHelp(which) {
    for (const [name, node] of Object.entries(ui.help)) {
      node.hidden = name !== which;
    }
  }

  function showTransport(engine) {
    if (state === "connected" && engine && engine.transport) {
      ui.transport.textContent = "Transport: " + engine.transport.name;
    }
  }

  // ---- presence ------------------------------------------------------------------------

  function renderPresence(users) {
    const items = users.map((name) => {
      const item = el("li", "person" + (name === me ? " is-me" : ""));
      item.dataset.username = name;
      item.append(avatar(name), el("span", "person-name", name));
      return item;
    });
    ui.onlineUsers.replaceChildren(...items);
    ui.onlineCount.textContent = String(users.length);
  }

  // ---- chat ----------------------------------------------------------------------------

  function nearBottom(scroller) {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  }

  function addMessage(message) {
    const name = String(message.username);
    const sent = new Date(Number(message.time) * 1000);
    const stick = nearBottom(ui.chatScroll);

    const item = el("li", "message" + (name === me ? " is-me" : ""));
    const meta = el("div", "message-meta");
    const time = el("time", "message-time", shortTime(sent));
    time.dateTime = sent.toISOString();
    time.title = sent.toLocaleString();
    meta.append(el("span", "message-user", name), time);
    const body = el("div", "message-body");
    body.append(meta, el("p", "message-text", String(message.text)));
    item.append(avatar(name), body);

    ui.chatMessages.append(item);
    while (ui.chatMessages.childElementCount > MAX_MESSAGES) {
      ui.chatMessages.firstElementChild.remove();
    }
    ui.chatEmpty.hidden = true;
    if (stick || name === me) {
      ui.chatScroll.scrollTop = ui.chatScroll.scrollHeight;
    }
  }

  function showChatNotice(text) {
    ui.chatNotice.textContent = text || "";
    ui.chatNotice.hidden = !text;
  }

  function updateCount() {
    const length = ui.chatInput.value.length;
    ui.chatCount.textContent = length + "/" + MAX_CHAT_LENGTH;
    ui.chatCount.classList.toggle("is-near-limit", length > MAX_CHAT_LENGTH - 50);
  }

  // ---- whoami --------------------------------------------------------------------------

  function showWhoami(kind, summary, detail, payload) {
    const box = el("div", "whoami-box whoami-" + kind);
    box.append(el("p", "whoami-summary", summary));
    if (detail) {
      box.append(el("p", "whoami-detail", detail));
    }
    if (payload !== undefined) {
      // One line with spaces, so that it wraps between fields rather than inside them.
      const json = JSON.stringify(payload, null, 1).replace(/\n\s*/g, " ");
      box.append(el("pre", "whoami-json", json));
    }
    ui.whoamiResult.replaceChildren(box);
    ui.whoamiHint.hidden = true; // the answer now makes the same point, with less room
  }

  // ---- page set-up ---------------------------------------------------------------------

  const loggedInAt = Number(root.dataset.loggedInAt);
  if (ui.loggedInAt && Number.isFinite(loggedInAt)) {
    const date = new Date(loggedInAt * 1000);
    ui.loggedInAt.textContent = clockTime(date);
    ui.loggedInAt.title = date.toLocaleString();
  }

  ui.chatInput.addEventListener("input", updateCount);
  updateCount();
  setState("connecting");
  showHelp(null);

  log("page loaded, cookie sent automatically by the browser");
  if (!/(?:^|;\s*)session=/.test(document.cookie)) {
    log("document.cookie cannot see the session cookie: it is HttpOnly");
  }

  if (typeof window.io !== "function") {
    setState("disconnected", "the Socket.IO client script did not load");
    log("error: /static/socket.io.min.js did not load", "error");
    return;
  }

  // Default options: long-polling first, then an upgrade to WebSocket. The cookie rides
  // along on every request because the page and the socket share an origin.
  const socket = window.io();
  const manager = socket.io;
  log("opening Socket.IO connection to /socket.io/");

  manager.on("open", () => {
    const engine = manager.engine;
    log("transport: " + engine.transport.name);
    engine.on("upgrading", (transport) => log("probing " + transport.name + "…"));
    engine.on("upgrade", (transport) => {
      log("upgraded to " + transport.name, "ok");
      showTransport(engine);
    });
  });

  manager.on("reconnect_attempt", (attempt) => {
    const after = lastDisconnectReason ? " after " + lastDisconnectReason : "";
    setState("connecting", "reconnecting" + after + " (attempt " + attempt + ")");
    log("reconnect attempt " + attempt);
  });

  // Events the server emits from its connect handler arrive BEFORE the client's own
  // `connect` event, so `welcome` is the first sign of acceptance, not `connect`.
  socket.on("welcome", (data) => {
    const name = data && typeof data.username === "string" ? data.username : me;
    me = name;
    lastDisconnectReason = "";
    setState("connected");
    showHelp(null);
    setSessionStatus("active", false);
    showTransport(manager.engine);
    log("server accepted: welcome as " + name, "ok");
  });

  socket.on("connect", () => {
    if (state !== "connected") {
      setState("connected");
      showHelp(null);
    }
    showTransport(manager.engine);
    log("connect: Socket.IO session open");
  });

  socket.on("connect_error", (err) => {
    const message = (err && err.message) || "unknown error";
    if (socket.active) {
      // A network problem: the client retries on its own.
      const after = lastDisconnectReason ? " after " + lastDisconnectReason : "";
      setState("connecting", message + "; retrying" + after);
      log("connect_error: " + message + " (will retry)", "warn");
      return;
    }
    // The server refused the handshake (ConnectionRefusedError): no retry would help.
    setState("refused", message);
    showHelp("refused");
    setSessionStatus(message === "not authenticated" ? "gone" : "refused", true);
    log("connect_error: " + message, "error");
  });

  socket.on("disconnect", (reason) => {
    lastDisconnectReason = reason;
    setState("disconnected", reason);
    log("disconnect: " + reason, "error");
    if (reason === "io server disconnect") {
      // The server ended this session (logout elsewhere, expiry); the client will not retry.
      showHelp("ended");
      setSessionStatus("ended", true);
    } else if (socket.active) {
      showHelp("lost");
    }
  });

  socket.on("presence", (data) => {
    if (data && Array.isArray(data.users)) {
      renderPresence(data.users.map(String));
      ui.onlineStale.hidden = state === "connected";
    }
  });

  socket.on("chat", (message) => {
    if (message && typeof message.text === "string") {
      addMessage(message);
    }
  });

  socket.on("error", (data) => {
    showChatNotice((data && data.message) || "The server refused that message.");
  });

  ui.chatForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.chatInput.value;
    if (!socket.connected || text.trim() === "") {
      ui.chatInput.focus();
      return;
    }
    socket.emit("chat", { text: text });
    ui.chatInput.value = "";
    updateCount();
    showChatNotice("");
    ui.chatInput.focus();
  });

  ui.whoamiButton.addEventListener("click", () => {
    const asked = performance.now();
    ui.whoamiButton.disabled = true;
    socket.timeout(WHOAMI_TIMEOUT_MS).emit("whoami", (err, result) => {
      ui.whoamiButton.disabled = state !== "connected";
      const took = Math.round(performance.now() - asked);
      if (err) {
        showWhoami("error", "No answer within " + WHOAMI_TIMEOUT_MS / 1000 + " s.");
      } else if (!result || typeof result.username !== "string") {
        showWhoami("error", "The server has no session for this socket any more.", "", result === undefined ? null : result);
      } else {
        const since = new Date(Number(result.logged_in_at) * 1000);
        showWhoami(
          "ok",
          "You are " + result.username + ", logged in at " + clockTime(since) + ".",
          "Answered from the server's session in " + took + " ms:",
          result
        );
      }
    });
  });
})();
