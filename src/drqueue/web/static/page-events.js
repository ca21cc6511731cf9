// The audit trail: who did what and when, newest first, filtered by job, kind and actor, and
// paged back with ?before= (the oldest id of the page shown).  On the newest page, new events
// arrive from the stream.

import { get, seg } from "./api.js";
import { debounce, fullTime, h, replace, when } from "./dom.js";
import * as stream from "./stream.js";
import { emptyRow, failure, jobLink, td } from "./ui.js";

const LIMIT = 100;
const KINDS = [
  "job.submitted", "job.stopped", "job.active", "job.kill", "job.requeue", "job.priority",
  "job.deleted", "job.unblock", "job.error", "job.held", "task.failed", "task.error",
  "task.requeued", "host.blocked", "computer.changed", "pool.created", "pool.deleted", "pool.member",
];

export function mount(main, { query, setQuery }) {
  const state = {
    job: query.get("job") || "",
    kind: query.get("kind") || "",
    actor: query.get("actor") || "",
  };
  let before = query.get("before") ? Number(query.get("before")) : null;
  const newer = []; // the `before` of each newer page, for going back
  let shown = [];

  const jobInput = h("input", { type: "text", id: "e-job", value: state.job, inputMode: "numeric", placeholder: "any", class: "short" });
  const kindInput = h("input", { type: "text", id: "e-kind", value: state.kind, placeholder: "any", list: "kinds" });
  const actorInput = h("input", { type: "text", id: "e-actor", value: state.actor, placeholder: "anyone" });
  const tbody = h("tbody");
  const pagerBox = h("nav", { class: "pager", "aria-label": "Event pages" });
  const live = h("span", { class: "muted" });

  main.appendChild(h("div", { class: "page events" },
    h("div", { class: "page-head" }, h("h1", { text: "Events" }), live),
    h("form", { class: "filters", role: "search", "aria-label": "Filter events", onsubmit: (e) => e.preventDefault() },
      h("span", { class: "filter" }, h("label", { for: "e-job", text: "Job" }), jobInput),
      h("span", { class: "filter" }, h("label", { for: "e-kind", text: "Kind" }), kindInput),
      h("span", { class: "filter" }, h("label", { for: "e-actor", text: "Who" }), actorInput),
      h("datalist", { id: "kinds" }, ...KINDS.map((k) => h("option", { value: k })))),
    h("div", { class: "table-wrap" },
      h("table", { class: "table events-table responsive", "aria-label": "Events" },
        h("thead", {}, h("tr", {}, ...["When", "Kind", "Who", "Job", "Task", "Computer", "What"].map((t) => h("th", { scope: "col", text: t })))),
        tbody)),
    pagerBox));

  function matches(event) {
    if (state.job && String(event.job_id) !== state.job) return false;
    if (state.kind && !event.kind.startsWith(state.kind)) return false;
    if (state.actor && event.actor !== state.actor) return false;
    return true;
  }

  async function load() {
    setQuery({ ...state, before: before ?? undefined });
    // A kind ("task.failed") or a family of them ("task") goes to the master; anything else
    // typed so far ("tas") is only matched here.
    const known = KINDS.includes(state.kind) || KINDS.some((k) => k.split(".")[0] === state.kind);
    const kind = known ? state.kind : undefined;
    const params = { limit: LIMIT, before: before ?? undefined, kind, actor: state.actor };
    if (state.job && !/^\d+$/.test(state.job)) {
      replace(tbody, emptyRow(7, "Job: type a job's number, like 7 or #7."));
      replace(pagerBox);
      return;
    }
    let events;
    try {
      if (state.job) events = await get(`/jobs/${seg(state.job)}/events`, params);
      else events = await get("/events", params);
    } catch (error) {
      replace(tbody, h("tr", {}, h("td", { colspan: "7" }, failure(error, load))));
      return;
    }
    // Oldest first from the API; the newest on top here.  Filters the master does not know
    // are applied here too, so the page never shows what the filter excludes.
    shown = events.slice().reverse().filter(matches);
    replace(tbody, ...shown.map(row));
    if (!shown.length) tbody.appendChild(emptyRow(7, "No events match."));
    live.textContent = before === null ? "newest first · live" : "older events";
    replace(pagerBox,
      h("button", { type: "button", class: "btn", disabled: before === null, onclick: () => {
        before = newer.pop() ?? null;
        load();
      } }, "‹ Newer"),
      h("button", { type: "button", class: "btn", disabled: before === null, onclick: () => {
        newer.length = 0;
        before = null;
        load();
      } }, "Newest"),
      h("button", { type: "button", class: "btn", disabled: events.length < LIMIT, onclick: () => {
        newer.push(before);
        before = events[0].id;
        load();
      } }, "Older ›"));
  }

  function row(event) {
    return h("tr", { dataset: { event: event.id } },
      td({ "data-label": "When", title: fullTime(event.at), text: when(event.at) }),
      td({ "data-label": "Kind" }, h("span", { class: `event-kind kind-${event.kind.split(".")[0]}`, text: event.kind })),
      td({ "data-label": "Who", text: event.actor || "—" }),
      td({ "data-label": "Job" }, event.job_id === null || event.job_id === undefined ? "—" : jobLink(event.job_id)),
      td({ "data-label": "Task" }, event.task_index === null || event.task_index === undefined ? "—"
        : h("a", { href: `/jobs/${event.job_id}?task=${event.task_index}`, text: String(event.task_index) })),
      td({ "data-label": "Computer", text: event.computer || "—" }),
      td({ "data-label": "What", class: "event-msg", text: event.message }));
  }

  const changed = debounce(() => {
    state.job = jobInput.value.trim().replace(/^#/, "");  // "#7", as every page writes it
    state.kind = kindInput.value.trim();
    state.actor = actorInput.value.trim();
    before = null;
    newer.length = 0;
    load();
  }, 300);
  for (const input of [jobInput, kindInput, actorInput]) input.addEventListener("input", changed);

  const unsubscribe = [
    stream.on("log", (event) => {
      // The first page and the stream can both carry the events of the moment it loaded.
      if (before !== null || !matches(event) || (shown.length && event.id <= shown[0].id)) return;
      if (shown.length === 0) tbody.replaceChildren();
      shown.unshift(event);
      tbody.prepend(row(event));
      while (tbody.children.length > LIMIT) tbody.lastElementChild.remove();
    }),
    stream.on("resync", () => {
      if (before === null) load();
    }),
  ];
  load();
  return () => {
    unsubscribe.forEach((off) => off());
    changed.cancel();
  };
}
