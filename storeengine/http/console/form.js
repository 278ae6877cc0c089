// A form generated from a store's JSON Schema: one labelled field per property.
import { h, uid } from "./dom.js";

function mainType(prop) {
  return Array.isArray(prop.type) ? prop.type.find((t) => t !== "null") : prop.type;
}

export function kindOf(prop) {
  if (Array.isArray(prop.enum)) return "enum";
  const type = mainType(prop);
  if (type === "string") {
    if (prop.format === "date-time") return "datetime";
    if (prop.format === "objectid") return "objectid";
    return prop.writeOnly ? "password" : "string";
  }
  if (type === "integer" || type === "number" || type === "boolean") return type;
  if (type === "array" && prop.items && mainType(prop.items) === "string" && !prop.items.enum) return "strings";
  return "json";
}

// datetime-local shows local time; the API speaks UTC ISO 8601.
function toLocalInput(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 23);
}

function control(kind, prop, id, value) {
  const common = { id, name: id };
  switch (kind) {
    case "enum":
      return h("select", common, h("option", { value: "" }, "—"),
        prop.enum.map((v) => h("option", { value: JSON.stringify(v), selected: JSON.stringify(v) === JSON.stringify(value) }, String(v))));
    case "boolean":
      return h("select", common, h("option", { value: "" }, "—"),
        h("option", { value: "true", selected: value === true }, "true"),
        h("option", { value: "false", selected: value === false }, "false"));
    case "integer":
    case "number":
      return h("input", { ...common, type: "number", step: kind === "integer" ? "1" : "any", value: value ?? "" });
    case "datetime":
      return h("input", { ...common, type: "datetime-local", step: "0.001", value: value ? toLocalInput(value) : "" });
    case "objectid":
      return h("input", { ...common, type: "text", placeholder: "24 hex characters", spellcheck: "false", value: value ?? "" });
    case "password":
      return h("input", { ...common, type: "password", autocomplete: "new-password", placeholder: value === undefined ? "" : "unchanged" });
    case "strings":
      return h("textarea", { ...common, rows: 3, placeholder: "one per line" }, (value || []).join("\n"));
    case "string": {
      const long = !prop.maxLength || prop.maxLength > 300;
      return long ? h("textarea", { ...common, rows: 3 }, value ?? "")
        : h("input", { ...common, type: "text", value: value ?? "", maxLength: prop.maxLength });
    }
    default:
      return h("textarea", { ...common, rows: 4, class: "json", spellcheck: "false", placeholder: "JSON" },
        value === undefined ? "" : JSON.stringify(value, null, 2));
  }
}

class Invalid extends Error {}

function parse(kind, el) {
  const raw = el.value;
  if (raw.trim() === "") return undefined;
  switch (kind) {
    case "enum": return JSON.parse(raw);
    case "boolean": return raw === "true";
    case "integer":
    case "number": return Number(raw);
    case "datetime": return new Date(raw).toISOString();
    case "strings": return raw.split("\n").map((s) => s.trim()).filter(Boolean);
    case "json":
      try {
        return JSON.parse(raw);
      } catch {
        throw new Invalid("must be valid JSON");
      }
    default: return raw;
  }
}

// mode "create": every filled field. mode "edit": a merge patch of what changed (cleared -> null).
// `decorate(name, prop, input)` may return an element shown under a field (the reference picker).
export function schemaForm(schema, original, { mode, onSubmit, submitLabel = "Save", decorate = null }) {
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  const fields = new Map();
  const formError = h("div", { class: "form-error", role: "alert" });
  const form = h("form", { class: "entity-form", novalidate: true });
  for (const [name, prop] of Object.entries(properties)) {
    const kind = kindOf(prop);
    const id = uid(`f-${name}`);
    const error = h("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
    const input = control(kind, prop, id, original ? original[name] : undefined);
    input.setAttribute("aria-describedby", `${id}-error`);
    if (required.has(name)) input.setAttribute("aria-required", "true");
    const hint = prop.description || (kind === "json" ? "JSON" : "");
    form.append(h("div", { class: `field kind-${kind}` },
      h("div", { class: "field-head" }, h("label", { for: id }, name),
        required.has(name) ? h("span", { class: "req", "aria-hidden": "true", title: "required" }, " *") : null),
      input, decorate ? decorate(name, prop, input) : null, hint ? h("small", { class: "hint" }, hint) : null, error));
    fields.set(name, { kind, input, error });
  }
  form.append(formError, h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, submitLabel)));

  function read() {
    const body = {};
    const local = {};
    for (const [name, { kind, input }] of fields) {
      let value;
      try {
        value = parse(kind, input);
      } catch (err) {
        local[name] = err.message;
        continue;
      }
      if (kind === "number" || kind === "integer") {
        if (input.validity && input.validity.badInput) local[name] = `must be a number`;
      }
      if (mode === "create") {
        if (value !== undefined) body[name] = value;
      } else if (kind === "password") {
        if (value !== undefined) body[name] = value;
      } else {
        const before = original ? original[name] : undefined;
        if (value === undefined && before !== undefined) body[name] = null;
        else if (value !== undefined && JSON.stringify(value) !== JSON.stringify(before)) body[name] = value;
      }
    }
    return { body, local };
  }

  function showErrors(errors, message) {
    formError.replaceChildren();
    const loose = [];
    for (const { error } of fields.values()) error.textContent = "";
    for (const [path, text] of Object.entries(errors || {})) {
      const top = path.split(".")[0];
      const field = fields.get(top);
      if (field) {
        field.error.textContent = top === path ? text : `${path}: ${text}`;
        field.input.setAttribute("aria-invalid", "true");
      } else {
        loose.push(path === "(body)" ? text : `${path}: ${text}`);
      }
    }
    for (const { error, input } of fields.values()) if (!error.textContent) input.removeAttribute("aria-invalid");
    if (message || loose.length) formError.append(h("p", {}, message || "Validation failed"), ...loose.map((t) => h("p", {}, t)));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { body, local } = read();
    if (Object.keys(local).length) {
      showErrors(local, "Please fix the marked fields");
      return;
    }
    showErrors({});
    await onSubmit(body, showErrors);
  });
  return form;
}
