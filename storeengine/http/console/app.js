// The console: sign in, the stores you may read, and the router between the views.
import { api, ApiError } from "./api.js";
import { h, message, uid } from "./dom.js";
import { showCreate, showEntity } from "./entity.js";
import { showKeys } from "./keys.js";
import { showList } from "./list.js";
import { Live } from "./live.js";
import { schemaCheckPanel } from "./schemacheck.js";

const root = document.getElementById("app");
const who = document.getElementById("who");
const BUILTIN = ["users", "groups"]; // not schema files: their schemas come from the API description

const app = {
  me: null,
  schemas: {},
  builtin: null,
  live: new Live(document.getElementById("live")),
  pending: null,

  // A 401 anywhere means the session ended: back to the sign-in form.
  handle(error) {
    if (error instanceof ApiError && error.status === 401) {
      signedOut("Your session has ended: please sign in again.");
      return true;
    }
    return false;
  },
  notice(text, kind = "info") {
    this.pending = { text, kind };
  },
  flash() {
    const note = this.pending;
    this.pending = null;
    return note ? message(note.text, note.kind) : "";
  },
};

function signInForm(note) {
  const loginId = uid("login");
  const passwordId = uid("password");
  const tenantId = uid("tenant");
  const error = h("div", { role: "alert", class: "form-error" }, note ? message(note, "info") : "");
  const login = h("input", { id: loginId, name: "login", type: "text", autocomplete: "username", required: true });
  const password = h("input", { id: passwordId, name: "password", type: "password", autocomplete: "current-password", required: true });
  // A tenant's key (API.md 12): the session is then the tenant's, and its cookie selects the tenant by itself.
  const tenant = h("input", { id: tenantId, name: "tenant", type: "password", autocomplete: "off" });
  const form = h("form", { class: "sign-in", novalidate: true },
    h("h2", {}, "Sign in"),
    h("div", { class: "field" }, h("label", { for: loginId }, "Login"), login),
    h("div", { class: "field" }, h("label", { for: passwordId }, "Password"), password),
    h("div", { class: "field" }, h("label", { for: tenantId }, "Tenant key (optional)"), tenant),
    error, h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.replaceChildren();
    try {
      const headers = tenant.value.trim() ? { "Api-Key": tenant.value.trim() } : {};
      await api("POST", "/api/v1/auth", { login: login.value, password: password.value }, headers);
      await start();
    } catch (err) {
      const fields = err.body && err.body.fields ? Object.entries(err.body.fields).map(([k, v]) => `${k} ${v}`).join("; ") : "";
      error.replaceChildren(message(fields || err.message, "error"));
    }
  });
  return { form, login };
}

function signedOut(note) {
  app.me = null;
  app.live.stop();
  who.replaceChildren();
  const { form, login } = signInForm(note);
  root.replaceChildren(form);
  login.focus();
}

async function signOut() {
  app.live.stop(); // before the session ends, so the feed's stream is not refused mid-way
  try {
    await api("POST", "/api/v1/auth/logout");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
  }
  history.replaceState(null, "", "/");
  signedOut("Signed out.");
}

const isAdmin = () => Boolean(app.me && (app.me.roles || []).includes("admin"));

async function builtinSchemas() {
  if (!app.builtin) {
    const { data } = await api("GET", "/api/v1/_openapi.json");
    app.builtin = Object.fromEntries(BUILTIN.map((name) => [name, data.components.schemas[`${name}.body`]]));
  }
  return app.builtin;
}

function navigation(current) {
  const link = (href, text, extra = {}) => h("li", {}, h("a", { href, "aria-current": current === href ? "page" : false, ...extra }, text));
  const stores = Object.entries(app.schemas).map(([name, { schema, error }]) => link(`#/s/${name}`,
    [name, error ? h("span", { class: "warn", title: error }, " ⚠") : ""], error ? { "aria-label": `${name} (schema error)` } : {}));
  return h("nav", { class: "side", "aria-label": "stores" },
    h("h2", {}, "Stores"), h("ul", {}, stores),
    isAdmin() ? [h("h2", {}, "Administration"), h("ul", {}, BUILTIN.map((name) => link(`#/s/${name}`, name)))] : "",
    h("h2", {}, "You"), h("ul", {}, link("#/keys", "API keys"), h("li", {}, h("a", { href: "/docs" }, "API reference"))));
}

function home(view) {
  const rows = Object.entries(app.schemas).map(([name, { schema, error }]) => h("tr", {},
    h("td", {}, schema ? h("a", { href: `#/s/${name}` }, name) : name),
    h("td", {}, schema && schema.title ? schema.title : ""),
    h("td", { class: error ? "error-text" : "" }, error || "ok")));
  const title = h("h2", { tabindex: "-1" }, "Stores");
  view.replaceChildren(title, app.flash(),
    h("div", { class: "table-wrap" }, h("table", { class: "grid", "aria-label": "stores" },
      h("thead", {}, h("tr", {}, ["store", "title", "schema"].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows))));
}

async function schemaOf(name) {
  if (BUILTIN.includes(name)) return (await builtinSchemas())[name];
  const entry = app.schemas[name];
  return entry ? entry : null;
}

async function route() {
  if (!app.me) return;
  const hash = location.hash || "#/";
  const [, kind, store, id] = hash.split("/");
  const current = kind === "s" ? `#/s/${store}` : hash;
  const view = h("section", { class: "view" });
  root.replaceChildren(navigation(current), view);
  if (!(kind === "s" && !id)) app.live.stop();
  try {
    if (kind === "keys") return await showKeys(view, app);
    if (kind !== "s") {
      app.schemas = (await api("GET", "/api/v1/_schemas")).data; // files come and go while we run
      root.replaceChildren(navigation(current), view);
      return home(view);
    }
    const found = await schemaOf(store);
    const schema = found && "schema" in found ? found.schema : found;
    if (found && found.error) view.append(message(`Schema error: ${found.error}`, "error"));
    if (!schema) {
      view.append(message(found ? "This store has no valid schema yet." : `Unknown store: ${store}`, "error"));
      return undefined;
    }
    const holder = h("div");
    view.append(holder);
    // Schema check: its own panel below the list, loaded on its own (never awaited here).
    if (!id && isAdmin() && !BUILTIN.includes(store)) view.append(schemaCheckPanel(store, app));
    if (!id) return await showList(holder, store, schema, app);
    if (id === "new") return showCreate(holder, store, schema, app);
    return await showEntity(holder, store, schema, id, app);
  } catch (error) {
    if (!app.handle(error)) view.append(message(error.message, "error"));
  }
  return undefined;
}

async function start() {
  try {
    app.me = (await api("GET", "/api/v1/auth/me")).data;
    app.schemas = (await api("GET", "/api/v1/_schemas")).data;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signedOut();
    root.replaceChildren(message(`Cannot reach the server: ${error.message}`, "error"));
    return undefined;
  }
  who.replaceChildren(h("span", {}, app.me.login), " ", h("button", { type: "button", onclick: signOut }, "Sign out"));
  return route();
}

window.addEventListener("hashchange", route);
start();
