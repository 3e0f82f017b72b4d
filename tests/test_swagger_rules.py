"""Power Platform's Swagger Validator and certification rules, checked offline on the connector.

Each row is one rule of /work/shared/reference/power-platform-swagger-rules.md (its number in the
id) or of issue 22: a check that lists what breaks the rule, and a breaker that edits a copy of
the document so that the rule is broken once, which the check must then see.
"""

from __future__ import annotations

import json
import re
from copy import deepcopy
from typing import Any

import pytest
from openapi_spec_validator import validate

from connector.engine.loader import load_manifest
from connector.views import swagger

CATEGORIES = {
    "AI", "Business Management", "Business Intelligence", "Collaboration", "Commerce",
    "Communication", "Content and Files", "Finance", "Data", "Human Resources",
    "Internet of Things", "IT Operations", "Lifestyle and Entertainment", "Marketing",
    "Productivity", "Sales and CRM", "Security", "Social Media", "Website",
}  # fmt: skip
PRODUCTS = ("Power Apps", "Power Automate", "Copilot Studio", "Power BI", "Power Platform")
ROOT_MS = {"x-ms-capabilities", "x-ms-connector-metadata", "x-ms-docs"}
VISIBILITY = {"important", "advanced", "internal"}
SMALL = {"a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to"}
URL = re.compile(r"^https?://[^\s/]+\S*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool}


def _ops(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def _deref(doc, schema):
    while "$ref" in schema:
        schema = doc["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _nodes(schema, where="schema"):
    """Yield every schema node under ``schema``, with its place and its property name."""
    yield where, None, schema
    for name, sub in (schema.get("properties") or {}).items():
        for w, n, s in _nodes(sub, f"{where}.{name}"):
            yield w, (name if n is None else n), s
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], where + "[]")


def _properties(schema, where):
    """Yield (place, schema) for every property under ``schema``, nested ones too."""
    for w, name, s in _nodes(schema, where):
        if name is not None and w.rsplit(".", 1)[-1] == name:
            yield w, s


def _body_schemas(doc):
    for path, method, op in _ops(doc):
        for p in op.get("parameters", []):
            if p["in"] == "body":
                yield f"{method} {path}", _deref(doc, p["schema"])


def _output_schemas(doc):
    for path, method, op in _ops(doc):
        for code, r in op["responses"].items():
            if "schema" in r:
                yield f"{method} {path} {code}", _deref(doc, r["schema"])


def _all_schemas(doc):
    for name, s in doc["definitions"].items():
        yield from _nodes(s, name)
    for path, method, op in _ops(doc):
        for code, r in op["responses"].items():
            if "schema" in r:
                yield from _nodes(r["schema"], f"{method} {path} {code}")


def _title_case(text: str) -> bool:
    words = text.replace("(", " ").replace(")", " ").split()
    return bool(words) and all(
        w[0].isupper() or w[0].isdigit() or (i and w in SMALL) for i, w in enumerate(words)
    )


def _summary(where, s) -> list[str]:
    out = []
    summary, description = s.get("x-ms-summary"), s.get("description")
    if not summary or len(summary) > 80 or not _title_case(summary):
        out.append(f"{where}: x-ms-summary {summary!r} is not Title Case of 80 characters at most")
    if not description or description == summary:
        out.append(f"{where}: description missing or equal to its x-ms-summary")
    return out


# -- the checks: each returns what breaks its rule ---------------------------------------------


def r01_version(doc, _):
    return [] if doc.get("swagger") == "2.0" else ["swagger is not the string 2.0"]


def r02_root(doc, _):
    missing = [k for k in ("swagger", "info", "paths") if k not in doc]
    missing += [f"info.{k}" for k in ("title", "version") if k not in doc.get("info", {})]
    return missing


def r03_host(doc, _):
    host = doc.get("host")
    ok = host is None or re.fullmatch(r"[^{}/ :\\]+(?::\d+)?", host)
    return [] if ok else [f"host {host!r} is not a bare host[:port]"]


def r05_base_path(doc, _):
    return [] if doc.get("basePath", "/").startswith("/") else ["basePath does not start with /"]


def r06_schemes(doc, _):
    schemes = doc.get("schemes", ["https"])
    return [] if schemes and set(schemes) <= {"http", "https"} else [f"schemes {schemes}"]


def r07_root_extensions(doc, _):
    known = {"swagger", "info", "host", "basePath", "schemes", "consumes", "produces", "paths"}
    known |= {"definitions", "parameters", "responses", "securityDefinitions", "security"}
    known |= {"tags", "externalDocs"}
    return [
        k
        for k in doc
        if k not in known
        and (not k.startswith("x-") or (k.startswith("x-ms-") and k not in ROOT_MS))
    ]


def r08_size(doc, _):
    size = len(json.dumps(doc, indent=2).encode())
    return [] if size <= 1_000_000 else [f"{size} bytes"]


def r10_title(doc, _):
    title = doc["info"]["title"]
    bad = len(title) > 30 or not title[-1].isalnum()
    bad |= bool(re.search(r"\bAPI\b|Connector", title)) or any(p in title for p in PRODUCTS)
    return [f"info.title {title!r}"] if bad else []


def r11_description(doc, _):
    d = doc["info"].get("description", "")
    bad = not 30 <= len(d) <= 500 or bool(re.search(r"\bAPI\b", d))
    return [f"info.description {d[:40]!r}..."] if bad or any(p in d for p in PRODUCTS) else []


def r12_contact(doc, _):
    c = doc["info"].get("contact", {})
    ok = c.get("name") and URL.match(c.get("url", "")) and EMAIL.match(c.get("email", ""))
    return [] if ok else [f"info.contact {c}"]


def r13_metadata(doc, _):
    meta = {m["propertyName"]: m["propertyValue"] for m in doc.get("x-ms-connector-metadata", [])}
    out = [] if set(meta) == {"Website", "Privacy policy", "Categories"} else [f"names {set(meta)}"]
    out += [
        f"{k} is no URL" for k in ("Website", "Privacy policy") if not URL.match(meta.get(k, ""))
    ]
    return out


def r14_categories(doc, _):
    meta = {m["propertyName"]: m["propertyValue"] for m in doc.get("x-ms-connector-metadata", [])}
    names = meta.get("Categories", "").split(";")
    return [] if 1 <= len(names) <= 2 and set(names) <= CATEGORIES else [f"Categories {names}"]


def r15_operation_ids(doc, _):
    ids = [op.get("operationId") for _, _, op in _ops(doc)]
    return [f"missing or repeated: {i}" for i in ids if not i or ids.count(i) > 1]


def r16_operation_id_chars(doc, _):
    return [op["operationId"] for _, _, op in _ops(doc) if not op["operationId"].isalnum()]


def r17_paths(doc, _):
    out = [p for p in doc["paths"] if not p.startswith("/") or re.search(r"[?#*]", p)]
    lower = [re.sub(r"\{[^}]*\}", "{}", p.lower()) for p in doc["paths"]]
    return out + [p for p in set(lower) if lower.count(p) > 1]


def r18_summary(doc, _):
    out = []
    for path, method, op in _ops(doc):
        s = op.get("summary", "")
        words = s.split()
        ok = s and len(s) <= 80 and re.fullmatch(r"[A-Za-z0-9 ()]+", s) and s[0].isupper()
        ok = ok and all(w.islower() or w.isupper() or w.startswith("(") for w in words[1:])
        if not ok:
            out.append(f"{method} {path}: summary {s!r}")
    return out


def r19_operation_description(doc, _):
    return [
        f"{m} {p}"
        for p, m, op in _ops(doc)
        if not op.get("description", "").endswith((".", "!", "?"))
        or op["description"] == op.get("summary")
    ]


def r21_consumes(doc, _):
    out = []
    for path, method, op in _ops(doc):
        if any(p["in"] in ("body", "formData") for p in op.get("parameters", [])):
            types = op.get("consumes", doc.get("consumes", []))
            if not types or not set(types) <= {"application/json", "text/plain"}:
                out.append(f"{method} {path}: consumes {types}")
    return out


def r22_get_has_no_body(doc, _):
    return [
        p
        for p, m, op in _ops(doc)
        if m == "get" and any(x["in"] in ("body", "formData") for x in op.get("parameters", []))
    ]


def r24_one_body(doc, _):
    out = []
    for path, method, op in _ops(doc):
        bodies = [p for p in op.get("parameters", []) if p["in"] == "body"]
        if len(bodies) > 1 or any("schema" not in b or "type" in b for b in bodies):
            out.append(f"{method} {path}")
    return out


def r25_reserved_names(doc, _):
    return [
        f"{m} {path}"
        for path, m, op in _ops(doc)
        if any(p["name"] == "connectionId" for p in op.get("parameters", []))
    ]


def r26_path_parameters(doc, _):
    out = []
    for path, method, op in _ops(doc):
        for p in op.get("parameters", []):
            if p["in"] == "path" and not (
                p.get("required") is True
                and "{" + p["name"] + "}" in path
                and p.get("x-ms-url-encoding") in ("single", "double")
            ):
                out.append(f"{method} {path}: {p['name']}")
            if p["in"] == "query" and "x-ms-url-encoding" in p:
                out.append(f"{method} {path}: {p['name']} (query)")
    return out


def r27_parameter_summaries(doc, _):
    out = []
    for path, method, op in _ops(doc):
        for p in op.get("parameters", []):
            out += _summary(f"{method} {path} {p['name']}", p)
    for where, body in _body_schemas(doc):
        for w, s in _properties(body, where):
            out += _summary(w, s)
    return out


def r28_visibility(doc, _):
    places = [op for _, _, op in _ops(doc)]
    places += [p for _, _, op in _ops(doc) for p in op.get("parameters", [])]
    places += [s for _, _, s in _all_schemas(doc)]
    return [
        str(x.get("x-ms-visibility"))
        for x in places
        if x.get("x-ms-visibility", "important") not in VISIBILITY
    ]


def r29_internal_required(doc, _):
    out = []
    for path, method, op in _ops(doc):
        for p in op.get("parameters", []):
            if p.get("x-ms-visibility") == "internal" and p.get("required") != ("default" in p):
                out.append(f"{method} {path} {p['name']}")
    for where, body in _body_schemas(doc):
        for name, s in body.get("properties", {}).items():
            required = name in body.get("required", [])
            if s.get("x-ms-visibility") == "internal" and required != ("default" in s):
                out.append(f"{where}.{name}")
    return out


def r30_enums_and_defaults(doc, _):
    out = []
    for where, _name, s in _all_schemas(doc):
        if "enum" in s and not s["enum"]:
            out.append(f"{where}: empty enum")
        kind = JSON_TYPES.get(s.get("type"))
        if "default" in s and kind and not isinstance(s["default"], kind):
            out.append(f"{where}: default {s['default']!r} is no {s['type']}")
    return out


def _dynamic(doc):
    for where, body in _body_schemas(doc):
        for w, s in _properties(body, where):
            if "x-ms-dynamic-values" in s or "x-ms-dynamic-list" in s:
                yield w, s


def r33_dynamic_values(doc, _):
    ids = {op["operationId"] for _, _, op in _ops(doc)}
    out = []
    for w, s in _dynamic(doc):
        v = s.get("x-ms-dynamic-values", {})
        paths = [v.get(k, "") for k in ("value-collection", "value-path", "value-title")]
        if (
            v.get("operationId") not in ids
            or "parameters" not in v
            or any(p.startswith("/") for p in paths)
        ):
            out.append(w)
    return out


def r34_dynamic_list(doc, _):
    out = []
    for w, s in _dynamic(doc):
        d = s.get("x-ms-dynamic-list", {})
        params = d.get("parameters")
        ok = d.get("operationId") == s.get("x-ms-dynamic-values", {}).get("operationId")
        ok = ok and isinstance(params, dict)
        ok = ok and all(
            isinstance(p, dict) and len(p) == 1 and set(p) <= {"value", "parameterReference"}
            for p in (params or {}).values()
        )
        if not ok:
            out.append(w)
    return out


def r35_dynamic_not_on_parameters(doc, _):
    return [
        f"{m} {path} {p['name']}"
        for path, m, op in _ops(doc)
        for p in op.get("parameters", [])
        if any(k.startswith("x-ms-dynamic") for k in p)
    ]


def r36_dynamic_source(doc, _):
    by_id = {op["operationId"]: op for _, _, op in _ops(doc)}
    out = []
    for w, s in _dynamic(doc):
        d = s["x-ms-dynamic-list"]
        op = by_id.get(d["operationId"])
        r = _deref(doc, (op or {}).get("responses", {}).get("200", {}).get("schema", {}))
        for key in (d.get("itemsPath") or "").split("/"):
            r = _deref(doc, r.get("properties", {}).get(key, {})) if key else r
        props = r.get("items", {}).get("properties", {}) if r.get("type") == "array" else {}
        if not {d.get("itemValuePath"), d.get("itemTitlePath")} <= set(props):
            out.append(w)
    return out


def r38_options_internal(doc, _):
    ids = {s["x-ms-dynamic-list"]["operationId"] for _, s in _dynamic(doc)}
    return [
        op["operationId"]
        for _, _, op in _ops(doc)
        if op["operationId"] in ids and op.get("x-ms-visibility") != "internal"
    ]


def r39_responses(doc, _):
    out = []
    for path, method, op in _ops(doc):
        codes = op.get("responses", {})
        if not any(c.startswith("2") for c in codes):
            out.append(f"{method} {path}: no 2xx")
        out += [
            f"{method} {path} {c}"
            for c, r in codes.items()
            if not (re.fullmatch(r"\d{3}", c) or c == "default") or not r.get("description")
        ]
    return out


def r40_one_schema_on_200(doc, _):
    out = []
    for path, method, op in _ops(doc):
        with_schema = [c for c, r in op["responses"].items() if "schema" in r]
        if with_schema != ["200"]:
            out.append(f"{method} {path}: schemas on {with_schema}")
    return out


def r41_output_summaries(doc, _):
    out = []
    for where, schema in _output_schemas(doc):
        for w, s in _properties(schema, where):
            out += _summary(w, s)
            if not s.get("description", "").endswith("."):
                out.append(f"{w}: description is not a sentence")
    return out


def r42_refs(doc, _):
    out = []

    def visit(node, where):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                name = ref.removeprefix("#/definitions/")
                if len(node) > 1 or name == ref or name not in doc["definitions"]:
                    out.append(f"{where}: {ref}")
            for k, v in node.items():
                visit(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                visit(v, f"{where}[{i}]")

    visit(doc, "$")
    return out


def r43_arrays_and_required(doc, _):
    out = []
    for where, _name, s in _all_schemas(doc):
        if s.get("type") == "array" and not isinstance(s.get("items"), dict):
            out.append(f"{where}: array without items")
        if "required" in s:
            if s.get("type") != "object" or not s["required"]:
                out.append(f"{where}: required off an object, or empty")
            out += [
                f"{where}: {n} is not a property"
                for n in s["required"]
                if n not in s.get("properties", {})
            ]
    return out


def r45_bounds(doc, _):
    out = []
    for where, _name, s in _all_schemas(doc):
        for low, high in (("minimum", "maximum"), ("minLength", "maxLength")):
            if low in s and high in s and s[low] > s[high]:
                out.append(f"{where}: {low} > {high}")
        if "exclusiveMaximum" in s and "maximum" not in s:
            out.append(f"{where}: exclusiveMaximum alone")
        if "pattern" in s:
            try:
                re.compile(s["pattern"])
            except re.error:
                out.append(f"{where}: pattern")
    return out


def r46_security_definitions(doc, _):
    defs = doc.get("securityDefinitions", {})
    return [
        n
        for n, d in defs.items()
        if set(d) != {"type", "name", "in"}
        or d["type"] != "apiKey"
        or d["in"] not in ("header", "query")
    ] or ([] if defs else ["no securityDefinitions"])


def r47_security(doc, _):
    defs = doc.get("securityDefinitions", {})
    reqs = list(doc.get("security", [])) + [
        r for _, _, op in _ops(doc) for r in op.get("security", [])
    ]
    return [str(r) for r in reqs for n, scopes in r.items() if n not in defs or scopes != []]


def r48_capabilities(doc, _):
    return ["x-ms-capabilities at the root"] if "x-ms-capabilities" in doc else []


def r53_accepted_headers_only(doc, _):
    out = []
    for path, method, op in _ops(doc):
        r = op["responses"].get("202")
        if r is None:
            continue
        headers = r.get("headers", {})
        ok = "schema" not in r and headers.get("Location", {}).get("type") == "string"
        if not (ok and headers.get("Retry-After", {}).get("type") == "integer"):
            out.append(f"{method} {path}")
    return out


def i22_only_the_connectors_operations(doc, m):
    wanted = {"/runs/{run_id}"}
    for a in m.actions:
        wanted |= {f"/actions/{a.id}/run", f"/actions/{a.id}/runs"}
        wanted |= {f"/actions/{a.id}/options/{p.name}" for p in a.parameters if p.options}
    return sorted(set(doc["paths"]) ^ wanted)


def i22_visibility_from_the_manifest(doc, m):
    out = []
    for a in m.actions:
        form = doc["definitions"].get(swagger.action_name(a) + "Form", {"properties": {}})
        for p in a.parameters:
            want = {"basic": "important", "advanced": "advanced"}[p.visibility]
            if form["properties"].get(p.name, {}).get("x-ms-visibility") != want:
                out.append(f"{a.id}.{p.name}")
    return out


def i22_model_is_a_dynamic_dropdown(doc, m):
    models = [w for w, _ in _dynamic(doc) if w.endswith(".model")]
    return [] if models else ["no dynamic Model field"]


def i22_contact_from_the_manifest(doc, m):
    pub = m.connector.publisher
    meta = {x["propertyName"]: x["propertyValue"] for x in doc.get("x-ms-connector-metadata", [])}
    ok = doc["info"].get("contact", {}).get("email") == pub.email
    ok = (
        ok
        and meta.get("Website") == pub.website
        and meta.get("Categories") == ";".join(pub.categories)
    )
    return [] if ok else ["contact or metadata differ from the manifest's publisher"]


def i22_valid_swagger(doc, _):
    try:
        validate(doc)
    except Exception as exc:
        return [str(exc).splitlines()[0]]
    return []


# -- the breakers: each breaks its rule once ----------------------------------------------------


def _op(doc, op_id="CreateChatCompletion"):
    return next(op for _, _, op in _ops(doc) if op["operationId"] == op_id)


def _form(doc):
    return doc["definitions"]["CreateChatCompletionForm"]


def _output(doc):
    return doc["definitions"]["CreateChatCompletionOutput"]


def _set(path, value):
    """Return a breaker that sets ``value`` at ``path`` (keys; a callable picks the start)."""

    def breaker(doc):
        node = doc
        for k in path[:-1]:
            node = k(node) if callable(k) else node[k]
        node[path[-1]] = value

    return breaker


def _drop(path):
    def breaker(doc):
        node = doc
        for k in path[:-1]:
            node = k(node) if callable(k) else node[k]
        del node[path[-1]]

    return breaker


def _add_path(path, op):
    return _set(["paths", path], {"get": op})


_HEALTH = {
    "operationId": "Healthz",
    "summary": "Health",
    "description": "Answers.",
    "responses": {"200": {"description": "Up."}},
}
_MESSAGES = ["definitions", "CreateChatCompletionForm", "properties", "messages"]
_CONTENT = [_output, "properties", "choices", "items", "properties", "message", "properties"]
_RUN_ID = [lambda d: _op(d, "GetRun")["parameters"][0]]
_MODEL = [_form, "properties", "model"]

RULES = [
    (r01_version, _set(["swagger"], "3.0")),
    (r02_root, _drop(["info", "version"])),
    (r03_host, _set(["host"], "https://example.com/")),
    (r05_base_path, _set(["basePath"], "api")),
    (r06_schemes, _set(["schemes"], ["wss"])),
    (r07_root_extensions, _set(["x-ms-unknown"], True)),
    (r08_size, _set(["x-big"], "x" * 1_000_001)),
    (r10_title, _set(["info", "title"], "OpenAI Connector")),
    (r11_description, _set(["info", "description"], "Short.")),
    (r12_contact, _set(["info", "contact", "email"], "not-an-address")),
    (r13_metadata, _drop(["x-ms-connector-metadata", 1])),
    (r14_categories, _set(["x-ms-connector-metadata", 2, "propertyValue"], "AI;Data;Finance")),
    (r15_operation_ids, _set([lambda d: _op(d, "ListModels"), "operationId"], "CreateChatCompletion")),
    (r16_operation_id_chars, _set([_op, "operationId"], "create_chat_completion")),
    (r17_paths, _add_path("/Runs/{id}", _HEALTH)),
    (r18_summary, _set([_op, "summary"], "Create chat completion.")),
    (r18_summary, _set([_op, "summary"], "Create Chat Completion")),
    (r19_operation_description, _set([_op, "description"], "Create chat completion")),
    (r21_consumes, lambda d: (d.pop("consumes"), _op(d).pop("consumes", None))),
    (r22_get_has_no_body, lambda d: _op(d, "GetRun")["parameters"].append({"name": "b", "in": "body", "schema": {}})),
    (r24_one_body, _set([_op, "parameters", -1, "type"], "object")),
    (r25_reserved_names, _set([_op, "parameters", 0, "name"], "connectionId")),
    (r26_path_parameters, _drop([*_RUN_ID, "x-ms-url-encoding"])),
    (r27_parameter_summaries, _drop([_op, "parameters", 0, "x-ms-summary"])),
    (r27_parameter_summaries, _set([*_MODEL, "x-ms-summary"], "the model")),
    (r27_parameter_summaries, _set([*_MODEL, "description"], "Model")),
    (r28_visibility, _set([*_MODEL, "x-ms-visibility"], "hidden")),
    (r29_internal_required, _set([*_MODEL, "x-ms-visibility"], "internal")),
    (r29_internal_required, _set([*_RUN_ID, "x-ms-visibility"], "internal")),
    (r30_enums_and_defaults, _set([_form, "properties", "temperature", "default"], "warm")),
    (r33_dynamic_values, _set([*_MODEL, "x-ms-dynamic-values", "operationId"], "Nowhere")),
    (r33_dynamic_values, _drop([*_MODEL, "x-ms-dynamic-values", "parameters"])),
    (r34_dynamic_list, _drop([*_MODEL, "x-ms-dynamic-list"])),
    (r35_dynamic_not_on_parameters, _set([_op, "parameters", -1, "x-ms-dynamic-values"], {})),
    (r36_dynamic_source, _set([*_MODEL, "x-ms-dynamic-list", "itemTitlePath"], "name")),
    (r38_options_internal, _set([lambda d: _op(d, "CreateChatCompletionModelOptions"), "x-ms-visibility"], "advanced")),
    (r39_responses, _set([_op, "responses", "2XX"], {"description": "OK."})),
    (r40_one_schema_on_200, _set([_op, "responses", "400", "schema"], {"type": "object"})),
    (r40_one_schema_on_200, _set([_op, "responses", "default"], {"description": "Error.", "schema": {}})),
    (r41_output_summaries, _drop([*_CONTENT, "content", "x-ms-summary"])),
    (r41_output_summaries, _set([*_CONTENT, "content", "description"], "The reply's text")),
    (r42_refs, _set([_op, "responses", "200", "schema", "description"], "sibling")),
    (r42_refs, _set([_op, "responses", "200", "schema", "$ref"], "#/definitions/Nothing")),
    (r43_arrays_and_required, _drop([*_CONTENT, "tool_calls", "items"])),
    (r43_arrays_and_required, _set([_output, "required", 0], "identifier")),
    (r45_bounds, _set([_form, "properties", "temperature", "minimum"], 5)),
    (r46_security_definitions, _set(["securityDefinitions", "api_key", "in"], "cookie")),
    (r47_security, _set(["security"], [{"api_key": ["scope"]}])),
    (r48_capabilities, _set(["x-ms-capabilities"], {})),
    (r53_accepted_headers_only, _set([lambda d: _op(d, "CreateChatCompletionAsync"), "responses", "202", "headers", "Retry-After", "type"], "string")),
    (r53_accepted_headers_only, _set([lambda d: _op(d, "GetRun"), "responses", "202", "schema"], {"type": "object"})),
    (i22_only_the_connectors_operations, _add_path("/healthz", _HEALTH)),
    (i22_visibility_from_the_manifest, _set([*_MESSAGES, "x-ms-visibility"], "advanced")),
    (i22_model_is_a_dynamic_dropdown, lambda d: [_form(d)["properties"]["model"].pop(k) for k in ("x-ms-dynamic-values", "x-ms-dynamic-list")]),
    (i22_contact_from_the_manifest, _set(["info", "contact", "email"], "someone@elsewhere.example")),
    (i22_valid_swagger, _set([_op, "responses", "200", "schema"], {"type": "no-such-type"})),
]  # fmt: skip
CHECKS = list(dict.fromkeys(check for check, _ in RULES))


@pytest.fixture(scope="module")
def doc():
    return swagger.document()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_the_connector_keeps_the_rule(doc, check):
    assert check(doc, load_manifest()) == []


@pytest.mark.parametrize(
    ("check", "breaker"), RULES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(RULES)]
)
def test_a_broken_rule_is_seen(doc, check, breaker):
    broken = deepcopy(doc)
    breaker(broken)
    assert check(broken, load_manifest()) != []


# -- apiProperties.json -------------------------------------------------------------------------


def _props():
    return swagger.api_properties()["properties"]


def a55_brand_and_owner(props: dict[str, Any]) -> list[str]:
    out = [] if props["iconBrandColor"].lower() not in ("#007ee5", "#ffffff") else ["icon color"]
    return out + [
        k
        for k in ("publisher", "stackOwner")
        if not re.fullmatch(r"[A-Za-z0-9 ]+", props.get(k, ""))
    ]


def a_token_is_a_securestring(props: dict[str, Any]) -> list[str]:
    params = props["connectionParameters"]
    ok = list(params) == [swagger.SECURITY] and params[swagger.SECURITY]["type"] == "securestring"
    return [] if ok else [f"connection parameters {params}"]


def a_bearer_policy(props: dict[str, Any]) -> list[str]:
    for p in props.get("policyTemplateInstances", []):
        values = p["parameters"]
        if values.get("x-ms-apimTemplateParameter.name") == "Authorization":
            return (
                []
                if values["x-ms-apimTemplateParameter.value"]
                == f"Bearer @connectionParameters('{swagger.SECURITY}')"
                else ["bad bearer value"]
            )
    return ["no policy sends the token as a bearer token"]


PROPERTY_RULES = [
    (a55_brand_and_owner, _set(["iconBrandColor"], "#007ee5")),
    (a55_brand_and_owner, _set(["publisher"], "A-B.")),
    (a_token_is_a_securestring, _set(["connectionParameters", "api_key", "type"], "string")),
    (a_bearer_policy, _drop(["policyTemplateInstances", 0])),
]


@pytest.mark.parametrize(
    ("check", "breaker"), PROPERTY_RULES, ids=lambda x: getattr(x, "__name__", "")
)
def test_api_properties_keep_their_rules(check, breaker):
    assert check(_props()) == []
    broken = _props()
    breaker(broken)
    assert check(broken) != []


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Callback-Url"])
@pytest.mark.parametrize("kind", ["swagger", "openapi"])
def test_both_documents_declare_the_async_run_s_headers(kind, header):
    from connector.views import openapi

    doc = swagger.document() if kind == "swagger" else openapi.document()
    for action in load_manifest().actions:
        params = doc["paths"][f"/actions/{action.id}/runs"]["post"]["parameters"]
        declared = [p for p in params if p.get("in") == "header" and p["name"] == header]
        assert len(declared) == 1, (action.id, [p["name"] for p in params])
