/*
 * Session Sockets: the login form says the username's limit while it is typed, before the
 * server has to refuse it. The server still checks everything (validation.py); this only
 * spares a round trip for the one rule a person can see coming: 1 to 32 characters.
 */
(function () {
  "use strict";

  const MAX_USERNAME_LENGTH = 32;
  const field = document.getElementById("username");
  const hint = document.getElementById("username-hint");
  if (!field || !hint) {
    return;
  }
  const usual = hint.textContent;

  field.addEventListener("input", () => {
    // Characters as the server counts them: code points, surrounding spaces trimmed.
    const length = Array.from(field.value.trim()).length;
    const over = length > MAX_USERNAME_LENGTH;
    hint.textContent = over
      ? length + " characters: a username is at most " + MAX_USERNAME_LENGTH + ". Shorten it by " + (length - MAX_USERNAME_LENGTH) + "."
      : usual;
    hint.classList.toggle("is-error", over);
    field.setAttribute("aria-invalid", String(over));
  });
})();
