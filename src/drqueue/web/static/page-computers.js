// The computers: load, memory, what each runs and how far, pools, slots and GPUs.  Admins
// enable and disable them, set their task limit and edit pool membership.  The list is read
// again on the stream's farm tick (every 2 s, at most one read per 2 s) and on pool or
// computer events.

import { get, isAdmin, post, put, del, seg } from "./api.js";
import { DASH, ago, fullTime, h, mib, num, plural, replace, throttle } from "./dom.js";
import * as stream from "./stream.js";
import { badge, card, emptyRow, failure, jobLink, showError, td, toast } from "./ui.js";

const STATES = ["busy", "idle", "offline", "disabled"];

/** busy, idle, offline or disabled: what the dashboard counts. */
export function computerState(c) {
  if (!c.online) return "offline";
  if (!c.enabled) return "disabled";
  return c.running && c.running.length ? "busy" : "idle";
}

export function mount(main, { query, setQuery }) {
  let filter = query.get("state") || "";
  let search = query.get("q") || "";
  let computers = [];
  let pools = [];
  let progress = new Map(); // "job:task" -> progress, for running tasks without it
  const admin = isAdmin();

  const stateSelect = h("select", { id: "c-state" }, h("option", { value: "", text: "every state" }),
    ...STATES.map((s) => h("option", { value: s, text: s })));
  stateSelect.value = filter;
  const searchInput = h("input", { type: "search", id: "c-q", value: search, placeholder: "Name or pool", "aria-label": "Search computers" });
  const summary = h("span", { class: "muted" });
  const tbody = h("tbody");
  const table = h("table", { class: "table computers-table responsive", "aria-label": "Computers" },
    h("thead", {}, h("tr", {}, ...["Computer", "State", "Load", "Memory", "Running", "Slots", "GPUs", "Pools", "Task limit", admin ? "Control" : null]
      .filter(Boolean).map((label) => h("th", { scope: "col", text: label })))),
    tbody);
  const poolBox = h("div", { class: "pools-box" });
  const columns = admin ? 10 : 9;

  main.appendChild(h("div", { class: "page computers" },
    h("div", { class: "page-head" }, h("h1", { text: "Computers" }), summary),
    h("form", { class: "filters", role: "search", "aria-label": "Filter computers", onsubmit: (e) => e.preventDefault() },
      searchInput,
      h("span", { class: "filter" }, h("label", { for: "c-state", text: "State" }), stateSelect)),
    h("div", { class: "table-wrap" }, table),
    card("Pools", { id: "pools" }, poolBox)));

  async function load() {
    try {
      [computers, pools] = await Promise.all([get("/computers"), get("/pools")]);
    } catch (error) {
      replace(tbody, h("tr", {}, h("td", { colspan: String(columns) }, failure(error, load))));
      return;
    }
    await loadProgress();
    render();
  }

  /** Progress of running tasks whose computer entry does not carry it. */
  async function loadProgress() {
    const wanted = [];
    for (const c of computers) {
      for (const r of c.running || []) {
        if (r.progress === undefined || r.progress === null) wanted.push([r.job ?? r.job_id, r.task ?? r.task_index]);
      }
    }
    const next = new Map();
    await Promise.all(wanted.slice(0, 50).map(async ([job, task]) => {
      try {
        const t = await get(`/jobs/${seg(job)}/tasks/${seg(task)}`);
        next.set(`${job}:${task}`, t.progress);
      } catch {
        // gone meanwhile
      }
    }));
    progress = next;
  }

  // Rows are kept, keyed by name, and updated in place: a refresh every 2 s must never wipe a
  // limit being typed, close a pool menu or move the button under the pointer.
  const rowsByName = new Map(); // name -> {tr, cells, c, keys}
  let refocus = null; // the computer whose pool controls get the focus once redrawn

  function render() {
    const q = search.toLowerCase();
    const shown = computers.filter((c) => (!filter || computerState(c) === filter)
      && (!q || c.name.toLowerCase().includes(q) || (c.pools || []).some((p) => p.toLowerCase().includes(q))));
    const names = new Set(computers.map((c) => c.name));
    for (const name of [...rowsByName.keys()]) if (!names.has(name)) rowsByName.delete(name);
    const wanted = shown.map((c) => {
      const row = rowsByName.get(c.name) || makeRow(c);
      rowsByName.set(c.name, row);
      updateRow(row, c);
      return row.tr;
    });
    if (!shown.length) {
      replace(tbody, emptyRow(columns, computers.length ? "No computer matches." : "No computer has joined yet: start `drqueue slave`."));
    } else if (wanted.length !== tbody.children.length || wanted.some((tr, i) => tbody.children[i] !== tr)) {
      replace(tbody, ...wanted);
    }
    const counts = {};
    for (const c of computers) counts[computerState(c)] = (counts[computerState(c)] || 0) + 1;
    summary.textContent = `${plural(computers.length, "computer")}: ${STATES.map((s) => `${num(counts[s] || 0)} ${s}`).join(" · ")}`;
    renderPools();
  }

  function bar(fraction, label) {
    const meter = h("span", { class: "meter-bar", role: "img", "aria-label": label },
      h("span", { class: ["meter-fill", fraction > 0.9 && "high"] }));
    meter.firstChild.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
    return h("span", { class: "meter" }, meter, h("span", { class: "meter-text", text: label }));
  }

  function makeRow(c) {
    const cells = {
      name: td({ "data-label": "Computer" }),
      state: td({ "data-label": "State" }),
      load: td({ "data-label": "Load" }),
      memory: td({ "data-label": "Memory" }),
      running: td({ "data-label": "Running" }),
      slots: td({ "data-label": "Slots", class: "num" }),
      gpus: td({ "data-label": "GPUs", class: "num" }),
      pools: td({ "data-label": "Pools" }),
      limit: td({ "data-label": "Task limit", class: "num" }),
      control: admin ? td({ "data-label": "Control" }) : null,
    };
    const row = { tr: h("tr", { dataset: { computer: c.name } }, ...Object.values(cells)), cells, c, keys: {} };
    if (admin) {
      row.limitInput = h("input", { type: "number", class: "num-input", min: "0", step: "1", id: `c-${c.name}-limit`,
        placeholder: "none", "aria-label": `Task limit of ${c.name} (empty: no limit)` });
      row.limitInput.addEventListener("input", () => { row.limitInput.dataset.dirty = "1"; });
      const form = h("form", { class: "inline-form" }, row.limitInput, h("button", { type: "submit", class: "btn btn-small" }, "Set"));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        setLimit(row);
      });
      cells.limit.appendChild(form);
      row.toggle = h("button", { type: "button", class: "btn btn-small", id: `c-${c.name}-toggle`,
        dataset: { toggle: c.name }, onclick: () => action(row.c, row.c.enabled ? "disable" : "enable") });
      cells.control.appendChild(row.toggle);
    }
    return row;
  }

  function updateRow(row, c) {
    row.c = c;
    const { cells } = row;
    const state = computerState(c);
    row.tr.className = `computer-row st-row-${state}`;
    const used = c.ram_mb ? (c.ram_mb - (c.free_ram_mb || 0)) : 0;
    replace(cells.name, h("strong", { text: c.name }),
      h("span", { class: "sub muted", text: [c.os, c.arch, c.cores ? `${c.cores} cores` : ""].filter(Boolean).join(" · "),
        title: c.last_seen ? `last seen ${fullTime(c.last_seen)}` : "" }));
    replace(cells.state, badge(state),
      state === "offline" && c.last_seen ? h("span", { class: "sub muted", text: `seen ${ago(c.last_seen)}` }) : null);
    replace(cells.load, c.cores ? bar(c.load / c.cores, `${(c.load ?? 0).toFixed(2)} / ${c.cores}`) : String(c.load ?? DASH));
    replace(cells.memory, c.ram_mb ? bar(used / c.ram_mb, `${mib(used)} / ${mib(c.ram_mb)}`) : DASH);
    const running = (c.running || []).map((r) => {
      const job = r.job ?? r.job_id;
      const task = r.task ?? r.task_index;
      const p = r.progress ?? progress.get(`${job}:${task}`);
      return h("div", { class: "running-task" },
        jobLink(job, `#${job}`), h("a", { href: `/jobs/${job}?task=${task}`, text: ` task ${task}` }),
        p === undefined || p === null ? null : h("span", { class: "muted", text: ` ${Math.round(p * 100)}%` }));
    });
    replace(cells.running, ...(running.length ? running : [h("span", { class: "muted", text: DASH })]));
    cells.slots.textContent = String(c.slots ?? DASH);
    cells.gpus.textContent = String(c.gpus ?? 0);
    const poolsKey = JSON.stringify([c.pools || [], pools.map((p) => p.name)]);
    if (row.keys.pools !== poolsKey && !cells.pools.contains(document.activeElement)) {
      row.keys.pools = poolsKey;
      replace(cells.pools, poolChips(c));
      if (refocus === c.name) {
        refocus = null;
        cells.pools.querySelector("select, button")?.focus();
      }
    }
    const limit = c.max_tasks === null || c.max_tasks === undefined ? "" : String(c.max_tasks);
    if (!admin) {
      cells.limit.textContent = limit === "" ? "none" : limit;
    } else if (row.keys.limit !== limit && document.activeElement !== row.limitInput && !row.limitInput.dataset.dirty) {
      row.keys.limit = limit;
      row.limitInput.value = limit;
    }
    if (admin) {
      row.toggle.textContent = c.enabled ? "Disable" : "Enable";
      row.toggle.classList.toggle("danger-quiet", c.enabled);
    }
  }

  function poolChips(c) {
    const chips = h("span", { class: "chips" });
    for (const pool of c.pools || []) {
      chips.appendChild(h("span", { class: "chip" }, pool,
        admin ? h("button", { type: "button", class: "chip-x", "aria-label": `Remove ${c.name} from pool ${pool}`,
          onclick: () => membership(c.name, pool, false) }, "×") : null));
    }
    if (admin) {
      const missing = pools.filter((p) => !(c.pools || []).includes(p.name));
      if (missing.length) {
        const add = h("select", { class: "chip-add", "aria-label": `Add ${c.name} to a pool`, id: `c-${c.name}-addpool` },
          h("option", { value: "", text: "+ pool" }), ...missing.map((p) => h("option", { value: p.name, text: p.name })));
        add.addEventListener("change", () => {
          if (add.value) membership(c.name, add.value, true);
        });
        chips.appendChild(add);
      }
    }
    if (!chips.children.length) chips.appendChild(h("span", { class: "muted", text: DASH }));
    return chips;
  }

  async function setLimit(row) {
    const name = row.c.name;
    const value = row.limitInput.value.trim();
    try {
      await put(`/computers/${seg(name)}/limit`, { max_tasks: value === "" ? null : Number(value) });
      delete row.limitInput.dataset.dirty;
      row.keys.limit = undefined;
      toast(`${name}: task limit ${value === "" ? "removed" : value}`);
      load();
    } catch (error) {
      showError(error, `${name}: task limit`);
    }
  }

  async function action(c, verb) {
    try {
      await post(`/computers/${seg(c.name)}/${verb}`);
      toast(`${c.name} ${verb}d`);
      load();
    } catch (error) {
      showError(error, `${c.name}: ${verb}`);
    }
  }

  async function membership(computer, pool, member) {
    try {
      if (member) await post(`/pools/${seg(pool)}/members`, { computer });
      else await del(`/pools/${seg(pool)}/members/${seg(computer)}`);
      toast(`${computer} ${member ? "added to" : "removed from"} ${pool}`);
      // The control used is redrawn: give the focus back to the row's pool controls after.
      const cell = rowsByName.get(computer)?.cells.pools;
      if (cell && cell.contains(document.activeElement)) {
        document.activeElement.blur();
        refocus = computer;
      }
      load();
    } catch (error) {
      showError(error, `Pool ${pool}`);
    }
  }

  const poolList = h("ul", { class: "pool-list" });
  let poolsKey = null;
  function renderPools() {
    const key = JSON.stringify(pools);
    if (key === poolsKey) return;
    poolsKey = key;
    replace(poolList, ...pools.map((p) => h("li", {},
      h("strong", { text: p.name }), p.description ? h("span", { class: "muted", text: ` ${p.description}` }) : null,
      h("span", { class: "muted", text: ` · ${p.members && p.members.length ? p.members.join(", ") : "no members"}` }))));
    if (!pools.length) poolList.appendChild(h("li", { class: "muted", text: "No pools." }));
  }
  poolBox.appendChild(poolList);
  if (admin) {
    const nameInput = h("input", { type: "text", id: "new-pool", placeholder: "gpu", "aria-label": "New pool name" });
    const form = h("form", { class: "inline-form" }, h("label", { for: "new-pool", text: "New pool" }), nameInput,
      h("button", { type: "submit", class: "btn btn-small" }, "Create"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = nameInput.value.trim();
      try {
        await post("/pools", { name });
        toast(`Pool ${name} created`);
        nameInput.value = "";
        load();
      } catch (error) {
        showError(error, "New pool");
      }
    });
    poolBox.appendChild(form);
  }

  stateSelect.addEventListener("change", () => {
    filter = stateSelect.value;
    setQuery({ state: filter, q: search });
    render();
  });
  searchInput.addEventListener("input", () => {
    search = searchInput.value.trim();
    setQuery({ state: filter, q: search });
    render();
  });

  const refresh = throttle(() => {
    if (document.visibilityState === "visible") load();
  }, 2000);
  const unsubscribe = [
    stream.on("farm", refresh),
    stream.on("log", (event) => {
      if (/^(computer|pool)\./.test(event.kind)) refresh();
    }),
    stream.on("resync", refresh),
  ];
  load();
  return () => {
    unsubscribe.forEach((off) => off());
    refresh.cancel();
  };
}
