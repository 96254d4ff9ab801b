// The API explorer: lists every operation of /openapi.json and sends requests with the
// bearer token typed on the page. Built with DOM calls only: nothing from the document
// or the responses is parsed as HTML.
"use strict";
(function () {
  const tokenInput = document.getElementById("api-token");
  tokenInput.value = sessionStorage.getItem("walgate-token") || "";
  tokenInput.addEventListener("input", function () {
    sessionStorage.setItem("walgate-token", tokenInput.value.trim());
  });

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  }

  function schemaName(ref) {
    return ref ? ref.split("/").pop() : "";
  }

  function describeResponses(responses) {
    const list = el("ul");
    for (const [status, r] of Object.entries(responses || {})) {
      const content = r.content || {};
      const kinds = Object.entries(content).map(function ([type, c]) {
        const s = c.schema || {};
        const name = schemaName(s.$ref) || (s.items && schemaName(s.items.$ref)) || s.type || "";
        return type + (name ? " " + name : "");
      });
      list.append(el("li", {}, el("code", {}, status), " " + (r.description || "") + (kinds.length ? " (" + kinds.join(", ") + ")" : "")));
    }
    return list;
  }

  function operation(path, method, op) {
    const params = op.parameters || [];
    const inputs = {};
    const form = el("div", { class: "params" });
    for (const p of params) {
      const id = "p-" + method + path + p.name;
      const input = el("input", { id: id, placeholder: p.in + (p.required ? ", required" : "") });
      inputs[p.name] = { input: input, where: p.in };
      form.append(el("label", { for: id, title: p.description || "" }, p.name), input);
    }
    let body = null;
    if (op.requestBody) {
      const types = Object.keys(op.requestBody.content || {});
      body = el("textarea", { placeholder: types.join(", ") });
      if (types.includes("application/json")) body.value = "{}";
    }
    const out = el("pre", { "aria-live": "polite" });
    const send = el("button", { type: "button" }, "Send");
    send.addEventListener("click", async function () {
      let url = path;
      const query = new URLSearchParams();
      for (const [name, p] of Object.entries(inputs)) {
        const v = p.input.value.trim();
        if (p.where === "path") url = url.replace("{" + name + "}", encodeURIComponent(v));
        else if (v !== "") query.append(name, v);
      }
      if ([...query].length) url += "?" + query;
      const headers = {};
      const token = tokenInput.value.trim();
      if (token) headers["Authorization"] = "Bearer " + token;
      const init = { method: method.toUpperCase(), headers: headers };
      if (body && body.value.trim() !== "") {
        headers["Content-Type"] = "application/json";
        init.body = body.value;
      }
      out.textContent = init.method + " " + url + " …";
      try {
        const r = await fetch(url, init);
        const type = r.headers.get("content-type") || "";
        let text = await r.text();
        if (type.includes("json")) {
          try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* as sent */ }
        }
        out.textContent = r.status + " " + r.statusText + "\n\n" + text;
      } catch (e) {
        out.textContent = "request failed: " + e;
      }
    });
    const summary = el("summary", {}, el("span", { class: "method" }, method.toUpperCase()), el("code", {}, path), " " + (op.summary || ""));
    const details = el("details", { class: "op", "data-operation": method.toUpperCase() + " " + path }, summary);
    if (op.description) details.append(el("p", {}, op.description));
    details.append(form);
    if (body) details.append(body);
    details.append(send, el("h4", {}, "Responses"), describeResponses(op.responses), out);
    return details;
  }

  async function load() {
    const target = document.getElementById("operations");
    try {
      const doc = await (await fetch("/openapi.json")).json();
      target.replaceChildren();
      const byTag = {};
      for (const [path, item] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(item)) {
          if (!["get", "put", "post", "delete", "patch", "head"].includes(method)) continue;
          const tag = (op.tags && op.tags[0]) || "other";
          (byTag[tag] = byTag[tag] || []).push(operation(path, method, op));
        }
      }
      for (const t of doc.tags || []) {
        if (!byTag[t.name]) continue;
        target.append(el("h2", {}, t.name), el("p", { class: "muted" }, t.description || ""), ...byTag[t.name]);
        delete byTag[t.name];
      }
      for (const [tag, ops] of Object.entries(byTag)) target.append(el("h2", {}, tag), ...ops);
    } catch (e) {
      target.replaceChildren(el("p", { class: "error" }, "Cannot read /openapi.json: " + e));
    }
  }
  document.addEventListener("DOMContentLoaded", load);
})();
