// Running the form: the async run route, polled until the run ends, with its progress, and the
// result view (the reply's choices or items, or the error with its fields marked).

import { $, ACTION, el, plural } from "./page.js";
import { api } from "./server.js";
import { fields, formValues } from "./fields.js";
import { serverProblems, settle, showProblems, showWarnings } from "./checks.js";

const FIRST_POLL_MS = 150;
const MAX_POLL_MS = 2000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function showReply(doc) {
  const reply = $("reply");
  reply.replaceChildren();
  if (Array.isArray(doc.choices)) {
    for (const choice of doc.choices) {
      const msg = choice.message || {};
      const box = el("div", { class: "choice" });
      if (doc.choices.length > 1) box.append(el("h3", { text: `Choice ${choice.index}` }));
      if (msg.content !== null && msg.content !== undefined) {
        box.append(el("div", { class: "content", "data-testid": "reply-content", text: msg.content }));
      }
      if (msg.refusal) box.append(el("p", { class: "error", text: `Refusal: ${msg.refusal}` }));
      for (const call of msg.tool_calls || []) {
        const fn = call.function || {};
        box.append(el("pre", { class: "tool-call", text: `${fn.name}(${fn.arguments || ""})` }));
      }
      if (msg.parsed !== undefined && msg.parsed !== null) {
        box.append(el("pre", { class: "parsed", text: JSON.stringify(msg.parsed, null, 2) }));
      }
      const meta = [`finish_reason: ${choice.finish_reason}`];
      if (doc.model) meta.push(`model: ${doc.model}`);
      if (doc.usage && doc.usage.total_tokens !== null) meta.push(`${doc.usage.total_tokens} tokens`);
      box.append(el("p", { class: "muted", text: meta.join(" · ") }));
      reply.append(box);
    }
  } else if (Array.isArray(doc.data)) {
    reply.append(el("p", { text: `${plural(doc.data.length, "item")}:` }));
    const ul = el("ul", { class: "items" });
    for (const item of doc.data) ul.append(el("li", { text: item.id ?? JSON.stringify(item) }));
    reply.append(ul);
  }
}

function showResult(doc) {
  $("output").textContent = JSON.stringify(doc, null, 2);
  const box = $("run-error");
  if (doc.error) {
    const err = doc.error;
    $("result-title").textContent = "Error";
    $("reply").replaceChildren();
    box.replaceChildren(
      el("strong", { text: `${err.type}` }),
      ` ${err.message}`,
      err.retryable ? el("p", { class: "muted", text: "Retryable: running it again later may succeed." }) : null,
    );
    box.hidden = false;
    const n = showProblems(err.fields || []);
    showWarnings(err.warnings);
    for (const f of fields.values()) {
      if (f.wrap.classList.contains("invalid")) {
        const group = $(`group-${f.group}`);
        if (group && group.tagName === "DETAILS") group.open = true;
      }
    }
    if (n) $("check-state").textContent = plural(n, "problem");
  } else {
    $("result-title").textContent = "Reply";
    box.hidden = true;
    showReply(doc);
  }
}

// The Run button (or Ctrl+Enter): a JSON syntax problem stops it in the page; else it runs.
export async function run(ev) {
  ev.preventDefault();
  await settle();
  $("check-state").textContent = "";
  const bad = [...fields.values()].find((f) => f.syntax);
  if (bad) {
    showProblems(serverProblems);
    if ($(`group-${bad.group}`)?.tagName === "DETAILS") $(`group-${bad.group}`).open = true;
    bad.input.focus();
    return;
  }
  const button = $("run");
  const started = performance.now();
  $("result").hidden = false;
  $("progress").hidden = false;
  $("reply").replaceChildren();
  $("run-error").hidden = true;
  $("result-title").textContent = "Running…";
  button.disabled = true;
  const tick = setInterval(() => {
    $("progress-text").textContent = `Running… ${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 100);
  try {
    // The async route: a long run outlives no proxy's timeout, and the page shows progress.
    let { status, headers, doc } = await api("POST", `/actions/${ACTION}/runs`, formValues());
    const where = headers.get("Location") || (doc.id ? `/runs/${doc.id}` : null);
    let delay = FIRST_POLL_MS; // short runs end soon: poll fast first, then back off
    while (status === 202 && where) {
      const asked = Number(headers.get("Retry-After")) * 1000 || MAX_POLL_MS;
      await sleep(Math.min(delay, asked));
      delay = Math.min(delay * 2, MAX_POLL_MS);
      ({ status, headers, doc } = await api("GET", where));
    }
    showResult(doc);
    $("progress-text").textContent = `Done in ${((performance.now() - started) / 1000).toFixed(1)} s`;
  } catch (err) {
    showResult({ error: { type: "connection", message: `The action server could not be reached: ${err.message}` } });
  } finally {
    clearInterval(tick);
    $("progress").hidden = true;
    button.disabled = false;
  }
}
