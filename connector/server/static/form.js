// The form page's entry module: draws an action's form from its form schema (JSON Schema + UI
// schema), checks it with the server's dry-run route as the author types, runs it, and shows the
// reply. This module wires the page's buttons; each job is a module of its own, imported here.

import { $, ACTION, DATA, el, FORM, inline } from "./page.js";
import { api, askToken } from "./server.js";
import { buildForm, fields } from "./fields.js";
import { onEdit, setStatus } from "./checks.js";
import { run } from "./run.js";
import { copyCurl, copyN8n } from "./snippets.js";

function fillExamples() {
  for (const [name, f] of fields) {
    const example = (f.prop.examples || [])[0];
    if (f.group !== "basic" || example === undefined || f.input.value.trim()) continue;
    f.input.value = typeof example === "string" ? example : JSON.stringify(example, null, 2);
    onEdit(name);
  }
}

function start() {
  document.title = `${FORM.title} · connector`;
  const nav = $("actions");
  for (const a of DATA.actions) {
    const current = a.id === ACTION;
    nav.append(el("a", { href: `/actions/${a.id}/form`, "aria-current": current ? "page" : null, text: a.title }));
  }
  $("title").textContent = FORM.title;
  $("description").replaceChildren(inline(FORM.description), " ", el("code", { text: `${FORM.method} ${FORM.path}` }));
  buildForm(onEdit);
  $("form").addEventListener("submit", run);
  $("form").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) run(ev);
  });
  $("fill-example").addEventListener("click", fillExamples);
  $("fill-example").hidden = ![...fields.values()].some((f) => f.group === "basic");
  $("copy-curl").addEventListener("click", copyCurl);
  $("copy-n8n").addEventListener("click", copyN8n);
  $("token-change").addEventListener("click", () => askToken(""));
  $("token-cancel").addEventListener("click", () => $("token-dialog").close());
  // Ask for the token now, if the server wants one, rather than in the middle of typing.
  api("GET", "/actions").catch(() => setStatus("The action server could not be reached.", "error"));
}

start();
