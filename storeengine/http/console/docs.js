// The docs page: Swagger UI over our live document, sending the console's cookie session.
const status = document.getElementById("docs-status");

async function start() {
  const me = await fetch("/api/v1/auth/me", { credentials: "same-origin" });
  if (me.status === 401) {
    status.innerHTML = 'Not signed in: <a href="/">sign in on the console</a> to load the API description.';
    return;
  }
  const user = await me.json();
  status.textContent = `Signed in as ${user.login}; "Try it out" uses this session.`;
  window.SwaggerUIBundle({
    url: "/api/v1/_openapi.json",
    dom_id: "#swagger-ui",
    withCredentials: true,
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
}

start().catch((error) => { status.textContent = `Cannot load the API description: ${error.message}`; });
