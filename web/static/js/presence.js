/*
 * Who is online. The server sends a state once per connection and then versioned changes;
 * this keeps the list from them (never rebuilt per change), holds changes that come before
 * the state or after a gap, and asks for the state again when a version is missing. On a
 * reconnect the page says which version it holds (resumeVersion, in the connect's auth), and
 * the server may answer with one change since that version instead of the whole state.
 *
 * `people` is kept in display order (you first, then by name and tag), a node per person
 * drawn, and at most MAX_DRAWN drawn, with "and N more" below.
 */

import { avatar, byId, el } from "./dom.js";
import { looksOf, shortTag } from "./names.js";

const MAX_DRAWN = 200;
const STATE_TIMEOUT_MS = 5000;
const STATE_RETRY_MS = 1200; // the server answers a socket at most once a second (a refusal says when)

/**
 * `shared.myTag` marks "you"; `names` says which names are shared; `log` is the handshake log;
 * `personAction(person)`, if given, is a control drawn at the end of a person's row (or null).
 */
export function makePresence(shared, names, log, personAction) {
  const card = byId("online-card");
  const list = byId("online-users");
  const countNode = byId("online-count");
  const staleNote = byId("online-stale");
  const moreNote = el("li", "person person-more");

  const people = []; // {name, tag, looks}, in display order
  const nodes = new Map(); // tag -> <li> of a drawn person
  let version = null; // null: no state yet on this connection
  let epoch = ""; // the presence epoch of the state (it changes when the server's list restarts)
  let lastVersion = null; // the version the list shown is at, kept over a disconnect
  const heldDiffs = new Map(); // version -> diff that came before the state or after a gap
  let askingForState = false;
  let socket = null;
  const changeListeners = []; // told after each change applied to the list (onChange)

  function before(a, b) {
    const aMine = a.tag === shared.myTag;
    if (aMine !== (b.tag === shared.myTag)) {
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
    const mine = person.tag === shared.myTag;
    // Yours, from an earlier login in this browser that is still online (earlier.js).
    const earlier = !mine && Boolean(shared.earlier) && shared.earlier.isEarlier(person.tag, person.name);
    const item = el("li", "person" + (mine ? " is-me" : ""));
    item.dataset.username = person.name;
    item.dataset.tag = person.tag;
    item.dataset.looks = person.looks;
    item.title = person.name + (mine ? " (you)" : earlier ? " (you, earlier): " + shared.earlier.explained : "");
    const name = el("span", "person-name", person.name);
    name.dir = "auto"; // isolated: a right-to-left name cannot carry the note beside it along
    item.append(avatar(person.name), name);
    // Two people of one name (or of names that look alike): their sessions' tags tell them apart (yours too).
    const tag = names.isShared(person.looks) ? shortTag(person.tag) : "";
    if (mine) {
      item.append(el("span", "person-note", tag ? "you, " + tag : "you"));
    } else if (earlier) {
      item.append(el("span", "person-note", tag ? "you, earlier, " + tag : "you, earlier"));
    } else if (tag) {
      item.append(el("span", "person-note", tag));
    }
    const action = !mine && personAction ? personAction(person) : null;
    if (action) {
      item.append(action);
    }
    return item;
  }

  function redrawName(looks) {
    // Whether a name is shared decides whether its people show a tag.
    for (const [tag, node] of nodes) {
      if (node.dataset.looks === looks) {
        const fresh = personNode({ name: node.dataset.username, tag, looks });
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
    list.insertBefore(node, next || (moreNote.isConnected ? moreNote : null));
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
    draw(index);
    names.seen(person.looks, person.tag); // may redraw the name's people with their tags
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
  }

  function showCount() {
    countNode.textContent = String(people.length);
    const hidden = people.length - Math.min(people.length, MAX_DRAWN);
    if (hidden > 0) {
      moreNote.textContent = "and " + hidden + " more";
      if (!moreNote.isConnected) {
        list.append(moreNote);
      }
    } else if (moreNote.isConnected) {
      moreNote.remove();
    }
  }

  function clean(given) {
    return (Array.isArray(given) ? given : []).map((person) => ({
      name: String(person.name),
      tag: String(person.tag),
      looks: looksOf(person.skeleton, person.name),
    }));
  }

  function applyState(data) {
    if (!data || !Array.isArray(data.people) || typeof data.version !== "number") {
      return;
    }
    people.length = 0;
    nodes.clear();
    for (const person of clean(data.people)) {
      names.seen(person.looks, person.tag);
      people.push(person);
    }
    people.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
    list.replaceChildren();
    for (let index = 0; index < Math.min(people.length, MAX_DRAWN); index += 1) {
      const node = personNode(people[index]);
      list.append(node);
      nodes.set(people[index].tag, node);
    }
    version = data.version;
    epoch = typeof data.epoch === "string" ? data.epoch : "";
    applyHeldDiffs();
    showCount();
    staleNote.hidden = shared.state === "connected";
  }

  function changed() {
    for (const listener of changeListeners) {
      listener();
    }
  }

  function applyHeldDiffs() {
    for (const held of [...heldDiffs.keys()].sort((a, b) => a - b)) {
      const diff = heldDiffs.get(held);
      if (held <= version) {
        heldDiffs.delete(held);
      } else if (held === version + 1) {
        heldDiffs.delete(held);
        for (const person of clean(diff.leaves)) {
          removePerson(person);
        }
        for (const person of clean(diff.joins)) {
          addPerson(person);
        }
        version = held;
      }
    }
    lastVersion = version;
    changed();
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
    socket.timeout(STATE_TIMEOUT_MS).emit("presence_state", (err, data) => {
      askingForState = false;
      if (!err && data && Array.isArray(data.people)) {
        applyState(data);
      } else if (heldDiffs.size > 0 || version === null) {
        // No answer in time, or refused for asking too often: it says when to ask again.
        const retryAfter = !err && data && typeof data.retry_after === "number" ? data.retry_after * 1000 : 0;
        setTimeout(askForState, Math.max(STATE_RETRY_MS, retryAfter));
      }
    });
  }

  /**
   * A resumed connection's first change: the net change from the version the page said it
   * holds (`since`) to `data.version`. On top of the list kept over the gap, it is the list.
   */
  function applyChangeSince(data) {
    if (version !== null || data.since !== lastVersion) {
      askForState(); // not the list it was meant for: only the whole state is sure
      return;
    }
    for (const person of clean(data.leaves)) {
      removePerson(person);
    }
    for (const person of clean(data.joins)) {
      addPerson(person);
    }
    log("presence: caught up from version " + data.since + " to " + data.version, "ok");
    version = data.version;
    applyHeldDiffs();
    showCount();
    staleNote.hidden = shared.state === "connected";
  }

  function applyDiff(data) {
    if (!data || typeof data.version !== "number") {
      return;
    }
    if (typeof data.since === "number") {
      applyChangeSince(data);
      return;
    }
    heldDiffs.set(data.version, data);
    if (version !== null) {
      applyHeldDiffs();
      showCount();
    }
  }

  /** Whether the list is live; a list from a socket that is gone stays shown, marked stale. */
  function setLive(live) {
    card.classList.toggle("is-stale", !live);
    staleNote.hidden = live || list.childElementCount === 0;
  }

  function listen(socketToUse) {
    socket = socketToUse;
    socket.on("presence_state", applyState);
    socket.on("presence_diff", applyDiff);
    socket.on("disconnect", () => {
      // The next connection starts from a new state.
      version = null;
      heldDiffs.clear();
    });
  }

  names.onShared(redrawName);
  /** The version to resume from on a reconnect ("<epoch>:<version>"), or undefined. */
  function resumeVersion() {
    return epoch && lastVersion !== null ? epoch + ":" + lastVersion : undefined;
  }

  /** Whether the person of this tag is in the list (O(people): asked once per change). */
  function isOnline(tag) {
    return people.some((person) => person.tag === tag);
  }

  /** Calls `listener()` after each change applied to the list (a state, a batch). */
  function onChange(listener) {
    changeListeners.push(listener);
  }

  return { setLive, listen, resumeVersion, isOnline, onChange };
}
