// The form's fields: drawn from the form schema (JSON Schema + UI schema) in groups, each with
// its label, range, description, help and the places for its problems; and the values they hold.

import { $, el, FORM, inline } from "./page.js";
import { combobox } from "./combobox.js";

const SCHEMA = FORM.schema;
const UI = FORM.uiSchema;

// name -> {prop, ui, input, wrap, error, warning, group, syntax}
export const fields = new Map();

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

function buildField(name, group, onEdit) {
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

// ``onEdit(name)``: called on each edit of a field (the checks' hook).
export function buildForm(onEdit) {
  const box = $("fields");
  const groups = (UI["ui:options"] || {}).groups || [];
  if (!groups.length) {
    box.append(el("p", { class: "muted", text: "This action takes no parameters." }));
  }
  for (const group of groups) {
    const body = el("div", { class: "group-body" });
    for (const name of group.fields) body.append(buildField(name, group.name, onEdit));
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

// JSON fields go to the server as typed: its input rules read text from earlier steps (raw
// line breaks, unescaped quotes, plain text starting with a bracket, a key given twice), which
// the browser's JSON.parse would refuse or, for a key given twice, silently keep the last of.
export function formValues() {
  const out = {};
  for (const [name, f] of fields) {
    const raw = f.input.value;
    if (!raw.trim()) continue;
    out[name] = raw;
  }
  return out;
}
