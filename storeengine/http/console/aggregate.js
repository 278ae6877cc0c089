// "Group by / count" on a store's page: GET /:store/_aggregate (API.md 14) with the list's filters.
import { api, storePath } from "./api.js";
import { cellText, h, message, uid } from "./dom.js";
import { kindOf } from "./form.js";

const GROUP_KINDS = new Set(["string", "integer", "number", "boolean", "enum", "objectid", "datetime"]);
const NUMERIC = new Set(["integer", "number"]);
const UNITS = ["day", "month", "year", "hour"];
const SYSTEM = { owner: "objectid", group: "objectid", createdAt: "datetime", updatedAt: "datetime" };
const OPS = ["count", "sum", "avg", "min", "max"];
const MAX_GROUP_FIELDS = 3; // the API takes 5; three selects keep the panel small

// The fields the caller may group and compute on: readable declared properties and system fields.
function fieldsOf(schema) {
  const own = Object.entries(schema.properties || {}).filter(([, p]) => !p.writeOnly).map(([name, p]) => [name, kindOf(p)]);
  return [...own, ...Object.entries(SYSTEM)].filter(([, kind]) => GROUP_KINDS.has(kind));
}

function groupChoices(fields) {
  const out = [];
  for (const [name, kind] of fields) {
    if (kind === "datetime") for (const unit of UNITS) out.push(`${name}:${unit}`);
    else out.push(name);
  }
  return out;
}

function select(id, values, first) {
  return h("select", { id }, first === null ? "" : h("option", { value: "" }, first), values.map((v) => h("option", { value: v }, v)));
}

function labelled(label, control) {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}

// The list's current filters (its `state`: property filters and `filter`), as query pairs.
function filtersOf(state) {
  const pairs = Object.entries(state.props).filter(([, v]) => v !== "");
  return state.filter.trim() ? [...pairs, ["filter", state.filter.trim()]] : pairs;
}

export function aggregatePanel(store, schema, state, app) {
  const fields = fieldsOf(schema);
  const groups = Array.from({ length: MAX_GROUP_FIELDS }, (_, i) => select(uid(`agg-group-${i}`), groupChoices(fields), "—"));
  const op = select(uid("agg-op"), OPS, null);
  const target = select(uid("agg-field"), [], null);
  const result = h("div", { class: "agg-result", role: "status", "aria-live": "polite" });

  function targets() {
    const numericOnly = op.value === "sum" || op.value === "avg";
    const names = fields.filter(([, kind]) => !numericOnly || NUMERIC.has(kind)).map(([name]) => name);
    const keep = target.value;
    target.replaceChildren(...names.map((n) => h("option", { value: n, selected: n === keep }, n)));
    target.disabled = op.value === "count" || names.length === 0;
  }
  op.addEventListener("change", targets);
  targets();

  async function run(event) {
    event.preventDefault();
    const chosen = groups.map((g) => g.value).filter(Boolean);
    const q = new URLSearchParams(filtersOf(state));
    if (chosen.length) q.set("group", [...new Set(chosen)].join(","));
    q.set("count", "true");
    if (op.value !== "count") {
      if (!target.value) return result.replaceChildren(message(`No field to ${op.value}.`, "error"));
      q.set(op.value, target.value);
    }
    result.replaceChildren(h("p", { class: "muted" }, "Counting…"));
    try {
      const { data } = await api("GET", `${storePath(store, "_aggregate")}?${q}`);
      result.replaceChildren(table(store, [...new Set(chosen)], op.value === "count" ? null : [op.value, target.value], data));
    } catch (error) {
      if (!app.handle(error)) result.replaceChildren(message(error.message, "error"));
    }
    return undefined;
  }

  const form = h("form", { class: "filters aggregate" },
    groups.map((g, i) => labelled(`group by ${i + 1}`, g)), labelled("compute", op), labelled("of field", target),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Show groups")));
  form.addEventListener("submit", run);
  return h("details", { class: "panel agg-panel" }, h("summary", {}, "Group by / count"),
    h("p", { class: "muted" }, "Over the entities you may read that match the filters above."), form, result);
}

function table(store, keys, computed, rows) {
  if (!rows.length) return message("No entity matches.");
  const head = [...keys, "count", ...(computed ? [`${computed[0]}(${computed[1]})`] : [])];
  const body = rows.map((row) => h("tr", {},
    keys.map((k) => h("td", {}, row.group[k] === null ? "(none)" : cellText(row.group[k]))),
    h("td", { class: "num" }, String(row.count)),
    computed ? h("td", { class: "num" }, cellText(row[computed[0]][computed[1]])) : ""));
  return h("div", { class: "table-wrap" }, h("table", { class: "grid", "aria-label": `${store} groups` },
    h("thead", {}, h("tr", {}, head.map((c, i) => h("th", { scope: "col", class: i >= keys.length ? "num" : null }, c)))), h("tbody", {}, body)));
}
