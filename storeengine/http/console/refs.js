// References (API.md section 13): a reference shows as a link to its entity, labelled by the
// expanded entity's title/name-like property (or its id); the form offers a picker that searches
// the referenced store.
import { api, storePath } from "./api.js";
import { h, uid } from "./dom.js";

const LABELS = ["title", "name", "label", "login", "email", "subject"];
const MAX_EXPAND = 10;

// { property: { target, many } } for the x-ref properties of a schema.
export function referencesOf(schema) {
  const out = {};
  for (const [name, prop] of Object.entries((schema && schema.properties) || {})) {
    if (!prop || prop.writeOnly) continue;
    if (typeof prop["x-ref"] === "string") out[name] = { target: prop["x-ref"], many: false };
    else if (prop.items && typeof prop.items["x-ref"] === "string") out[name] = { target: prop.items["x-ref"], many: true };
  }
  return out;
}

function targetProperties(app, target) {
  const entry = app.schemas[target];
  if (entry && entry.schema) return entry.schema.properties || {};
  return (app.builtin && app.builtin[target] && app.builtin[target].properties) || null;
}

function exists(app, target) {
  return target === "users" || target === "groups" || Boolean(app.schemas[target] && app.schemas[target].schema);
}

// The `expand` parameter for a list or an entity: the references whose store exists (and `extra`
// paths, such as `owner`, while there is room).
export function expandOf(refs, app, extra = []) {
  const names = Object.entries(refs).filter(([, r]) => exists(app, r.target)).map(([name]) => name);
  return [...names, ...extra].slice(0, MAX_EXPAND).join(",");
}

export function labelOf(entity) {
  for (const key of LABELS) if (typeof entity[key] === "string" && entity[key]) return entity[key];
  return entity._id;
}

// The labels a list has seen in its expanded answers, by store and id (one per list view, so
// nothing outlives it, or the session). An entity from the change feed has no `_expand`: its
// row takes the labels from here, and asks for the rest (see `unlabelled`).
export const labelCache = () => new Map();
const seenKey = (target, id) => `${target}\n${id}`;

const idsOf = (value) => (Array.isArray(value) ? value : [value]).filter((v) => typeof v === "string");

// Links to the referenced entities. `expanded` is the entity's `_expand` entry (`null`: the answer
// was expanded and this one is missing or unreadable, so it shows its id); `undefined`: the entity
// was not expanded (a live row), so the labels in `seen` are used.
export function referenceLinks(ref, value, expanded, seen = labelCache()) {
  const known = new Map((Array.isArray(expanded) ? expanded : expanded ? [expanded] : []).map((e) => [e._id, labelOf(e)]));
  for (const [id, label] of known) seen.set(seenKey(ref.target, id), label);
  // Left out of an expanded answer (missing or unreadable): its id is its label, no need to ask again.
  if (expanded !== undefined) for (const id of idsOf(value)) if (!known.has(id)) seen.set(seenKey(ref.target, id), id);
  const label = (id) => known.get(id) ?? (expanded === undefined ? seen.get(seenKey(ref.target, id)) : undefined) ?? id;
  return idsOf(value).flatMap((id, i) => [i ? ", " : null,
    h("a", { href: `#/s/${ref.target}/${id}`, class: "ref", title: `${ref.target} ${id}` }, label(id))]);
}

// Does an unexpanded entity hold a reference whose label was never seen?
export function unlabelled(refs, entity, seen) {
  return Object.entries(refs).some(([name, ref]) => idsOf(entity[name]).some((id) => !seen.has(seenKey(ref.target, id))));
}

// The label-like properties of the referenced store: a search looks in each (a user may have a
// login and no name).
function labelFields(props) {
  return LABELS.filter((key) => props && props[key] && !props[key].writeOnly);
}

function searchFilter(fields, text) {
  const terms = fields.map((field) => ({ [field]: { $regex: escapeRegex(text) } }));
  return terms.length === 1 ? terms[0] : { $or: terms };
}

const escapeRegex = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

// A search box under a reference field: its suggestions are entities of the referenced store;
// choosing one puts its id in the field (appends a line, for an array of references).
export function pickerFor(app) {
  return (name, prop, input) => {
    const ref = referencesOf({ properties: { [name]: prop } })[name];
    if (!ref || !exists(app, ref.target)) return null;
    const listId = uid(`pick-${name}-list`);
    const searchId = uid(`pick-${name}`);
    const options = h("datalist", { id: listId });
    const search = h("input", { id: searchId, type: "search", list: listId, autocomplete: "off", class: "picker",
      placeholder: `search ${ref.target}…` });
    const chosen = new Map();
    let timer = null;
    async function suggest() {
      const fields = labelFields(targetProperties(app, ref.target));
      const q = new URLSearchParams({ limit: "20" });
      const text = search.value.trim();
      if (fields.length && text) q.set("filter", JSON.stringify(searchFilter(fields, text)));
      try {
        const { data } = await api("GET", `${storePath(ref.target)}?${q}`);
        chosen.clear();
        options.replaceChildren(...data.map((e) => {
          chosen.set(e._id, e);
          return h("option", { value: e._id }, labelOf(e));
        }));
      } catch (error) {
        if (!app.handle(error)) options.replaceChildren();
      }
    }
    search.addEventListener("focus", suggest);
    search.addEventListener("input", () => {
      const id = search.value.trim();
      if (chosen.has(id)) {
        input.value = ref.many ? [...input.value.split("\n").filter((l) => l.trim()), id].join("\n") : id;
        input.dispatchEvent(new Event("input", { bubbles: true }));
        search.value = "";
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(suggest, 200);
    });
    return h("div", { class: "picker-box" }, h("label", { for: searchId, class: "hint" }, `pick from ${ref.target}`), search, options);
  };
}
