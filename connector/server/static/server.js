// The calls to the action server: each carries the server token, which is asked once (a dialog)
// and kept in this tab's sessionStorage only; a refused token is asked for again, once.

import { $ } from "./page.js";

const TOKEN_KEY = "connector.server-token";

let asking = null;

export function askToken(message) {
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

export async function api(method, path, body, signal) {
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
