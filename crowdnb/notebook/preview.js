// The preview widget's view: row and width on one line, and the dry-run page in a frame as tall as the page.
const WIDTHS = { phone: "375px", desktop: "100%" };

function element(tag, props, children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  (children || []).forEach((child) => node.append(child));
  return node;
}

function render({ model, el }) {
  el.classList.add("crowd-preview-widget");
  const rows = () => model.get("rows");
  const input = element("input", { type: "number", min: 0, step: 1, className: "crowd-preview-row", title: "input row" });
  const previous = element("button", { type: "button", textContent: "◀", title: "previous row" });
  const next = element("button", { type: "button", textContent: "▶", title: "next row" });
  const count = element("span", { className: "crowd-preview-note" });
  const widths = Object.keys(WIDTHS).map((name) =>
    element("button", { type: "button", textContent: name, className: `crowd-preview-${name}` }));
  const open = element("a", { textContent: "open in a new tab ↗", target: "_blank", rel: "noopener" });
  const note = element("span", { className: "crowd-preview-note", textContent: "dry run: Submit stores nothing" });
  const bar = element("div", { className: "crowd-preview-bar" },
    [element("span", { textContent: "row" }), previous, input, next, count, element("span", { textContent: "·" }),
     ...widths, element("span", { textContent: "·" }), open, note]);
  const frame = element("iframe", { className: "crowd-preview-frame crowd-preview", title: "the worker's page (dry run)" });
  el.append(bar, frame);

  const go = (row) => {
    const last = Math.max(rows() - 1, 0);
    model.set("row", Math.min(Math.max(row, 0), last));
    model.save_changes();
  };
  input.addEventListener("change", () => go(parseInt(input.value, 10) || 0));
  previous.addEventListener("click", () => go(model.get("row") - 1));
  next.addEventListener("click", () => go(model.get("row") + 1));
  widths.forEach((button) => button.addEventListener("click", () => {
    model.set("width", button.textContent);
    model.save_changes();
  }));

  const sync = () => {
    const last = Math.max(rows() - 1, 0);
    input.value = model.get("row");
    input.max = last;
    input.disabled = previous.disabled = next.disabled = rows() <= 1;
    count.textContent = rows() ? `of ${rows()}` : "(rows come from a generator)";
    widths.forEach((button) => button.setAttribute("aria-pressed", String(button.textContent === model.get("width"))));
    frame.style.width = WIDTHS[model.get("width")] || "100%";
    const src = model.get("src");
    if (src && frame.getAttribute("src") !== src) frame.setAttribute("src", src);
    open.href = src;
  };
  // the page says how tall it is (crowd.js, in a dry run): the frame follows, so nothing is cut off
  const resize = (event) => {
    const data = event.data;
    if (event.source !== frame.contentWindow || !data || data.crowd !== "height") return;
    const height = Number(data.height);
    if (Number.isFinite(height)) frame.style.height = `${Math.min(Math.max(Math.round(height) + 2, 120), 6000)}px`;
  };
  window.addEventListener("message", resize);
  ["src", "row", "rows", "width"].forEach((name) => model.on(`change:${name}`, sync));
  sync();
  return () => window.removeEventListener("message", resize);
}

export default { render };
