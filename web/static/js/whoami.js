/*
 * The whoami question: the page asks, and the server answers from this socket's session,
 * which is the demo's point. The page sends only the question, never who it thinks it is.
 */

import { byId, clockTime, el } from "./dom.js";

const WHOAMI_TIMEOUT_MS = 5000;

/** `shared.state` says whether the button may be used again after an answer. */
export function makeWhoami(shared) {
  const button = byId("whoami-button");
  const result = byId("whoami-result");
  const hint = byId("whoami-hint");

  function show(kind, summary, detail, payload) {
    const box = el("div", "whoami-box whoami-" + kind);
    box.append(el("p", "whoami-summary", summary));
    if (detail) {
      box.append(el("p", "whoami-detail", detail));
    }
    if (payload !== undefined) {
      // One line with spaces, so that it wraps between fields rather than inside them.
      const json = JSON.stringify(payload, null, 1).replace(/\n\s*/g, " ");
      box.append(el("pre", "whoami-json", json));
    }
    result.replaceChildren(box);
    hint.hidden = true; // the answer now makes the same point, with less room
  }

  function setLive(live) {
    button.disabled = !live;
    if (!live) {
      result.replaceChildren(); // an answer that came over a socket which is gone is stale
    }
    hint.hidden = !live || result.childElementCount > 0;
  }

  function listen(socket) {
    button.addEventListener("click", () => {
      const asked = performance.now();
      button.disabled = true;
      socket.timeout(WHOAMI_TIMEOUT_MS).emit("whoami", (err, answer) => {
        button.disabled = shared.state !== "connected";
        const took = Math.round(performance.now() - asked);
        if (err) {
          show("error", "No answer within " + WHOAMI_TIMEOUT_MS / 1000 + " s.");
        } else if (!answer || typeof answer.username !== "string") {
          show("error", "The server has no session for this socket any more.", "", answer === undefined ? null : answer);
        } else {
          const since = new Date(Number(answer.logged_in_at) * 1000);
          show(
            "ok",
            "You are " + answer.username + ", logged in at " + clockTime(since) + ".",
            "Answered from the server's session in " + took + " ms:",
            answer
          );
        }
      });
    });
  }

  return { setLive, listen };
}
