/*
 * Your earlier sessions. A person is a session: logging in again (after a logout, the
 * server's restart, a Redis restart) makes a new session with a new tag, so your own earlier
 * messages show under another tag ("ada #pjv2" beside "ada #1XLW (you)"). Right, and puzzling
 * without a word.
 *
 * This browser remembers the tags its sessions have had (localStorage: this site only, the
 * last MAX_TAGS), and a message or a person online whose tag is one of them and whose name is
 * yours now is marked "you, earlier". Nothing secret is kept: a tag is public (everyone online
 * sees it), and nothing of the session's id or cookie. Another browser, or another person
 * using this name, has other tags, so nothing of theirs is marked. (The desktop launcher
 * serves on a new port each run, a new site to the browser: its window remembers nothing
 * from one run to the next.)
 */

import { el } from "./dom.js";

const KEY = "session-sockets:earlier-tags";
const MAX_TAGS = 20;
const TAG = /^[\w-]{1,64}$/; // the server's tags are 11 URL-safe characters
const EXPLAINED = "Sent from an earlier session of yours in this browser: each login is a new session, with a new tag.";

/** The tags this browser remembers, newest first; none where storage is off or holds anything else. */
function read(storage) {
  try {
    const kept = JSON.parse(storage.getItem(KEY) || "[]");
    return Array.isArray(kept) ? kept.filter((tag) => typeof tag === "string" && TAG.test(tag)).slice(0, MAX_TAGS) : [];
  } catch {
    return [];
  }
}

/**
 * Remembers this page's session (`myTag`) and says which tags were this browser's before it.
 * `storage` is window.localStorage (null where the browser has none, or refuses it).
 */
export function makeEarlier(storage, myName, myTag) {
  const tags = storage ? read(storage) : [];
  if (storage && TAG.test(myTag)) {
    const kept = [myTag, ...tags.filter((tag) => tag !== myTag)].slice(0, MAX_TAGS);
    try {
      storage.setItem(KEY, JSON.stringify(kept));
    } catch {
      // Storage full or refused: the hint is a nicety; this page still knows its own.
    }
  }
  const earlier = new Set(tags.filter((tag) => tag !== myTag));

  /** Whether a message or a person of `name` with `tag` was this browser's earlier session. */
  function isEarlier(tag, name) {
    return earlier.has(tag) && String(name) === myName;
  }

  /** The quiet note beside such a message's name, explained on hover. */
  function note() {
    const node = el("span", "message-earlier", "(you, earlier)");
    node.title = EXPLAINED;
    return node;
  }

  return { isEarlier, note, explained: EXPLAINED };
}

/** window.localStorage, or null where reading it throws (storage turned off). */
export function browserStorage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}
