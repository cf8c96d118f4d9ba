/*
 * Session Sockets: the live view.
 *
 * Plain JavaScript with no build step. The page's Content-Security-Policy allows no inline
 * script or style, so the template hands data over in data-* attributes, and everything a
 * person typed (usernames, chat text) goes into the page with textContent, never innerHTML.
 *
 * Socket events, as the server sends them:
 *   welcome  {username, tag}          the server accepted this socket; tag is this session's
 *                                     public tag (two people may share a name, never a tag)
 *   history  {messages: [chat...]}    the recent conversation, sent once after welcome
 *   presence_state {version, people: [{name, tag}]}  who is online: once after welcome
 *   presence_diff  {version, joins: [{name, tag}], leaves: [...]}  who came and went since
 *                                     the previous version (at most every 100 ms)
 *   chat     {id, username, tag, text, time}  a message for everyone (time in unix seconds)
 *   error    {message}                a chat message was refused; the socket stays up
 *   ended    {reason}                 the session ended (logout, replaced, expired, evicted)
 *                                     or the server is shutting down; sent just before
 * and as this page sends them:
 *   whoami   (with an ack)             answered with {username, logged_in_at}
 *   chat     {text}                    1 to 500 characters
 *   active                             a person is using this page (at most once a minute)
 *   presence_state (with an ack)       after a gap in the versions: answered with the state
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
    help: byId("socket-help"),
    helpText: byId("socket-help-text"),
    helpLogin: byId("socket-help-login"),
    headerSession: byId("header-session"),
    logoutForm: byId("logout-form"),
    logoutHint: byId("logout-hint"),
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
  // The server refreshes the idle timer on each report: once a minute (more often for a
  // short idle TTL), from the template.
  const ACTIVITY_REPORT_MS = Number(root.dataset.activityReportMs) || 60000;
  let me = root.dataset.username || "";
  let myTag = root.dataset.tag || "";
  let state = "connecting";
  let lastDisconnectReason = "";
  let endedReason = ""; // what the server said before it ended this session
  let historyShown = false;
  const shownMessages = new Set(); // message ids, so that history and live never repeat one

  // What each ending means, in plain words; the transport's own words go to the log only.
  const ENDINGS = {
    logout: "You logged out, here or in another tab, so this session has ended.",
    replaced: "Someone logged in again in this browser, which replaced this session.",
    expired: "This session expired: nobody used it for too long.",
    evicted: "The server had too many sessions and ended this one, the longest unused.",
    shutdown: "The server is stopping. This page reconnects by itself when it is back.",
  };

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
    // One clock format on the whole page: 24-hour, as the session card shows it.
    return pad(date.getHours()) + ":" + pad(date.getMinutes());
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

  function showHelp(text, kind, offerLogin) {
    ui.help.hidden = !text;
    ui.helpText.textContent = text || "";
    ui.help.className = "alert alert-" + (kind || "warning");
    ui.helpLogin.hidden = !offerLogin;
  }

  function sessionGone(status) {
    // No "Signed in as ..." and "Log out" for a session that is gone.
    setSessionStatus(status, true);
    for (const node of [ui.headerSession, ui.logoutForm, ui.logoutHint]) {
      if (node) {
        node.hidden = true;
      }
    }
  }

  function showTransport(engine) {
    if (state === "connected" && engine && engine.transport) {
      ui.transport.textContent = "Transport: " + engine.transport.name;
    }
  }

  // ---- presence ------------------------------------------------------------------------

  // The list is kept from a state and then changes (never rebuilt per change): `people`
  // in display order (you first, then by name and tag), a node per person drawn, and at
  // most MAX_DRAWN drawn, with "and N more" below.
  const MAX_DRAWN = 200;
  const people = []; // {name, tag}, in display order
  const nodes = new Map(); // tag -> <li> of a drawn person
  const nameCounts = new Map(); // name -> people online with it (a shared name shows tags)
  let presenceVersion = null; // null: no state yet
  const heldDiffs = new Map(); // version -> diff that came before the state or after a gap
  let askingForState = false;
  const moreNote = el("li", "person person-more");

  function before(a, b) {
    const aMine = a.tag === myTag;
    if (aMine !== (b.tag === myTag)) {
      return aMine;
    }
    return a.name < b.name || (a.name === b.name && a.tag < b.tag);
  }

  function positionOf(person) {
    let low = 0;
    let high = people.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (before(people[middle], person)) {
        low = middle + 1;
      } else {
        high = middle;
      }
    }
    return low;
  }

  function personNode(person) {
    const mine = person.tag === myTag;
    const item = el("li", "person" + (mine ? " is-me" : ""));
    item.dataset.username = person.name;
    item.dataset.tag = person.tag;
    item.title = person.name + (mine ? " (you)" : "");
    item.append(avatar(person.name), el("span", "person-name", person.name));
    if (mine) {
      item.append(el("span", "person-note", "you"));
    } else if ((nameCounts.get(person.name) || 0) > 1) {
      // Two people of one name: their sessions' tags tell them apart.
      item.append(el("span", "person-note", "#" + person.tag.slice(0, 4)));
    }
    return item;
  }

  function redrawName(name) {
    // Whether a name is shared decides whether its people show a tag.
    for (const [tag, node] of nodes) {
      if (node.dataset.username === name) {
        const fresh = personNode({ name, tag });
        node.replaceWith(fresh);
        nodes.set(tag, fresh);
      }
    }
  }

  function draw(index) {
    // Put people[index] on the page, if it is among the first MAX_DRAWN.
    if (index >= MAX_DRAWN) {
      return;
    }
    const person = people[index];
    const node = personNode(person);
    const next = index + 1 < people.length ? nodes.get(people[index + 1].tag) : undefined;
    ui.onlineUsers.insertBefore(node, next || (moreNote.isConnected ? moreNote : null));
    nodes.set(person.tag, node);
    if (people.length > MAX_DRAWN) {
      const pushedOut = people[MAX_DRAWN]; // no longer among the first MAX_DRAWN
      const extra = nodes.get(pushedOut.tag);
      if (extra) {
        extra.remove();
        nodes.delete(pushedOut.tag);
      }
    }
  }

  function addPerson(person) {
    const index = positionOf(person);
    if (index < people.length && people[index].tag === person.tag) {
      return; // already there
    }
    people.splice(index, 0, person);
    const count = (nameCounts.get(person.name) || 0) + 1;
    nameCounts.set(person.name, count);
    draw(index);
    if (count === 2) {
      redrawName(person.name);
    }
  }

  function removePerson(person) {
    const index = positionOf(person);
    if (index >= people.length || people[index].tag !== person.tag) {
      return; // not there
    }
    people.splice(index, 1);
    const node = nodes.get(person.tag);
    if (node) {
      node.remove();
      nodes.delete(person.tag);
      if (people.length >= MAX_DRAWN) {
        draw(MAX_DRAWN - 1); // the next one moves up into view
      }
    }
    const count = (nameCounts.get(person.name) || 1) - 1;
    if (count > 0) {
      nameCounts.set(person.name, count);
      if (count === 1) {
        redrawName(person.name);
      }
    } else {
      nameCounts.delete(person.name);
    }
  }

  function showCount() {
    ui.onlineCount.textContent = String(people.length);
    const hidden = people.length - Math.min(people.length, MAX_DRAWN);
    if (hidden > 0) {
      moreNote.textContent = "and " + hidden + " more";
      if (!moreNote.isConnected) {
        ui.onlineUsers.append(moreNote);
      }
    } else if (moreNote.isConnected) {
      moreNote.remove();
    }
  }

  function clean(list) {
    return (Array.isArray(list) ? list : []).map((person) => ({ name: String(person.name), tag: String(person.tag) }));
  }

  function presenceState(data) {
    if (!data || !Array.isArray(data.people) || typeof data.version !== "number") {
      return;
    }
    people.length = 0;
    nodes.clear();
    nameCounts.clear();
    for (const person of clean(data.people)) {
      nameCounts.set(person.name, (nameCounts.get(person.name) || 0) + 1);
      people.push(person);
    }
    people.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
    ui.onlineUsers.replaceChildren();
    for (let index = 0; index < Math.min(people.length, MAX_DRAWN); index += 1) {
      const node = personNode(people[index]);
      ui.onlineUsers.append(node);
      nodes.set(people[index].tag, node);
    }
    presenceVersion = data.version;
    applyHeldDiffs();
    showCount();
    ui.onlineStale.hidden = state === "connected";
  }

  function applyHeldDiffs() {
    for (const version of [...heldDiffs.keys()].sort((a, b) => a - b)) {
      const diff = heldDiffs.get(version);
      if (version <= presenceVersion) {
        heldDiffs.delete(version);
      } else if (version === presenceVersion + 1) {
        heldDiffs.delete(version);
        for (const person of clean(diff.leaves)) {
          removePerson(person);
        }
        for (const person of clean(diff.joins)) {
          addPerson(person);
        }
        presenceVersion = version;
      }
    }
    if (heldDiffs.size > 0) {
      askForState(); // a version is missing: a list built on it would be wrong
    }
  }

  function askForState() {
    if (askingForState) {
      return;
    }
    askingForState = true;
    log("presence: a change was missed; asking for the whole list", "warn");
    socket.timeout(5000).emit("presence_state", (err, data) => {
      askingForState = false;
      if (!err && data) {
        presenceState(data);
      } else if (heldDiffs.size > 0) {
        setTimeout(askForState, 1200); // answered at most once a second
      }
    });
  }

  function presenceDiff(data) {
    if (!data || typeof data.version !== "number") {
      return;
    }
    heldDiffs.set(data.version, data);
    if (presenceVersion !== null) {
      applyHeldDiffs();
      showCount();
    }
  }

  // ---- chat ----------------------------------------------------------------------------

  function nearBottom(scroller) {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  }

  function messageItem(message) {
    const name = String(message.username);
    const sent = new Date(Number(message.time) * 1000);
    const mine = Boolean(myTag) && message.tag === myTag;
    const item = el("li", "message" + (mine ? " is-me" : ""));
    const meta = el("div", "message-meta");
    const time = el("time", "message-time", shortTime(sent));
    time.dateTime = sent.toISOString();
    time.title = sent.toLocaleString();
    const user = el("span", "message-user", name);
    user.title = name; // the full name, where a long one is cut short
    meta.append(user, time);
    const body = el("div", "message-body");
    body.append(meta, el("p", "message-text", String(message.text)));
    item.append(avatar(name), body);
    return item;
  }

  function isNew(message) {
    if (message.id === undefined) {
      return true;
    }
    if (shownMessages.has(message.id)) {
      return false;
    }
    shownMessages.add(message.id);
    return true;
  }

  function trimMessages() {
    while (ui.chatMessages.childElementCount > MAX_MESSAGES) {
      ui.chatMessages.firstElementChild.remove();
    }
  }

  function updateEmpty() {
    const empty = ui.chatMessages.childElementCount === 0;
    ui.chatEmpty.hidden = !empty;
    if (empty) {
      ui.chatEmpty.textContent = historyShown
        ? "No messages yet. Say hello: everyone online will see it, under the name your session carries."
        : "Loading the conversation…";
    }
  }

  function addMessage(message) {
    if (!isNew(message)) {
      return;
    }
    const stick = nearBottom(ui.chatScroll);
    const item = messageItem(message);
    ui.chatMessages.append(item);
    trimMessages();
    updateEmpty();
    if (stick || item.classList.contains("is-me")) {
      ui.chatScroll.scrollTop = ui.chatScroll.scrollHeight;
    }
  }

  function showHistory(messages) {
    // Earlier messages go above whatever arrived live meanwhile.
    const items = messages.filter((message) => message && typeof message.text === "string" && isNew(message)).map(messageItem);
    ui.chatMessages.prepend(...items);
    trimMessages();
    historyShown = true;
    updateEmpty();
    ui.chatScroll.scrollTop = ui.chatScroll.scrollHeight;
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
  showHelp("");

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
    setState("connecting", "reconnecting (attempt " + attempt + ")");
    log("reconnect attempt " + attempt + (lastDisconnectReason ? " after " + lastDisconnectReason : ""));
  });

  // Events the server emits from its connect handler arrive BEFORE the client's own
  // `connect` event, so `welcome` is the first sign of acceptance, not `connect`.
  socket.on("welcome", (data) => {
    const name = data && typeof data.username === "string" ? data.username : me;
    me = name;
    if (data && typeof data.tag === "string") {
      myTag = data.tag;
    }
    lastDisconnectReason = "";
    endedReason = "";
    setState("connected");
    showHelp("");
    setSessionStatus("active", false);
    if (document.activeElement === document.body || document.activeElement === null) {
      ui.chatInput.focus(); // logged in and connected: ready to type
    }
    showTransport(manager.engine);
    log("server accepted: welcome as " + name, "ok");
  });

  socket.on("connect", () => {
    if (state !== "connected") {
      setState("connected");
      showHelp("");
    }
    showTransport(manager.engine);
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
    if (message === "session store unavailable") {
      // The server is up but cannot check sessions yet: worth trying again shortly.
      setState("connecting", "the server cannot check sessions right now; retrying");
      showHelp("The server cannot check your session at the moment. This page tries again every few seconds.", "warning");
      window.setTimeout(() => socket.connect(), 3000);
      return;
    }
    // The server refused the handshake: no retry would help.
    setState("refused", message);
    if (message === "not authenticated") {
      showHelp(ENDINGS[endedReason] || "Your session is gone: it ended, or the server restarted without it.", "error", true);
      sessionGone("gone");
    } else {
      showHelp("The server refused this connection: " + message + ".", "error", false);
    }
  });

  socket.on("ended", (data) => {
    endedReason = data && typeof data.reason === "string" ? data.reason : "";
    log("server: session ended (" + (endedReason || "no reason given") + ")", "warn");
  });

  socket.on("disconnect", (reason) => {
    // The list stays shown (marked stale); the next connection starts from a new state.
    presenceVersion = null;
    heldDiffs.clear();
    lastDisconnectReason = reason;
    log("disconnect: " + reason, "error");
    if (reason === "io server disconnect") {
      // The server ended this session; the client will not retry.
      setState("disconnected", "session ended");
      showHelp(ENDINGS[endedReason] || "The server ended this session.", "error", true);
      sessionGone("ended");
    } else if (endedReason === "shutdown") {
      setState("connecting", "the server is stopping; reconnecting when it is back");
      showHelp(ENDINGS.shutdown, "warning");
      setSessionStatus("checking…", false); // not "active" beside "connecting": not known until the server says
    } else {
      setState("connecting", "the connection dropped; reconnecting");
      showHelp("The connection dropped. The page reconnects by itself with the same session.", "warning");
      setSessionStatus("checking…", false);
    }
  });

  socket.on("presence_state", presenceState);
  socket.on("presence_diff", presenceDiff);

  socket.on("history", (data) => {
    showHistory(data && Array.isArray(data.messages) ? data.messages : []);
  });

  socket.on("chat", (message) => {
    if (message && typeof message.text === "string") {
      addMessage(message);
    }
  });

  socket.on("error", (data) => {
    showChatNotice((data && data.message) || "The server refused that message.");
  });

  // ---- activity: a person using the page keeps the session alive -------------------------

  // Idle means nobody at the page, not "no messages sent": keys, pointer, scrolling and
  // focus count as use. Reported at most once a minute; an abandoned page reports nothing
  // and its session expires as idle.
  let lastReport = performance.now();
  let usedSinceReport = false;

  function reportActivity() {
    if (socket.connected) {
      socket.emit("active");
      lastReport = performance.now();
      usedSinceReport = false;
    }
  }

  function used() {
    usedSinceReport = true;
    if (performance.now() - lastReport >= ACTIVITY_REPORT_MS) {
      reportActivity();
    }
  }

  for (const type of ["keydown", "pointerdown", "wheel", "scroll", "focusin", "touchstart"]) {
    document.addEventListener(type, used, { capture: true, passive: true });
  }
  window.setInterval(() => {
    if (usedSinceReport) {
      reportActivity();
    }
  }, ACTIVITY_REPORT_MS);

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
