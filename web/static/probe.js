/*
 * Session Sockets: the socket probe on the logged-out pages.
 *
 * It opens one Socket.IO connection, without retrying, to show what the server answers a
 * handshake that has no logged-in session behind its cookie: connect_error with
 * {message: "not authenticated"}.
 */
(function () {
  "use strict";

  // Ready to type a name, without scrolling the headline off a small screen.
  const username = document.getElementById("username");
  if (username) {
    username.focus({ preventScroll: true });
  }

  const probe = document.getElementById("socket-probe");
  if (!probe || !window.io) {
    return;
  }
  const state = document.getElementById("socket-state");
  const reason = document.getElementById("socket-reason");

  function show(next, text) {
    state.textContent = next;
    state.dataset.state = next;
    reason.textContent = text || "";
    reason.hidden = !text;
  }

  // Over a WebSocket only: one connection that carries the handshake, the refusal and the
  // close, in order. Over long-polling, the close raced the next poll, which then reached a
  // session already closed and was answered 400 (a line in the server's log for nothing).
  const socket = window.io({ reconnection: false, transports: ["websocket"] });
  socket.on("connect_error", (err) => {
    show("refused", (err && err.message) || "connection failed");
    socket.close();
  });
  socket.on("connect", () => {
    show("connected", "accepted: this browser has a live session; reload the page");
    socket.close();
  });
})();
