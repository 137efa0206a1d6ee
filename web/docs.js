// Renders /api/openapi.json as a readable list of endpoints (no external assets).
"use strict";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function schemaText(schema, spec) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.anyOf) return schema.anyOf.map((s) => schemaText(s, spec)).join(" | ");
  if (schema.enum) return schema.enum.join(" | ");
  if (schema.type === "array") return `${schemaText(schema.items, spec)}[]`;
  return schema.format ? `${schema.type} (${schema.format})` : schema.type || "";
}

function bodyFields(op, spec) {
  const content = op.requestBody && op.requestBody.content;
  if (!content) return [];
  const [type, media] = Object.entries(content)[0];
  let schema = media.schema || {};
  if (schema.$ref) schema = spec.components.schemas[schema.$ref.split("/").pop()];
  return Object.entries(schema.properties || {}).map(([name, s]) => ({
    name, in: type === "application/json" ? "body" : "form", required: (schema.required || []).includes(name),
    schema: s, description: s.description || "",
  }));
}

async function render() {
  const spec = await (await fetch("/api/openapi.json")).json();
  const root = document.getElementById("endpoints");
  root.replaceChildren();
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const params = [...(op.parameters || []).map((p) => ({ name: p.name, in: p.in, required: p.required, schema: p.schema, description: p.description || (p.schema && p.schema.description) || "" })), ...bodyFields(op, spec)];
      const rows = params.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, schemaText(p.schema, spec)), el("td", {}, p.required ? "required" : ""), el("td", {}, p.description)));
      root.append(el("section", { class: "op" },
        el("h3", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), path),
        el("div", {}, op.summary || ""),
        rows.length ? el("table", { class: "params" }, el("tbody", {}, rows)) : null,
        el("div", { class: "muted" }, `Responses: ${Object.keys(op.responses || {}).join(", ")}`)));
    }
  }
}

render().catch((err) => { document.getElementById("endpoints").textContent = `Could not load the OpenAPI document: ${err}`; });
