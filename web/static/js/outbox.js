/*
 * Your messages on their way. Socket.IO delivers at most once, so each message carries an id
 * of the page's own and waits for the server's acknowledgement: it is shown at once as
 * "sending…", becomes the stored message on the ack, is marked "not sent" (Retry, Discard)
 * when no ack comes in time, and on a refusal goes back into the field with the reason. A
 * retry sends the same id, and the server accepts an id once per session, so a retry after a
 * lost ack never posts twice. Nothing typed is lost: the text is in the field or here.
 */

import { byId, el } from "./dom.js";

const ACK_TIMEOUT_MS = 5000;

// What each state says under the text, and whether Retry and Discard are offered.
const STATES = {
  sending: { words: "sending…", actions: false },
  waiting: { words: "not sent yet: it goes when the page is connected again", actions: false },
  failed: { words: "not sent: the server did not answer in time", actions: true },
  // The session is over (logged out, expired, a restart without it): no retry can send it.
  stranded: { words: "not sent: this session has ended. Copy the text before you log in again to send it.", actions: false },
};

/** The start of a message's text, to name it in a sentence. */
function excerpt(text) {
  const chars = Array.from(text.trim());
  return "“" + chars.slice(0, 40).join("") + (chars.length > 40 ? "…" : "") + "”";
}

/** A message id of the page's own: 1 to 36 characters of [A-Za-z0-9_-] (the wire contract). */
function newId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") {
    return window.crypto.randomUUID(); // only in a secure context (https, or localhost)
  }
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * `field` is the message form's {input, updateCount, showNotice}; `showStored(message)` shows
 * a stored message in the conversation (once); `changed()` is called when the outbox empties
 * or fills; `messageItem(message)` draws a message as the conversation does; `privately`
 * (private.js) words a private message's refusal and puts the field back in private mode.
 */
export function makeOutbox({ shared, field, showStored, changed, toNewest, messageItem, privately }) {
  const list = byId("chat-outbox");
  // The list is not a live region (aria-live="off"): what is on its way is not news. A
  // message that did not go is, and is said here once (a session that ended, which strands
  // them all, is said by the chat card's banner instead).
  const said = byId("chat-outbox-said");
  const pending = new Map(); // the page's message id -> {id, text, item, state, tries}
  let socket = null;

  function draw(entry, state, why) {
    entry.state = state;
    entry.item.dataset.state = state;
    entry.statusLine.textContent = why || STATES[state].words;
    entry.actions.hidden = !STATES[state].actions;
    if (state === "failed") {
      said.textContent = "Your message " + excerpt(entry.text) + ": " + entry.statusLine.textContent;
    }
  }

  function drop(entry) {
    pending.delete(entry.id);
    entry.item.remove();
    changed();
  }

  /** Sends `text` to everyone, or privately `to` one person ({name, tag, looks}: private.js). */
  function submit(text, to) {
    const entry = { id: newId(), text, tries: 0, to: to || null };
    const me = { name: shared.me, tag: shared.myTag, looks: shared.me };
    entry.item = messageItem({ username: shared.me, tag: shared.myTag, text, time: Date.now() / 1000,
                               private: entry.to ? { from: me, to: entry.to } : undefined });
    entry.item.classList.add("is-pending");
    entry.statusLine = el("p", "message-status");
    entry.actions = el("div", "message-actions");
    const retry = el("button", "button button-small button-secondary", "Retry");
    const discard = el("button", "button button-small button-secondary", "Discard");
    retry.type = discard.type = "button";
    retry.addEventListener("click", () => trySending(entry));
    discard.addEventListener("click", () => drop(entry));
    entry.actions.append(retry, discard);
    entry.item.querySelector(".message-body").append(entry.statusLine, entry.actions);
    pending.set(entry.id, entry);
    list.append(entry.item);
    changed();
    toNewest();
    trySending(entry);
  }

  function trySending(entry) {
    if (entry.state === "stranded") {
      return;
    }
    if (!socket || !socket.connected) {
      // Not emitted now: Socket.IO would buffer it and send it on reconnect behind our back.
      draw(entry, "waiting");
      return;
    }
    entry.tries += 1;
    const attempt = entry.tries;
    draw(entry, "sending");
    const [event, payload] = entry.to ? ["private", { to: entry.to.tag, text: entry.text, id: entry.id }]
                                      : ["chat", { text: entry.text, id: entry.id }];
    socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, (err, ack) => {
      if (!err && ack && ack.ok === true) {
        // Stored: shown as everyone sees it (a live copy of it may have come first: shown once).
        // A retry of one stored so long ago that it is no longer kept is answered without it.
        if (pending.get(entry.id) === entry) {
          drop(entry);
        }
        if (ack.message && typeof ack.message.text === "string") {
          showStored(ack.message);
        }
        return;
      }
      if (pending.get(entry.id) !== entry || entry.tries !== attempt || entry.state === "stranded") {
        return; // already settled, retried since, or the session is over
      }
      if (!err && ack && ack.ok === false) {
        const words = typeof ack.message === "string" && ack.message ? ack.message : "The server refused this message.";
        refused(entry, privately.refusalWords(entry, ack.reason, words), ack.reason);
      } else {
        draw(entry, "failed");
      }
    });
  }

  /**
   * Refused: back into the field with the reason, unless the person is writing another. A
   * message the store could not take stays here with Retry instead: a write to a store that
   * hung may still land, and only a retry with the same id cannot post it twice.
   */
  function refused(entry, reason, code) {
    if (field.input.value === "" && code !== "store") {
      drop(entry);
      if (entry.to) {
        privately.choose(entry.to, true); // the text goes back to the person it was written for, never to everyone
      }
      field.input.value = entry.text;
      field.updateCount();
      field.showNotice(reason);
    } else {
      draw(entry, "failed", /not sent/.test(reason) ? reason : "not sent: " + reason); // said once
    }
  }

  /**
   * A stored message of this session (live, or in a history) whose text is one still on its
   * way: the broadcast of it, which may come before its ack (or instead of a lost one). The
   * item on its way gives way to it, so that it is never shown twice.
   */
  function claim(message) {
    if (!shared.myTag || message.tag !== shared.myTag || message.private) {
      return; // (a private one of yours from another tab never stands for one on its way here)
    }
    for (const entry of pending.values()) {
      if (entry.state !== "waiting" && entry.text === message.text) {
        drop(entry);
        return;
      }
    }
  }

  /** The session is over: nothing on its way will go, and none of it may say it will. */
  function strand() {
    for (const entry of pending.values()) {
      draw(entry, "stranded");
    }
  }

  function sendWaiting() {
    for (const entry of [...pending.values()]) {
      if (entry.state === "waiting") {
        trySending(entry);
      }
    }
  }

  return {
    submit,
    claim,
    sendWaiting,
    strand,
    isEmpty: () => pending.size === 0,
    listen: (socketToUse) => {
      socket = socketToUse;
    },
  };
}
