// One entity: its _id and full JSON, the edit form, access, versions, delete; and the create form.
import { api, ApiError, storePath } from "./api.js";
import { h, message, uid } from "./dom.js";
import { schemaForm } from "./form.js";
import { expandOf, pickerFor, referenceLinks, referencesOf } from "./refs.js";

function saveFailed(app, error, showErrors) {
  if (app.handle(error)) return;
  if (error instanceof ApiError && error.body.fields) showErrors(error.body.fields, error.message);
  else if (error.status === 412) showErrors({}, "Someone changed this entity meanwhile: reload it and try again");
  else showErrors({}, error.message);
}

export function showCreate(view, store, schema, app) {
  const title = h("h2", { tabindex: "-1" }, `New in ${store}`);
  const form = schemaForm(schema, null, {
    mode: "create",
    decorate: pickerFor(app),
    onSubmit: async (body, showErrors) => {
      try {
        const { data } = await api("POST", storePath(store), body);
        app.notice(`Created ${data._id}`);
        location.hash = `#/s/${store}`;
      } catch (error) {
        saveFailed(app, error, showErrors);
      }
    },
  });
  view.replaceChildren(h("div", { class: "view-head" }, title, h("a", { href: `#/s/${store}` }, "Back to the list")), form);
  title.focus();
}

const idList = (text) => text.split(/[\s,]+/).filter(Boolean);

function accessForm(store, entity, app, reload) {
  const field = (name, value, hint) => {
    const id = uid(`acl-${name}`);
    const error = h("p", { class: "field-error", id: `${id}-error` });
    return { name, error, input: h("input", { id, type: "text", value, spellcheck: "false", "aria-describedby": `${id}-error` }),
      render() { return h("div", { class: "field" }, h("label", { for: id }, name), this.input, h("small", { class: "hint" }, hint), error); } };
  };
  const fields = [
    field("owner", entity.owner || "", "user id (admins only)"),
    field("group", entity.group || "", "group id"),
    field("access", (entity.access || []).join(", "), "user or group ids, comma-separated"),
    field("branch", (entity.branch || []).join(", "), "group ids, comma-separated"),
  ];
  const formError = h("div", { class: "form-error", role: "alert" });
  const form = h("form", { class: "entity-form", novalidate: true }, fields.map((f) => f.render()), formError,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Change access")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [owner, group, access, branch] = fields.map((f) => f.input.value.trim());
    const body = { group: group || null, access: idList(access), branch: idList(branch) };
    if (app.me.roles && app.me.roles.includes("admin")) body.owner = owner || null;
    for (const f of fields) f.error.textContent = "";
    formError.replaceChildren();
    try {
      await api("PUT", storePath(store, entity._id, "acl"), body);
      app.notice("Access changed");
      reload();
    } catch (error) {
      if (app.handle(error)) return;
      for (const f of fields) f.error.textContent = (error.body.fields || {})[f.name] || "";
      formError.append(message(error.message, "error"));
    }
  });
  return h("details", { class: "panel" }, h("summary", {}, "Access"), form);
}

async function versionsPanel(store, entity, app, reload) {
  const list = h("ol", { class: "versions" });
  const panel = h("details", { class: "panel" }, h("summary", {}, "Versions"), list);
  try {
    const { data } = await api("GET", storePath(store, entity._id, "_versions"));
    list.replaceChildren(...data.map((v) => h("li", {},
      h("code", {}, v.version), ` ${v.op} at ${v.at}`, v.by ? ` by ${v.by} ` : " ",
      h("button", { type: "button", onclick: async () => {
        try {
          await api("POST", storePath(store, entity._id, "_restore"), { version: v.version });
          app.notice(`Restored version ${v.version}`);
          reload();
        } catch (error) {
          if (!app.handle(error)) app.notice(error.message, "error");
        }
      } }, "Restore"))));
  } catch (error) {
    if (!app.handle(error)) list.replaceChildren(message(error.message, "error"));
  }
  return panel;
}

export async function showEntity(view, store, schema, id, app) {
  const reload = () => showEntity(view, store, schema, id, app);
  let entity;
  let etag;
  try {
    const expand = expandOf(referencesOf(schema), app, ["owner"]);
    const answer = await api("GET", storePath(store, id) + (expand ? `?expand=${encodeURIComponent(expand)}` : ""));
    entity = answer.data;
    etag = answer.headers.get("ETag");
  } catch (error) {
    if (app.handle(error)) return;
    view.replaceChildren(h("h2", {}, store), message(error.message, "error"), h("a", { href: `#/s/${store}` }, "Back to the list"));
    return;
  }
  const form = schemaForm(schema, entity, {
    mode: "edit",
    decorate: pickerFor(app),
    onSubmit: async (body, showErrors) => {
      if (!Object.keys(body).length) {
        showErrors({}, "Nothing changed");
        return;
      }
      try {
        await api("PATCH", storePath(store, id), body, etag ? { "If-Match": etag } : {});
        app.notice("Saved");
        reload();
      } catch (error) {
        saveFailed(app, error, showErrors);
      }
    },
  });
  const remove = h("button", { type: "button", class: "danger", onclick: async () => {
    if (!window.confirm(`Delete ${store} ${id}?`)) return;
    try {
      await api("DELETE", storePath(store, id), undefined, etag ? { "If-Match": etag } : {});
      app.notice(`Deleted ${id}`);
      location.hash = `#/s/${store}`;
    } catch (error) {
      if (!app.handle(error)) app.notice(error.message, "error");
    }
  } }, "Delete");
  const title = h("h2", { tabindex: "-1" }, `${store} `, h("code", { class: "entity-id" }, entity._id));
  const panels = [accessForm(store, entity, app, reload)];
  const refs = Object.entries(referencesOf(schema)).filter(([name]) => entity[name] !== undefined && entity[name] !== null);
  const expanded = entity._expand || {};
  const references = refs.length ? h("dl", { class: "references", "aria-label": "references" },
    refs.flatMap(([name, ref]) => [h("dt", {}, name), h("dd", {}, referenceLinks(ref, entity[name], expanded[name]))])) : null;
  if (schema["x-history"] === true) panels.push(await versionsPanel(store, entity, app, reload));
  view.replaceChildren(
    h("div", { class: "view-head" }, title, h("a", { href: `#/s/${store}` }, "Back to the list")),
    app.flash(),
    h("p", { class: "meta" }, `created ${entity.createdAt} · updated ${entity.updatedAt} · owner `,
      entity.owner ? referenceLinks({ target: "users" }, entity.owner, expanded.owner ?? null) : "none"),
    references,
    h("details", { class: "panel" }, h("summary", {}, "Full JSON"), h("pre", { class: "json-view" }, JSON.stringify(entity, null, 2))),
    h("section", { class: "panel", "aria-label": "edit" }, form),
    ...panels,
    h("div", { class: "actions" }, remove));
  title.focus();
}
