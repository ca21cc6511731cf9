// The dashboard: one glance says what the farm is doing and what is stuck.
//
// Slaves and jobs by state and the frames-per-hour chart come from the stream's "farm"
// message (every 2 s, one read of the store for every browser).  The jobs that need a human
// (in error, hosts blocked, waiting on a dependency that cannot finish) are read once, then
// follow the stream's "jobs" messages; the activity list follows its "log" messages.  So an
// open dashboard costs the master nothing but its place in the stream.

import { get, mayControl, post, seg } from "./api.js";
import { ago, fullTime, h, num, plural, replace } from "./dom.js";
import * as stream from "./stream.js";
import { badge, card, failure, jobLink, liveEvents, progressBar, showError, toast } from "./ui.js";

const SLAVE_STATES = ["busy", "idle", "offline", "disabled"];
const JOB_STATES = ["running", "queued", "waiting", "stopped", "error", "finished"];
const ACTIVITY = 12;

/** Why *job* needs a human, or null. A waiting job is stuck when a dependency cannot finish:
 *  the scheduler's waiting reason says so in the words of models.dependency_dead_end. */
export function attentionReason(job) {
  const why = [];
  if (job.counts && job.counts.error) why.push(`${plural(job.counts.error, "task")} in error`);
  if (job.blocked_hosts && job.blocked_hosts.length) {
    why.push(`hosts blocked after repeated failures: ${job.blocked_hosts.join(", ")}`);
  }
  const reason = job.waiting_reason || "";
  if (job.status === "waiting" && (job.stalled || /\((deleted|ended in|stopped:|waits for)/.test(reason))) {
    why.push(reason);
  }
  return why.length ? why.join(" · ") : null;
}

export function mount(main) {
  const slaveBox = h("div", { class: "stat-row" });
  const jobBox = h("div", { class: "stat-row" });
  const chartBox = h("div", { class: "chart-box" });
  const engines = h("span", { class: "muted" });
  const attention = h("div", { class: "attention" }, h("p", { class: "muted", text: "Loading…" }));
  const activity = h("ol", { class: "activity" });

  main.appendChild(h("div", { class: "page dashboard" },
    h("div", { class: "page-head" }, h("h1", { text: "Farm" }), engines),
    h("div", { class: "dash-grid" },
      card("Slaves", { id: "slaves", className: "dash-slaves" }, slaveBox),
      card("Jobs", { id: "jobstates", className: "dash-jobs" }, jobBox),
      card("Frames per hour", { id: "fph", className: "dash-chart" }, chartBox),
      card("Needs attention", { id: "attention", className: "dash-attention" }, attention),
      card("Recent activity", {
        id: "activity",
        className: "dash-activity",
        actions: h("a", { href: "/events", class: "more", text: "All events" }),
      }, activity))));

  function showFarm(farm) {
    engines.textContent = `${plural(farm.engines ?? 0, "engine")} online`;
    replace(slaveBox, ...SLAVE_STATES.map((state) =>
      stat(state, farm.computers?.[state] ?? 0, `/computers?state=${state}`)));
    const jobs = farm.jobs || {};
    const states = [...JOB_STATES, ...Object.keys(jobs).filter((s) => !JOB_STATES.includes(s))];
    replace(jobBox, ...states.map((state) => stat(state, jobs[state] ?? 0, `/jobs?state=${state}`)));
    replace(chartBox, framesChart(farm.frames_per_hour || []));
  }

  // The jobs that need a human: read once (and after a reconnect), then kept up to date from
  // the stream's "jobs" messages, which carry every job that changed: no read per browser.
  const stuck = new Map(); // job id -> job

  async function loadAttention() {
    try {
      const jobs = await get("/jobs", { attention: "true", limit: 100, offset: 0, sort: "id", order: "desc" });
      stuck.clear();
      for (const job of jobs) if (attentionReason(job)) stuck.set(job.id, job);
      showAttention();
    } catch (error) {
      replace(attention, failure(error, loadAttention));
    }
  }

  function onJobs(message) {
    for (const id of message.deleted || []) stuck.delete(id);
    for (const job of message.jobs || []) {
      if (attentionReason(job)) stuck.set(job.id, job);
      else stuck.delete(job.id);
    }
    showAttention();
  }

  function showAttention() {
    const listed = [...stuck.values()].sort((x, y) => y.id - x.id);
    if (!listed.length) {
      replace(attention, h("p", { class: "all-good" },
        h("span", { "aria-hidden": "true", text: "✓ " }), "Nothing needs you: no job in error, blocked or stuck."));
      return;
    }
    const list = h("ul", { class: "attention-list" });
    for (const job of listed.slice(0, 20)) list.appendChild(attentionItem(job, attentionReason(job)));
    replace(attention, list,
      listed.length > 20 && h("p", { class: "muted" }, `and ${num(listed.length - 20)} more: `,
        h("a", { href: "/jobs?state=error", text: "jobs in error" })));
  }

  function attentionItem(job, why) {
    const actions = h("div", { class: "row-actions" });
    if (mayControl(job) && (job.counts.error || job.counts.cancelled)) {
      actions.appendChild(h("button", { type: "button", class: "btn btn-small", onclick: async () => {
        try {
          await post(`/jobs/${seg(job.id)}/requeue-failed`);
          toast(`Job ${job.id}: failed tasks requeued`);
        } catch (error) {
          showError(error, `Job ${job.id}`);
        }
      } }, "Requeue failed"));
    }
    return h("li", { class: "attention-item" },
      h("div", { class: "attention-main" },
        badge(job.status),
        jobLink(job.id, `#${job.id} ${job.name || "(unnamed)"}`),
        h("span", { class: "muted", text: job.owner })),
      h("p", { class: "attention-why", text: why }),
      h("div", { class: "attention-foot" }, progressBar(job.counts), actions));
  }

  const activityList = liveEvents(activity, {
    load: () => get("/events", { limit: ACTIVITY }),
    item: activityItem,
    limit: ACTIVITY,
    empty: "No events yet.",
  });
  const loadActivity = activityList.reload;

  const unsubscribe = [
    stream.on("farm", showFarm),
    stream.on("jobs", onJobs),
    stream.on("log", activityList.add),
    stream.on("resync", () => {
      loadAttention();
      loadActivity();
    }),
  ];
  if (!stream.latestFarm()) {
    replace(slaveBox, h("p", { class: "muted", text: "Waiting for the farm's counts…" }));
  }
  loadAttention();
  loadActivity();
  const ticker = setInterval(() => {
    for (const time of activity.querySelectorAll("time[data-at]")) time.textContent = ago(Number(time.dataset.at));
  }, 15000);
  return () => {
    unsubscribe.forEach((off) => off());
    clearInterval(ticker);
  };
}

function stat(state, count, href) {
  return h("a", { class: ["stat", `stat-${state}`, !count && "zero"], href },
    h("span", { class: "stat-num", text: num(count) }),
    badge(state));
}

function activityItem(event) {
  return h("li", { class: "event" },
    h("time", { datetime: new Date(event.at * 1000).toISOString(), title: fullTime(event.at),
      dataset: { at: event.at }, text: ago(event.at) }),
    h("div", { class: "event-body" },
      h("div", { class: "event-line" },
        h("span", { class: "event-kind", text: event.kind }),
        event.job_id !== null && event.job_id !== undefined ? jobLink(event.job_id) : null,
        event.actor ? h("span", { class: "muted", text: `by ${event.actor}` }) : null),
      h("div", { class: "event-msg", text: event.message })));
}

/** The last 24 hours' finished frames, one bar an hour, as SVG; the last bar is this hour. */
export function framesChart(counts) {
  const values = counts.slice(-24);
  while (values.length < 24) values.unshift(0);
  const width = 480;
  const height = 120;
  const top = 10;
  const bottom = 20;
  const left = 4;
  const peak = Math.max(1, ...values);
  const step = (width - left) / 24;
  const plot = height - top - bottom;
  const total = values.reduce((a, b) => a + b, 0);
  // The master's buckets are hours of the clock in UTC, the last one this hour; each is
  // labelled with its start in the browser's time.
  const thisHour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const svg = h("svg:svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": `Frames finished per hour over the last 24 hours: ${num(total)} in all, ${num(values[23])} this hour, at most ${num(peak)} in one hour`,
  });
  for (let i = 0; i <= 2; i += 1) {
    const y = top + (plot * i) / 2;
    svg.appendChild(h("svg:line", { x1: left, x2: width, y1: y, y2: y, class: "chart-grid" }));
  }
  values.forEach((value, i) => {
    const barHeight = value ? Math.max(2, (plot * value) / peak) : 0;
    const hour = new Date(thisHour - (23 - i) * 3_600_000).getHours();
    const rect = h("svg:rect", {
      x: left + i * step + 1,
      y: top + plot - barHeight,
      width: Math.max(1, step - 3),
      height: barHeight,
      class: i === 23 ? "chart-bar now" : "chart-bar",
    });
    rect.appendChild(h("svg:title", { text: `${String(hour).padStart(2, "0")}:00: ${num(value)} frames` }));
    svg.appendChild(rect);
    if (i % 6 === 0 || i === 23) {
      svg.appendChild(h("svg:text", {
        x: left + i * step + step / 2, y: height - 5, class: "chart-label", "text-anchor": "middle",
        text: i === 23 ? "now" : `${String(hour).padStart(2, "0")}h`,
      }));
    }
  });
  return h("div", {},
    h("div", { class: "chart-summary" },
      h("span", { class: "big", text: num(total) }), " frames in 24 h · ",
      h("strong", { text: num(values[23]) }), " this hour · peak ", num(Math.max(...values)), "/h"),
    svg);
}
