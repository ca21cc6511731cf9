// The one live connection: an EventSource on /api/v1/stream, shared by every page.
//
// The master sends "farm" (counts, every 2 s), "jobs" (jobs that changed, or deleted ids) and
// "log" (each new audit event).  Pages subscribe with on(kind, fn) and get an unsubscribe
// function back.  After a reconnect the master replays nothing, so "resync" tells every page
// to read again what it shows.  "status" reports the connection: "live", "reconnecting",
// "closed".

import { loadSession } from "./api.js";

const listeners = {
  farm: new Set(),
  jobs: new Set(),
  log: new Set(),
  resync: new Set(),
  status: new Set(),
};
let source = null;
let lastFarm = null;
let status = "closed";
let dropped = false;
let retryTimer = null;
let onLoggedOut = () => {};

function emit(kind, data) {
  for (const listener of [...listeners[kind]]) {
    try {
      listener(data);
    } catch (error) {
      console.error(`stream ${kind} listener failed`, error);
    }
  }
}

function setStatus(value) {
  if (value === status) return;
  status = value;
  emit("status", value);
}

/** Subscribe to one kind of message; returns the function that unsubscribes. A "farm" or
 *  "status" listener gets the latest value at once. */
export function on(kind, listener) {
  listeners[kind].add(listener);
  if (kind === "farm" && lastFarm) listener(lastFarm);
  if (kind === "status") listener(status);
  return () => listeners[kind].delete(listener);
}

export function latestFarm() {
  return lastFarm;
}

/** Open the stream (once); *loggedOut* is called if the session turns out to be gone. */
export function connect(loggedOut) {
  if (loggedOut) onLoggedOut = loggedOut;
  if (source) return;
  source = new EventSource("/api/v1/stream");
  source.addEventListener("open", () => {
    setStatus("live");
    if (dropped) emit("resync");
    dropped = false;
  });
  source.addEventListener("error", () => {
    dropped = true;
    if (source && source.readyState === EventSource.CLOSED) {
      // The browser gave up (an HTTP error such as 401): ask whether the session still holds.
      source = null;
      setStatus("closed");
      retryTimer = setTimeout(checkAndReconnect, 3000);
    } else {
      setStatus("reconnecting");
    }
  });
  for (const kind of ["farm", "jobs", "log"]) {
    source.addEventListener(kind, (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (kind === "farm") lastFarm = data;
      emit(kind, data);
    });
  }
}

async function checkAndReconnect() {
  retryTimer = null;
  try {
    await loadSession();
  } catch (error) {
    if (error.status === 401) {
      onLoggedOut();
      return;
    }
    retryTimer = setTimeout(checkAndReconnect, 5000); // the master is away: try again
    return;
  }
  connect();
}

export function disconnect() {
  if (retryTimer !== null) clearTimeout(retryTimer);
  retryTimer = null;
  if (source) source.close();
  source = null;
  lastFarm = null;
  dropped = false;
  setStatus("closed");
}
