/*
 * The conversation: the history once per connection, then each message as it comes, in the
 * order of their positions and never one twice, and the form that sends them. The server
 * attributes every message from the session; the page sends only the text, and never a text
 * the server would refuse or one cut short: the person is told why first. What happens to a
 * message on its way (sending…, not sent, Retry) is outbox.js's.
 *
 * Positions ("<epoch>:<n>", CONTRACT in main.js) say where each stored message belongs; the
 * page keeps the highest n it holds with nothing missing before it, and hands it back on a
 * reconnect (resumePosition) so that the server sends exactly what was missed.
 */

import { avatar, byId, el, shortTime } from "./dom.js";
import { looksOf, shortTag } from "./names.js";
import { makeOutbox } from "./outbox.js";

const MAX_MESSAGES = 300;
const NEAR_BOTTOM_PX = 48;
const MAX_SHOWN_LINES = 20; // as many as the server accepts (validation.py MAX_CHAT_LINES)
// What the server refuses in a message's text (validation.py), said before sending so that
// nothing typed is lost: the controls that reorder text, and more marks on one letter than
// MAX_MARKS_PER_LETTER_IN_CHAT. (The field holds one line, so the line limit cannot bite.)
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/u;
// The other characters the server refuses (validation.py's _REFUSED_IN_CHAT): controls but the
// line break and the tab, the line and paragraph separators; a paste can bring them.
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/u;
const MARK_PILE = /\p{M}{7,}/u;
const POSITION = /^([A-Za-z0-9]{1,16}):(\d{1,15})$/;
const RECONNECTED_SHOWN_MS = 20000; // how long "Reconnected: …" stays in the chat card
// A live message beyond a gap: in Redis mode, messages from several processes may come
// slightly out of order, so the one missing gets this long before the page asks for it.
const GAP_GRACE_MS = 2000;
const CATCH_UP_TIMEOUT_MS = 5000;
// A history goes in while the log is aria-busy, so that a screen reader does not read the
// conversation out in one burst; the log is live again a moment later, in a task of its own
// (cleared in the same task, the busy state would never reach the accessibility tree).
const LIVE_AGAIN_MS = 250;

/** A position's epoch and number, or null for anything else (an older server sends none). */
function parsePosition(position) {
  const match = typeof position === "string" ? POSITION.exec(position) : null;
  return match ? { epoch: match[1], n: Number(match[2]) } : null;
}

/** "Reconnected: …", the words for what a reconnect's history brought. */
function reconnectedWords(resume, count) {
  if (resume === "caught_up") {
    if (count === 0) {
      return "Reconnected; nothing was missed.";
    }
    return "Reconnected: " + (count === 1 ? "1 message you missed is below" : count + " messages you missed are below");
  }
  if (resume === "could_not") {
    return "Reconnected; could not catch up: showing the latest " + count;
  }
  return "Reconnected.";
}

/** Characters as the server counts them (code points, not UTF-16 units). */
function characters(text) {
  return Array.from(text).length;
}

/**
 * A message's text as shown: at most one blank line in a row and at most MAX_SHOWN_LINES
 * lines (the rest joined onto the last by spaces), so that a message stored before the
 * server limited lines cannot push the conversation out of view. Nothing is dropped.
 */
function shownText(text) {
  const lines = text.replace(/\r\n?|\u2028|\u2029/g, "\n").replace(/\n{3,}/g, "\n\n").split("\n");
  if (lines.length <= MAX_SHOWN_LINES) {
    return lines.join("\n");
  }
  const rest = lines.slice(MAX_SHOWN_LINES - 1).filter((line) => line !== "").join(" ");
  return lines.slice(0, MAX_SHOWN_LINES - 1).concat(rest).join("\n");
}

/**
 * `shared.myTag` marks your own messages; `names` says which names are shared; `status` is
 * the chat card's status line (status.js); `privately` writes to one person (private.js).
 */
export function makeChat(shared, names, status, privately) {
  const scroller = byId("chat-scroll");
  const empty = byId("chat-empty");
  const messages = byId("chat-messages");
  const notice = byId("chat-notice");
  const form = byId("chat-form");
  const input = byId("chat-input");
  const count = byId("chat-count");
  const send = byId("chat-send");
  const newer = byId("chat-newer");
  // No maxlength on the field: a browser would cut a long paste short without a word.
  const maxLength = Number(input.dataset.maxLength) || 500;
  let historyShown = false;
  // Message id -> the connection it was first shown on: history and live never repeat one,
  // and a reconnect's history can tell what was missed from what was already here.
  const shownMessages = new Map();
  let connections = 0; // welcomes so far; more than one means this is a reconnect
  // Where the page is in the history: the epoch, and the highest n held with none missing
  // before it (null until a history said where to start). `ahead` holds the positions shown
  // beyond a gap (a live message that overtook one still on its way), per epoch.
  let epoch = null;
  let upTo = null;
  const ahead = new Map();
  let socket = null;
  let gapTimer = 0; // set while a gap waits for its grace to pass
  let catchingUp = false;
  let owed = false; // a connect's history could not be had (the store was away): ask again
  let quietUntil = 0; // the timer that makes the log live again after a history (0: none)

  /** A history is on its way (a connect's, or a catch-up's): it goes in unannounced. */
  function quiet() {
    window.clearTimeout(quietUntil);
    quietUntil = 0;
    scroller.setAttribute("aria-busy", "true");
  }

  /** The history is in: from now on, each new message is announced as it comes. */
  function liveAgain() {
    window.clearTimeout(quietUntil);
    quietUntil = window.setTimeout(() => {
      quietUntil = 0;
      scroller.setAttribute("aria-busy", "false");
    }, LIVE_AGAIN_MS);
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  }

  function tagNode(tag) {
    return el("span", "message-tag", shortTag(tag));
  }

  /** A message's item: stored (from the server), or one of yours on its way (outbox.js). */
  function messageItem(message) {
    const name = String(message.username);
    const tag = typeof message.tag === "string" ? message.tag : "";
    const sent = new Date(Number(message.time) * 1000);
    const looks = looksOf(message.skeleton, name);
    const mine = Boolean(shared.myTag) && tag === shared.myTag;
    const item = el("li", "message" + (mine ? " is-me" : ""));
    item.dataset.username = name;
    item.dataset.tag = tag;
    item.dataset.looks = looks;
    const meta = el("div", "message-meta");
    const time = el("time", "message-time", shortTime(sent));
    time.dateTime = sent.toISOString();
    time.title = sent.toLocaleString();
    const user = el("span", "message-user", name);
    user.title = name; // the full name, where a long one is cut short
    user.dir = "auto"; // isolated: a right-to-left name cannot carry the tag beside it along
    meta.append(user, time);
    if (!mine && shared.earlier && shared.earlier.isEarlier(tag, name)) {
      time.before(shared.earlier.note()); // yours, from an earlier login in this browser (earlier.js)
    }
    names.seen(looks, tag);
    const body = el("div", "message-body");
    const text = el("p", "message-text", shownText(String(message.text)));
    text.dir = "auto"; // isolated, in its own direction: bidi controls in it reorder nothing outside
    body.append(meta, text);
    item.append(avatar(name), body);
    return message.private ? privately.decorate(item, message) : item;
  }

  function isNew(message) {
    if (message.id === undefined) {
      return true;
    }
    if (shownMessages.has(message.id)) {
      return false;
    }
    shownMessages.set(message.id, connections);
    return true;
  }

  function trimMessages() {
    while (messages.childElementCount > MAX_MESSAGES) {
      messages.firstElementChild.remove();
    }
  }

  function updateEmpty() {
    const isEmpty = messages.childElementCount === 0 && outbox.isEmpty();
    empty.hidden = !isEmpty;
    if (isEmpty) {
      empty.textContent = historyShown
        ? "No messages yet. Say hello: everyone online will see it, under the name your session carries."
        : "Loading the conversation…";
    }
  }

  /** The author's tag beside the name, once the name is shared (and only once). */
  function tagIfShared(item) {
    if (item.dataset.tag && names.isShared(item.dataset.looks) && !item.querySelector(".message-tag")) {
      item.querySelector(".message-user").after(tagNode(item.dataset.tag));
    }
    return item;
  }

  function showTagsOf(looks) {
    // A name just became shared: its earlier messages get their authors' tags too.
    for (const item of messages.children) {
      if (item.dataset.looks === looks) {
        tagIfShared(item);
      }
    }
  }

  function toNewest() {
    scroller.scrollTop = scroller.scrollHeight;
    newer.hidden = true;
  }

  /**
   * Puts an item where its position says: after the items of its epoch that come before it
   * (a history may arrive after live messages; in Redis mode live ones may come slightly out
   * of order). An earlier epoch's items stay above; an item without a position goes last.
   */
  function insertByPosition(item, position) {
    if (!position) {
      messages.append(item);
      return;
    }
    item.dataset.epoch = position.epoch;
    item.dataset.n = String(position.n);
    let before = messages.lastElementChild;
    while (before && before.dataset.epoch === position.epoch && Number(before.dataset.n) > position.n) {
      before = before.previousElementSibling;
    }
    if (before) {
      before.after(item);
    } else {
      messages.prepend(item);
    }
  }

  /** Notes that the message at `position` is held, and moves the contiguous position on. */
  function held(position) {
    if (!position || (position.epoch === epoch && upTo !== null && position.n <= upTo)) {
      return;
    }
    if (!ahead.has(position.epoch)) {
      ahead.set(position.epoch, new Set());
    }
    ahead.get(position.epoch).add(position.n);
    moveOn();
  }

  function moveOn() {
    const beyond = upTo === null ? null : ahead.get(epoch);
    if (!beyond) {
      return;
    }
    while (beyond.delete(upTo + 1)) {
      upTo += 1;
    }
    for (const n of beyond) {
      if (n <= upTo) {
        beyond.delete(n);
      }
    }
    if (beyond.size > 0) {
      askSoon(GAP_GRACE_MS);
    }
  }

  function askSoon(ms) {
    if (!gapTimer && !catchingUp) {
      gapTimer = window.setTimeout(() => {
        gapTimer = 0;
        catchUp();
      }, ms);
    }
  }

  /**
   * A gap that did not fill within its grace (a message lost between processes): ask for
   * what came after the last position held, as a reconnect would; a refusal says when to ask
   * again. Only on a connected socket: a reconnect asks by itself.
   */
  function catchUp() {
    const beyond = ahead.get(epoch);
    if (!socket || !socket.connected || catchingUp || upTo === null || !(owed || (beyond && beyond.size > 0))) {
      return;
    }
    catchingUp = true;
    const asked = epoch;
    quiet(); // what fills the gap is not news said one by one
    socket.timeout(CATCH_UP_TIMEOUT_MS).emit("catch_up", { after: resumePosition() }, (err, data) => {
      catchingUp = false;
      liveAgain();
      if (!err && data && Array.isArray(data.messages) && epoch === asked && parsePosition(data.position)) {
        owed = false;
        showHistory(data, false);
        return;
      }
      // No answer, the store still away, or refused for asking too often (it says when).
      const retryAfter = !err && data && typeof data.retry_after === "number" ? data.retry_after * 1000 : 0;
      askSoon(Math.max(GAP_GRACE_MS, retryAfter));
    });
  }

  /** Shows a stored message (once), where it belongs; returns whether it was new here. */
  function showStored(message) {
    if (message.id !== undefined && shownMessages.has(message.id)) {
      return false;
    }
    outbox.claim(message); // one of yours that was on its way: now it is this one
    isNew(message);
    const position = parsePosition(message.position);
    insertByPosition(tagIfShared(messageItem(message)), position);
    held(position);
    return true;
  }

  function addMessage(given) {
    // A private message is drawn as a message of its sender's, marked private (private.js);
    // it has no position: it goes last, in the order it came.
    const message = privately.isPrivate(given) ? privately.asChat(given) : given;
    const stick = nearBottom();
    if (!showStored(message)) {
      return;
    }
    trimMessages();
    updateEmpty();
    const mine = Boolean(shared.myTag) && message.tag === shared.myTag;
    if (stick || mine) {
      toNewest();
    } else {
      newer.hidden = false; // the reader scrolled up: say that more came, below
    }
  }

  /** "Some messages may be missing here": where a history could not follow on from the last. */
  function markGap(position) {
    const gap = el("li", "chat-gap", "Some messages may be missing here");
    gap.setAttribute("role", "separator");
    insertByPosition(gap, position);
  }

  /** A history: on each connect (`onConnect`), or the answer to a catch_up. */
  function showHistory(data, onConnect) {
    const history = (Array.isArray(data.messages) ? data.messages : [])
      .filter((message) => message && typeof message.text === "string");
    const tail = parsePosition(data.position);
    const resume = data.resume;
    if (tail) {
      const first = history.length ? parsePosition(history[0].position) : null;
      // The list shown so far does not run on into this one: say so rather than mix them.
      // (Not on the first history: live messages that came before it are of its count.)
      const broken = historyShown && resume !== "caught_up" && messages.childElementCount > 0 &&
        (tail.epoch !== epoch || upTo === null || (first ? first.n : tail.n + 1) > upTo + 1);
      if (broken) {
        markGap({ epoch: tail.epoch, n: (first ? first.n : tail.n + 1) - 0.5 });
      }
      if (tail.epoch !== epoch) {
        epoch = tail.epoch; // a new history (the server restarted): the old positions mean nothing in it
        upTo = null;
        for (const other of [...ahead.keys()]) {
          if (other !== epoch) {
            ahead.delete(other);
          }
        }
      }
      upTo = Math.max(upTo === null ? 0 : upTo, tail.n); // the page now holds all up to the tail
    }
    let missed = 0;
    if (tail) {
      for (const message of history) {
        // Missed: not here before this connection (a live one since may have come first).
        const here = message.id !== undefined && shownMessages.has(message.id) && shownMessages.get(message.id) < connections;
        showStored(message);
        missed += here ? 0 : 1;
      }
      moveOn();
    } else {
      // An older server: no positions; earlier messages go above whatever arrived live meanwhile.
      const items = history.filter(isNew).map(messageItem);
      messages.prepend(...items.map(tagIfShared));
    }
    trimMessages();
    historyShown = true;
    updateEmpty();
    if (onConnect) {
      toNewest();
    }
    if (onConnect && !tail && resume === "could_not") {
      // The server's store was away: nothing to go on. Asked again in a moment.
      owed = true;
      askSoon(GAP_GRACE_MS);
      status.say("Reconnected; could not catch up yet: messages sent meanwhile follow when the server can send them", "warn", RECONNECTED_SHOWN_MS);
    } else if (onConnect && connections > 1) {
      status.say(reconnectedWords(resume, resume === "caught_up" ? missed : history.length), "ok", RECONNECTED_SHOWN_MS);
    }
  }

  /** A line above the form; `kind` "length" is the too-long warning, gone once it fits. */
  function showNotice(text, kind) {
    notice.textContent = text || "";
    notice.hidden = !text;
    notice.dataset.kind = kind || "";
  }

  // A text too long is said once, as it becomes too long: what the alert says to a screen
  // reader stays the same while the numbers, which change at every keystroke, are for the eye
  // (an alert whose words changed at each keystroke would be read out at each one).
  const lengthSaid = el("span", "visually-hidden", "Too long to send: at most " + maxLength + " characters.");
  const lengthShown = el("span", "", "");
  lengthShown.setAttribute("aria-hidden", "true");

  function showLengthNotice(length, over) {
    lengthShown.textContent = "Too long to send: " + length + " characters, at most " + maxLength + ". Shorten it by " + over + ".";
    if (notice.dataset.kind !== "length" || notice.hidden) {
      notice.replaceChildren(lengthSaid, lengthShown);
      notice.hidden = false;
      notice.dataset.kind = "length";
    }
  }

  function tooLongBy() {
    return Math.max(0, characters(input.value) - maxLength);
  }

  function updateCount() {
    const length = characters(input.value);
    const over = tooLongBy();
    count.textContent = length + "/" + maxLength;
    count.classList.toggle("is-near-limit", length > maxLength - 50 && !over);
    count.classList.toggle("is-over-limit", over > 0);
    input.setAttribute("aria-invalid", String(over > 0));
    if (over) {
      showLengthNotice(length, over);
    } else if (notice.dataset.kind === "length") {
      showNotice(""); // shortened enough
    }
  }

  const outbox = makeOutbox({
    shared,
    field: { input, updateCount, showNotice },
    showStored: addMessage,
    changed: updateEmpty,
    toNewest,
    messageItem,
    privately,
  });

  /**
   * What the form allows in the socket's state `next`; `why` is what the field says when
   * messages cannot go now. While (re)connecting a person may still write: the message waits
   * in the outbox and goes once connected. Once the session is over, nothing can be sent.
   */
  function setLive(next, why) {
    const writable = next === "connected" || next === "connecting";
    input.disabled = !writable;
    send.disabled = !writable;
    input.placeholder = next === "connected" ? "Write a message…" : why || "Not connected";
    if (next !== "connected") {
      showNotice(""); // a refusal that came over a socket which is gone is stale
    }
    if (!writable) {
      outbox.strand(); // refused or disconnected for good: the session is over
    }
  }

  function readyToType() {
    // Logged in and connected: ready to type, unless the person is busy elsewhere on the page.
    if (document.activeElement === document.body || document.activeElement === null) {
      input.focus();
    }
  }

  /** The position to resume from on a reconnect ("<epoch>:<n>"), or undefined. */
  function resumePosition() {
    return epoch !== null && upTo !== null ? epoch + ":" + upTo : undefined;
  }

  function listen(socketToUse) {
    socket = socketToUse;
    outbox.listen(socket);
    socket.on("welcome", () => {
      connections += 1;
      quiet(); // the connect's history comes next
      outbox.sendWaiting(); // what was written while away goes now, in order
    });
    socket.on("history", (data) => {
      showHistory(data || {}, true);
      liveAgain();
    });
    socket.on("chat", (message) => {
      if (message && typeof message.text === "string") {
        addMessage(message);
      }
    });
    socket.on("private", (message) => {
      if (privately.isPrivate(message)) {
        addMessage(message);
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value;
      input.focus();
      if (input.disabled) {
        return;
      }
      if (text === "") {
        return; // Enter in an empty field: nothing to say about that
      }
      if (text.trim() === "") {
        showNotice("Nothing was sent: the message is only spaces.");
        return;
      }
      if (tooLongBy()) {
        updateCount(); // says how much too long; nothing is sent cut short
        return;
      }
      if (BIDI_CONTROLS.test(text)) {
        showNotice("Not sent: the message holds a bidirectional override or isolate (U+202A to U+202E, U+2066 to U+2069), which would reorder the text shown after it.");
        return;
      }
      if (MARK_PILE.test(text)) {
        showNotice("Not sent: the message piles more than 6 accents or marks on one letter.");
        return;
      }
      if (CONTROLS.test(text)) {
        showNotice("Not sent: the message holds a control character (other than a line break or a tab), which the server refuses.");
        return;
      }
      // The field is emptied only because the text lives on in the outbox, shown below.
      input.value = "";
      updateCount();
      showNotice("");
      outbox.submit(text, privately.recipient());
      input.focus();
    });
  }

  input.addEventListener("input", updateCount);
  scroller.addEventListener("scroll", () => {
    if (nearBottom()) {
      newer.hidden = true;
    }
  }, { passive: true });
  newer.addEventListener("click", () => {
    toNewest();
    input.focus({ preventScroll: true });
  });
  names.onShared(showTagsOf);
  updateCount();

  return { setLive, readyToType, listen, resumePosition };
}
