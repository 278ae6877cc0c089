// For admins: how many of a store's entities fail its current schema, and which, from the
// server's background check after each reload (GET /api/v1/_schemas/:store/_check). The panel
// fills in on its own: the page never waits for it, and it asks again while a check runs.
import { api } from "./api.js";
import { h, message } from "./dom.js";

const POLL_MS = 1000; // while the server's check is still running

const plural = (n, one, many) => `${n.toLocaleString("en")} ${n === 1 ? one : many}`;

function summary(report) {
  const { state, checked, invalid } = report;
  if (state === "running") return `Checking the entities against the current schema… ${plural(checked, "entity", "entities")} so far, ${invalid.toLocaleString("en")} failing.`;
  if (state === "failed") return `The schema check failed: ${report.error}`;
  // The check reads what the store held when the schema was loaded; every later write was
  // validated by the write itself, so "all fit" never claims more than was read.
  if (!checked) return "The store was empty when the current schema was loaded; entities written since were checked as they were written.";
  if (!invalid) return `All ${plural(checked, "entity", "entities")} stored when the current schema was loaded fit it.`;
  return `${invalid.toLocaleString("en")} of ${plural(checked, "entity", "entities")} stored when the current schema was loaded fail it.`;
}

function failures(store, report) {
  const rows = report.entities.map(({ _id, fields }) => h("tr", {},
    h("td", {}, h("a", { href: `#/s/${store}/${_id}` }, _id)),
    h("td", { class: "error-text" }, h("ul", { class: "problems" },
      Object.entries(fields).map(([field, text]) => h("li", {}, h("code", {}, field), ` ${text}`))))));
  const more = report.invalid > report.entities.length
    ? h("p", { class: "muted" }, `The first ${report.entities.length} are listed.`) : "";
  return [h("div", { class: "table-wrap" }, h("table", { class: "grid", "aria-label": `${store} entities failing the schema` },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "entity"), h("th", { scope: "col" }, "problems"))),
    h("tbody", {}, rows))), more];
}

function render(panel, store, report) {
  const when = report.finishedAt ? h("p", { class: "muted" }, `Checked ${new Date(report.finishedAt).toLocaleString()}, after the schema was loaded.`) : "";
  const bad = report.state === "failed" || (report.state === "done" && report.invalid > 0);
  panel.replaceChildren(h("h3", {}, "Schema check"),
    h("p", { class: `check-summary${bad ? " error-text" : ""}`, role: "status" }, summary(report)),
    ...(report.entities.length ? failures(store, report) : []), when);
}

// The panel, returned at once; it fills itself in. Only for admins and stores with a schema file.
export function schemaCheckPanel(store, app) {
  const panel = h("section", { class: "panel schema-check", "aria-label": "schema check" },
    h("h3", {}, "Schema check"), h("p", { class: "muted" }, "Loading…"));
  const load = async () => {
    if (!panel.isConnected && panel.dataset.loaded) return; // the page moved on
    try {
      const { data } = await api("GET", `/api/v1/_schemas/${encodeURIComponent(store)}/_check`);
      panel.dataset.loaded = "1";
      render(panel, store, data);
      if (data.state === "running") setTimeout(load, POLL_MS);
    } catch (error) {
      if (!app.handle(error)) panel.replaceChildren(h("h3", {}, "Schema check"), message(error.message, "error"));
    }
  };
  load();
  return panel;
}
