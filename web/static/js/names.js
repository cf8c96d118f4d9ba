/*
 * Names and tags. Two people may log in with one name; the server gives each session a tag
 * of its own. Wherever a shared name appears (the online list, the chat), its tag appears
 * beside it, so that nobody takes one Alice for the other. A name counts as shared once this
 * page has seen it with two tags, online or in the conversation, and it stays shared: the
 * earlier messages keep telling their authors apart after one of them has left.
 */

const SHORT_TAG_LENGTH = 4;

/** How a tag is shown: "#" and its first characters (enough to tell a handful apart). */
export function shortTag(tag) {
  return "#" + String(tag).slice(0, SHORT_TAG_LENGTH);
}

export function makeNames() {
  const tagsOf = new Map(); // name -> Set of the tags seen with it
  const listeners = [];

  /** Note that `name` was seen with `tag`; tells the listeners when the name becomes shared. */
  function seen(name, tag) {
    if (!tag) {
      return;
    }
    let tags = tagsOf.get(name);
    if (!tags) {
      tags = new Set();
      tagsOf.set(name, tags);
    }
    if (tags.has(tag)) {
      return;
    }
    tags.add(tag);
    if (tags.size === 2) {
      for (const listener of listeners) {
        listener(name);
      }
    }
  }

  function isShared(name) {
    const tags = tagsOf.get(name);
    return Boolean(tags && tags.size > 1);
  }

  /** Call `listener(name)` when a name becomes shared (its tags are to be drawn from now on). */
  function onShared(listener) {
    listeners.push(listener);
  }

  return { seen, isShared, onShared };
}
