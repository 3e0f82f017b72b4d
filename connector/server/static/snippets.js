// The copied calls: the form's values as a curl command and as an n8n HTTP Request node, both
// calling the synchronous run route; the server token stays a variable or a credential.

import { $, ACTION, FORM } from "./page.js";
import { fields, formValues } from "./fields.js";
import { serverProblems } from "./checks.js";

const TOKEN_VAR = "CONNECTOR_SERVER_TOKEN";

// For a copied call, JSON text the server found no problem in goes as its value, not as text.
function copiedValues() {
  const out = formValues();
  const flagged = new Set(serverProblems.map((p) => p.name));
  for (const [name, raw] of Object.entries(out)) {
    if (fields.get(name).ui["ui:widget"] === "json" && !flagged.has(name) && /^[[{]/.test(raw.trim())) {
      try {
        out[name] = JSON.parse(raw);
      } catch {
        // not JSON to the browser (a raw line break, a repaired quote): sent as text
      }
    }
  }
  return out;
}

const runUrl = () => `${location.origin}/actions/${ACTION}/run`;
const shellQuote = (text) => `'${text.replace(/'/g, "'\\''")}'`;

function curlText() {
  return [
    `curl -sS -X POST ${shellQuote(runUrl())}`,
    `  -H "Authorization: Bearer $${TOKEN_VAR}"`,
    "  -H 'Content-Type: application/json'",
    `  --data-binary ${shellQuote(JSON.stringify(copiedValues(), null, 2))}`,
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
      jsonBody: JSON.stringify(copiedValues(), null, 2),
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

export function copyCurl() {
  return copy("curl", curlText(), `Set ${TOKEN_VAR} to the server token first.`);
}

export function copyN8n() {
  return copy(
    "n8n HTTP Request node",
    n8nText(),
    "Paste it into an n8n canvas and pick a Header Auth credential (Authorization: Bearer TOKEN).",
  );
}
