// The combo box of a field whose values the server lists (the Model field, from its options
// route): a list to pick from, filtered as the author types; any other text is allowed too.

import { el } from "./page.js";
import { api } from "./server.js";

// The list is loaded from ``opts.source`` when the field is first used.
export function combobox(name, prop, input, opts) {
  const listId = `lb-${name}`;
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", listId);
  const list = el("ul", { id: listId, role: "listbox", class: "listbox", "aria-label": `${prop.title} options`, hidden: true });
  const toggle = el("button", {
    type: "button",
    class: "combo-toggle",
    "aria-label": `Show ${prop.title} options`,
    tabindex: "-1",
    text: "▾",
  });
  const box = el("div", { class: "combo" }, input, toggle, list);
  let options = null;
  let loading = null;
  let active = -1;
  let shown = [];

  function load() {
    if (options || loading) return loading;
    loading = api("GET", opts.source).then(({ doc }) => {
      const items = Array.isArray(doc) ? doc : doc.options || doc.data;
      if (Array.isArray(items)) {
        options = items.map((o) => (typeof o === "string" ? { value: o, label: o } : o));
      } else {
        options = [];
        list.dataset.error = (doc.error && doc.error.message) || "The list could not be loaded.";
      }
      loading = null;
      if (!list.hidden) render();
    });
    return loading;
  }

  function render() {
    list.replaceChildren();
    if (!options) {
      list.append(el("li", { class: "muted", text: "Loading the list…" }));
      return;
    }
    const text = input.value.trim().toLowerCase();
    const exact = options.some((o) => o.value.toLowerCase() === text);
    shown = options.filter((o) => exact || !text || `${o.value} ${o.label}`.toLowerCase().includes(text));
    active = Math.min(active, shown.length - 1);
    if (!shown.length) {
      const note = list.dataset.error || (opts.freeText ? "No match in the list; the typed value is used." : "No match.");
      list.append(el("li", { class: "muted", text: note }));
    }
    shown.forEach((o, i) => {
      const item = el("li", { role: "option", id: `${listId}-${i}`, "aria-selected": String(i === active), "data-value": o.value, text: o.label });
      item.addEventListener("mousedown", (ev) => {
        ev.preventDefault();
        choose(o.value);
      });
      list.append(item);
    });
    input.setAttribute("aria-activedescendant", active >= 0 ? `${listId}-${active}` : "");
  }

  function open() {
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    load();
    render();
  }

  function close() {
    list.hidden = true;
    active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  let choosing = false;

  function choose(value) {
    input.value = value;
    close();
    choosing = true; // the input event below must not open the list again
    input.dispatchEvent(new Event("input", { bubbles: true }));
    choosing = false;
  }

  input.addEventListener("focus", load);
  input.addEventListener("input", () => {
    active = -1;
    if (!choosing && document.activeElement === input) open();
  });
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (list.hidden) open();
      const step = ev.key === "ArrowDown" ? 1 : -1;
      // Before the list has loaded, ArrowDown still means "the first option".
      active = shown.length ? (active + step + shown.length) % shown.length : 0;
      render();
    } else if (ev.key === "Enter" && !list.hidden && active >= 0) {
      ev.preventDefault();
      choose(shown[active].value);
    } else if (ev.key === "Escape" && !list.hidden) {
      ev.preventDefault();
      close();
    }
  });
  toggle.addEventListener("click", () => {
    if (list.hidden) {
      input.focus();
      open();
    } else close();
  });
  return box;
}
