// The master's API, as the pages use it: one fetch wrapper, the session, and the role rules.
//
// The session cookie (HttpOnly) is sent by the browser; every request that changes state
// carries the session's CSRF token in X-CSRF-Token.  Errors arrive as
// {"detail": "one line", "error": "Kind"} and are thrown as ApiError with that detail,
// which the pages show as text.

export const API = "/api/v1";

/** An answer of the API with a 4xx/5xx status, or the master out of reach (status 0). */
export class ApiError extends Error {
  constructor(status, detail, kind = "") {
    super(detail);
    this.status = status;
    this.kind = kind;
  }
}

/** Who is logged in: {name, role, csrf}, or null. */
export const session = { current: null };

/** Called when the API answers 401 to a logged-in page (session expired, master restarted). */
let onUnauthorised = () => {};
export function setUnauthorisedHandler(handler) {
  onUnauthorised = handler;
}

function query(params) {
  if (!params) return "";
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** One path segment, encoded (a pool "gpu?old" is "gpu%3Fold"; "." and ".." too). */
export function seg(value) {
  const text = String(value);
  if (text === ".") return "%2E";
  if (text === "..") return "%2E%2E";
  return encodeURIComponent(text);
}

async function errorOf(resp) {
  let detail = `${resp.status} ${resp.statusText || "error"}`;
  let kind = "";
  try {
    const body = await resp.json();
    if (typeof body.detail === "string") detail = body.detail;
    else if (body.detail !== undefined) detail = JSON.stringify(body.detail);
    kind = body.error || "";
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(resp.status, detail, kind);
}

/** Send a request; resolve to the answer's JSON (or the Response itself with raw: true). */
export async function request(method, path, { body, params, raw = false, headers = {} } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && session.current) {
    sent["X-CSRF-Token"] = session.current.csrf;
  }
  let resp;
  try {
    resp = await fetch(API + path + query(params), {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, `the master cannot be reached (${error.message})`, "MasterUnreachable");
  }
  if (!resp.ok) {
    const error = await errorOf(resp);
    if (resp.status === 401 && session.current && !path.startsWith("/session")) {
      onUnauthorised(error);
    }
    throw error;
  }
  if (raw) return resp;
  if (resp.status === 204) return null;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, params) => request("GET", path, { params });
export const post = (path, body, options = {}) => request("POST", path, { body, ...options });
export const put = (path, body) => request("PUT", path, { body });
export const del = (path, params) => request("DELETE", path, { params });

/** A list route's page and the X-Total-Count header: {items, total}. */
export async function page(path, params) {
  const resp = await request("GET", path, { params, raw: true });
  const items = await resp.json();
  const total = Number(resp.headers.get("X-Total-Count"));
  return { items, total: Number.isFinite(total) && resp.headers.has("X-Total-Count") ? total : null };
}

// -- the session --------------------------------------------------------------------------------

export async function loadSession() {
  session.current = await get("/session");
  return session.current;
}

export async function logIn(credentials) {
  session.current = await post("/session", credentials);
  return session.current;
}

export async function logOut() {
  try {
    await request("DELETE", "/session");
  } finally {
    session.current = null;
  }
}

// -- what the session may do (the API enforces it; the UI hides what it would refuse) -------------

export function isAdmin() {
  return session.current?.role === "admin";
}

export function mayControl(job) {
  const who = session.current;
  return Boolean(who && (who.role === "admin" || job.owner === who.name));
}
