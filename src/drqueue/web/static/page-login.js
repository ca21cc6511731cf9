// Log in with a token (kept by the master as an HttpOnly session cookie), or with the
// one-time code of a login link (/login?code=...) that `drqueue up` prints.

import { logIn } from "./api.js";
import { h } from "./dom.js";

export function mount(main, { query, loggedIn }) {
  const next = query.get("next") || "/";
  const error = h("p", { class: "form-error", id: "login-error", role: "alert", hidden: true });
  const token = h("input", {
    type: "password",
    id: "token",
    name: "token",
    autocomplete: "current-password",
    spellcheck: false,
    required: true,
    "aria-describedby": "token-help login-error",
  });
  const button = h("button", { type: "submit", class: "btn primary" }, "Log in");
  const form = h("form", { class: "login-form", "aria-labelledby": "login-title" },
    h("div", { class: "field" },
      h("label", { for: "token", text: "API token" }),
      token,
      h("p", { class: "hint", id: "token-help" },
        "An admin or artist token: ",
        h("code", { text: "drqueue token create --role artist --owner NAME" }),
        " makes one; the master's own is in ",
        h("code", { text: "$DRQUEUE_ROOT/etc/token" }), ".")),
    error,
    button);
  const card = h("section", { class: "login-card" },
    h("div", { class: "login-brand" },
      h("img", { src: "/static/favicon.svg", alt: "", width: 32, height: 32 }),
      h("h1", { id: "login-title", text: "DrQueue" })),
    h("p", { class: "muted", text: "Render farm. Log in to watch and control it." }),
    form);
  main.appendChild(h("div", { class: "login-page" }, card));

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    button.disabled = false;
    token.setAttribute("aria-invalid", "true");
  }

  async function attempt(credentials) {
    button.disabled = true;
    error.hidden = true;
    try {
      await logIn(credentials);
    } catch (problem) {
      fail(problem.status === 401 || problem.status === 403
        ? `Refused: ${problem.message}`
        : `The master did not answer: ${problem.message}`);
      return;
    }
    loggedIn(next);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = token.value.trim();
    if (!value) {
      fail("Paste a token first.");
      return;
    }
    attempt({ token: value });
  });

  const code = query.get("code");
  if (code) {
    // A one-time link: the code leaves the address bar at once (it must not stay in history).
    history.replaceState(null, "", "/login");
    attempt({ code });
  } else {
    token.focus();
  }
  return () => {};
}
