// Pieces every page uses: state badges, the stacked progress bar, job controls, toasts, a
// confirmation dialog, a pager and sortable table headers.
//
// A state is never told by colour alone: each badge has a glyph and a word, each progress
// bar segment a pattern and a label.

import { API, ApiError, del, mayControl, post, put, seg } from "./api.js";
import { DASH, h, num, replace } from "./dom.js";

// -- states ---------------------------------------------------------------------------------------

/** The glyph beside each state's word (jobs, tasks and computers share one vocabulary). */
const GLYPHS = {
  queued: "○",
  dispatched: "→",
  running: "▶",
  stopping: "‖",
  stopped: "■",
  waiting: "◷",
  finished: "✓",
  error: "✕",
  cancelled: "⊘",
  busy: "▶",
  idle: "○",
  offline: "◌",
  disabled: "⊘",
  online: "●",
};

export function badge(state, label = state) {
  return h(
    "span",
    { class: `badge st-${state}` },
    h("span", { class: "glyph", "aria-hidden": "true", text: GLYPHS[state] || "•" }),
    label,
  );
}

// -- the stacked progress bar -----------------------------------------------------------------------

const SEGMENTS = [
  ["finished", "done"],
  ["running", "running"],
  ["error", "failed"],
  ["cancelled", "cancelled"],
];

/** The percentage of a job's tasks finished (100 only when all are). */
export function percentDone(counts) {
  if (!counts || !counts.total) return 0;
  const percent = (100 * counts.finished) / counts.total;
  return counts.finished === counts.total ? 100 : Math.min(99, Math.floor(percent));
}

function progressLabel(counts) {
  const parts = [`${num(counts.finished)} of ${num(counts.total)} done`];
  if (counts.running) parts.push(`${num(counts.running)} running`);
  if (counts.error) parts.push(`${num(counts.error)} failed`);
  if (counts.cancelled) parts.push(`${num(counts.cancelled)} cancelled`);
  if (counts.queued) parts.push(`${num(counts.queued)} queued`);
  return parts.join(", ");
}

/** A stacked bar (done, running, failed, cancelled; the rest is queued) and its text. */
export function progressBar(counts, { wide = false } = {}) {
  const bar = h("div", {
    class: ["progress", wide && "wide"],
    role: "progressbar",
    "aria-valuemin": "0",
    "aria-valuemax": "100",
  });
  for (const [key] of SEGMENTS) bar.appendChild(h("span", { class: `seg seg-${key}` }));
  const text = h("span", { class: "progress-text" });
  const el = h("div", { class: "progress-wrap" }, bar, text);
  updateProgressBar(el, counts);
  return el;
}

export function updateProgressBar(el, counts) {
  const bar = el.querySelector(".progress");
  const total = counts.total || 0;
  SEGMENTS.forEach(([key], i) => {
    const share = total ? (100 * (counts[key] || 0)) / total : 0;
    bar.children[i].style.width = `${share}%`;
  });
  const percent = percentDone(counts);
  const label = progressLabel(counts);
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-valuetext", `${percent}%: ${label}`);
  bar.dataset.percent = String(percent);
  bar.title = label;
  el.querySelector(".progress-text").textContent = `${percent}%`;
  el.querySelector(".progress-text").title = label;
}

// -- toasts ---------------------------------------------------------------------------------------

/** A short message in the corner (errors stay until dismissed). */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const close = h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", { text: message }), close);
  close.addEventListener("click", () => item.remove());
  box.appendChild(item);
  if (kind !== "error") setTimeout(() => item.remove(), 5000);
  while (box.children.length > 5) box.firstElementChild.remove();
}

/** Show an API error as a toast; anything else is a bug, shown and logged. */
export function showError(error, what = "") {
  if (!(error instanceof ApiError)) console.error(error);
  const text = error instanceof ApiError ? error.message : String(error);
  toast(what ? `${what}: ${text}` : text, "error");
}

// -- a confirmation dialog ------------------------------------------------------------------------

/** Ask before a destructive action. Resolves to null (cancelled) or {checked} for the
 *  optional checkbox. */
export function confirmDialog({ title, message, confirm, danger = false, checkbox = null }) {
  return new Promise((resolve) => {
    const box = checkbox ? h("input", { type: "checkbox", id: "confirm-check" }) : null;
    const ok = h("button", { type: "submit", class: ["btn", danger && "danger"], value: "ok" }, confirm);
    const cancel = h("button", { type: "button", class: "btn" }, "Cancel");
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "dialog-title", text: title }),
        h("p", { text: message }),
        checkbox && h("label", { class: "check" }, box, checkbox),
        h("div", { class: "dialog-buttons" }, cancel, ok)));
    let answer = null;
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("submit", () => {
      answer = { checked: box ? box.checked : false };
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    ok.focus();
  });
}

// -- job controls ---------------------------------------------------------------------------------

/** The actions a job offers in its state: [action, label, needs confirmation]. */
export function jobActions(job) {
  const c = job.counts;
  const ended = ["finished", "error", "cancelled"].includes(job.status);
  const actions = [];
  if (job.control === "active" && !ended) actions.push(["stop", "Stop"]);
  if (job.control === "stopped" && !ended) actions.push(["continue", "Continue"]);
  if (c.running) actions.push(["kill", "Kill"]);
  if (c.error || c.cancelled) actions.push(["requeue-failed", "Requeue failed"]);
  if (ended || job.status === "stopped") actions.push(["rerun", "Rerun all"]);
  actions.push(["delete", "Delete"]);
  return actions;
}

/** Run one job action; resolves to the job as the API answers it (or null for a delete). */
export async function runJobAction(job, action, { force = false } = {}) {
  if (action === "delete") {
    await del(`/jobs/${seg(job.id)}`, force ? { force: "true" } : undefined);
    return null;
  }
  return post(`/jobs/${seg(job.id)}/${action}`);
}

export function setPriority(job, priority) {
  return put(`/jobs/${seg(job.id)}/priority`, { priority });
}

/** Ask for confirmation where an action cannot be undone; null if the user said no. */
export async function confirmJobAction(action, what) {
  if (action === "kill") {
    return confirmDialog({
      title: `Kill ${what}?`,
      message: "Running tasks are stopped now and go back to the queue; the job stays stopped.",
      confirm: "Kill",
      danger: true,
    });
  }
  if (action === "delete") {
    return confirmDialog({
      title: `Delete ${what}?`,
      message: "The job, its tasks and their logs' records are removed. This cannot be undone.",
      confirm: "Delete",
      danger: true,
      checkbox: "Also kill its running tasks (force)",
    });
  }
  if (action === "rerun") {
    return confirmDialog({
      title: `Rerun ${what}?`,
      message: "Every task, finished ones included, goes back to the queue.",
      confirm: "Rerun",
    });
  }
  return { checked: false };
}

/** The control bar of one job: its actions and its priority, or nothing for a job the session
 *  may not control. *changed(job|null)* gets the API's answer. */
export function jobControls(job, changed) {
  if (!mayControl(job)) return h("div", { class: "controls", hidden: true });
  const bar = h("div", { class: "controls", role: "group", "aria-label": `Controls of job ${job.id}` });
  for (const [action, label] of jobActions(job)) {
    const danger = action === "kill" || action === "delete";
    bar.appendChild(h("button", {
      type: "button",
      class: ["btn", danger && "danger"],
      dataset: { action },
      onclick: async (event) => {
        const answer = await confirmJobAction(action, `job ${job.id}`);
        if (!answer) return;
        event.target.disabled = true;
        try {
          const updated = await runJobAction(job, action, { force: answer.checked });
          toast(`Job ${job.id}: ${label.toLowerCase()} done`);
          changed(updated);
        } catch (error) {
          showError(error, `Job ${job.id}: ${label.toLowerCase()}`);
        } finally {
          event.target.disabled = false;
        }
      },
    }, label));
  }
  const input = h("input", {
    type: "number", class: "num-input", value: String(job.priority), step: "1",
    "aria-label": `Priority of job ${job.id}`, id: `priority-${job.id}`,
  });
  const form = h("form", { class: "inline-form" },
    h("label", { for: `priority-${job.id}`, class: "muted", text: "Priority" }), input,
    h("button", { type: "submit", class: "btn" }, "Set"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const updated = await setPriority(job, Number(input.value));
      toast(`Job ${job.id}: priority ${updated.priority}`);
      changed(updated);
    } catch (error) {
      showError(error, `Job ${job.id}: priority`);
    }
  });
  bar.appendChild(form);
  return bar;
}

// -- tables ---------------------------------------------------------------------------------------

/** A header cell that sorts its table: a button, with aria-sort on the cell. */
export function sortHeader(label, key, state, onSort, className = "") {
  const active = state.sort === key;
  const th = h("th", {
    scope: "col",
    class: className,
    "aria-sort": active ? (state.order === "asc" ? "ascending" : "descending") : "none",
  });
  const arrow = active ? (state.order === "asc" ? " ▲" : " ▼") : "";
  th.appendChild(h("button", { type: "button", class: "sort", onclick: () => onSort(key) },
    label, h("span", { class: "sort-arrow", "aria-hidden": "true", text: arrow })));
  return th;
}

/** "1–50 of 1,234" with previous/next buttons. */
export function pager({ offset, limit, count, total, onPage, label = "Pages" }) {
  const first = count ? offset + 1 : 0;
  const last = offset + count;
  const text = total === null || total === undefined
    ? `${num(first)}–${num(last)}`
    : `${num(first)}–${num(last)} of ${num(total)}`;
  const hasMore = total === null || total === undefined ? count === limit : last < total;
  return h("nav", { class: "pager", "aria-label": label },
    h("button", { type: "button", class: "btn", disabled: offset <= 0,
      onclick: () => onPage(Math.max(0, offset - limit)) }, "‹ Previous"),
    h("span", { class: "pager-text", text: count || offset ? text : "nothing" }),
    h("button", { type: "button", class: "btn", disabled: !hasMore,
      onclick: () => onPage(offset + limit) }, "Next ›"));
}

/** A table cell with the label the phone layout shows before it. */
export function td(label, ...children) {
  const props = typeof label === "object" && label !== null ? label : { "data-label": label };
  return h("td", props, ...children);
}

export function jobLink(id, text = `#${id}`) {
  return h("a", { href: `/jobs/${encodeURIComponent(id)}`, text });
}

/** A card: a titled section of a page. */
export function card(title, { id, actions, className } = {}, ...body) {
  const heading = h("h2", { id: id ? `${id}-title` : undefined, text: title });
  return h("section", { class: ["card", className], id, "aria-labelledby": id ? `${id}-title` : undefined },
    h("div", { class: "card-head" }, heading, actions || null), ...body);
}

export function emptyRow(columns, text) {
  return h("tr", { class: "empty" }, h("td", { colspan: String(columns), text }));
}

/** A message in place of content that failed to load, with a retry button. */
export function failure(error, retry) {
  return h("div", { class: "failure", role: "alert" },
    h("span", { text: error instanceof ApiError ? error.message : String(error) }),
    retry && h("button", { type: "button", class: "btn", onclick: retry }, "Try again"));
}

export function thumbnailUrl(jobId, { task, version } = {}) {
  const params = new URLSearchParams();
  if (task !== undefined && task !== null) params.set("task", String(task));
  if (version !== undefined) params.set("v", String(version));
  const text = params.toString();
  return `${API}/jobs/${seg(jobId)}/thumbnail${text ? `?${text}` : ""}`;
}

/** A live list of the newest *limit* events, newest first, in the element *list*: *load* (an
 *  async function answering them oldest first, as GET /events does) fills it, the stream's
 *  "log" messages given to add() extend it.  The GET and the stream can both carry the events
 *  of the moment the page opened, so add() skips an event no newer than the newest shown. */
export function liveEvents(list, { load, item, limit, empty }) {
  let newest = -Infinity;
  async function reload() {
    try {
      const events = await load();
      newest = events.length ? Math.max(newest, events[events.length - 1].id) : newest;
      replace(list, ...events.reverse().map(item));
      if (!events.length) list.appendChild(h("li", { class: "muted", text: empty }));
    } catch (error) {
      replace(list, h("li", {}, failure(error, reload)));
    }
  }
  function add(event) {
    if (event.id <= newest) return;
    newest = event.id;
    const placeholder = list.querySelector(".muted");
    if (placeholder && !list.querySelector(".event")) placeholder.remove();
    list.prepend(item(event));
    while (list.children.length > limit) list.lastElementChild.remove();
  }
  return { reload, add };
}

export { DASH, replace };
