// The caller's API keys: create (the key is shown once), list, revoke.
import { api } from "./api.js";
import { h, message, uid } from "./dom.js";

export async function showKeys(view, app) {
  const nameId = uid("key-name");
  const name = h("input", { id: nameId, type: "text", maxLength: 100, required: true });
  const shown = h("div", { class: "key-once", "aria-live": "polite" });
  const rows = h("tbody");
  const reload = async () => {
    try {
      const { data } = await api("GET", "/api/v1/auth/keys");
      rows.replaceChildren(...data.map((key) => h("tr", {},
        h("td", {}, key.name), h("td", {}, h("code", {}, key._id)), h("td", {}, key.createdAt || ""),
        h("td", {}, h("button", { type: "button", class: "danger", onclick: async () => {
          if (!window.confirm(`Revoke the key "${key.name}"?`)) return;
          try {
            await api("DELETE", `/api/v1/auth/keys/${encodeURIComponent(key._id)}`);
            reload();
          } catch (error) {
            if (!app.handle(error)) shown.replaceChildren(message(error.message, "error"));
          }
        } }, "Revoke")))));
    } catch (error) {
      if (!app.handle(error)) shown.replaceChildren(message(error.message, "error"));
    }
  };
  const form = h("form", { class: "inline-form" }, h("label", { for: nameId }, "Name"), name, h("button", { type: "submit", class: "primary" }, "Create key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const { data } = await api("POST", "/api/v1/auth/keys", { name: name.value });
      name.value = "";
      shown.replaceChildren(h("p", {}, "Your new key, shown only this once: copy it now."), h("output", { class: "secret" }, data.key));
      reload();
    } catch (error) {
      if (!app.handle(error)) shown.replaceChildren(message((error.body.fields && error.body.fields.name) || error.message, "error"));
    }
  });
  const title = h("h2", { tabindex: "-1" }, "API keys");
  view.replaceChildren(title, form, shown,
    h("div", { class: "table-wrap" }, h("table", { class: "grid", "aria-label": "API keys" },
      h("thead", {}, h("tr", {}, ["name", "_id", "createdAt", ""].map((c) => h("th", { scope: "col" }, c)))), rows)));
  title.focus();
  await reload();
}
