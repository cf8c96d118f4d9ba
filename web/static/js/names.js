/*
 * Names and tags. Two people may log in with one name; the server gives each session a tag
 * of its own. Wherever a shared name appears (the online list, the chat), its tag appears
 * beside it, so that nobody takes one Alice for the other. A name counts as shared once this
 * page has seen it with two tags, online or in the conversation, and it stays shared: the
 * earlier messages keep telling their authors apart after one of them has left.
 *
 * Names are compared by how they look, not by their characters: the server sends each name's
 * confusable skeleton (tornado_app/skeleton.py, Unicode's table), so that "alice" with a
 * Cyrillic "а", a Greek "Α" or in fullwidth letters counts as the same name as "alice", and
 * both show their tags. (This server always sends a skeleton; without one, the name itself is
 * compared.)
 */

const SHORT_TAG_LENGTH = 4;

/** How a tag is shown: "#" and its first characters (enough to tell a handful apart). */
export function shortTag(tag) {
  return "#" + String(tag).slice(0, SHORT_TAG_LENGTH);
}

/** What a name looks like, from a person or message the server sent: its skeleton. */
export function looksOf(skeleton, name) {
  return typeof skeleton === "string" && skeleton !== "" ? skeleton : String(name);
}

export function makeNames() {
  const tagsOf = new Map(); // looks -> Set of the tags seen with it
  const listeners = [];

  /** Note that a name that looks like `looks` was seen with `tag`; tells the listeners when it becomes shared. */
  function seen(looks, tag) {
    if (!tag) {
      return;
    }
    let tags = tagsOf.get(looks);
    if (!tags) {
      tags = new Set();
      tagsOf.set(looks, tags);
    }
    if (tags.has(tag)) {
      return;
    }
    tags.add(tag);
    if (tags.size === 2) {
      for (const listener of listeners) {
        listener(looks);
      }
    }
  }

  function isShared(looks) {
    const tags = tagsOf.get(looks);
    return Boolean(tags && tags.size > 1);
  }

  /** Call `listener(looks)` when a name becomes shared (its tags are to be drawn from now on). */
  function onShared(listener) {
    listeners.push(listener);
  }

  return { seen, isShared, onShared };
}
