/*
 * Private messages: writing to one person, and showing what was written privately.
 *
 * A person is chosen in the Online list ("Write", never on yourself) or by "Reply privately"
 * on a private message they sent; the message field then writes to them alone (the box above
 * it says to whom, "Back to everyone" or Escape leaves). The server routes by the person's
 * tag to every tab of theirs and to your other tabs; it keeps nothing, so a page that was
 * closed or away does not get them later. Private messages are shown in the conversation,
 * in words and not only by colour: "privately to ada #kE1J" on the sender's side, "from
 * bob, privately" on the recipient's. Sent messages go through the outbox like any other.
 *
 * On the wire (main.js lists the events): `private` {to, text, id} with an ack, and the
 * server's `private` {id, from: {name, tag, skeleton}, to: {...}, text, time}.
 */

import { byId, el } from "./dom.js";
import { looksOf, shortTag } from "./names.js";

/** `shared.myTag` tells mine from theirs; `names` says which names show their tags; `status` is the chat card's line. */
export function makePrivate(shared, names, status) {
  const box = byId("private-mode");
  const said = byId("private-mode-to"); // "Private message to ada #kE1J": what describes the field
  const who = byId("private-mode-name");
  const gone = byId("private-mode-gone");
  const leave = byId("private-mode-leave");
  const input = byId("chat-input");
  let recipient = null; // {name, tag, looks} while the field writes to one person
  let isOnline = () => true; // presence's answer, once it is wired (watchPresence)

  /** "ada #kE1J": a person addressed privately is always named with their tag (it is a session). */
  function fullName(person) {
    return person.name + " " + shortTag(person.tag);
  }

  /** A name as the conversation shows it: with the tag only where the name is shared. */
  function shownName(person) {
    return names.isShared(person.looks) ? fullName(person) : person.name;
  }

  function personOf(given) {
    return { name: String(given.name), tag: String(given.tag), looks: looksOf(given.skeleton, given.name) };
  }

  /** Adds (or takes out) "Private message to …" among the field's descriptions, keeping any others. */
  function describeField(on) {
    const ids = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && id !== said.id);
    if (on) {
      ids.push(said.id);
    }
    if (ids.length) {
      input.setAttribute("aria-describedby", ids.join(" "));
    } else {
      input.removeAttribute("aria-describedby");
    }
  }

  /** Says (in the box, and once in the status line unless `quietly`) whether the person written to has left. */
  function showPresence(quietly) {
    const away = recipient !== null && !isOnline(recipient.tag);
    if (away === !gone.hidden) {
      return;
    }
    gone.hidden = !away;
    if (recipient !== null && quietly !== true) {
      status.say(away ? fullName(recipient) + " has left: private messages to them are not sent now"
                      : fullName(recipient) + " is online again", away ? "warn" : "ok", away ? 0 : 10000);
    }
  }

  /**
   * Writes to `person` from now on (a person from presence or a message's `from`); `quietly`:
   * without a word in the status line (a refusal that brings the text back says it already).
   */
  function choose(person, quietly) {
    if (!person || person.tag === shared.myTag) {
      return;
    }
    if (recipient === null || recipient.tag !== person.tag) {
      recipient = personOf(person);
      who.textContent = fullName(recipient);
      gone.hidden = true;
    }
    box.hidden = false;
    describeField(true);
    showPresence(quietly);
    input.focus();
  }

  /** Back to writing to everyone. */
  function toEveryone() {
    if (recipient === null) {
      return;
    }
    recipient = null;
    box.hidden = true;
    gone.hidden = true;
    describeField(false);
    input.focus();
  }

  leave.addEventListener("click", toEveryone);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && recipient !== null) {
      event.preventDefault();
      toEveryone();
    }
  });

  /** The Online list's button for a person other than you. */
  function personButton(person) {
    if (person.tag === shared.myTag) {
      return null;
    }
    const button = el("button", "button button-small button-secondary person-write", "Write");
    button.type = "button";
    button.setAttribute("aria-label", "Write privately to " + shownName(personOf(person)));
    button.addEventListener("click", () => choose(person));
    return button;
  }

  /** Whether a message from the server (live, or an ack's) is a private one. */
  function isPrivate(message) {
    return Boolean(message && message.from && message.to && typeof message.text === "string");
  }

  /**
   * A private message in the shape the conversation draws (chat.js messageItem): its author
   * is the sender; `private` carries who it is to.
   */
  function asChat(message) {
    const from = personOf(message.from);
    return { id: message.id, username: from.name, tag: from.tag, skeleton: message.from.skeleton, text: message.text,
             time: message.time, private: { from, to: personOf(message.to) } };
  }

  /** Marks a drawn message private, in words: "privately to ada #kE1J" or "from bob, privately". */
  function decorate(item, message) {
    const { from, to } = message.private;
    const mine = from.tag === shared.myTag;
    item.classList.add("is-private");
    const label = el("p", "message-private", mine ? "privately to " + fullName(to) : "from " + shownName(from) + ", privately");
    const text = item.querySelector(".message-text");
    text.before(label);
    if (!mine && from.tag) {
      const reply = el("button", "button button-small button-secondary message-reply", "Reply privately");
      reply.type = "button";
      reply.setAttribute("aria-label", "Reply privately to " + shownName(from));
      reply.addEventListener("click", () => choose(from));
      text.after(reply);
    }
    return item;
  }

  /**
   * The refusal's words: the server knows only the tag of someone who is not online; the
   * page knows their name.
   */
  function refusalWords(entry, reason, words) {
    return reason === "offline" && entry.to ? fullName(entry.to) + " is no longer online: this message was not sent" : words;
  }

  /** Presence's `isOnline(tag)`, and `onChange(listener)` called after each change it applies. */
  function watchPresence(presence) {
    isOnline = presence.isOnline;
    presence.onChange(() => showPresence());
  }

  return {
    recipient: () => recipient,
    choose,
    toEveryone,
    personButton,
    isPrivate,
    asChat,
    decorate,
    refusalWords,
    watchPresence,
  };
}
