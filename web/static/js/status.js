/*
 * What is happening to the conversation, said where the eye is: one line at the top of the
 * chat card (on a phone, the first screen), which is the page's one polite live region for
 * passing states ("Reconnecting…", "Reconnected: 3 messages you missed are below", the
 * idle warning). A sentence is written once: saying the same again announces nothing twice.
 */

import { byId } from "./dom.js";

/** The chat card's status line and the idle notice inside it. */
export function makeChatStatus() {
  const text = byId("chat-status-text");
  const idle = byId("chat-idle");
  const idleSaid = byId("chat-idle-said"); // read out once, when the notice appears
  const idleCountdown = byId("chat-idle-countdown"); // ticks for the eye only (aria-hidden)
  let fading = 0;

  /**
   * Says `sentence` in the line; `kind` is "warn", "ok" or "info"; a `fadeMs` sentence goes
   * away by itself after that long (the words that something is over stay a while, then go).
   */
  function say(sentence, kind, fadeMs) {
    window.clearTimeout(fading);
    if (sentence && fadeMs) {
      fading = window.setTimeout(() => say(""), fadeMs);
    }
    if (text.textContent === (sentence || "")) {
      return; // the same words: nothing new to announce
    }
    text.textContent = sentence || "";
    text.dataset.kind = sentence ? kind || "info" : "";
  }

  function showIdle(seconds) {
    const sentence = "This session ends in " + seconds + " s unless you use it";
    idleCountdown.textContent = sentence;
    if (idle.hidden) {
      idleSaid.textContent = sentence; // once: the countdown below is not read out each second
      idle.hidden = false;
    }
  }

  function hideIdle() {
    idle.hidden = true;
    idleSaid.textContent = "";
  }

  return { say, current: () => text.textContent, showIdle, hideIdle };
}
