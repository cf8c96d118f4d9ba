/*
 * Session Sockets: the live view, wired together.
 *
 * Plain ES modules, served as they are: no build step. The page's Content-Security-Policy
 * allows no inline script or style, so the template hands data over in data-* attributes and
 * one JSON data block (#server-words: the words the server refuses and ends things with,
 * from tornado_app/reasons.py), and everything a person typed (usernames, chat text) goes
 * into the page with textContent, never innerHTML.
 *
 * This module only builds the parts and connects them; each part is a module with one job:
 *   connection.js  the socket, its state badge and transport, and the handshake log
 *   session.js     the session card, the help box, what each ending means, activity reports
 *   chat.js        the conversation and the message form
 *   presence.js    who is online
 *   names.js       which names are shared by several people (or look alike), whose tags are then shown
 *   whoami.js      the whoami question and its answer
 *   dom.js         drawing helpers: elements, clock times, avatars
 *
 * Socket events, as the server sends them:
 *   welcome  {username, tag}          the server accepted this socket; tag is this session's
 *                                     public tag (two people may share a name, never a tag)
 *   history  {messages: [chat...]}    the recent conversation, sent once after welcome
 *   presence_state {version, people: [{name, tag}]}  who is online: once after welcome
 *   presence_diff  {version, joins: [{name, tag}], leaves: [...]}  who came and went since
 *                                     the previous version (at most every 100 ms)
 *   chat     {id, username, tag, text, time}  a message for everyone (time in unix seconds)
 *   error    {message}                a chat message was refused; the socket stays up
 *   ended    {reason}                 the session ended (logout, replaced, expired, evicted)
 *                                     or the server is shutting down; sent just before
 * and as this page sends them:
 *   whoami   (with an ack)             answered with {username, logged_in_at}
 *   chat     {text}                    1 to 500 characters, at most 2,000 bytes as UTF-8 JSON
 *   active                             a person is using this page (at most once a minute)
 *   presence_state (with an ack)       after a gap in the versions: answered with the state, or
 *                                      {refused, retry_after} past the client's fair share
 */

import { makeChat } from "./chat.js";
import { connect, makeHandshakeLog, makeSocketBadge } from "./connection.js";
import { byId } from "./dom.js";
import { makeNames } from "./names.js";
import { makePresence } from "./presence.js";
import { makeSession } from "./session.js";
import { makeWhoami } from "./whoami.js";

// What the message field says while messages cannot be sent.
const UNAVAILABLE_CHAT = {
  connecting: "Connecting…",
  refused: "Not connected",
  disconnected: "Not connected",
};

function start(root) {
  const words = JSON.parse(byId("server-words").textContent);
  // What several parts read: who this page is and the socket's state. welcome may update
  // the first two; setState below is the only writer of the third.
  const shared = { me: root.dataset.username || "", myTag: root.dataset.tag || "", state: "connecting" };

  const log = makeHandshakeLog(byId("handshake-log"));
  const badge = makeSocketBadge(root, shared);
  const names = makeNames();
  const chat = makeChat(shared, names);
  const presence = makePresence(shared, names, log);
  const whoami = makeWhoami(shared);

  // The socket's state decides what on the page can be used.
  function setState(next, reason) {
    shared.state = next;
    badge.show(next, reason);
    const live = next === "connected";
    chat.setLive(live, UNAVAILABLE_CHAT[next]);
    presence.setLive(live);
    whoami.setLive(live);
  }

  const session = makeSession({ root, shared, words, setState });
  setState("connecting");

  const socket = connect({ shared, log, badge, setState, session, chat });
  if (!socket) {
    return;
  }
  presence.listen(socket);
  chat.listen(socket);
  whoami.listen(socket);
  session.keepAlive(socket);
}

const root = byId("live-view");
if (root) {
  start(root); // Only the logged-in index page has a live view.
}
