/*
 * The conversation: the recent history once per connection, then each message as it comes,
 * never one twice, and the form that sends them. The server attributes every message from
 * the session; the page sends only the text.
 */

import { avatar, byId, el, shortTime } from "./dom.js";

const MAX_MESSAGES = 300;
const NEAR_BOTTOM_PX = 48;

/** `shared.myTag` marks your own messages. */
export function makeChat(shared) {
  const scroller = byId("chat-scroll");
  const empty = byId("chat-empty");
  const messages = byId("chat-messages");
  const notice = byId("chat-notice");
  const form = byId("chat-form");
  const input = byId("chat-input");
  const count = byId("chat-count");
  const send = byId("chat-send");
  const maxLength = Number(input.getAttribute("maxlength")) || 500;
  let historyShown = false;
  const shownMessages = new Set(); // message ids, so that history and live never repeat one

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  }

  function messageItem(message) {
    const name = String(message.username);
    const sent = new Date(Number(message.time) * 1000);
    const mine = Boolean(shared.myTag) && message.tag === shared.myTag;
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

  function addMessage(message) {
    if (!isNew(message)) {
      return;
    }
    const stick = nearBottom();
    const item = messageItem(message);
    messages.append(item);
    trimMessages();
    updateEmpty();
    if (stick || item.classList.contains("is-me")) {
      scroller.scrollTop = scroller.scrollHeight;
    }
  }

  function showHistory(history) {
    // Earlier messages go above whatever arrived live meanwhile.
    const items = history.filter((message) => message && typeof message.text === "string" && isNew(message)).map(messageItem);
    messages.prepend(...items);
    trimMessages();
    historyShown = true;
    updateEmpty();
    scroller.scrollTop = scroller.scrollHeight;
  }

  function showNotice(text) {
    notice.textContent = text || "";
    notice.hidden = !text;
  }

  function updateCount() {
    const length = input.value.length;
    count.textContent = length + "/" + maxLength;
    count.classList.toggle("is-near-limit", length > maxLength - 50);
  }

  /** Whether messages can be sent; a refusal that came over a socket which is gone is stale. */
  function setLive(live) {
    input.disabled = !live;
    send.disabled = !live;
    input.placeholder = live ? "Write a message…" : "Not connected";
    if (!live) {
      showNotice("");
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
      if (!socket.connected || text.trim() === "") {
        input.focus();
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
  updateCount();

  return { setLive, readyToType, listen };
}
