// One job: its header and controls, the frame grid, the task table, the open task (details,
// thumbnail, log), the last rendered frame, what it needs, why it waits, and its events.
//
// The stream's "jobs" message carries the job whenever it changes (a task dispatched, started,
// its progress written, its result recorded); the grid (one letter per task) and the task page
// are read again at most once a second after that: no page polls the master on its own.  An open running
// task is read every 2 s for its progress, and its log is tailed by LogView.

import { ApiError, get, mayControl, post, seg } from "./api.js";
import { DASH, ago, duration, fullTime, h, kib, num, plural, replace, throttle, when, frames as frameText } from "./dom.js";
import { FrameGrid } from "./framegrid.js";
import { LogView } from "./logview.js";
import * as stream from "./stream.js";
import {
  badge, card, confirmDialog, emptyRow, failure, jobActions, jobControls, jobLink, pager, progressBar,
  liveEvents, showError, td, thumbnailUrl, toast, updateProgressBar,
} from "./ui.js";

const TASK_PAGE = 100;
const ACTIVE = new Set(["dispatched", "running"]);
const TASK_STATES = ["queued", "dispatched", "running", "finished", "error", "cancelled"];

export function mount(main, { params, query, setQuery, navigate, setTitle }) {
  const jobId = Number(params[0]);
  let job = null;
  let openTask = query.has("task") ? Number(query.get("task")) : null;
  let taskState = "";
  let taskOffset = 0;
  let controlsKey = "";
  let thumbVersion = null;
  let taskTimer = null;
  let destroyed = false;

  const root = h("div", { class: "page job-page" }, h("p", { class: "muted", text: "Loading…" }));
  main.appendChild(root);

  // -- the parts, built once --
  const title = h("h1", { class: "job-title" });
  const statusBox = h("span", { class: "job-status" });
  const meta = h("p", { class: "job-meta muted" });
  const progress = progressBar({ total: 0, finished: 0 }, { wide: true });
  const progressInfo = h("p", { class: "job-progress-info" });
  const controlsBox = h("div", { class: "job-controls" });
  const notices = h("div", { class: "notices" });
  const grid = new FrameGrid({ onOpen: (index) => openTaskPanel(index, true) });
  const gridError = h("div");
  const gridCard = card("Frames", { id: "frames" }, gridError, grid.el);
  const stateFilter = h("select", { id: "task-state", "aria-label": "Show tasks in state" },
    h("option", { value: "", text: "every state" }),
    ...TASK_STATES.map((s) => h("option", { value: s, text: s })));
  const taskBody = h("tbody");
  const taskPager = h("div", { class: "pager-box" });
  const taskTable = h("table", { class: "table tasks-table responsive", "aria-label": "Tasks" },
    h("thead", {}, h("tr", {}, ...["Task", "Frames", "State", "Host", "Attempts", "Time", "CPU", "Peak memory", "Exit", "Reason"]
      .map((label) => h("th", { scope: "col", text: label })))),
    taskBody);
  const tasksCard = card("Tasks", { id: "tasks", actions: h("span", { class: "filter" },
    h("label", { for: "task-state", text: "Show" }), stateFilter) },
  h("div", { class: "table-wrap" }, taskTable), taskPager);
  const panelBody = h("div", { class: "task-panel-body" });
  const panelTitle = h("h2", { id: "task-panel-title" });
  const panelClose = h("button", { type: "button", class: "btn btn-quiet btn-small", "aria-label": "Close the task", onclick: () => closeTaskPanel() }, "✕ Close");
  const panel = h("section", { class: "card task-panel", id: "task-panel", hidden: true, "aria-labelledby": "task-panel-title", tabindex: "-1" },
    h("div", { class: "card-head" }, panelTitle, panelClose), panelBody);
  const logView = new LogView(jobId);
  const thumbImg = h("img", { class: "thumb", alt: "The last rendered frame", hidden: true });
  const thumbNote = h("p", { class: "muted thumb-note", text: "No rendered image yet." });
  const thumbCard = card("Last rendered frame", { id: "thumb" }, h("div", { class: "thumb-box" }, thumbImg, thumbNote));
  const details = h("dl", { class: "details" });
  const detailsCard = card("Details", { id: "details" }, details);
  const eventsList = h("ol", { class: "activity" });
  const eventsCard = card("Events", { id: "job-events", actions: h("a", { class: "more", href: `/events?job=${jobId}`, text: "All" }) }, eventsList);

  thumbImg.addEventListener("load", () => {
    thumbImg.hidden = false;
    thumbNote.hidden = true;
  });
  thumbImg.addEventListener("error", () => {
    thumbImg.hidden = true;
    thumbNote.hidden = false;
  });

  function layout() {
    replace(root,
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "/jobs", text: "‹ Jobs" })),
      h("div", { class: "job-head" },
        h("div", { class: "job-head-main" }, h("div", { class: "title-row" }, title, statusBox), meta),
        controlsBox),
      h("div", { class: "job-progress" }, progress, progressInfo),
      notices,
      h("div", { class: "job-grid" },
        h("div", { class: "job-main" }, gridCard, tasksCard),
        h("div", { class: "job-side" }, panel, thumbCard, detailsCard, eventsCard)));
  }

  // -- the job --
  function showJob(next) {
    const statusChanged = !job || job.status !== next.status;
    job = next;
    setTitle(`#${job.id} ${job.name || ""}`);
    title.textContent = `#${job.id} ${job.name || "(unnamed)"}`;
    replace(statusBox, badge(job.status));
    replace(meta,
      h("span", { text: job.owner }), " · ", h("span", { text: job.renderer }), " · ",
      `frames ${frameText(job.start, job.end, job.step)}`,
      job.block_size > 1 ? ` · ${job.block_size} per task` : "",
      " · submitted ", h("time", { title: fullTime(job.submitted_at), text: when(job.submitted_at) }),
      ` · priority ${job.priority}`);
    updateProgressBar(progress, job.counts);
    const c = job.counts;
    const ended = ["finished", "error", "cancelled"].includes(job.status);
    replace(progressInfo,
      h("strong", { text: `${num(c.finished)} of ${plural(c.total, "task")} done` }),
      c.running ? ` · ${num(c.running)} running` : "",
      c.error ? ` · ${num(c.error)} failed` : "",
      c.cancelled ? ` · ${num(c.cancelled)} cancelled` : "",
      c.queued ? ` · ${num(c.queued)} queued` : "",
      ended
        ? (job.finished_at ? ` · ended ${when(job.finished_at)}` : "")
        : ` · ETA ${job.eta_seconds === null || job.eta_seconds === undefined ? "unknown" : duration(job.eta_seconds)}`);
    const key = `${mayControl(job)}|${jobActions(job).map((a) => a[0]).join()}`;
    if (key !== controlsKey) {
      controlsKey = key;
      replace(controlsBox, jobControls(job, (updated) => {
        if (updated === null) {
          toast(`Job ${jobId} deleted`);
          navigate("/jobs");
        } else {
          showJob({ ...job, ...updated });
          refresh();
        }
      }));
    } else {
      const input = controlsBox.querySelector(`#priority-${job.id}`);
      if (input && document.activeElement !== input) input.value = String(job.priority);
    }
    showNotices();
    showDetails();
    if (thumbVersion !== c.finished) {
      thumbVersion = c.finished;
      refreshThumb();
    }
    if (statusChanged) loadEvents();
  }

  function thumbUrlFor(task, version) {
    return thumbnailUrl(jobId, { task, version });
  }

  function showNotices() {
    const items = [];
    if (job.waiting_reason) {
      items.push(h("div", { class: "notice notice-wait", role: "note" },
        h("span", { class: "notice-glyph", "aria-hidden": "true", text: "◷" }),
        h("div", {}, h("strong", { text: "Why it waits: " }), h("span", { text: job.waiting_reason }))));
    }
    if (job.blocked_hosts && job.blocked_hosts.length) {
      const hosts = h("ul", { class: "host-list" });
      for (const host of job.blocked_hosts) {
        hosts.appendChild(h("li", {}, h("span", { class: "host", text: host }),
          mayControl(job) ? h("button", { type: "button", class: "btn btn-small", dataset: { unblock: host },
            onclick: () => unblock(host) }, "Unblock") : null));
      }
      items.push(h("div", { class: "notice notice-blocked", role: "note" },
        h("span", { class: "notice-glyph", "aria-hidden": "true", text: "⊘" }),
        h("div", {}, h("strong", { text: "Hosts blocked after repeated failures: " }), hosts)));
    }
    replace(notices, ...items);
  }

  async function unblock(host) {
    try {
      const updated = await post(`/jobs/${seg(jobId)}/unblock`, { host });
      toast(`Job ${jobId}: ${host} unblocked`);
      showJob({ ...job, ...updated });
    } catch (error) {
      showError(error, `Unblock ${host}`);
    }
  }

  function showDetails() {
    const r = job.requirements || {};
    const needs = [];
    if (r.os) needs.push(`OS ${r.os}`);
    if (r.min_ram_gb) needs.push(`≥ ${r.min_ram_gb} GB RAM`);
    if (r.min_cores) needs.push(`≥ ${r.min_cores} cores`);
    if (r.gpus) needs.push(plural(r.gpus, "GPU"));
    if (r.pools && r.pools.length) needs.push(`pool ${r.pools.join(" + ")}`);
    if (r.hosts && r.hosts.length) needs.push(`hosts ${r.hosts.join(", ")}`);
    if (r.exclude_hosts && r.exclude_hosts.length) needs.push(`not on ${r.exclude_hosts.join(", ")}`);
    const rows = [
      ["Requirements", needs.length ? needs.join(" · ") : "none: any slave"],
      ["Scene", job.scene || DASH],
      ["Frames", `${frameText(job.start, job.end, job.step)} (${plural(job.block_size, "frame")} per task)`],
      ["Retries", String(job.retries)],
      ["Time-out", job.timeout ? duration(job.timeout) : "none"],
      ["At most", job.max_parallel ? plural(job.max_parallel, "task") + " at once" : "no limit"],
    ];
    if (job.after && job.after.length) rows.push(["After", job.after.map((id) => jobLink(id))]);
    if (job.after_frames && job.after_frames.length) rows.push(["After, frame by frame", job.after_frames.map((id) => jobLink(id))]);
    if (job.order && (job.order !== "sequential" || job.first_frame_check)) {
      rows.push(["Task order", job.order + (job.first_frame_check ? ", first task checked alone" : "")]);
    }
    if (job.waiting_for && job.waiting_for.length) rows.push(["Waiting for", job.waiting_for.map((id) => jobLink(id))]);
    const params = Object.entries(job.params || {}).filter(([, v]) => v !== null && v !== "");
    if (params.length) {
      rows.push(["Parameters", h("ul", { class: "kv" }, ...params.map(([k, v]) =>
        h("li", {}, h("code", { text: k }), " ", h("span", { text: typeof v === "string" ? v : JSON.stringify(v) }))))]);
    }
    if (job.env && Object.keys(job.env).length) {
      rows.push(["Environment", h("ul", { class: "kv" }, ...Object.entries(job.env).map(([k, v]) =>
        h("li", {}, h("code", { text: k }), " ", h("span", { text: v }))))]);
    }
    replace(details, ...rows.flatMap(([label, value]) => [
      h("dt", { text: label }),
      h("dd", {}, ...(Array.isArray(value) ? value.flatMap((v, i) => (i ? [", ", v] : [v])) : [value])),
    ]));
  }

  // -- frames and tasks --
  async function loadFrames() {
    try {
      const data = await get(`/jobs/${seg(jobId)}/frames`);
      grid.update(data);
      if (openTask !== null) grid.select(openTask);
      replace(gridError);
    } catch (error) {
      if (!destroyed) replace(gridError, failure(error, loadFrames));
    }
  }

  async function loadTasks() {
    try {
      const tasks = await get(`/jobs/${seg(jobId)}/tasks`, { offset: taskOffset, limit: TASK_PAGE, state: taskState });
      replace(taskBody, ...tasks.map(taskRow));
      if (!tasks.length) taskBody.appendChild(emptyRow(10, taskState ? `No task is ${taskState}.` : "No tasks."));
      const total = taskState ? null : job?.counts.total ?? null;
      replace(taskPager, pager({ offset: taskOffset, limit: TASK_PAGE, count: tasks.length, total, label: "Task pages",
        onPage: (offset) => { taskOffset = offset; loadTasks(); } }));
    } catch (error) {
      replace(taskBody, h("tr", {}, h("td", { colspan: "10" }, failure(error, loadTasks))));
    }
  }

  function runTime(task) {
    if (!task.started_at) return DASH;
    const end = task.ended_at || (ACTIVE.has(task.state) ? Date.now() / 1000 : null);
    return end ? duration(end - task.started_at) : DASH;
  }

  function taskRow(task) {
    const tr = h("tr", { class: ["task-row", task.index === openTask && "selected"], dataset: { index: task.index } },
      td({ "data-label": "Task" }, h("button", { type: "button", class: "link", text: String(task.index),
        "aria-label": `Open task ${task.index}`, onclick: () => openTaskPanel(task.index, true) })),
      td({ "data-label": "Frames", text: frameText(task.start, task.end, task.step) }),
      td({ "data-label": "State" }, badge(task.state),
        ACTIVE.has(task.state) && task.progress ? h("span", { class: "muted", text: ` ${Math.round(task.progress * 100)}%` }) : null),
      td({ "data-label": "Host", text: task.computer || DASH }),
      td({ "data-label": "Attempts", class: "num", text: attemptsText(task) }),
      td({ "data-label": "Time", class: "num", text: runTime(task) }),
      td({ "data-label": "CPU", class: "num", text: task.cpu_seconds === null ? DASH : duration(task.cpu_seconds) }),
      td({ "data-label": "Peak memory", class: "num", text: kib(task.peak_rss_kb) }),
      td({ "data-label": "Exit", class: "num", text: task.exit_code === null ? DASH : String(task.exit_code) }),
      td({ "data-label": "Reason", class: "reason", title: task.reason || "" },
        failureTag(task),
        task.reason ? h("span", { class: "clamp", text: task.reason }) : null));
    tr.addEventListener("click", (event) => {
      if (event.target.closest("button, a")) return;
      openTaskPanel(task.index, true);
    });
    return tr;
  }

  /** The class of the task's last failure (oom, licence, missing-asset...), as a tag. */
  function failureTag(task) {
    return task.failure_class
      ? h("span", { class: "failure-class", dataset: { class: task.failure_class }, text: task.failure_class })
      : null;
  }

  function attemptsText(task) {
    let text = String(task.attempts);
    const extra = [];
    if (task.failures) extra.push(`${task.failures} failed`);
    if (task.lost) extra.push(`${task.lost} lost`);
    return extra.length ? `${text} (${extra.join(", ")})` : text;
  }

  // -- the open task --
  async function openTaskPanel(index, focus) {
    const changed = openTask !== index;
    openTask = index;
    grid.select(index);
    for (const tr of taskBody.querySelectorAll("tr.task-row")) tr.classList.toggle("selected", Number(tr.dataset.index) === index);
    setQuery({ task: index });
    panel.hidden = false;
    if (changed) {
      panelTitle.textContent = `Task ${index}`;
      replace(panelBody, h("p", { class: "muted", text: "Loading…" }));
    }
    await loadTask(true);
    if (focus && !destroyed) {
      panel.focus({ preventScroll: true });
      panel.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
  }

  function closeTaskPanel() {
    openTask = null;
    panel.hidden = true;
    logView.destroy();
    logView.index = null;
    logView.active = false;
    grid.select(null);
    setQuery({});
    clearTimeout(taskTimer);
    for (const tr of taskBody.querySelectorAll("tr.selected")) tr.classList.remove("selected");
  }

  async function loadTask(rebuild = false) {
    clearTimeout(taskTimer);
    if (openTask === null) return;
    const index = openTask;
    let task;
    try {
      task = await get(`/jobs/${seg(jobId)}/tasks/${seg(index)}`);
    } catch (error) {
      if (index === openTask) replace(panelBody, failure(error, () => loadTask(true)));
      return;
    }
    if (index !== openTask || destroyed) return;
    showTask(task, rebuild);
    if (ACTIVE.has(task.state)) taskTimer = setTimeout(() => loadTask(false), 2000);
  }

  let taskParts = null;
  function showTask(task, rebuild) {
    if (rebuild || !taskParts || !panelBody.contains(taskParts.facts)) {
      taskParts = {
        facts: h("dl", { class: "details task-facts" }),
        actions: h("div", { class: "controls" }),
        thumb: h("img", { class: "thumb", alt: `The image task ${task.index} rendered`, hidden: true }),
        progress: h("div", { class: "task-progress" }),
        outputs: h("div", { class: "outputs" }),
      };
      taskParts.thumb.addEventListener("load", () => { taskParts.thumb.hidden = false; });
      taskParts.thumb.addEventListener("error", () => { taskParts.thumb.hidden = true; });
      replace(panelBody, taskParts.progress, taskParts.facts, taskParts.actions, taskParts.thumb,
        taskParts.outputs, h("h3", { text: "Log" }), logView.el);
      taskParts.thumbKey = null;
    }
    const p = taskParts;
    panelTitle.textContent = `Task ${task.index} · ${task.frames === 1 ? "frame" : "frames"} ${frameText(task.start, task.end, task.step)}`;
    const percent = Math.round((task.progress || 0) * 100);
    replace(p.progress, badge(task.state),
      ACTIVE.has(task.state)
        ? h("span", { class: "task-meter" },
          h("meter", { min: "0", max: "100", value: String(percent), "aria-label": "Task progress" }),
          ` ${percent}%`)
        : null);
    const facts = [
      ["Host", task.computer || DASH],
      ["Attempts", attemptsText(task)],
      ["Started", task.started_at ? `${when(task.started_at)} (${ago(task.started_at)})` : DASH],
      ["Ended", task.ended_at ? when(task.ended_at) : DASH],
      ["Time", runTime(task)],
      ["CPU time", task.cpu_seconds === null ? DASH : duration(task.cpu_seconds)],
      ["Peak memory", kib(task.peak_rss_kb)],
      ["Exit code", task.exit_code === null ? DASH : String(task.exit_code)],
    ];
    if (task.failure_class) facts.push(["Failure", task.failure_class]);
    if (task.min_ram_mb) facts.push(["Needs memory", kib(task.min_ram_mb * 1024)]);
    if (task.failure_detail) facts.push(["Failed on", task.failure_detail, "wide"]);
    if (task.reason) facts.push(["Reason", task.reason, "wide"]);
    replace(p.facts, ...facts.flatMap(([label, value, wide]) => [
      h("dt", { class: wide, text: label }), h("dd", { class: wide, text: value })]));
    const actions = [];
    if (mayControl(job || { owner: "" })) {
      if (task.state !== "queued") actions.push(["requeue", "Requeue"]);
      if (ACTIVE.has(task.state)) actions.push(["kill", "Kill"]);
    }
    replace(p.actions, ...actions.map(([action, label]) => h("button", {
      type: "button", class: ["btn", action === "kill" && "danger"], dataset: { taskAction: action },
      onclick: async () => {
        const sure = await confirmDialog(action === "kill"
          ? { title: `Kill task ${task.index}?`, message: "Its render stops now and the task goes back to the queue.", confirm: "Kill", danger: true }
          : { title: `Requeue task ${task.index}?`, message: task.state === "finished" ? "Its frames are rendered again." : "It goes back to the queue and runs again.", confirm: "Requeue" });
        if (!sure) return;
        try {
          await post(`/jobs/${seg(jobId)}/tasks/${seg(task.index)}/${action}`);
          toast(`Task ${task.index}: ${label.toLowerCase()} done`);
          loadTask();
          refresh();
        } catch (error) {
          showError(error, `Task ${task.index}`);
        }
      },
    }, label)));
    const thumbKey = task.state === "finished" && task.outputs && task.outputs.length ? `${task.index}:${task.ended_at}` : null;
    if (thumbKey !== p.thumbKey) {
      p.thumbKey = thumbKey;
      p.thumb.hidden = true;
      if (thumbKey) p.thumb.src = thumbUrlFor(task.index, Math.round(task.ended_at || 0));
      else p.thumb.removeAttribute("src");
    }
    const outputs = task.outputs || [];
    replace(p.outputs, outputs.length
      ? h("details", {}, h("summary", { text: `${plural(outputs.length, "output")}` }),
        h("ul", { class: "output-list" }, ...outputs.slice(0, 50).map((path) => h("li", {}, h("code", { text: path })))))
      : null);
    if (task.log_path || ACTIVE.has(task.state)) logView.show(task.index, ACTIVE.has(task.state));
    else {
      logView.destroy();
      logView.index = null;
      logView.active = false;
      logView.pre.textContent = "";
      logView.info.textContent = "No log yet: the task has not run.";
      logView.setButtons(false);
    }
  }

  // -- the job's events --
  const events = liveEvents(eventsList, {
    load: () => get(`/jobs/${seg(jobId)}/events`, { limit: 20 }),
    item: eventItem,
    limit: 20,
    empty: "No events.",
  });
  const loadEvents = events.reload;

  function eventItem(event) {
    return h("li", { class: "event" },
      h("time", { title: fullTime(event.at), text: when(event.at) }),
      h("span", { class: "event-kind", text: event.kind }),
      h("span", { class: "event-msg", text: event.message }),
      event.actor ? h("span", { class: "muted", text: `by ${event.actor}` }) : null);
  }

  // -- loading and live updates --
  // The last frame's thumbnail at most every 10 s while frames finish (each one is a request
  // the master answers from a file; twice a second per page was most of a page's cost), the
  // latest one always shown in the end.
  const refreshThumb = throttle(() => {
    if (job && job.counts.finished) thumbImg.src = thumbUrlFor(undefined, job.counts.finished);
  }, 10000);
  const refresh = throttle(() => {
    loadFrames();
    loadTasks();
    if (openTask !== null) loadTask(false);
  }, 1000);

  async function loadAll() {
    try {
      const first = await get(`/jobs/${seg(jobId)}`);
      if (destroyed) return;
      if (!job) layout();
      showJob(first);
    } catch (error) {
      if (destroyed) return;
      if (error instanceof ApiError && error.status === 404) {
        replace(root, h("nav", { class: "crumbs" }, h("a", { href: "/jobs", text: "‹ Jobs" })),
          h("h1", { text: `Job ${jobId}` }), h("p", { class: "failure", role: "alert", text: error.message }));
      } else {
        replace(root, failure(error, loadAll));
      }
      return;
    }
    loadFrames();
    loadTasks();
    loadEvents();
    if (openTask !== null) openTaskPanel(openTask, false);
  }

  stateFilter.addEventListener("change", () => {
    taskState = stateFilter.value;
    taskOffset = 0;
    loadTasks();
  });

  const unsubscribe = [
    stream.on("jobs", (message) => {
      if (!job) return;
      if (message.deleted && message.deleted.includes(jobId)) {
        replace(notices, h("div", { class: "notice notice-gone", role: "alert" },
          h("strong", { text: "This job was deleted." }), " ", h("a", { href: "/jobs", text: "Back to the jobs" })));
        controlsBox.replaceChildren();
        return;
      }
      const updated = (message.jobs || []).find((j) => j.id === jobId);
      if (updated) {
        // The stream lists jobs without env and params (GET /jobs/ID has them): keep ours.
        showJob({ ...job, ...updated });
        refresh();
      }
    }),
    stream.on("log", (event) => {
      if (event.job_id === jobId && job) events.add(event);
    }),
    stream.on("resync", loadAll),
  ];
  loadAll();

  return () => {
    destroyed = true;
    unsubscribe.forEach((off) => off());
    refresh.cancel();
    refreshThumb.cancel();
    clearTimeout(taskTimer);
    logView.destroy();
    grid.destroy();
  };
}
