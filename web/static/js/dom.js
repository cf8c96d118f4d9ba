/*
 * Small drawing helpers that every part of the live view shares: elements, clock times and
 * avatars. Text always goes in with textContent, never innerHTML: names and messages are
 * typed by people.
 */

const HUES = 8; // .hue-0 to .hue-7 in app.css

export const byId = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

export function pad(number, width) {
  return String(number).padStart(width || 2, "0");
}

export function clockTime(date) {
  return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
}

export function shortTime(date) {
  // One clock format on the whole page: 24-hour, as the session card shows it.
  return pad(date.getHours()) + ":" + pad(date.getMinutes());
}

function hueClass(name) {
  let hash = 0;
  for (const char of name) {
    hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  }
  return "hue-" + (hash % HUES);
}

export function avatar(name) {
  // The initial is drawn by CSS from data-initial, so the element's text stays the bare name.
  const node = el("span", "avatar " + hueClass(name));
  node.dataset.initial = (Array.from(name.trim())[0] || "?").toUpperCase();
  node.setAttribute("aria-hidden", "true");
  return node;
}
