/*
 * The session, as this page shows it: the session card, the help box under the socket, and
 * what each way a session can end means in plain words. It also reports that a person is
 * using the page, which is what keeps the session from expiring as idle, and warns a person
 * who only reads, shortly before that happens, with a button that keeps it.
 */

import { byId, clockTime } from "./dom.js";

// What each ending means, in plain words, keyed by the server's end reasons (the `ended`
// event; END_REASONS in tornado_app/reasons.py). tests/test_page_words.py checks that every
// reason but "gone" has a sentence here. The transport's own words go to the log only.
const ENDINGS = {
  logout: "You logged out, here or in another tab, so this session has ended.",
  replaced: "Someone logged in again in this browser, which replaced this session.",
  expired: "This session expired: nobody used it for too long.",
  evicted: "The server had too many sessions and ended this one, the longest unused.",
  shutdown: "The server is stopping. This page reconnects by itself, to another server of this site or to this one when it is back.",
};

// A refusal after the server said it was stopping: it came back without this session.
const RESTARTED = "The server restarted, and this session did not survive it. Log in again to go on.";
const GONE = "Your session is gone: it ended, or the server restarted without it.";
const STORE_RETRY_MS = 3000;
// Said in the chat card's status line (the page's one polite live region), once.
const STORE_AWAY = "The server cannot check your session right now; trying again every few seconds.";
const ACTIVITY_EVENTS = ["keydown", "pointerdown", "wheel", "scroll", "focusin", "touchstart"];
const ACK_TIMEOUT_MS = 5000;
const WARN_BEFORE_S = 60; // the idle warning comes a minute before (a third of a short TTL)

/**
 * `words` is the server's own words (reasons.for_the_page()); `setState(next, reason)` sets
 * the socket's state across the page; `status` is the chat card's status line (status.js),
 * where a passing state is announced (the help box here is for the eye: not a live region).
 */
export function makeSession({ root, shared, words, setState, status: chatStatus }) {
  const help = byId("socket-help");
  const helpText = byId("socket-help-text");
  const helpLogin = byId("socket-help-login");
  // The same ending, said where the eye is (the chat card comes first on a phone).
  const banner = byId("chat-ended");
  const bannerText = byId("chat-ended-text");
  const status = byId("session-status");
  const loggedInAtNode = byId("logged-in-at");
  // The header's "Signed in as ..." and both ways to log out: pointless once the session is gone.
  const signedInParts = [byId("header-session"), byId("logout-form"), byId("logout-hint")];
  // The server refreshes the idle timer on each report: once a minute (more often for a
  // short idle TTL), from the template.
  const activityReportMs = Number(root.dataset.activityReportMs) || 60000;
  let endedReason = ""; // what the server said before it ended this session

  /** The help box under the socket; `offerLogin` when the session is over (said in the chat too). */
  function showHelp(text, kind, offerLogin) {
    help.hidden = !text;
    helpText.textContent = text || "";
    help.className = "alert alert-" + (kind || "warning");
    helpLogin.hidden = !offerLogin;
    banner.hidden = !(text && offerLogin);
    bannerText.textContent = offerLogin ? text : "";
  }

  /** `kind`: "active" (green), "checking" (not known yet: neutral) or "gone" (red). */
  function setStatus(text, kind) {
    status.textContent = text;
    status.dataset.kind = kind;
  }

  function gone(statusText) {
    // No "Signed in as ..." and "Log out" for a session that is gone; on a phone, the site's
    // name comes back in their place (app.css: .has-session).
    setStatus(statusText, "gone");
    for (const node of signedInParts) {
      if (node) {
        node.hidden = true;
      }
    }
    document.querySelector(".site-header").classList.remove("has-session");
  }

  /** The server accepted this socket; returns the name it knows this session by. */
  function welcomed(data) {
    const name = data && typeof data.username === "string" ? data.username : shared.me;
    shared.me = name;
    if (data && typeof data.tag === "string") {
      shared.myTag = data.tag;
    }
    endedReason = "";
    setState("connected");
    if (chatStatus.current() === STORE_AWAY) {
      chatStatus.say(""); // over: a reconnect says what it caught up next
    }
    showHelp("");
    setStatus("active", "active");
    return name;
  }

  /** The server refused the handshake (the client will not retry by itself). */
  function refused(message, tryAgain) {
    if (message === words.refusals.storeUnavailable) {
      // The server is up but cannot check sessions yet: worth trying again shortly.
      setState("connecting", "the server cannot check sessions right now; retrying");
      showHelp("The server cannot check your session at the moment. This page tries again every few seconds.", "warning");
      chatStatus.say(STORE_AWAY, "warn");
      window.setTimeout(tryAgain, STORE_RETRY_MS);
      return;
    }
    // No retry would help.
    setState("refused", message);
    if (message === words.refusals.notAuthenticated) {
      // "shutdown" was the server stopping, not this session ending: it came back without it.
      const why = endedReason === "shutdown" ? RESTARTED : ENDINGS[endedReason] || GONE;
      showHelp(why, "error", true);
      gone("gone");
    } else {
      showHelp("The server refused this connection: " + message + ".", "error", false);
    }
  }

  /** The server said why it is about to end this session; returns the reason ("" if none). */
  function ended(data) {
    endedReason = data && typeof data.reason === "string" ? data.reason : "";
    return endedReason;
  }

  function disconnected(reason) {
    if (reason === "io server disconnect") {
      // The server ended this session; the client will not retry.
      setState("disconnected", "session ended");
      showHelp(ENDINGS[endedReason] || "The server ended this session.", "error", true);
      gone("ended");
    } else if (endedReason === "shutdown") {
      setState("connecting", "the server is stopping; reconnecting");
      showHelp(ENDINGS.shutdown, "warning");
      setStatus("checking…", "checking"); // not "active" beside "connecting": not known until the server says
    } else {
      setState("connecting", "the connection dropped; reconnecting");
      showHelp("The connection dropped. The page reconnects by itself with the same session.", "warning");
      setStatus("checking…", "checking");
    }
  }

  // Idle means nobody at the page, not "no messages sent": keys, pointer, scrolling and
  // focus count as use. Reported at most once a minute; an abandoned page reports nothing
  // and its session expires as idle. The server says how long the session has left (on
  // welcome, and in the ack of each report); shortly before the end, the page asks again
  // (another tab may have used the session) and, if it still ends, says so in the chat card.
  function keepAlive(socket, status) {
    const stay = byId("chat-stay");
    let lastReport = performance.now();
    let usedSinceReport = false;
    let idleTimeout = 0; // seconds; 0 until the server said (an older server does not)
    let deadline = 0; // performance.now() when the session ends unless it is used
    let warnTimer = 0;
    let tickTimer = 0;

    function warnBeforeMs() {
      return Math.min(WARN_BEFORE_S, idleTimeout / 3) * 1000;
    }

    function endsIn(seconds) {
      deadline = performance.now() + seconds * 1000;
      window.clearTimeout(warnTimer);
      if (idleTimeout > 0) {
        warnTimer = window.setTimeout(askHowLong, Math.max(0, deadline - warnBeforeMs() - performance.now()));
      }
    }

    function hideWarning() {
      window.clearInterval(tickTimer);
      tickTimer = 0;
      status.hideIdle();
    }

    function tick() {
      const left = Math.ceil((deadline - performance.now()) / 1000);
      if (left > 0) {
        status.showIdle(left);
      } else {
        hideWarning();
        askHowLong(); // ended (the server says so next), or someone used it meanwhile
      }
    }

    function askHowLong() {
      if (!socket.connected) {
        return; // the next welcome says it afresh
      }
      const askedAt = performance.now();
      socket.timeout(ACK_TIMEOUT_MS).emit("idle_left", (err, data) => {
        if (lastReport > askedAt) {
          return; // a use was reported since: that answer is older than what the page knows
        }
        if (!err && data && typeof data.idle_left === "number") {
          if (data.idle_left <= 0) {
            hideWarning(); // already over: the ending is said when the server ends it
            return;
          }
          endsIn(data.idle_left);
          if (data.idle_left * 1000 > warnBeforeMs() + 1000) {
            hideWarning(); // another tab kept it alive: ask again nearer the new end
            return;
          }
        }
        if (!tickTimer && socket.connected) {
          tick();
          tickTimer = window.setInterval(tick, 1000);
        }
      });
    }

    function reportActivity() {
      if (socket.connected) {
        lastReport = performance.now();
        usedSinceReport = false;
        hideWarning();
        if (idleTimeout > 0) {
          endsIn(idleTimeout); // as the server will reckon it; its answer corrects it
        }
        socket.timeout(ACK_TIMEOUT_MS).emit("active", (err, data) => {
          if (!err && data && typeof data.idle_left === "number" && data.idle_left > 0) {
            endsIn(data.idle_left);
          }
        });
      }
    }

    function used() {
      usedSinceReport = true;
      // While the warning is up, any use answers it at once; else at most once per interval.
      if (tickTimer || performance.now() - lastReport >= activityReportMs) {
        reportActivity();
      }
    }

    for (const type of ACTIVITY_EVENTS) {
      document.addEventListener(type, used, { capture: true, passive: true });
    }
    window.setInterval(() => {
      if (usedSinceReport) {
        reportActivity();
      }
    }, activityReportMs);
    stay.addEventListener("click", () => {
      if (tickTimer) {
        reportActivity(); // (a pointer's press reported it already)
      }
    });
    socket.on("welcome", (data) => {
      // The connect refreshed the session: it has the whole idle time again.
      idleTimeout = data && typeof data.idle_timeout === "number" && data.idle_timeout > 0 ? data.idle_timeout : 0;
      hideWarning();
      if (idleTimeout > 0) {
        endsIn(idleTimeout);
      }
    });
    socket.on("disconnect", () => {
      window.clearTimeout(warnTimer);
      hideWarning();
    });
  }

  const loggedInAt = Number(root.dataset.loggedInAt);
  if (loggedInAtNode && Number.isFinite(loggedInAt)) {
    const date = new Date(loggedInAt * 1000);
    loggedInAtNode.textContent = clockTime(date);
    loggedInAtNode.title = date.toLocaleString();
  }
  showHelp("");

  return { welcomed, clearHelp: () => showHelp(""), refused, ended, disconnected, keepAlive };
}
