// The review grid's view. The kernel filters, sorts and pages; this draws the page it is sent, one
// compact line per unit, and sends back what the reviewer chose (traits, or {action, units} messages).
const KEYS = [
  ["j / k", "next / previous unit"],
  ["a", "approve"], ["r", "reject"], ["s", "soft-reject"], ["b", "bonus (amount and note above)"],
  ["x", "select or unselect"], ["Enter", "open or close the unit"], ["n / p", "next / previous page"],
  ["?", "show or hide these keys"],
];
const ACTIONS = { a: "approve", r: "reject", s: "soft-reject", b: "bonus" };

function h(tag, props, children) {
  const node = document.createElement(tag);
  Object.entries(props || {}).forEach(([key, value]) => {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  });
  (children || []).forEach((child) => node.append(child));
  return node;
}

function record(units) {
  const parts = [["✓", "accepted"], ["✗", "rejected"], ["~", "soft_rejected"], ["…", "completed"]];
  return parts.map(([mark, key]) => h("span", { className: `crowd-rec crowd-rec-${key}`, textContent: `${mark}${units[key] || 0}` }));
}

function checks(row, label) {
  const marks = [];
  if (row.fast) marks.push(h("span", { className: "crowd-fast", textContent: "⚡", title: "faster than a quarter of the median time" }));
  if (row.agrees === true) marks.push(h("span", { className: "crowd-agrees", textContent: "✓", title: `agrees with the others on ${label}` }));
  if (row.agrees === false) marks.push(h("span", { className: "crowd-differs", textContent: "✗", title: `differs from the others on ${label}` }));
  return marks;
}

function render({ model, el }) {
  let cursor = 0;
  // after a change the kernel answers with a new page (a new generation): until then the grid is busy
  const busy = () => el.getAttribute("aria-busy") === "true";
  const wait = () => el.setAttribute("aria-busy", "true");
  const send = (action, units) => { wait(); model.send({ action, units }); };
  const set = (name, value) => {
    if (["page", "sort", "descending", "status", "worker", "answer", "opened"].includes(name)) wait();
    model.set(name, value);
    model.save_changes();
  };

  // --- toolbar: filters, refresh ---------------------------------------------------------------
  const statuses = h("div", { className: "crowd-statuses", role: "group", "aria-label": "status" });
  const worker = h("input", { type: "search", placeholder: "worker contains…", className: "crowd-filter-worker" });
  const answer = h("input", { type: "search", placeholder: "answer contains…", className: "crowd-filter-answer" });
  const reload = h("button", { type: "button", textContent: "↻", title: "look at the store again (new submissions)" });
  worker.addEventListener("change", () => set("worker", worker.value));
  answer.addEventListener("change", () => set("answer", answer.value));
  reload.addEventListener("click", () => send("refresh", []));
  const toolbar = h("div", { className: "crowd-bar" }, [statuses, worker, answer, reload]);

  // --- decisions for the selected units ---------------------------------------------------------
  const note = h("input", { type: "text", className: "crowd-note", placeholder: "note to the worker (needed for a bonus)" });
  const amount = h("input", { type: "number", className: "crowd-amount", min: 0.01, step: 0.01, title: "bonus in dollars" });
  note.addEventListener("change", () => set("note", note.value));
  amount.addEventListener("change", () => set("amount", parseFloat(amount.value) || 0));
  const bulk = Object.values(ACTIONS).map((name) => {
    const button = h("button", { type: "button", className: `crowd-bulk crowd-bulk-${name}`, textContent: name, dataset: { action: name } });
    button.addEventListener("click", () => send(name, model.get("selected")));
    return button;
  });
  const chosen = h("span", { className: "crowd-chosen" });
  const decisions = h("div", { className: "crowd-bar" },
    [h("span", { textContent: "note" }), note, h("span", { textContent: "bonus $" }), amount, chosen, ...bulk]);

  // --- legend, keys ------------------------------------------------------------------------------
  const legend = h("div", { className: "crowd-legend" });
  const help = h("table", { className: "crowd-keys", hidden: true },
    KEYS.map(([key, what]) => h("tr", {}, [h("th", {}, [h("kbd", { textContent: key })]), h("td", { textContent: what })])));

  // --- the grid ------------------------------------------------------------------------------------
  const head = h("thead");
  const body = h("tbody");
  const grid = h("table", { className: "crowd-grid", tabIndex: 0, "aria-label": "units to review", "data-lm-suppress-shortcuts": "true" }, [head, body]);
  const empty = h("p", { className: "crowd-empty", role: "status" });
  const previous = h("button", { type: "button", textContent: "◀", title: "previous page (p)" });
  const next = h("button", { type: "button", textContent: "▶", title: "next page (n)" });
  const pager = h("span", { className: "crowd-pager" });
  previous.addEventListener("click", () => set("page", model.get("page") - 1));
  next.addEventListener("click", () => set("page", model.get("page") + 1));
  const message = h("p", { className: "crowd-message", role: "status", "aria-live": "polite" });
  el.classList.add("crowd-review");
  el.append(toolbar, decisions, legend, help, h("div", { className: "crowd-scroll" }, [grid]), empty, h("div", { className: "crowd-bar" }, [previous, pager, next]), message);

  const rows = () => model.get("rows");
  const current = () => rows()[Math.min(cursor, rows().length - 1)];
  const targets = () => (model.get("selected").length ? model.get("selected") : current() ? [current().id] : []);
  const toggle = (list, id) => (list.includes(id) ? list.filter((x) => x !== id) : [...list, id]);

  function drawStatuses() {
    statuses.textContent = "";
    model.get("statuses").forEach((s) => {
      const button = h("button", { type: "button", textContent: `${s.label} (${s.count})`, dataset: { status: s.value } });
      button.setAttribute("aria-pressed", String(s.value === model.get("status")));
      button.addEventListener("click", () => set("status", s.value));
      statuses.append(button);
    });
  }

  function drawHead() {
    const sort = model.get("sort"), down = model.get("descending");
    const all = h("input", { type: "checkbox", title: "select every unit on this page", className: "crowd-select-page" });
    all.checked = rows().length > 0 && model.get("selected").length === rows().length;
    all.addEventListener("change", () => set("selected", all.checked ? rows().map((r) => r.id) : []));
    const cells = model.get("columns").map((c) => {
      const arrow = c.key === sort ? (down ? " ▼" : " ▲") : "";
      const button = h("button", { type: "button", className: "crowd-sort", textContent: c.label + arrow, title: `${c.title} (sort)` });
      button.addEventListener("click", () => {
        if (c.key === sort) set("descending", !down);
        else { model.set("descending", false); set("sort", c.key); }
      });
      const cell = h("th", { scope: "col", dataset: { key: c.key } }, [button]);
      if (c.key === sort) cell.setAttribute("aria-sort", down ? "descending" : "ascending");
      return cell;
    });
    head.textContent = "";
    head.append(h("tr", {}, [h("th", {}, [all]), ...cells, h("th", { textContent: "decide" })]));
  }

  function drawRows() {
    const selected = model.get("selected"), opened = model.get("opened"), details = model.get("details");
    const label = model.get("label");
    cursor = Math.max(Math.min(cursor, rows().length - 1), 0);
    body.textContent = "";
    rows().forEach((row, index) => {
      const tick = h("input", { type: "checkbox", checked: selected.includes(row.id), title: "select (x)" });
      tick.addEventListener("change", () => set("selected", toggle(model.get("selected"), row.id)));
      const decide = ["approve", "reject", "soft-reject"].map((name) => {
        const b = h("button", { type: "button", className: `crowd-do crowd-do-${name}`, textContent: { approve: "✓", reject: "✗", "soft-reject": "~" }[name], title: name, "aria-label": `${name} unit ${row.id}` });
        b.addEventListener("click", (event) => { event.stopPropagation(); send(name, [row.id]); });
        return b;
      });
      const open = opened.includes(row.id);
      const line = h("tr", { className: "crowd-row", dataset: { unit: row.id } }, [
        h("td", {}, [tick]),
        h("td", { className: "crowd-num", textContent: row.row, title: `unit ${row.id}` }),
        h("td", { className: "crowd-worker", textContent: row.worker, title: row.worker }),
        h("td", { className: "crowd-record", title: "accepted, rejected, soft-rejected, awaiting review: across the project" }, record(row.record)),
        h("td", { className: "crowd-answers", title: row.inputs ? `${row.answers}\n← ${row.inputs}` : row.answers }, [
          h("span", { className: "crowd-toggle", textContent: open ? "▾ " : "▸ " }), row.answers,
          row.inputs ? h("span", { className: "crowd-inputs", textContent: ` ← ${row.inputs}` }) : ""]),
        h("td", { className: "crowd-num", textContent: row.time === null ? "" : `${row.time} s` }),
        h("td", { className: "crowd-checks" }, checks(row, label)),
        h("td", {}, [h("code", { textContent: row.status.replace("_", "-") })]),
        h("td", { className: "crowd-when", textContent: row.submitted, title: row.submitted_at }),
        h("td", { className: "crowd-decide" }, decide),
      ]);
      line.classList.toggle("crowd-cursor", index === cursor);
      line.classList.toggle("crowd-selected", selected.includes(row.id));
      line.addEventListener("click", (event) => {
        if (event.target.closest("input, button, a, audio, video")) return;
        cursor = index;
        if (event.target.closest(".crowd-answers")) set("opened", toggle(model.get("opened"), row.id));
        else drawRows();
        grid.focus({ preventScroll: true });
      });
      body.append(line);
      if (open) {
        const detail = h("div", { className: "crowd-detail" });
        detail.innerHTML = details[String(row.id)] || "<i>loading…</i>"; // built and escaped by the kernel
        body.append(h("tr", { className: "crowd-detail-row" }, [h("td", { colSpan: 10 }, [detail])]));
      }
    });
  }

  function draw() {
    drawStatuses();
    drawHead();
    drawRows();
    if (document.activeElement !== worker) worker.value = model.get("worker");
    if (document.activeElement !== answer) answer.value = model.get("answer");
    if (document.activeElement !== note) note.value = model.get("note");
    if (document.activeElement !== amount) amount.value = model.get("amount");
    const n = model.get("selected").length;
    chosen.textContent = `· the ${n} selected:`;
    bulk.forEach((b) => { b.disabled = n === 0; });
    const label = model.get("label");
    legend.textContent = "";
    const words = [["✓", "accepted"], ["✗", "rejected"], ["~", "soft_rejected"], ["…", "completed"]];
    const meaning = { accepted: "accepted", rejected: "rejected", soft_rejected: "soft-rejected", completed: "awaiting review" };
    legend.append(
      h("b", { textContent: "record" }), " (the worker's units across the project): ",
      ...words.flatMap(([mark, key]) => [h("span", { className: `crowd-rec crowd-rec-${key}`, textContent: `${mark} ${meaning[key]}` }), " "]),
      "· ", h("b", { textContent: "checks" }), ": ⚡ too fast",
      label ? ` · ✓/✗ agrees or differs with the others on “${label}”` : "",
      " · ", h("b", { textContent: "keys" }), ": j/k a/r/s b x Enter n/p ",
      h("button", { type: "button", className: "crowd-help", textContent: "?", title: "keyboard shortcuts", onclick: () => { help.hidden = !help.hidden; } }),
    );
    empty.textContent = model.get("empty");
    empty.hidden = !model.get("empty");
    grid.hidden = !rows().length;
    pager.textContent = `page ${model.get("page") + 1} of ${model.get("pages")} · ${model.get("total")} units`;
    previous.disabled = model.get("page") <= 0;
    next.disabled = model.get("page") >= model.get("pages") - 1;
    message.textContent = model.get("message");
  }

  // --- keys -------------------------------------------------------------------------------------------
  grid.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.target.closest("input, textarea, select")) return;
    const key = event.key;
    let handled = true;
    if (busy() && key !== "?") { event.preventDefault(); event.stopPropagation(); return; } // rows about to change
    if (key === "j" || key === "ArrowDown") { cursor = Math.min(cursor + 1, rows().length - 1); drawRows(); }
    else if (key === "k" || key === "ArrowUp") { cursor = Math.max(cursor - 1, 0); drawRows(); }
    else if (ACTIONS[key]) { if (rows().length) send(ACTIONS[key], targets()); }
    else if (key === "x" || key === " ") { if (current()) set("selected", toggle(model.get("selected"), current().id)); }
    else if (key === "Enter" || key === "o") { if (current()) set("opened", toggle(model.get("opened"), current().id)); }
    else if (key === "n") { if (model.get("page") < model.get("pages") - 1) { cursor = 0; set("page", model.get("page") + 1); } }
    else if (key === "p") { if (model.get("page") > 0) { cursor = 0; set("page", model.get("page") - 1); } }
    else if (key === "?") { help.hidden = !help.hidden; }
    else handled = false;
    if (handled) {
      // the notebook's own shortcuts (j/k move cells, a/b add them, s saves) must not fire as well
      event.preventDefault();
      event.stopPropagation();
      const line = body.querySelector(".crowd-cursor");
      if (line) line.scrollIntoView({ block: "nearest" });
    }
  });

  const names = ["rows", "details", "opened", "selected", "statuses", "status", "worker", "answer", "sort",
    "descending", "page", "pages", "total", "message", "empty", "note", "amount", "label"];
  names.forEach((name) => model.on(`change:${name}`, draw));
  model.on("change:generation", () => { el.removeAttribute("aria-busy"); draw(); });
  draw();
}

export default { render };
