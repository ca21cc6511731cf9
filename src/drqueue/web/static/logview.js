// A task's log: the live tail of a running task, and the paged log of an ended one.
//
// GET /jobs/ID/log?task=N answers a chunk of the log of task N (its current attempt), with
// X-Log-Size (the whole log) and X-Log-Offset (where the chunk starts).  While the task runs
// the view asks every second for what was added since the last answer; once it has ended,
// the view pages through the log a chunk at a time.  Text is put in a <pre> as text.

import { request, seg } from "./api.js";
import { bytes, h, num } from "./dom.js";

const CHUNK = 64 * 1024;
const KEEP = 512 * 1024; // characters a live tail keeps before dropping its oldest
const POLL_MS = 1000;

export class LogView {
  constructor(jobId) {
    this.jobId = jobId;
    this.index = null;
    this.active = false;
    this.timer = null;
    this.generation = 0;
    this.pre = h("pre", { class: "log", tabindex: "0", "aria-label": "Task log" });
    this.info = h("span", { class: "log-info muted", role: "status" });
    this.buttons = {
      start: this.button("« Start", () => this.showPage(0)),
      older: this.button("‹ Older", () => this.showPage(Math.max(0, this.start - CHUNK))),
      newer: this.button("Newer ›", () => this.showPage(this.start + CHUNK)),
      end: this.button("End »", () => this.showEnd()),
    };
    this.el = h("div", { class: "logview" },
      h("div", { class: "log-bar" }, this.info,
        h("span", { class: "log-buttons" }, ...Object.values(this.buttons))),
      this.pre);
  }

  button(label, onclick) {
    return h("button", { type: "button", class: "btn btn-small", onclick }, label);
  }

  /** Show the log of task *index*; *active* while it runs. */
  show(index, active) {
    if (index === this.index && active === this.active) return;
    const endedNow = index === this.index && this.active && !active;
    this.index = index;
    this.active = active;
    this.stopPolling();
    if (endedNow) {
      this.poll().then(() => this.afterTail()); // its last lines, then the paged view
      return;
    }
    this.generation += 1;
    this.setButtons(false);
    if (active) this.startTail();
    else this.showEnd();
  }

  destroy() {
    this.generation += 1;
    this.stopPolling();
  }

  stopPolling() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  setButtons(enabled) {
    for (const button of Object.values(this.buttons)) button.hidden = !enabled;
  }

  async fetchChunk(params) {
    const resp = await request("GET", `/jobs/${seg(this.jobId)}/log`, {
      params: { task: this.index, ...params },
      raw: true,
      headers: { Accept: "text/plain" },
    });
    const data = new Uint8Array(await resp.arrayBuffer());
    return {
      data,
      size: Number(resp.headers.get("X-Log-Size")) || 0,
      offset: Number(resp.headers.get("X-Log-Offset")) || 0,
    };
  }

  noLog(error) {
    this.setButtons(false);
    this.pre.textContent = "";
    this.info.textContent = error.status === 404 ? `No log: ${error.message}` : `The log cannot be read: ${error.message}`;
  }

  // -- live tail --

  async startTail() {
    const generation = this.generation;
    this.info.textContent = "Live: following the log as it grows";
    try {
      const chunk = await this.fetchChunk({ limit: CHUNK });
      if (generation !== this.generation) return;
      this.decoder = new TextDecoder();
      this.pre.textContent = this.decoder.decode(chunk.data, { stream: true });
      this.offset = chunk.offset + chunk.data.length;
      this.size = chunk.size;
      this.scrollToEnd(true);
    } catch (error) {
      if (generation !== this.generation) return;
      if (error.status !== 404) {
        this.noLog(error);
        return;
      }
      this.offset = 0;
      this.info.textContent = "Live: waiting for the log to start…";
    }
    this.schedule(generation);
  }

  schedule(generation) {
    if (!this.active || generation !== this.generation) return;
    this.timer = setTimeout(() => this.poll().then(() => this.schedule(generation)), POLL_MS);
  }

  async poll() {
    const generation = this.generation;
    let chunk;
    try {
      chunk = await this.fetchChunk({ offset: this.offset || 0 });
    } catch (error) {
      return; // not started yet, or a moment of trouble: the next poll tries again
    }
    if (generation !== this.generation) return;
    if (chunk.size < (this.offset || 0)) {
      // A new attempt wrote a new log: start over.
      this.pre.textContent = "";
      this.decoder = new TextDecoder();
      this.offset = 0;
      return;
    }
    if (chunk.data.length) {
      const atEnd = this.isAtEnd();
      this.pre.append(this.decoder.decode(chunk.data, { stream: true }));
      this.offset = chunk.offset + chunk.data.length;
      if (this.pre.textContent.length > KEEP) {
        this.pre.textContent = this.pre.textContent.slice(-KEEP);
      }
      this.scrollToEnd(atEnd);
    }
    this.size = chunk.size;
    if (this.active) this.info.textContent = `Live: ${bytes(this.size)} so far`;
  }

  afterTail() {
    this.start = Math.max(0, (this.size || 0) - CHUNK);
    this.showEnd();
  }

  isAtEnd() {
    return this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 24;
  }

  scrollToEnd(wanted) {
    if (wanted) this.pre.scrollTop = this.pre.scrollHeight;
  }

  // -- pages of an ended task's log --

  async showEnd() {
    const generation = this.generation;
    try {
      const chunk = await this.fetchChunk({ limit: CHUNK });
      if (generation !== this.generation) return;
      this.showChunk(chunk);
      this.scrollToEnd(true);
    } catch (error) {
      if (generation === this.generation) this.noLog(error);
    }
  }

  async showPage(offset) {
    const generation = this.generation;
    try {
      const chunk = await this.fetchChunk({ offset, limit: CHUNK });
      if (generation !== this.generation) return;
      this.showChunk(chunk);
      this.pre.scrollTop = 0;
    } catch (error) {
      if (generation === this.generation) this.noLog(error);
    }
  }

  showChunk(chunk) {
    this.start = chunk.offset;
    this.size = chunk.size;
    const end = chunk.offset + chunk.data.length;
    this.pre.textContent = new TextDecoder().decode(chunk.data);
    const whole = chunk.offset === 0 && end >= chunk.size;
    this.setButtons(!whole);
    this.buttons.start.disabled = this.buttons.older.disabled = chunk.offset === 0;
    this.buttons.newer.disabled = this.buttons.end.disabled = end >= chunk.size;
    this.info.textContent = whole
      ? `The whole log: ${bytes(chunk.size)}`
      : `Bytes ${num(chunk.offset)}–${num(end)} of ${num(chunk.size)} (${bytes(chunk.size)})`;
    if (!chunk.size) this.info.textContent = "The log is empty.";
  }
}
