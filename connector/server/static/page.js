// The page itself: the data the server put inside it (the action's form schema and the list of
// actions) and the small DOM helpers the other modules draw with. Plain browser JavaScript, as
// are all the page's modules (form.js is the entry): no build step and no third-party code.

export const DATA = JSON.parse(document.getElementById("page-data").textContent);
export const FORM = DATA.form;
export const ACTION = FORM.action;

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// The manifest's texts use `code` and **bold**; anything else stays plain text.
export function inline(text) {
  const frag = document.createDocumentFragment();
  for (const part of String(text || "").split(/(`[^`]+`|\*\*[^*]+\*\*)/)) {
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) {
      frag.append(el("code", { text: part.slice(1, -1) }));
    } else if (part.startsWith("**") && part.endsWith("**") && part.length > 3) {
      frag.append(el("strong", { text: part.slice(2, -2) }));
    } else if (part) {
      frag.append(part);
    }
  }
  return frag;
}

export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
