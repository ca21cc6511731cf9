// The frame grid of a job: one cell per task on a canvas, so 10,000 tasks cost one small
// answer (GET /jobs/ID/frames, a letter per task) and one drawing, not 10,000 elements.
//
// Each state has a colour AND a shape, so the grid reads without colour: queued is a dim
// square, dispatched an outline with a dot, running half filled, finished filled, error
// filled with a cross, cancelled an outline with a slash.  The legend draws the same shapes
// with their counts.  Mouse: hover names the cell, click opens its task.  Keyboard: the grid
// is one tab stop; arrow keys, Home and End move, Enter opens.

import { h, num } from "./dom.js";

export const STATES = {
  q: { name: "queued", colour: "#7d8796" },
  d: { name: "dispatched", colour: "#8cc8ff" },
  r: { name: "running", colour: "#4ea1f3" },
  f: { name: "finished", colour: "#3fb57a" },
  e: { name: "error", colour: "#ef5d60" },
  c: { name: "cancelled", colour: "#c49a4a" },
};
const ORDER = ["f", "r", "d", "e", "c", "q"];
const MARK = "#0f1115";
const QUEUED_FILL = "#2b313b";

/** Draw one cell of *state* at (x, y), *size* px square. */
export function drawCell(ctx, x, y, size, state) {
  const look = STATES[state] || STATES.q;
  const line = size >= 9 ? 1.5 : 1;
  const inset = line / 2;
  ctx.lineWidth = line;
  ctx.strokeStyle = look.colour;
  ctx.fillStyle = look.colour;
  switch (state) {
    case "f":
      ctx.fillRect(x, y, size, size);
      break;
    case "e":
      ctx.fillRect(x, y, size, size);
      ctx.strokeStyle = MARK;
      ctx.beginPath();
      ctx.moveTo(x + size * 0.22, y + size * 0.22);
      ctx.lineTo(x + size * 0.78, y + size * 0.78);
      ctx.moveTo(x + size * 0.78, y + size * 0.22);
      ctx.lineTo(x + size * 0.22, y + size * 0.78);
      ctx.stroke();
      break;
    case "r":
      ctx.strokeRect(x + inset, y + inset, size - line, size - line);
      ctx.fillRect(x, y + size / 2, size, size / 2);
      break;
    case "d":
      ctx.strokeRect(x + inset, y + inset, size - line, size - line);
      ctx.fillRect(x + size * 0.3, y + size * 0.3, size * 0.4, size * 0.4);
      break;
    case "c":
      ctx.strokeRect(x + inset, y + inset, size - line, size - line);
      ctx.beginPath();
      ctx.moveTo(x + size - inset, y + inset);
      ctx.lineTo(x + inset, y + size - inset);
      ctx.stroke();
      break;
    default:
      // Queued: a dim square, outlined when there is room (a 10,000-cell grid of outlines
      // shimmers).
      ctx.fillStyle = QUEUED_FILL;
      ctx.fillRect(x, y, size, size);
      if (size >= 9) {
        ctx.strokeStyle = look.colour;
        ctx.strokeRect(x + inset, y + inset, size - line, size - line);
      }
  }
}

/** A small canvas of one state's look, for legends. */
export function swatch(state, size = 12) {
  const canvas = h("canvas", { class: "swatch", width: size * 2, height: size * 2, "aria-hidden": "true" });
  canvas.style.width = `${size}px`;
  canvas.style.height = `${size}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(2, 2);
  drawCell(ctx, 0, 0, size, state);
  return canvas;
}

function cellSize(count) {
  if (count <= 400) return 16;
  if (count <= 1500) return 11;
  if (count <= 6000) return 8;
  return 6;
}

export class FrameGrid {
  /** *onOpen(index)* opens a task. */
  constructor({ onOpen }) {
    this.onOpen = onOpen;
    this.data = null;
    this.selected = null;
    this.cursor = 0;
    this.hover = null;
    this.canvas = h("canvas", {
      class: "grid-canvas",
      tabindex: "0",
      role: "img",
      "aria-describedby": "grid-help",
    });
    this.tip = h("div", { class: "grid-tip", role: "tooltip", hidden: true });
    this.live = h("div", { class: "sr-only", "aria-live": "polite" });
    this.legend = h("ul", { class: "legend", "aria-label": "Tasks by state" });
    this.scroller = h("div", { class: "grid-scroll" }, this.canvas, this.tip);
    this.el = h("div", { class: "frame-grid" },
      this.legend,
      this.scroller,
      h("p", { id: "grid-help", class: "hint" },
        "One cell per task. Click a cell, or focus the grid and use the arrow keys and Enter, to open its task."),
      this.live);
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("mouseleave", () => this.setHover(null));
    this.canvas.addEventListener("click", (e) => {
      const index = this.indexAt(e.offsetX, e.offsetY);
      if (index !== null) {
        this.cursor = index;
        this.onOpen(index);
      }
    });
    this.canvas.addEventListener("keydown", (e) => this.onKey(e));
    this.canvas.addEventListener("focus", () => {
      this.announce(this.cursor);
      this.draw();
    });
    this.canvas.addEventListener("blur", () => this.draw());
    this.resizer = new ResizeObserver(() => this.layout());
    this.resizer.observe(this.scroller);
  }

  destroy() {
    this.resizer.disconnect();
  }

  /** New data from GET /jobs/ID/frames. */
  update(data) {
    const sameShape = this.data && this.data.states.length === data.states.length;
    this.data = data;
    if (this.cursor >= data.states.length) this.cursor = 0;
    this.renderLegend();
    if (sameShape) this.draw();
    else this.layout();
    if (this.hover !== null) this.showTip(this.hover);
  }

  select(index) {
    this.selected = index;
    if (index !== null) this.cursor = index;
    this.draw();
  }

  /** The frames task *index* renders: [first, last, step]. */
  framesOf(index) {
    const { start, end, step, block_size: block } = this.data;
    const first = start + index * block * step;
    const last = Math.min(end, first + (block - 1) * step);
    return [first, last, step];
  }

  describe(index) {
    const [first, last] = this.framesOf(index);
    const frames = first === last ? `frame ${first}` : `frames ${first}–${last}`;
    const state = STATES[this.data.states[index]]?.name || "unknown";
    return `Task ${index} · ${frames} · ${state}`;
  }

  renderLegend() {
    const counts = {};
    for (const letter of this.data.states) counts[letter] = (counts[letter] || 0) + 1;
    this.counts = counts;
    this.legend.replaceChildren(
      ...ORDER.map((letter) =>
        h("li", { class: ["legend-item", !counts[letter] && "zero"] },
          swatch(letter),
          h("span", { text: STATES[letter].name }),
          h("span", { class: "count", text: num(counts[letter] || 0) }))),
    );
    const total = this.data.states.length;
    const parts = ORDER.filter((l) => counts[l]).map((l) => `${num(counts[l])} ${STATES[l].name}`);
    this.canvas.setAttribute("aria-label", `Frame grid of ${num(total)} tasks: ${parts.join(", ")}`);
  }

  layout() {
    if (!this.data) return;
    const count = this.data.states.length;
    this.size = cellSize(count);
    this.gap = this.size >= 11 ? 3 : 2;
    const pitch = this.size + this.gap;
    const width = Math.max(pitch, this.scroller.clientWidth - 2);
    this.cols = Math.max(1, Math.floor((width + this.gap) / pitch));
    this.rows = Math.max(1, Math.ceil(count / this.cols));
    const cssWidth = this.cols * pitch - this.gap + 4;
    const cssHeight = this.rows * pitch - this.gap + 4;
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(cssWidth * ratio);
    this.canvas.height = Math.round(cssHeight * ratio);
    this.canvas.style.width = `${cssWidth}px`;
    this.canvas.style.height = `${cssHeight}px`;
    this.canvas.dataset.cols = String(this.cols);
    this.canvas.dataset.pitch = String(pitch);
    this.ratio = ratio;
    this.draw();
  }

  draw() {
    if (!this.data || !this.cols) return;
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const { states } = this.data;
    const pitch = this.size + this.gap;
    for (let i = 0; i < states.length; i += 1) {
      const x = 2 + (i % this.cols) * pitch;
      const y = 2 + Math.floor(i / this.cols) * pitch;
      drawCell(ctx, x, y, this.size, states[i]);
    }
    const ring = (index, colour, dashed) => {
      if (index === null || index >= states.length) return;
      const x = 2 + (index % this.cols) * pitch;
      const y = 2 + Math.floor(index / this.cols) * pitch;
      ctx.save();
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      if (dashed) ctx.setLineDash([2, 2]);
      ctx.strokeRect(x - 1.5, y - 1.5, this.size + 3, this.size + 3);
      ctx.restore();
    };
    ring(this.selected, "#ffffff", false);
    if (document.activeElement === this.canvas) ring(this.cursor, "#ffd866", true);
  }

  indexAt(x, y) {
    if (!this.data) return null;
    const pitch = this.size + this.gap;
    const col = Math.floor((x - 2) / pitch);
    const row = Math.floor((y - 2) / pitch);
    if (col < 0 || col >= this.cols || row < 0) return null;
    const index = row * this.cols + col;
    return index < this.data.states.length ? index : null;
  }

  onMove(event) {
    this.setHover(this.indexAt(event.offsetX, event.offsetY), event);
  }

  setHover(index) {
    this.hover = index;
    this.canvas.classList.toggle("pointing", index !== null);
    if (index === null) {
      this.tip.hidden = true;
      return;
    }
    this.showTip(index);
  }

  showTip(index) {
    const pitch = this.size + this.gap;
    this.tip.textContent = this.describe(index);
    this.tip.hidden = false;
    const x = 2 + (index % this.cols) * pitch;
    const y = 2 + Math.floor(index / this.cols) * pitch;
    const maxLeft = Math.max(0, this.scroller.clientWidth - this.tip.offsetWidth - 4);
    this.tip.style.left = `${Math.min(x, maxLeft)}px`;
    this.tip.style.top = `${y + this.size + 6}px`;
  }

  announce(index) {
    if (!this.data || !this.data.states.length) return;
    this.live.textContent = this.describe(index);
  }

  onKey(event) {
    if (!this.data) return;
    const count = this.data.states.length;
    let next = this.cursor;
    switch (event.key) {
      case "ArrowRight": next += 1; break;
      case "ArrowLeft": next -= 1; break;
      case "ArrowDown": next += this.cols; break;
      case "ArrowUp": next -= this.cols; break;
      case "Home": next = 0; break;
      case "End": next = count - 1; break;
      case "PageDown": next += this.cols * 10; break;
      case "PageUp": next -= this.cols * 10; break;
      case "Enter":
      case " ":
        event.preventDefault();
        this.onOpen(this.cursor);
        return;
      default:
        return;
    }
    event.preventDefault();
    this.cursor = Math.max(0, Math.min(count - 1, next));
    this.announce(this.cursor);
    this.showTip(this.cursor);
    this.draw();
    const pitch = this.size + this.gap;
    const y = 2 + Math.floor(this.cursor / this.cols) * pitch;
    if (y < this.scroller.scrollTop) this.scroller.scrollTop = y - 4;
    else if (y + pitch > this.scroller.scrollTop + this.scroller.clientHeight) {
      this.scroller.scrollTop = y + pitch - this.scroller.clientHeight + 4;
    }
  }
}
