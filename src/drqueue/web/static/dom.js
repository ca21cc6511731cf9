// DOM building and formatting helpers shared by every page.
//
// Everything the UI shows that came from the master goes in as text (textContent, text
// nodes, attributes), never as HTML: a job's name or a log line cannot become markup.
// The page's Content-Security-Policy forbids inline style attributes, so sizes and
// positions are set through element.style from script, which CSP allows.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Build an element: h("button", {class: "btn", onclick: fn, type: "button"}, "Stop").
 *  A tag "svg:rect" makes an SVG element. Children: nodes, strings (as text), arrays, or
 *  null/false (skipped). */
export function h(tag, props, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "style" || key === "innerHTML" || key === "outerHTML") {
      throw new Error(`h(): ${key} is not allowed`);
    }
    if (key === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key === "dataset") {
      for (const [name, item] of Object.entries(value)) el.dataset[name] = String(item);
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (!svg && key in el && !key.includes("-") && key !== "list" && key !== "form") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nodes, strings as text, arrays; null and false are skipped). */
export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** Replace every child of *el*. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Call *fn* at most once per *ms*: the first call runs at once (in a task of its own),
 *  calls inside the window that follows run it once more at the window's end. */
export function throttle(fn, ms) {
  let timer = null;
  let last = -Infinity;
  const throttled = () => {
    if (timer !== null) return;
    const wait = Math.max(0, last + ms - performance.now());
    timer = setTimeout(() => {
      timer = null;
      last = performance.now();
      fn();
    }, wait);
  };
  throttled.cancel = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
  return throttled;
}

/** Call *fn* once *ms* after the last call. */
export function debounce(fn, ms) {
  let timer = null;
  const debounced = (...args) => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn(...args);
    }, ms);
  };
  debounced.cancel = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
  return debounced;
}

// -- formatting ---------------------------------------------------------------------------------

export const DASH = "—";

/** 3725 -> "1h 02m"; 65 -> "1m 05s"; 4.2 -> "4.2s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return DASH;
  if (seconds < 0) seconds = 0;
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  if (seconds < 60) return `${Math.round(seconds)}s`;
  const s = Math.round(seconds);
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = s % 60;
  if (days) return `${days}d ${String(hours).padStart(2, "0")}h`;
  if (hours) return `${hours}h ${String(minutes).padStart(2, "0")}m`;
  return `${minutes}m ${String(secs).padStart(2, "0")}s`;
}

/** Kibibytes as "512 KiB", "1.2 GiB". */
export function kib(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size < 10 && unit ? size.toFixed(1) : Math.round(size)} ${units[unit]}`;
}

/** Mebibytes as "15.6 GiB". */
export function mib(value) {
  return value === null || value === undefined ? DASH : kib(value * 1024);
}

/** Bytes as "12.3 KiB". */
export function bytes(value) {
  if (value < 1024) return `${value} B`;
  return kib(value / 1024);
}

const TIME = new Intl.DateTimeFormat(undefined, {
  hourCycle: "h23",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const DATE_TIME = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hourCycle: "h23",
  hour: "2-digit",
  minute: "2-digit",
});
const FULL = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium", hourCycle: "h23" });

/** A stored timestamp (epoch seconds) as "14:03:21" today, else "Mar 3, 14:03". */
export function when(epoch) {
  if (!epoch) return DASH;
  const date = new Date(epoch * 1000);
  const now = new Date();
  return date.toDateString() === now.toDateString() ? TIME.format(date) : DATE_TIME.format(date);
}

/** The full date and time, for a title (tooltip). */
export function fullTime(epoch) {
  return epoch ? FULL.format(new Date(epoch * 1000)) : "";
}

/** "3 min ago". */
export function ago(epoch) {
  if (!epoch) return DASH;
  const seconds = Date.now() / 1000 - epoch;
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** A frame range: "12", "1–100", "1–99 by 2". */
export function frames(start, end, step = 1) {
  if (start === end) return String(start);
  return step > 1 ? `${start}–${end} by ${step}` : `${start}–${end}`;
}

/** 1234567 -> "1,234,567". */
const NUMBER = new Intl.NumberFormat();
export function num(value) {
  return value === null || value === undefined ? DASH : NUMBER.format(value);
}

/** "1 task", "2 tasks". */
export function plural(count, word, many = `${word}s`) {
  return `${num(count)} ${count === 1 ? word : many}`;
}
