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
 *                  and the warning before an idle session expires
 *   chat.js        the conversation (in the order of its positions) and the message form
 *   outbox.js      your messages on their way: sending…, not sent and Retry, refusals
 *   status.js      the chat card's status line: reconnecting, what a reconnect caught up
 *   presence.js    who is online
 *   private.js     writing to one person (chosen in the Online list), private messages drawn
 *   names.js       which names are shared by several people (or look alike), whose tags are then shown
 *   earlier.js     the tags this browser's earlier sessions had: "(you, earlier)" on their messages
 *   whoami.js      the whoami question and its answer
 *   dom.js         drawing helpers: elements, clock times, avatars
 *
 * A position is "<epoch>:<n>": n counts a history's messages 1, 2, 3... and the epoch names
 * the history (it changes when the server restarts without its history). The page compares
 * n only within one epoch.
 *
 * The socket's connect carries an auth payload (asked afresh on every reconnect):
 *   {history: "<epoch>:<n>", presence: "<epoch>:<version>"}  the last position the page holds
 *                                     with none missing before it, and the version of its
 *                                     presence list; each left out when the page has none
 *
 * Socket events, as the server sends them:
 *   welcome  {username, tag, idle_timeout, process}  the server accepted this socket; tag is
 *                                     this session's public tag (two people may share a name,
 *                                     never a tag); idle_timeout the seconds an unused session
 *                                     lives; process the label of the process that accepted it
 *   history  {messages: [chat...], position, resume}  sent once after welcome: "none" (no
 *                                     position asked: the latest messages), "caught_up"
 *                                     (exactly those after the asked position, maybe none) or
 *                                     "could_not" (the latest ones: a gap, said as such);
 *                                     position is the newest at the time
 *   presence_state {version, epoch, people: [{name, tag}]}  who is online: once after welcome
 *   presence_diff  {version, joins: [{name, tag}], leaves: [...], since?}  who came and went
 *                                     since the previous version (at most every 100 ms); with
 *                                     `since` (a resumed connection's first): the net change
 *                                     from the version the page said it holds
 *   chat     {id, username, tag, text, time, position}  a message for everyone (time in unix
 *                                     seconds); may come before history, or slightly out of order
 *   private  {id, from: {name, tag, skeleton}, to: {...}, text, time}  a private message:
 *                                     to every tab of its recipient and the sender's other
 *                                     tabs, nobody else; no position (never kept)
 *   ended    {reason}                 the session ended (logout, replaced, expired, evicted,
 *                                     gone) or the server is stopping (shutdown); sent just before
 * and as this page sends them:
 *   whoami   (with an ack)             answered with {username, logged_in_at}
 *   chat     {text, id} (with an ack)  1 to 500 characters, at most 2,000 bytes as UTF-8 JSON;
 *                                      id is the page's own (a retry sends the same one);
 *                                      answered with {ok: true, message: chat} or
 *                                      {ok: false, reason, message, retry_after?}; no answer
 *                                      in 5 s: shown "not sent", with Retry
 *   private  {to, text, id} (with an ack)  to the person online whose tag is `to`, text as
 *                                      chat's; answered as chat is, or refused with reason
 *                                      "offline" when they are not online now
 *   active   (with an ack)             a person is using this page (at most once a minute, or
 *                                      at once to answer the idle warning): {idle_left}
 *   idle_left (with an ack)            how long the session has left if nobody uses it (it
 *                                      refreshes nothing): {idle_left}
 *   presence_state (with an ack)       after a gap in the versions: answered with the state, or
 *                                      {refused, retry_after} past the client's fair share
 *   catch_up {after} (with an ack)     a gap in the chat's positions that did not fill within
 *                                      2 s (or a connect's history the store could not give):
 *                                      answered as history, or {refused, retry_after}
 */

import { makeChat } from "./chat.js";
import { connect, makeHandshakeLog, makeSocketBadge } from "./connection.js";
import { byId } from "./dom.js";
import { browserStorage, makeEarlier } from "./earlier.js";
import { makeNames } from "./names.js";
import { makePresence } from "./presence.js";
import { makePrivate } from "./private.js";
import { makeSession } from "./session.js";
import { makeChatStatus } from "./status.js";
import { makeWhoami } from "./whoami.js";

// What the message field says while messages cannot be sent now: short enough to be read
// whole in the field of a 320 px screen (the status line above says "Reconnecting…").
const UNAVAILABLE_CHAT = {
  connecting: "Sent once online", // (what is written meanwhile waits)
  refused: "Not connected",
  disconnected: "Not connected",
};

function start(root) {
  const words = JSON.parse(byId("server-words").textContent);
  // What several parts read: who this page is and the socket's state. welcome may update
  // the first two; setState below is the only writer of the third.
  const shared = { me: root.dataset.username || "", myTag: root.dataset.tag || "", state: "connecting" };
  // The tags this browser's earlier sessions had: their messages are yours, from before.
  shared.earlier = makeEarlier(browserStorage(), shared.me, shared.myTag);

  const log = makeHandshakeLog(byId("handshake-log"));
  const badge = makeSocketBadge(root, shared);
  const names = makeNames();
  const status = makeChatStatus();
  const privately = makePrivate(shared, names, status);
  const chat = makeChat(shared, names, status, privately);
  const presence = makePresence(shared, names, log, privately.personButton);
  privately.watchPresence(presence);
  const whoami = makeWhoami(shared);

  // The socket's state decides what on the page can be used.
  let everConnected = false;
  function setState(next, reason) {
    if (next === "connecting" && everConnected) {
      status.say("Reconnecting…", "warn"); // said in the chat card, where the eye is
    } else if (next === "refused" || next === "disconnected") {
      status.say(""); // the session is over: the chat card's banner says so
    }
    everConnected = everConnected || next === "connected";
    shared.state = next;
    badge.show(next, reason);
    const live = next === "connected";
    chat.setLive(next, UNAVAILABLE_CHAT[next]);
    presence.setLive(live);
    whoami.setLive(live);
  }

  const session = makeSession({ root, shared, words, setState, status });
  setState("connecting");

  const resumeFrom = () => ({ history: chat.resumePosition(), presence: presence.resumeVersion() });
  const socket = connect({ shared, log, badge, setState, session, chat, resumeFrom });
  if (!socket) {
    return;
  }
  presence.listen(socket);
  chat.listen(socket);
  whoami.listen(socket);
  session.keepAlive(socket, status);
}

const root = byId("live-view");
if (root) {
  start(root); // Only the logged-in index page has a live view.
}
