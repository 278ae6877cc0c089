// A store as a table: columns from the schema, filters, sort by header, paging, total, live rows.
import { api, storePath } from "./api.js";
import { cellText, h, message, uid } from "./dom.js";
import { kindOf } from "./form.js";
import { expandOf, labelCache, referenceLinks, referencesOf, unlabelled } from "./refs.js";

const FILTERABLE = new Set(["string", "integer", "number", "boolean", "enum", "objectid", "datetime", "strings"]);
const PAGE_SIZES = [25, 100, 1000];
const states = new Map(); // per store: paging, sort and filters survive navigation

function stateOf(store) {
  if (!states.has(store)) states.set(store, { offset: 0, limit: 25, sort: "", props: {}, filter: "" });
  return states.get(store);
}

function visibleProps(schema) {
  return Object.entries(schema.properties || {}).filter(([, p]) => !p.writeOnly).map(([name]) => name);
}

function queryOf(state, withPaging, expand = "") {
  const q = new URLSearchParams();
  if (withPaging && expand) q.set("expand", expand);
  for (const [k, v] of Object.entries(state.props)) if (v !== "") q.set(k, v);
  if (state.filter.trim()) q.set("filter", state.filter.trim());
  if (withPaging) {
    if (state.sort) q.set("sort", state.sort);
    q.set("offset", String(state.offset));
    q.set("limit", String(state.limit));
  } else {
    q.set("meta", "true");
  }
  return q.toString();
}

export function renderRows(tbody, store, columns, rows, refs = {}, labels = labelCache()) {
  const fragment = document.createDocumentFragment();
  for (const row of rows) fragment.append(rowElement(store, columns, row, refs, labels));
  tbody.replaceChildren(fragment);
}

function rowElement(store, columns, row, refs = {}, labels = labelCache()) {
  const tr = document.createElement("tr");
  tr.dataset.id = row._id;
  for (const column of columns) {
    const td = document.createElement("td");
    if (column === "_id") {
      const a = document.createElement("a");
      a.href = `#/s/${store}/${row._id}`;
      a.textContent = row._id;
      td.append(a);
    } else if (refs[column] && row[column] !== undefined && row[column] !== null) {
      const expanded = row._expand ? row._expand[column] ?? null : undefined; // undefined: a live row
      td.append(...referenceLinks(refs[column], row[column], expanded, labels).filter(Boolean));
    } else {
      const text = cellText(row[column]);
      td.textContent = text.length > 80 ? `${text.slice(0, 79)}…` : text;
      if (text.length > 80) td.title = text;
    }
    tr.append(td);
  }
  return tr;
}

function filterForm(schema, state, reload) {
  const inputs = [];
  for (const name of visibleProps(schema)) {
    const kind = kindOf(schema.properties[name]);
    if (!FILTERABLE.has(kind)) continue;
    const id = uid(`filter-${name}`);
    const input = h("input", { id, type: "text", value: state.props[name] || "", placeholder: kind === "enum" ? "value" : kind });
    inputs.push([name, input]);
  }
  const filterId = uid("filter-json");
  const json = h("textarea", { id: filterId, rows: 2, class: "json", spellcheck: "false", placeholder: '{"price": {"$gt": 10}}' }, state.filter);
  const form = h("form", { class: "filters" },
    inputs.map(([name, input]) => h("div", { class: "field" }, h("label", { for: input.id }, name), input)),
    h("div", { class: "field wide" }, h("label", { for: filterId }, "filter"), json),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply"),
      h("button", { type: "button", onclick: () => { for (const [, i] of inputs) i.value = ""; json.value = ""; form.requestSubmit(); } }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.props = Object.fromEntries(inputs.map(([name, input]) => [name, input.value.trim()]));
    state.filter = json.value;
    state.offset = 0;
    reload();
  });
  const active = Object.values(state.props).some(Boolean) || state.filter.trim();
  return h("details", { class: "filter-box", open: Boolean(active) }, h("summary", {}, "Filters"), form);
}

export async function showList(view, store, schema, app) {
  const state = stateOf(store);
  const columns = ["_id", ...visibleProps(schema), "updatedAt"];
  const refs = referencesOf(schema);
  const expand = expandOf(refs, app);
  const labels = labelCache(); // reference labels this list has seen, for rows updated live
  const expandable = Object.fromEntries(expand.split(",").filter(Boolean).map((name) => [name, refs[name]]));
  const status = h("div", { class: "status-line", role: "status", "aria-live": "polite" });
  const tbody = h("tbody");
  const headRow = h("tr");
  const table = h("table", { class: "grid", "aria-label": `${store} entities` }, h("thead", {}, headRow), tbody);
  const pager = h("nav", { class: "pager", "aria-label": "pages" });
  let total = null;

  function drawHeaders() {
    headRow.replaceChildren(...columns.map((column) => {
      const asc = state.sort === column;
      const desc = state.sort === `-${column}`;
      const sortState = asc ? "ascending" : desc ? "descending" : "none";
      const button = h("button", { type: "button", class: "sort", onclick: () => {
        state.sort = asc ? `-${column}` : desc ? "" : column;
        state.offset = 0;
        reload();
      } }, column, h("span", { "aria-hidden": "true" }, asc ? " ▲" : desc ? " ▼" : ""));
      return h("th", { scope: "col", "aria-sort": sortState }, button);
    }));
  }

  function drawPager(count) {
    const first = count ? state.offset + 1 : 0;
    const last = state.offset + count;
    const size = h("select", { id: uid("page-size"), onchange: (e) => { state.limit = Number(e.target.value); state.offset = 0; reload(); } },
      PAGE_SIZES.map((n) => h("option", { value: String(n), selected: n === state.limit }, String(n))));
    pager.replaceChildren(
      h("button", { type: "button", disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - state.limit); reload(); } }, "‹ Previous"),
      h("span", { class: "range" }, `${first}–${last} of ${total ?? "?"}`),
      h("button", { type: "button", disabled: total !== null ? last >= total : count < state.limit, onclick: () => { state.offset += state.limit; reload(); } }, "Next ›"),
      h("label", { for: size.id }, "per page"), size);
  }

  async function reload() {
    drawHeaders();
    status.textContent = "Loading…";
    try {
      const [page, meta] = await Promise.all([
        api("GET", `${storePath(store)}?${queryOf(state, true, expand)}`),
        api("GET", `${storePath(store)}?${queryOf(state, false)}`),
      ]);
      total = meta.data.total;
      renderRows(tbody, store, columns, page.data, refs, labels);
      drawPager(page.data.length);
      status.textContent = "";
      return page.headers.get("X-Change-Cursor");
    } catch (error) {
      if (app.handle(error)) return null;
      status.replaceChildren(message(error.message, "error"));
      return null;
    }
  }

  // A row updated live holds a reference not labelled yet: its expanded GET brings the labels,
  // unless a newer change of that row arrived meanwhile (`updates` counts them).
  const updates = new Map();
  async function relabel(id) {
    const mine = updates.get(id);
    try {
      const { data } = await api("GET", `${storePath(store, id)}?expand=${encodeURIComponent(expand)}`);
      const row = tbody.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
      if (row && updates.get(id) === mine) row.replaceWith(rowElement(store, columns, data, refs, labels));
    } catch (error) {
      app.handle(error); // gone or unreadable meanwhile: its own change event says so
    }
  }

  // Rows follow the feed: updates in place, deletes and leaves go, creates and enters reload the page.
  let pending = null;
  function onChange(change) {
    const row = tbody.querySelector(`tr[data-id="${CSS.escape(change._id)}"]`);
    if (change.op === "update" && row) {
      updates.set(change._id, (updates.get(change._id) || 0) + 1);
      row.replaceWith(rowElement(store, columns, change.entity, refs, labels));
      if (unlabelled(expandable, change.entity, labels)) relabel(change._id);
    } else if ((change.op === "delete" || change.op === "leave") && row) {
      row.remove();
      if (total !== null) total -= 1;
      drawPager(tbody.rows.length);
    } else if (change.op === "create" || change.op === "enter" || change.op === "update") {
      clearTimeout(pending);
      pending = setTimeout(reload, 150);
    }
  }

  const title = h("h2", { tabindex: "-1" }, store);
  view.replaceChildren(
    h("div", { class: "view-head" }, title,
      h("button", { type: "button", class: "primary", onclick: () => { location.hash = `#/s/${store}/new`; } }, "Create")),
    app.flash(), filterForm(schema, state, reload), status, h("div", { class: "table-wrap" }, table), pager);
  title.focus();
  const cursor = await reload();
  if (view.isConnected) app.live.follow(store, cursor, onChange);
}
