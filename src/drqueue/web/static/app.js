// The single-page app: boot, the session, the header and client-side routing.
//
// The master answers index.html for every page path (/, /jobs, /jobs/ID, /submit,
// /computers, /events, /login); this module picks the page from location.pathname.  A page
// module exports mount(main, context) and returns a function that unmounts it (closes its
// timers and stream subscriptions).  Links inside the app change the page without a reload.

import { ApiError, loadSession, logOut, session, setUnauthorisedHandler } from "./api.js";
import { h, replace } from "./dom.js";
import * as computersPage from "./page-computers.js";
import * as dashboardPage from "./page-dashboard.js";
import * as eventsPage from "./page-events.js";
import * as jobPage from "./page-job.js";
import * as jobsPage from "./page-jobs.js";
import * as loginPage from "./page-login.js";
import * as submitPage from "./page-submit.js";
import * as stream from "./stream.js";
import { toast } from "./ui.js";

const ROUTES = [
  { path: /^\/$/, nav: "dashboard", page: dashboardPage, title: "Dashboard" },
  { path: /^\/jobs\/?$/, nav: "jobs", page: jobsPage, title: "Jobs" },
  { path: /^\/jobs\/(\d+)\/?$/, nav: "jobs", page: jobPage, title: "Job" },
  { path: /^\/submit\/?$/, nav: "submit", page: submitPage, title: "Submit" },
  { path: /^\/computers\/?$/, nav: "computers", page: computersPage, title: "Computers" },
  { path: /^\/events\/?$/, nav: "events", page: eventsPage, title: "Events" },
];

const main = document.getElementById("main");
let unmount = null;
let firstRender = true;

/** Go to *url* inside the app (no reload). */
export function navigate(url, { replace: replacing = false } = {}) {
  if (replacing) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

/** Change the query string of the current page without remounting it. */
export function setQuery(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  history.replaceState(null, "", `${location.pathname}${text ? `?${text}` : ""}`);
}

function clearPage() {
  if (unmount) {
    try {
      unmount();
    } catch (error) {
      console.error("unmount failed", error);
    }
  }
  unmount = null;
}

function render() {
  clearPage();
  const path = location.pathname;
  if (path === "/login" || path === "/login/") {
    showLogin();
    return;
  }
  if (!session.current) {
    goToLogin();
    return;
  }
  document.getElementById("top").hidden = false;
  const route = ROUTES.find((r) => r.path.test(path));
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (route && link.dataset.nav === route.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  replace(main);
  if (!route) {
    document.title = "Not found · DrQueue";
    main.appendChild(h("div", { class: "page" },
      h("h1", { text: "Nothing here" }),
      h("p", {}, "No page at ", h("code", { text: path }), ". ", h("a", { href: "/", text: "Go to the dashboard" }), ".")));
    return;
  }
  document.title = `${route.title} · DrQueue`;
  const match = route.path.exec(path);
  const context = {
    params: match.slice(1),
    query: new URLSearchParams(location.search),
    navigate,
    setQuery,
    setTitle: (title) => {
      document.title = `${title} · DrQueue`;
    },
  };
  unmount = route.page.mount(main, context) || null;
  if (!firstRender) main.focus({ preventScroll: true });
  firstRender = false;
  window.scrollTo(0, 0);
}

function goToLogin() {
  const here = location.pathname + location.search;
  const next = here.startsWith("/login") || here === "/" ? "" : `?next=${encodeURIComponent(here)}`;
  history.replaceState(null, "", `/login${next}`);
  showLogin();
}

function showLogin() {
  stream.disconnect();
  showLost(false);
  document.getElementById("top").hidden = true;
  document.title = "Log in · DrQueue";
  replace(main);
  unmount = loginPage.mount(main, {
    query: new URLSearchParams(location.search),
    loggedIn: (next) => {
      startSession();
      navigate(safeNext(next), { replace: true });
    },
  });
}

/** Only a path of this app, never another origin ("//evil", "/\\evil" or "https:..."): a
 *  path made only of printable characters other than a backslash, resolving to this origin. */
function safeNext(next) {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/login")) return "/";
  if (/[\\\u0000-\u001f\u007f]/.test(next)) return "/";
  try {
    if (new URL(next, location.origin).origin !== location.origin) return "/";
  } catch {
    return "/";
  }
  return next;
}

function startSession() {
  const who = session.current;
  replace(document.getElementById("who"),
    h("span", { class: "who-name", text: who.name }), " ",
    h("span", { class: `role role-${who.role}`, text: who.role }));
  stream.connect(sessionEnded);
}

function sessionEnded() {
  if (!session.current && location.pathname.startsWith("/login")) return;
  session.current = null;
  stream.disconnect();
  toast("Your session has ended: log in again.", "error");
  goToLogin();
}

const LIVE_TEXT = {
  live: ["●", "Live"],
  reconnecting: ["◌", "Reconnecting…"],
  closed: ["✕", "Offline"],
};

/** A banner over the page while the master cannot be reached for more than LOST_AFTER_MS: the
 *  data shown may be out of date, and the page says so (the header's word alone was missed). */
const LOST_AFTER_MS = 3000;
let lostTimer = null;

function showLost(lost) {
  const banner = document.getElementById("lost");
  clearTimeout(lostTimer);
  if (!lost) {
    banner.hidden = true;
    main.classList.remove("stale");
    return;
  }
  lostTimer = setTimeout(() => {
    banner.hidden = false;
    main.classList.add("stale");
  }, LOST_AFTER_MS);
}

function wireHeader() {
  stream.on("status", (status) => {
    const live = document.getElementById("live");
    const [glyph, text] = LIVE_TEXT[status] || LIVE_TEXT.closed;
    live.className = `live live-${status}`;
    replace(live, h("span", { "aria-hidden": "true", text: glyph }), ` ${text}`);
    live.title = status === "live" ? "Updates arrive as they happen" : "Live updates are paused";
    showLost(status !== "live" && session.current !== null);
  });
  document.getElementById("logout").addEventListener("click", async () => {
    try {
      await logOut();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) {
        toast(`Log out: ${error.message}`, "error");
        return;
      }
    }
    session.current = null;
    clearPage();
    stream.disconnect();
    history.pushState(null, "", "/login");
    showLogin();
  });
  document.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target.closest("a[href]");
    if (!link || link.target || link.hasAttribute("download")) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin) return;
    if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/static/")) return;
    event.preventDefault();
    if (url.pathname === location.pathname && url.search === location.search) return;
    navigate(url.pathname + url.search + url.hash);
  });
  window.addEventListener("popstate", render);
}

async function boot() {
  wireHeader();
  setUnauthorisedHandler(sessionEnded);
  const onLogin = location.pathname.startsWith("/login");
  const hasCode = onLogin && new URLSearchParams(location.search).has("code");
  if (!hasCode) {
    try {
      await loadSession();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) {
        replace(main, h("div", { class: "page" },
          h("h1", { text: "DrQueue" }),
          h("p", { class: "failure", role: "alert", text: `The master did not answer: ${error.message}` }),
          h("button", { type: "button", class: "btn", onclick: () => location.reload() }, "Try again")));
        return;
      }
    }
  }
  if (session.current) {
    startSession();
    if (onLogin) {
      navigate(safeNext(new URLSearchParams(location.search).get("next")), { replace: true });
      return;
    }
  }
  render();
}

boot();
