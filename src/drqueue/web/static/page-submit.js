// Submit a job: a form generated from each renderer's parameter schema (GET /renderers), a
// frame-range preview (POST /jobs/preview: the submit's own validation, nothing stored), and
// the API's own error messages shown at the field they name.

import { ApiError, get, isAdmin, post, session } from "./api.js";
import { debounce, frames as frameText, h, num, plural, replace } from "./dom.js";
import { card, failure, showError, toast } from "./ui.js";

const OSES = [["", "any"], ["linux", "Linux"], ["windows", "Windows"], ["darwin", "macOS"]];
const REMEMBER = "drqueue.submit.renderer";

export function mount(main, { query, navigate }) {
  const root = h("div", { class: "page submit-page" }, h("p", { class: "muted", text: "Loading…" }));
  main.appendChild(root);
  let renderers = [];
  let pools = [];
  let destroyed = false;
  let idempotencyKey = newKey();
  const inputs = {}; // path -> element (start, end, params.cmd, requirements.min_cores ...)
  const touched = new Set(); // fields the user changed: only their errors are marked while typing

  async function load() {
    try {
      [renderers, pools] = await Promise.all([get("/renderers"), get("/pools")]);
    } catch (error) {
      replace(root, failure(error, load));
      return;
    }
    if (!destroyed) build();
  }

  function newKey() {
    return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  }

  // -- building the form --

  function control(path, element, label, { help, required = false, wide = false } = {}) {
    const id = `in-${path.replace(/[^A-Za-z0-9_-]/g, "-")}`;
    element.id = id;
    element.dataset.path = path;
    const helpId = `${id}-help`;
    const errorId = `${id}-error`;
    element.setAttribute("aria-describedby", `${helpId} ${errorId}`);
    if (required) element.required = true;
    inputs[path] = element;
    const isCheck = element.type === "checkbox";
    const labelEl = h("label", { for: id }, label, required ? h("span", { class: "req", "aria-hidden": "true", text: " *" }) : null);
    return h("div", { class: ["field", wide && "wide", isCheck && "check-field"] },
      isCheck ? h("div", { class: "check" }, element, labelEl) : [labelEl, element],
      h("p", { class: "hint", id: helpId, text: help || "" }),
      h("p", { class: "field-error", id: errorId, hidden: true }));
  }

  const text = (value = "", props = {}) => h("input", { type: "text", value, spellcheck: false, ...props });
  const number = (value = "", props = {}) => h("input", { type: "number", value: value === null ? "" : String(value), ...props });

  let paramsBox;
  let rendererSelect;
  let rendererHelp;
  let sceneField;
  let previewBox;
  let formError;
  let submitButton;

  function build() {
    rendererSelect = h("select", {});
    for (const r of renderers) rendererSelect.appendChild(h("option", { value: r.name, text: r.name }));
    const wanted = query.get("renderer") || localStorage.getItem(REMEMBER) || "shell";
    rendererSelect.value = renderers.some((r) => r.name === wanted) ? wanted : renderers[0]?.name || "";
    rendererHelp = h("p", { class: "hint renderer-help" });
    paramsBox = h("div", { class: "field-grid" });
    formError = h("div", { class: "form-error", role: "alert", hidden: true, id: "form-error" });
    submitButton = h("button", { type: "submit", class: "btn primary" }, "Submit job");
    previewBox = h("div", { class: "preview", "aria-live": "polite" }, h("p", { class: "muted", text: "Fill in the frames to see the tasks." }));

    const poolsBox = h("fieldset", { class: "pool-choices" }, h("legend", { text: "Pools (all of them)" }));
    for (const pool of pools) {
      const id = `pool-${pool.name}`;
      poolsBox.appendChild(h("label", { class: "check", for: id },
        h("input", { type: "checkbox", id, value: pool.name, dataset: { pool: pool.name } }), pool.name));
    }
    if (!pools.length) poolsBox.appendChild(h("p", { class: "hint", text: "No pools defined." }));
    inputs["requirements.pools"] = poolsBox;

    const osSelect = h("select", {});
    const orderSelect = h("select", {});
    for (const [value, label] of [["sequential", "By frame"], ["reverse", "Last frame first"], ["preview", "Preview: first, last, middle, then the gaps"]]) {
      orderSelect.appendChild(h("option", { value, text: label }));
    }
    for (const [value, label] of OSES) osSelect.appendChild(h("option", { value, text: label }));

    sceneField = control("scene", text("", { placeholder: "/projects/shot/shot.blend" }), "Scene file",
      { help: "As the slaves see it (the master maps paths)", wide: true });

    const form = h("form", { class: "submit-form", novalidate: true, "aria-label": "Submit a job" },
      h("section", { class: "card" },
        h("div", { class: "card-head" }, h("h2", { text: "What to render" })),
        h("div", { class: "field-grid" },
          control("renderer", rendererSelect, "Renderer", { required: true }),
          control("name", text("", { placeholder: "shot_010 lighting", maxLength: 200 }), "Name"),
          isAdmin() ? control("owner", text(session.current.name), "Owner", { help: "Admins may submit for someone else" }) : null),
        rendererHelp,
        h("div", { class: "field-grid" }, sceneField)),
      h("section", { class: "card" },
        h("div", { class: "card-head" }, h("h2", { text: "Frames" })),
        h("div", { class: "field-grid four" },
          control("start", number(1, { step: "1" }), "First frame", { required: true }),
          control("end", number(10, { step: "1" }), "Last frame", { required: true }),
          control("step", number(1, { step: "1", min: "1" }), "Step"),
          control("block_size", number(1, { step: "1", min: "1" }), "Frames per task"))),
      h("section", { class: "card" },
        h("div", { class: "card-head" }, h("h2", { text: "Renderer parameters" })),
        paramsBox),
      h("section", { class: "card" },
        h("div", { class: "card-head" }, h("h2", { text: "Scheduling" })),
        h("div", { class: "field-grid four" },
          control("priority", number(50, { step: "1" }), "Priority", { help: "Higher runs first" }),
          control("retries", number(3, { step: "1", min: "0" }), "Retries", { help: "Per task" }),
          control("timeout", number("", { step: "any", min: "0", placeholder: "none" }), "Time-out (s)", { help: "Per task" }),
          control("max_parallel", number("", { step: "1", min: "1", placeholder: "no limit" }), "Tasks at once"),
          control("after", text("", { placeholder: "e.g. 12, 13:frames" }), "After jobs", { help: "Starts when these finish; 12:frames waits frame by frame", wide: true }),
          control("order", orderSelect, "Task order", { wide: true }),
          control("first_frame_check", h("input", { type: "checkbox" }), "Run the first task alone first; stop the job if it fails", { wide: true }))),
      h("details", { class: "card more-options" },
        h("summary", {}, h("h2", { text: "Requirements and environment" })),
        h("div", { class: "field-grid four" },
          control("requirements.os", osSelect, "OS"),
          control("requirements.min_ram_gb", number("", { step: "any", min: "0", placeholder: "0" }), "Min RAM (GB)"),
          control("requirements.min_cores", number("", { step: "1", min: "0", placeholder: "0" }), "Min cores"),
          control("requirements.gpus", number("", { step: "1", min: "0", placeholder: "0" }), "GPUs"),
          control("requirements.hosts", text("", { placeholder: "render*" }), "Only hosts", { help: "Globs, comma separated" }),
          control("requirements.exclude_hosts", text(""), "Not on hosts", { help: "Globs, comma separated" })),
        poolsBox,
        control("env", h("textarea", { rows: 3, spellcheck: false, placeholder: "NAME=value, one per line" }), "Environment", { wide: true }),
        control("check_scene", h("input", { type: "checkbox", checked: true }), "Check that the scene exists on the master")),
      formError,
      h("div", { class: "form-buttons" }, submitButton));

    replace(root,
      h("div", { class: "page-head" }, h("h1", { text: "Submit a job" })),
      h("div", { class: "submit-grid" }, form,
        h("aside", { class: "submit-side" }, card("Preview", { id: "preview" }, previewBox))));

    rendererSelect.addEventListener("change", () => {
      localStorage.setItem(REMEMBER, rendererSelect.value);
      clearErrors();  // they were the other renderer's
      buildParams();
      schedulePreview();
    });
    const touch = (event) => {
      const path = event.target.dataset.path || event.target.closest("[data-path]")?.dataset.path;
      if (path) touched.add(path);
      schedulePreview();
    };
    form.addEventListener("input", touch);
    form.addEventListener("change", touch);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    buildParams();
    schedulePreview();
  }

  function renderer() {
    return renderers.find((r) => r.name === rendererSelect.value);
  }

  function buildParams() {
    for (const path of Object.keys(inputs)) if (path.startsWith("params.")) delete inputs[path];
    const r = renderer();
    rendererHelp.textContent = r ? r.description : "";
    const scene = inputs.scene;
    scene.required = Boolean(r && r.needs_scene);
    const label = sceneField.querySelector("label");
    label.querySelector(".req")?.remove();
    label.firstChild.textContent = scene.required ? "Scene file" : "Scene file (optional)";
    if (scene.required) label.appendChild(h("span", { class: "req", "aria-hidden": "true", text: " *" }));
    replace(paramsBox, ...(r ? r.params.map(paramControl) : []));
    if (r && !r.params.length) paramsBox.appendChild(h("p", { class: "muted", text: "This renderer has no parameters." }));
  }

  function paramControl(p) {
    let element;
    const help = [p.help, p.default !== null && p.default !== undefined && p.default !== "" && p.type !== "bool" ? `default ${p.default}` : ""]
      .filter(Boolean).join(" · ");
    if (p.choices && p.choices.length) {
      element = h("select", {});
      if (!p.required) element.appendChild(h("option", { value: "", text: p.default !== null && p.default !== undefined ? `default (${p.default})` : "default" }));
      for (const choice of p.choices) element.appendChild(h("option", { value: String(choice), text: String(choice) }));
    } else if (p.type === "bool") {
      element = h("input", { type: "checkbox", checked: Boolean(p.default) });
    } else if (p.type === "int" || p.type === "float") {
      element = number("", { step: p.type === "int" ? "1" : "any", placeholder: p.default ?? "" });
      if (p.minimum !== undefined && p.minimum !== null) element.min = String(p.minimum);
      if (p.maximum !== undefined && p.maximum !== null) element.max = String(p.maximum);
    } else {
      element = text("", { placeholder: p.default ?? "" });
    }
    element.dataset.param = p.name;
    element.dataset.type = p.type;
    const wide = p.type === "str" || p.type === "path";
    return control(`params.${p.name}`, element, p.name, { help, required: p.required, wide });
  }

  // -- the body --

  /** The form as the body of POST /jobs; {problems} for what cannot be put in JSON at all. */
  function body() {
    const value = (path) => (inputs[path] ? inputs[path].value.trim() : "");
    const numberOf = (path) => {
      const raw = value(path);
      if (raw === "") return undefined;
      const parsed = Number(raw);
      return Number.isFinite(parsed) ? parsed : raw;
    };
    const list = (path) => value(path).split(",").map((s) => s.trim()).filter(Boolean);
    const out = { renderer: rendererSelect.value };
    const problems = [];
    for (const path of ["start", "end", "step", "block_size", "priority", "retries", "timeout", "max_parallel"]) {
      const v = numberOf(path);
      if (v !== undefined) out[path] = v;
    }
    if (value("name")) out.name = value("name");
    if (inputs.owner && value("owner")) out.owner = value("owner");
    if (value("scene")) {
      out.scene = value("scene");
      out.check_scene = inputs.check_scene.checked;
    }
    // "12" waits for the whole job, "12:frames" frame by frame (docs/jobs.md).
    const asId = (id) => (/^\d+$/.test(id) ? Number(id) : id);
    const after = list("after");
    const wholeJobs = after.filter((id) => !id.endsWith(":frames")).map(asId);
    const byFrame = after.filter((id) => id.endsWith(":frames")).map((id) => asId(id.slice(0, -":frames".length)));
    if (wholeJobs.length) out.after = wholeJobs;
    if (byFrame.length) out.after_frames = byFrame;
    if (value("order") && value("order") !== "sequential") out.order = value("order");
    if (inputs.first_frame_check.checked) out.first_frame_check = true;
    const requirements = {};
    if (value("requirements.os")) requirements.os = value("requirements.os");
    for (const key of ["min_ram_gb", "min_cores", "gpus"]) {
      const v = numberOf(`requirements.${key}`);
      if (v !== undefined) requirements[key] = v;
    }
    for (const key of ["hosts", "exclude_hosts"]) {
      const globs = list(`requirements.${key}`);
      if (globs.length) requirements[key] = globs;
    }
    const chosen = [...inputs["requirements.pools"].querySelectorAll("input:checked")].map((i) => i.value);
    if (chosen.length) requirements.pools = chosen;
    if (Object.keys(requirements).length) out.requirements = requirements;
    const env = {};
    value("env").split("\n").forEach((line, i) => {
      if (!line.trim()) return;
      const at = line.indexOf("=");
      if (at < 1) problems.push(["env", `line ${i + 1} of the environment is not NAME=value`]);
      else env[line.slice(0, at).trim()] = line.slice(at + 1);
    });
    if (Object.keys(env).length) out.env = env;
    const params = {};
    const r = renderer();
    for (const p of r ? r.params : []) {
      const el = inputs[`params.${p.name}`];
      if (!el) continue;
      if (p.type === "bool") {
        if (el.checked !== Boolean(p.default)) params[p.name] = el.checked;
        continue;
      }
      const raw = el.value.trim();
      if (raw === "") continue;
      if (p.type === "int" || p.type === "float") {
        const parsed = Number(raw);
        params[p.name] = Number.isFinite(parsed) ? parsed : raw;
      } else {
        params[p.name] = el.value;
      }
    }
    if (Object.keys(params).length) out.params = params;
    return { out, problems };
  }

  // -- errors at their field --

  /** The field an API error names: "start: ...", "requirements.gpus: ...", "parameter 'cmd' ...". */
  function fieldOf(detail) {
    const param = /parameter '([^']+)'/.exec(detail);
    if (param && inputs[`params.${param[1]}`]) return `params.${param[1]}`;
    const prefix = /^([A-Za-z_][\w.]*?)(?:\.\d+)?: /.exec(detail);
    if (prefix) {
      let path = prefix[1];
      while (path && !inputs[path]) path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
      if (path) return path;
    }
    if (/scene/.test(detail)) return "scene";
    if (/end frame|start frame/.test(detail)) return "end";
    if (/step must/.test(detail)) return "step";
    if (/block size/.test(detail)) return "block_size";
    return null;
  }

  function clearErrors() {
    for (const el of Object.values(inputs)) {
      el.removeAttribute("aria-invalid");
      const error = document.getElementById(`${el.id}-error`);
      if (error) error.hidden = true;
    }
    formError.hidden = true;
  }

  function showFieldError(path, message) {
    const el = inputs[path];
    if (!el) return false;
    el.setAttribute("aria-invalid", "true");
    const error = document.getElementById(`${el.id}-error`);
    error.textContent = message;
    error.hidden = false;
    if (path.startsWith("requirements.") || path === "env" || path === "check_scene") {
      el.closest("details")?.setAttribute("open", "");
    }
    return true;
  }

  /** Show an error of the API; at its field too when the user has been there (or submits). */
  function showProblem(detail, { focus = false } = {}) {
    clearErrors();
    const path = fieldOf(detail);
    if (!focus && path && !touched.has(path)) return;
    formError.textContent = detail;
    formError.hidden = false;
    if (path) {
      showFieldError(path, detail);
      if (focus) inputs[path].focus();
    }
  }

  // -- preview and submit --

  let previewTicket = 0;
  const schedulePreview = debounce(preview, 350);

  /** The label of the first required field left empty, or null: the preview waits for it
   *  rather than asking the master about a form that cannot be valid yet. */
  function firstEmptyRequired() {
    for (const element of Object.values(inputs)) {
      if (element.required && element.type !== "checkbox" && !element.value.trim()) {
        const label = document.querySelector(`label[for="${element.id}"]`);
        return label ? label.firstChild.textContent.trim() : element.dataset.path;
      }
    }
    return null;
  }

  async function preview() {
    const ticket = ++previewTicket;
    const empty = firstEmptyRequired();
    if (empty) {
      replace(previewBox, h("p", { class: "muted", text: `Fill in ${empty} to see the tasks.` }));
      return;
    }
    const { out, problems } = body();
    if (problems.length) {
      showProblem(problems[0][1]);
      return;
    }
    try {
      const answer = await post("/jobs/preview", out);
      if (ticket !== previewTicket || destroyed) return;
      clearErrors();
      showPreview(answer);
    } catch (error) {
      if (ticket !== previewTicket || destroyed) return;
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 401) {
        showProblem(error.message);
        replace(previewBox, h("p", { class: "preview-bad" },
          h("span", { "aria-hidden": "true", text: "✕ " }), "Not valid yet: ", h("span", { text: error.message })));
      } else {
        replace(previewBox, failure(error, preview));
      }
    }
  }

  function showPreview(answer) {
    const blocks = answer.blocks || [];
    const list = h("ol", { class: "blocks", start: "0" });
    blocks.forEach(([start, end, step], i) => {
      list.appendChild(h("li", {}, h("span", { class: "muted", text: `Task ${i}` }), " ",
        h("span", { text: `${start === end ? "frame" : "frames"} ${frameText(start, end, step)}` })));
    });
    replace(previewBox,
      h("p", { class: "preview-count" },
        h("span", { class: "big", text: num(answer.tasks) }), ` ${answer.tasks === 1 ? "task" : "tasks"} · `,
        h("strong", { text: num(answer.frames) }), ` ${answer.frames === 1 ? "frame" : "frames"}`),
      list,
      answer.tasks > blocks.length ? h("p", { class: "muted", text: `and ${plural(answer.tasks - blocks.length, "more task")}` }) : null);
  }

  async function submit() {
    schedulePreview.cancel();
    const { out, problems } = body();
    if (problems.length) {
      showProblem(problems[0][1], { focus: true });
      return;
    }
    submitButton.disabled = true;
    try {
      const answer = await post("/jobs", out, { headers: { "Idempotency-Key": idempotencyKey } });
      idempotencyKey = newKey();
      toast(`Job ${answer.id} submitted: ${plural(answer.tasks, "task")}`);
      navigate(`/jobs/${answer.id}`);
    } catch (error) {
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 401) {
        showProblem(error.message, { focus: true });
      } else {
        showError(error, "Submit");
      }
    } finally {
      submitButton.disabled = false;
    }
  }

  load();
  return () => {
    destroyed = true;
    schedulePreview.cancel();
  };
}
