/*
 * The conversation: the recent history once per connection, then each message as it comes,
 * never one twice, and the form that sends them. The server attributes every message from
 * the session; the page sends only the text, and never a text the server would refuse or one
 * cut short: the person is told why first.
 */

import { avatar, byId, el, shortTime } from "./dom.js";
import { looksOf, shortTag } from "./names.js";

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

/** `shared.myTag` marks your own messages; `names` says which names are shared. */
export function makeChat(shared, names) {
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
  const shownMessages = new Set(); // message ids, so that history and live never repeat one

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  }

  function tagNode(tag) {
    return el("span", "message-tag", shortTag(tag));
  }

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
    names.seen(looks, tag);
    const body = el("div", "message-body");
    const text = el("p", "message-text", shownText(String(message.text)));
    text.dir = "auto"; // isolated, in its own direction: bidi controls in it reorder nothing outside
    body.append(meta, text);
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
    while (messages.childElementCount > MAX_MESSAGES) {
      messages.firstElementChild.remove();
    }
  }

  function updateEmpty() {
    const isEmpty = messages.childElementCount === 0;
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

  function addMessage(message) {
    if (!isNew(message)) {
      return;
    }
    const stick = nearBottom();
    const item = tagIfShared(messageItem(message));
    messages.append(item);
    trimMessages();
    updateEmpty();
    if (stick || item.classList.contains("is-me")) {
      toNewest();
    } else {
      newer.hidden = false; // the reader scrolled up: say that more came, below
    }
  }

  function showHistory(history) {
    // Earlier messages go above whatever arrived live meanwhile.
    const items = history.filter((message) => message && typeof message.text === "string" && isNew(message)).map(messageItem);
    messages.prepend(...items.map(tagIfShared)); // (a name may have become shared within the history)
    trimMessages();
    historyShown = true;
    updateEmpty();
    toNewest();
  }

  /** A line above the form; `kind` "length" is the too-long warning, gone once it fits. */
  function showNotice(text, kind) {
    notice.textContent = text || "";
    notice.hidden = !text;
    notice.dataset.kind = kind || "";
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
      showNotice("Too long to send: " + length + " characters, at most " + maxLength + ". Shorten it by " + over + ".", "length");
    } else if (notice.dataset.kind === "length") {
      showNotice(""); // shortened enough
    }
  }

  /** Whether messages can be sent; `why` is what the field says when they cannot. */
  function setLive(live, why) {
    input.disabled = !live;
    send.disabled = !live;
    input.placeholder = live ? "Write a message…" : why || "Not connected";
    if (!live) {
      showNotice(""); // a refusal that came over a socket which is gone is stale
    }
  }

  function readyToType() {
    // Logged in and connected: ready to type, unless the person is busy elsewhere on the page.
    if (document.activeElement === document.body || document.activeElement === null) {
      input.focus();
    }
  }

  function listen(socket) {
    socket.on("history", (data) => {
      showHistory(data && Array.isArray(data.messages) ? data.messages : []);
    });
    socket.on("chat", (message) => {
      if (message && typeof message.text === "string") {
        addMessage(message);
      }
    });
    socket.on("error", (data) => {
      showNotice((data && data.message) || "The server refused that message.");
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value;
      input.focus();
      if (!socket.connected) {
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
      socket.emit("chat", { text: text });
      input.value = "";
      updateCount();
      showNotice("");
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

  return { setLive, readyToType, listen };
}
