// The input checks: the server's dry run as the author types (nothing is sent to the model),
// its problems and warnings shown beside their fields, and the status banner.

import { $, ACTION, plural } from "./page.js";
import { api } from "./server.js";
import { fields, formValues } from "./fields.js";

const CHECK_DELAY_MS = 400;

// The problems of the last check (a dry run or a run), as the server gave them.
export let serverProblems = [];

// A JSON syntax problem (the server's: it has a line and a column) stops a run in the page.
function syntaxOf(problem) {
  return problem.line !== undefined ? problem : null;
}

// A problem's words beside its field: the field's label is on the page, so only the place
// inside the value (path) goes in front; away from a field, the label does.
const beside = (p) => (p.path ? `${p.path}: ${p.message}` : p.message);
const away = (p) => (p.label && !p.message.includes(p.label) ? `${p.label}: ${p.message}` : p.message);

export function showWarnings(warnings) {
  const byName = new Map();
  for (const w of warnings || []) {
    if (!byName.has(w.name)) byName.set(w.name, []);
    byName.get(w.name).push(beside(w));
  }
  for (const [name, f] of fields) f.warning.textContent = (byName.get(name) || []).join("\n");
}

export function showProblems(problems) {
  serverProblems = problems;
  for (const f of fields.values()) f.syntax = null;
  for (const p of problems) {
    const f = fields.get(p.name);
    if (f && syntaxOf(p)) f.syntax = p;
  }
  const byName = new Map();
  const general = [];
  for (const p of problems) {
    if (fields.has(p.name)) {
      if (!byName.has(p.name)) byName.set(p.name, []);
      byName.get(p.name).push(beside(p));
    } else {
      general.push(away(p));
    }
  }
  const counts = {};
  for (const [name, f] of fields) {
    const messages = byName.get(name) || [];
    f.error.textContent = messages.join("\n");
    f.wrap.classList.toggle("invalid", messages.length > 0);
    if (messages.length) {
      f.input.setAttribute("aria-invalid", "true");
      counts[f.group] = (counts[f.group] || 0) + 1;
    } else f.input.removeAttribute("aria-invalid");
  }
  for (const node of document.querySelectorAll(".problems")) {
    const n = counts[node.id.replace("problems-", "")] || 0;
    node.textContent = n ? ` — ${plural(n, "problem")}` : "";
  }
  setStatus(general.length ? general.join("\n") : "", "error");
  return Object.values(counts).reduce((a, b) => a + b, 0) + general.length;
}

export function setStatus(text, kind = "info") {
  const status = $("status");
  status.textContent = text;
  status.className = `banner ${kind}`;
  status.hidden = !text;
}

let checkTimer = null;
let checkSeq = 0;
let checkAbort = null;
let checking = false;

// Each edit clears its field's problems and checks the form again once typing pauses.
export function onEdit(name) {
  showProblems(serverProblems.filter((p) => p.name !== name));
  $("check-state").textContent = "Checking…";
  clearTimeout(checkTimer);
  checkTimer = setTimeout(check, CHECK_DELAY_MS);
}

async function check() {
  const seq = ++checkSeq;
  checkTimer = null;
  if (checkAbort) checkAbort.abort();
  checkAbort = new AbortController();
  let reply;
  checking = true;
  try {
    reply = await api("POST", `/actions/${ACTION}/dry-run`, formValues(), checkAbort.signal);
  } catch (err) {
    if (err.name === "AbortError") return;
    $("check-state").textContent = `The server could not be reached: ${err.message}`;
    return;
  } finally {
    if (seq === checkSeq) checking = false;
  }
  if (seq !== checkSeq) return;
  const { doc } = reply;
  showWarnings(doc.warnings || (doc.error && doc.error.warnings));
  if (doc.error) {
    const n = showProblems(doc.error.fields || []) || 1;
    if (!(doc.error.fields || []).length) setStatus(doc.error.message, "error");
    $("check-state").textContent = plural(n, "problem");
    $("preview").textContent = JSON.stringify(doc, null, 2);
  } else {
    const n = showProblems([]);
    $("check-state").textContent = n ? plural(n, "problem") : "✓ Ready to run (dry run passed; nothing was sent)";
    $("preview").textContent = JSON.stringify(doc, null, 2);
  }
}

// Before a run: the last edit's check is awaited (its JSON may be broken), and a dry run still
// on its way may no longer overwrite what the run shows.
export async function settle() {
  if (checkTimer !== null || checking) {
    clearTimeout(checkTimer);
    await check();
  }
  checkSeq++;
}
