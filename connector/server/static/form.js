// The form page: draws an action's form from its form schema (JSON Schema + UI schema), checks
// it with the server's dry-run route as the author types, runs it, and shows the reply.
// Plain browser JavaScript with no build step and no third-party code: the page works offline.
"use strict";

(() => {
  const DATA = JSON.parse(document.getElementById("page-data").textContent);
  const FORM = DATA.form;
  const ACTION = FORM.action;
  const SCHEMA = FORM.schema;
  const UI = FORM.uiSchema;
  const TOKEN_KEY = "connector.server-token";
  const CHECK_DELAY_MS = 400;
  const FIRST_POLL_MS = 150;
  const MAX_POLL_MS = 2000;
  const TOKEN_VAR = "CONNECTOR_SERVER_TOKEN";

  const $ = (id) => document.getElementById(id);
  const fields = new Map(); // name -> {prop, ui, input, wrap, error, warning, group, syntax}
  let touched = false;

  // ---- small DOM helpers -----------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
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
  function inline(text) {
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

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- the server token: asked once, kept in this tab's sessionStorage only ------------------

  let asking = null;

  function askToken(message) {
    if (asking) return asking;
    const dialog = $("token-dialog");
    $("token-error").textContent = message || "";
    $("token-input").value = "";
    asking = new Promise((resolve) => {
      const done = () => {
        dialog.removeEventListener("close", done);
        const value = $("token-input").value.trim();
        $("token-input").value = "";
        if (dialog.returnValue === "ok" && value) sessionStorage.setItem(TOKEN_KEY, value);
        asking = null;
        resolve(Boolean(sessionStorage.getItem(TOKEN_KEY)));
      };
      dialog.addEventListener("close", done);
    });
    dialog.returnValue = "";
    dialog.showModal();
    $("token-input").focus();
    return asking;
  }

  async function api(method, path, body, signal) {
    for (let attempt = 0; ; attempt++) {
      const headers = { Accept: "application/json" };
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) headers.Authorization = `Bearer ${token}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const resp = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        credentials: "omit",
      });
      if (resp.status === 401 && attempt === 0) {
        if (token) sessionStorage.removeItem(TOKEN_KEY);
        const got = await askToken(token ? "The server did not accept that token." : "");
        if (got) continue;
      }
      const text = await resp.text();
      let doc;
      try {
        doc = text ? JSON.parse(text) : {};
      } catch {
        doc = { error: { type: "invalid_response", message: `HTTP ${resp.status}: ${text.slice(0, 500)}` } };
      }
      return { status: resp.status, headers: resp.headers, doc };
    }
  }

  // ---- drawing the form ----------------------------------------------------------------------

  function rangeText(prop) {
    const lo = prop.minimum;
    const hi = prop.maximum;
    const shown = (x) => x !== undefined && Math.abs(x) < 1e15;
    if (shown(lo) && shown(hi)) return `${lo} to ${hi}`;
    if (shown(lo)) return `at least ${lo}`;
    if (shown(hi)) return `at most ${hi}`;
    return "";
  }

  function control(name, prop, ui) {
    const widget = ui["ui:widget"] || "text";
    const opts = ui["ui:options"] || {};
    const id = `f-${name}`;
    const common = { id, name, autocomplete: "off", spellcheck: "false" };
    if (widget === "json") {
      return el("textarea", {
        ...common,
        rows: opts.rows || 4,
        class: "code",
        placeholder: ui["ui:placeholder"] || "",
        wrap: "off",
      });
    }
    if (widget === "select") {
      const values = prop.type === "boolean" ? ["true", "false"] : prop.enum || [];
      const select = el("select", { id, name }, el("option", { value: "", text: "(not set)" }));
      for (const value of values) select.append(el("option", { value, text: value }));
      return select;
    }
    const example = ui["ui:placeholder"];
    const input = el("input", {
      ...common,
      type: "text",
      inputmode: opts.inputMode,
      placeholder: example === undefined ? "" : `e.g. ${example}`,
    });
    if (widget === "combobox") return combobox(name, prop, input, opts);
    return input;
  }

  function buildField(name, group) {
    const prop = SCHEMA.properties[name];
    const ui = UI[name] || {};
    const required = (SCHEMA.required || []).includes(name);
    const label = el("label", { for: `f-${name}`, class: required ? "required" : null }, prop.title);
    const head = el("div", { class: "field-head" }, label);
    const range = rangeText(prop);
    if (range) head.append(el("span", { class: "badge", id: `r-${name}`, text: range }));
    if (prop.deprecated) head.append(el("span", { class: "badge warn", text: "deprecated" }));
    const input = control(name, prop, ui);
    const field = input.matches("input, textarea, select") ? input : input.querySelector("input");
    if (required) field.setAttribute("aria-required", "true");
    const describedBy = [`e-${name}`, `w-${name}`, `d-${name}`, range ? `r-${name}` : null, `h-${name}`];
    field.setAttribute("aria-describedby", describedBy.filter(Boolean).join(" "));
    const error = el("p", { class: "error", id: `e-${name}` });
    const warning = el("p", { class: "warning", id: `w-${name}` });
    const wrap = el(
      "div",
      { class: "field", "data-field": name },
      head,
      el("p", { class: "desc", id: `d-${name}` }, inline(prop.description)),
      input,
      error,
      warning,
      el("p", { class: "help", id: `h-${name}` }, inline(ui["ui:help"])),
    );
    fields.set(name, { prop, ui, input: field, wrap, error, warning, group, syntax: null });
    // Text fields report each keystroke; a select only its change (no second check on blur).
    field.addEventListener(field.tagName === "SELECT" ? "change" : "input", () => onEdit(name));
    return wrap;
  }

  function buildForm() {
    const box = $("fields");
    const groups = (UI["ui:options"] || {}).groups || [];
    if (!groups.length) {
      box.append(el("p", { class: "muted", text: "This action takes no parameters." }));
    }
    for (const group of groups) {
      const body = el("div", { class: "group-body" });
      for (const name of group.fields) body.append(buildField(name, group.name));
      if (group.collapsed) {
        const summary = el(
          "summary",
          { id: `toggle-${group.name}` },
          `${group.title} `,
          el("span", { class: "muted", text: `(${group.fields.length})` }),
          el("span", { class: "problems", id: `problems-${group.name}` }),
        );
        box.append(el("details", { class: "group", id: `group-${group.name}` }, summary, body));
      } else {
        box.append(
          el("section", { class: "group", id: `group-${group.name}` }, el("h2", { text: group.title }), body),
        );
      }
    }
  }

  // ---- the Model combo box: a list from the options route; any other text is allowed too -----

  function combobox(name, prop, input, opts) {
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

  // ---- values and local checks ----------------------------------------------------------------

  // JSON fields go to the server as typed: its input rules read text from earlier steps (raw
  // line breaks, unescaped quotes, plain text starting with a bracket, a key given twice), which
  // the browser's JSON.parse would refuse or, for a key given twice, silently keep the last of.
  // ``copy``: for a copied call, JSON text the server found no problem in goes as its value.
  function formValues(copy = false) {
    const out = {};
    const flagged = new Set(serverProblems.map((p) => p.name));
    for (const [name, f] of fields) {
      const raw = f.input.value;
      if (!raw.trim()) continue;
      out[name] = raw;
      if (copy && f.ui["ui:widget"] === "json" && !flagged.has(name) && /^[[{]/.test(raw.trim())) {
        try {
          out[name] = JSON.parse(raw);
        } catch {
          // not JSON to the browser (a raw line break, a repaired quote): sent as text
        }
      }
    }
    return out;
  }

  // A JSON syntax problem (the server's: it has a line and a column) stops a run in the page.
  function syntaxOf(problem) {
    return problem.line !== undefined ? problem : null;
  }

  // ---- problems beside their fields -----------------------------------------------------------

  let serverProblems = [];

  function showWarnings(warnings) {
    const byName = new Map();
    for (const w of warnings || []) {
      if (!byName.has(w.name)) byName.set(w.name, []);
      byName.get(w.name).push(w.message);
    }
    for (const [name, f] of fields) f.warning.textContent = (byName.get(name) || []).join("\n");
  }

  function showProblems(problems) {
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
        byName.get(p.name).push(p.message);
      } else {
        general.push(p.message);
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

  function setStatus(text, kind = "info") {
    const status = $("status");
    status.textContent = text;
    status.className = `banner ${kind}`;
    status.hidden = !text;
  }

  // ---- dry run as the author types --------------------------------------------------------------

  let checkTimer = null;
  let checkSeq = 0;
  let checkAbort = null;
  let checking = false;

  function onEdit(name) {
    touched = true;
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

  // ---- running -------------------------------------------------------------------------------------

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

  async function run(ev) {
    ev.preventDefault();
    if (checkTimer !== null || checking) {
      clearTimeout(checkTimer);
      await check(); // the last edit is not checked yet: its JSON may be broken
    }
    checkSeq++; // a dry run still on its way must not overwrite what the run shows
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

  // ---- copy as curl / as an n8n HTTP Request node ------------------------------------------------

  const runUrl = () => `${location.origin}/actions/${ACTION}/run`;
  const shellQuote = (text) => `'${text.replace(/'/g, "'\\''")}'`;

  function curlText() {
    return [
      `curl -sS -X POST ${shellQuote(runUrl())}`,
      `  -H "Authorization: Bearer $${TOKEN_VAR}"`,
      "  -H 'Content-Type: application/json'",
      `  --data-binary ${shellQuote(JSON.stringify(formValues(true), null, 2))}`,
    ].join(" \\\n");
  }

  function n8nText() {
    const node = {
      parameters: {
        method: "POST",
        url: runUrl(),
        authentication: "genericCredentialType",
        genericAuthType: "httpHeaderAuth",
        sendBody: true,
        specifyBody: "json",
        jsonBody: JSON.stringify(formValues(true), null, 2),
        options: {},
      },
      name: FORM.title,
      type: "n8n-nodes-base.httpRequest",
      typeVersion: 4.2,
      position: [0, 0],
    };
    return JSON.stringify({ nodes: [node], connections: {} }, null, 2);
  }

  async function copy(what, text, note) {
    $("copied").hidden = false;
    $("copied-text").textContent = text;
    let how = "copied to the clipboard";
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      how = "the clipboard is not available here: select the text below";
    }
    $("copied-what").textContent = `${what}: ${how}. ${note}`;
  }

  // ---- start --------------------------------------------------------------------------------------

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
    buildForm();
    $("form").addEventListener("submit", run);
    $("form").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) run(ev);
    });
    $("fill-example").addEventListener("click", fillExamples);
    $("fill-example").hidden = ![...fields.values()].some((f) => f.group === "basic");
    $("copy-curl").addEventListener("click", () =>
      copy("curl", curlText(), `Set ${TOKEN_VAR} to the server token first.`),
    );
    $("copy-n8n").addEventListener("click", () =>
      copy("n8n HTTP Request node", n8nText(), "Paste it into an n8n canvas and pick a Header Auth credential (Authorization: Bearer TOKEN)."),
    );
    $("token-change").addEventListener("click", () => askToken(""));
    $("token-cancel").addEventListener("click", () => $("token-dialog").close());
    // Ask for the token now, if the server wants one, rather than in the middle of typing.
    api("GET", "/actions").catch(() => setStatus("The action server could not be reached.", "error"));
  }

  start();
})();
