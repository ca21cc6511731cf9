// The jobs table: paged, sorted and filtered by the master (GET /jobs?offset&limit&sort&...,
// X-Total-Count), so 10,000 jobs cost one page of 50.  The stream updates the rows in view at
// once and asks for the page again (at most every 2 s) when a job arrives, leaves or changes
// state under a filter.  Bulk actions send one request per selected job.

import { get, mayControl, page, session } from "./api.js";
import { DASH, debounce, duration, fullTime, h, num, plural, replace, throttle, when } from "./dom.js";
import * as stream from "./stream.js";
import {
  badge, confirmJobAction, emptyRow, failure, pager, progressBar, runJobAction, setPriority,
  showError, sortHeader, td, toast, updateProgressBar,
} from "./ui.js";

const LIMIT = 50;
const STATES = ["queued", "running", "waiting", "stopping", "stopped", "finished", "error", "cancelled"];
const BULK = [
  ["stop", "Stop"],
  ["continue", "Continue"],
  ["kill", "Kill"],
  ["requeue-failed", "Requeue failed"],
  ["delete", "Delete"],
];
const COLUMNS = 10;

export function mount(main, { query, setQuery }) {
  const state = {
    q: query.get("q") || "",
    owner: query.get("owner") || "",
    state: query.get("state") || "",
    pool: query.get("pool") || "",
    renderer: query.get("renderer") || "",
    sort: query.get("sort") || "id",
    order: query.get("order") || "desc",
    offset: Math.max(0, Number(query.get("offset")) || 0),
  };
  const selected = new Set();
  let rows = new Map(); // job id -> {job, tr}
  let total = null;
  let loading = 0;

  // -- filters --
  const search = h("input", { type: "search", id: "f-q", value: state.q, placeholder: "Search names", "aria-label": "Search job names" });
  const owner = h("input", { type: "text", id: "f-owner", value: state.owner, placeholder: "any owner", list: "owners" });
  const stateSelect = select("f-state", [["", "any state"], ...STATES.map((s) => [s, s])], state.state);
  const poolSelect = select("f-pool", [["", "any pool"]], state.pool);
  const rendererSelect = select("f-renderer", [["", "any renderer"]], state.renderer);
  const mine = h("button", { type: "button", class: "btn btn-quiet", text: "Mine",
    onclick: () => { owner.value = session.current.name; changed(); } });
  const clear = h("button", { type: "button", class: "btn btn-quiet", text: "Clear filters",
    onclick: () => {
      search.value = owner.value = stateSelect.value = poolSelect.value = rendererSelect.value = "";
      changed();
    } });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter jobs", onsubmit: (e) => e.preventDefault() },
    search,
    field("Owner", owner, "f-owner"), mine,
    field("State", stateSelect, "f-state"),
    field("Pool", poolSelect, "f-pool"),
    field("Renderer", rendererSelect, "f-renderer"),
    clear);

  // -- bulk bar --
  const bulkText = h("span", { class: "bulk-text", role: "status" });
  const priorityInput = h("input", { type: "number", class: "num-input", id: "bulk-priority", step: "1", placeholder: "50", "aria-label": "New priority" });
  const bulk = h("div", { class: "bulk", hidden: true, role: "region", "aria-label": "Selected jobs" },
    bulkText,
    ...BULK.map(([action, label]) => h("button", {
      type: "button", class: ["btn", (action === "kill" || action === "delete") && "danger"],
      dataset: { bulk: action }, onclick: () => runBulk(action, label),
    }, label)),
    h("form", { class: "inline-form", onsubmit: (e) => { e.preventDefault(); bulkPriority(); } },
      h("label", { for: "bulk-priority", class: "muted", text: "Priority" }), priorityInput,
      h("button", { type: "submit", class: "btn" }, "Set")),
    h("button", { type: "button", class: "btn btn-quiet", onclick: () => { selected.clear(); syncSelection(); } }, "Clear selection"));

  const allBox = h("input", { type: "checkbox", "aria-label": "Select every job on this page", onchange: () => {
    for (const { job } of rows.values()) {
      if (!mayControl(job)) continue;
      if (allBox.checked) selected.add(job.id);
      else selected.delete(job.id);
    }
    syncSelection();
  } });
  const thead = h("thead");
  const tbody = h("tbody");
  const table = h("table", { class: "table jobs-table responsive", "aria-label": "Jobs" }, thead, tbody);
  const pagerBox = h("div", { class: "pager-box" });
  const status = h("p", { class: "sr-only", role: "status" });
  const count = h("span", { class: "muted" });

  main.appendChild(h("div", { class: "page jobs" },
    h("div", { class: "page-head" }, h("h1", { text: "Jobs" }), count,
      h("a", { class: "btn primary", href: "/submit", text: "Submit a job" })),
    filters, bulk,
    h("div", { class: "table-wrap" }, table),
    pagerBox, status,
    h("datalist", { id: "owners" })));

  function select(id, options, value) {
    const el = h("select", { id });
    for (const [v, label] of options) el.appendChild(h("option", { value: v, text: label }));
    el.value = value;
    return el;
  }

  function field(label, control, id) {
    return h("span", { class: "filter" }, h("label", { for: id, text: label }), control);
  }

  function renderHead() {
    const onSort = (key) => {
      if (state.sort === key) state.order = state.order === "asc" ? "desc" : "asc";
      else {
        state.sort = key;
        state.order = key === "name" || key === "owner" ? "asc" : "desc";
      }
      state.offset = 0;
      renderHead();
      load();
    };
    replace(thead, h("tr", {},
      h("th", { scope: "col", class: "col-check" }, allBox),
      sortHeader("ID", "id", state, onSort, "col-id"),
      sortHeader("Name", "name", state, onSort, "col-name"),
      sortHeader("Owner", "owner", state, onSort, "col-owner"),
      sortHeader("Status", "status", state, onSort, "col-status"),
      sortHeader("Progress", "progress", state, onSort, "col-progress"),
      sortHeader("Priority", "priority", state, onSort, "col-priority num"),
      sortHeader("ETA", "eta", state, onSort, "col-eta num"),
      h("th", { scope: "col", class: "col-renderer", text: "Renderer" }),
      sortHeader("Submitted", "submitted", state, onSort, "col-submitted")));
  }

  function params() {
    return {
      offset: state.offset, limit: LIMIT, sort: state.sort, order: state.order,
      q: state.q, owner: state.owner, state: state.state, pool: state.pool, renderer: state.renderer,
    };
  }

  async function load() {
    const ticket = ++loading;
    setQuery({ ...params(), limit: undefined, offset: state.offset || undefined,
      sort: state.sort === "id" ? undefined : state.sort, order: state.order === "desc" ? undefined : state.order });
    table.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await page("/jobs", params());
    } catch (error) {
      if (ticket !== loading) return;
      replace(tbody, h("tr", {}, h("td", { colspan: COLUMNS }, failure(error, load))));
      table.removeAttribute("aria-busy");
      return;
    }
    if (ticket !== loading) return; // a newer request is on its way
    table.removeAttribute("aria-busy");
    total = answer.total;
    if (!answer.items.length && state.offset > 0 && total !== null && state.offset >= total) {
      state.offset = Math.max(0, Math.floor((total - 1) / LIMIT) * LIMIT);
      load();
      return;
    }
    renderRows(answer.items);
  }

  function renderRows(jobs) {
    const next = new Map();
    const frag = document.createDocumentFragment();
    for (const job of jobs) {
      const known = rows.get(job.id);
      const tr = known ? known.tr : h("tr", { dataset: { job: job.id } });
      fillRow(tr, job);
      next.set(job.id, { job, tr });
      frag.appendChild(tr);
    }
    rows = next;
    for (const id of [...selected]) if (!rows.has(id)) selected.delete(id);
    replace(tbody, frag);
    if (!jobs.length) tbody.appendChild(emptyRow(COLUMNS, anyFilter() ? "No job matches these filters." : "No jobs yet: submit one."));
    count.textContent = total === null ? "" : plural(total, "job");
    replace(pagerBox, pager({ offset: state.offset, limit: LIMIT, count: jobs.length, total, label: "Job pages",
      onPage: (offset) => { state.offset = offset; load(); main.focus({ preventScroll: true }); } }));
    status.textContent = `Showing ${jobs.length} jobs`;
    const owners = main.querySelector("#owners");
    const seen = new Set([session.current.name, ...jobs.map((j) => j.owner)]);
    replace(owners, ...[...seen].sort().map((name) => h("option", { value: name })));
    syncSelection();
  }

  function anyFilter() {
    return Boolean(state.q || state.owner || state.state || state.pool || state.renderer);
  }

  function fillRow(tr, job) {
    const controllable = mayControl(job);
    const box = h("input", {
      type: "checkbox", checked: selected.has(job.id), disabled: !controllable,
      "aria-label": `Select job ${job.id}`, title: controllable ? "" : "Not your job",
      onchange: (e) => {
        if (e.target.checked) selected.add(job.id);
        else selected.delete(job.id);
        syncSelection();
      },
    });
    tr.className = `job-row st-row-${job.status}`;
    tr.dataset.status = job.status;
    const eta = ["finished", "error", "cancelled"].includes(job.status) ? DASH : duration(job.eta_seconds);
    replace(tr,
      td({ class: "col-check" }, box),
      td({ class: "col-id num", "data-label": "ID" }, h("a", { href: `/jobs/${job.id}`, text: `#${job.id}`, tabindex: "-1" })),
      td({ class: "col-name", "data-label": "Name" },
        h("a", { href: `/jobs/${job.id}`, class: "job-name", text: job.name || "(unnamed)" }),
        h("span", { class: "sub muted", text: `#${job.id} · ${job.owner} · ${job.renderer}` })),
      td({ class: "col-owner", "data-label": "Owner", text: job.owner }),
      td({ class: "col-status", "data-label": "Status" }, badge(job.status),
        job.waiting_reason ? h("span", { class: "sub muted reason", text: job.waiting_reason, title: job.waiting_reason }) : null),
      td({ class: "col-progress", "data-label": "Progress" }, progressBar(job.counts),
        h("span", { class: "sub muted", text: `${num(job.counts.finished)}/${num(job.counts.total)}` })),
      td({ class: "col-priority num", "data-label": "Priority", text: String(job.priority) }),
      td({ class: "col-eta num", "data-label": "ETA", text: eta }),
      td({ class: "col-renderer", "data-label": "Renderer", text: job.renderer }),
      td({ class: "col-submitted", "data-label": "Submitted", title: fullTime(job.submitted_at), text: when(job.submitted_at) }));
  }

  function syncSelection() {
    const n = selected.size;
    bulk.hidden = n === 0;
    bulkText.textContent = `${plural(n, "job")} selected`;
    const selectable = [...rows.values()].filter(({ job }) => mayControl(job));
    allBox.checked = selectable.length > 0 && selectable.every(({ job }) => selected.has(job.id));
    allBox.indeterminate = !allBox.checked && selectable.some(({ job }) => selected.has(job.id));
    allBox.disabled = selectable.length === 0;
    for (const { job, tr } of rows.values()) {
      const box = tr.querySelector(".col-check input");
      if (box) box.checked = selected.has(job.id);
      tr.classList.toggle("selected", selected.has(job.id));
    }
  }

  function selectedJobs() {
    return [...selected].map((id) => rows.get(id)?.job || { id, owner: session.current.name });
  }

  async function runBulk(action, label) {
    const jobs = selectedJobs();
    const answer = await confirmJobAction(action, plural(jobs.length, "job"));
    if (!answer) return;
    const failures = [];
    for (const job of jobs) {
      try {
        await runJobAction(job, action, { force: answer.checked });
      } catch (error) {
        failures.push(`#${job.id}: ${error.message}`);
      }
    }
    const done = jobs.length - failures.length;
    if (done) toast(`${label}: ${plural(done, "job")} done`);
    if (failures.length) toast(`${label} refused for ${failures.join("; ")}`, "error");
    if (action === "delete") selected.clear();
    load();
  }

  async function bulkPriority() {
    const value = Number(priorityInput.value);
    if (priorityInput.value === "" || !Number.isInteger(value)) {
      toast("Priority: give a whole number", "error");
      return;
    }
    const failures = [];
    const jobs = selectedJobs();
    for (const job of jobs) {
      try {
        await setPriority(job, value);
      } catch (error) {
        failures.push(`#${job.id}: ${error.message}`);
      }
    }
    if (jobs.length > failures.length) toast(`Priority ${value} set on ${plural(jobs.length - failures.length, "job")}`);
    if (failures.length) toast(`Priority refused for ${failures.join("; ")}`, "error");
    load();
  }

  // -- filters change --
  function changed() {
    state.q = search.value.trim();
    state.owner = owner.value.trim();
    state.state = stateSelect.value;
    state.pool = poolSelect.value;
    state.renderer = rendererSelect.value;
    state.offset = 0;
    selected.clear();
    load();
  }
  const typed = debounce(changed, 250);
  search.addEventListener("input", typed);
  owner.addEventListener("input", typed);
  for (const el of [stateSelect, poolSelect, rendererSelect]) el.addEventListener("change", changed);

  // -- live --
  const reload = throttle(load, 2000);

  /** Whether a job not shown might belong on this page now (then the page is read again): not
   *  when the filters exclude it, nor, sorted by id, when its id falls beyond this page. */
  function mayBelongHere(job) {
    if (state.owner && job.owner !== state.owner) return false;
    if (state.state && job.status !== state.state) return false;
    if (state.renderer && job.renderer !== state.renderer) return false;
    if (state.q && !(job.name || "").toLowerCase().includes(state.q.toLowerCase())) return false;
    if (state.pool && !(job.requirements?.pools || []).includes(state.pool)) return false;
    if (state.sort === "id" && rows.size >= LIMIT) {
      const ids = [...rows.keys()];
      return state.order === "asc" ? job.id < Math.max(...ids) : job.id > Math.min(...ids);
    }
    return true;
  }
  function onJobs(message) {
    if (message.deleted && message.deleted.some((id) => rows.has(id))) {
      reload();
      return;
    }
    let outside = false;
    for (const job of message.jobs || []) {
      const row = rows.get(job.id);
      if (!row) {
        outside = outside || mayBelongHere(job);
        continue;
      }
      if (state.state && job.status !== state.state) outside = true;
      if (row.job.status !== job.status && state.sort === "status") outside = true;
      row.job = job;
      const bar = row.tr.querySelector(".progress-wrap");
      if (bar && row.tr.dataset.status === job.status) {
        updateProgressBar(bar, job.counts);
        row.tr.querySelector(".col-progress .sub").textContent = `${num(job.counts.finished)}/${num(job.counts.total)}`;
        row.tr.querySelector(".col-eta").textContent = ["finished", "error", "cancelled"].includes(job.status) ? DASH : duration(job.eta_seconds);
        row.tr.querySelector(".col-priority").textContent = String(job.priority);
      } else {
        fillRow(row.tr, job);
      }
      row.tr.dataset.status = job.status;
    }
    if (outside && (message.jobs || []).length) reload();
    syncSelection();
  }
  const unsubscribe = [stream.on("jobs", onJobs), stream.on("resync", reload)];

  async function loadChoices() {
    try {
      const [pools, renderers] = await Promise.all([get("/pools"), get("/renderers")]);
      for (const pool of pools) poolSelect.appendChild(h("option", { value: pool.name, text: pool.name }));
      for (const renderer of renderers) rendererSelect.appendChild(h("option", { value: renderer.name, text: renderer.name }));
      poolSelect.value = state.pool;
      rendererSelect.value = state.renderer;
    } catch (error) {
      showError(error, "Filters");
    }
  }

  renderHead();
  load();
  loadChoices();
  return () => {
    unsubscribe.forEach((off) => off());
    reload.cancel();
    typed.cancel();
  };
}
