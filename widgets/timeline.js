// The observer's run timeline (anywidget ESM, no build step).
// Model (computed in Python by continuum_nb.observer.lanes.timeline_view, already aggregated for
// the window: never more bars than pixels):
//   view = {t_end, window: [a, b], width, lanes: [{key, title, kind, count, total_ms, summary}],
//           bars: [{lane, x0, x1, start, end, count, status, kind, wait, label, tip, seqs}], events, ...}
//   run_id (string)
// Written here: window ([a, b] ms, or [] for the whole run) by the zoom/pan buttons and the brush;
// selected ({seqs, label, count}) by a click on a bar.
// Rules: a label is drawn only inside its own bar and only when it fits (else the bar's tooltip
// says it); the plot area is clipped, so nothing is drawn outside the axis.
const NS = "http://www.w3.org/2000/svg";
const GUTTER = 170, RIGHT = 12, ROW = 30, BAR_H = 18, AXIS = 26, FOOT = 8;
const CHAR_PX = 6.6;   // estimate when the SVG is not laid out yet (hidden tab): errs on the wide side

function svg(tag, attrs, parent) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function fmt(ms) {
  const s = ms / 1000;
  if (Math.round(ms) < 1000) return ms >= 1 || ms === 0 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function niceStep(span, n) {
  const raw = span / n;
  const pow = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * pow) return m * pow;
  return 10 * pow;
}

function textWidth(node) {
  let w = 0;
  try { w = node.getComputedTextLength(); } catch (e) { w = 0; }
  return w > 0 ? w : (node.textContent || "").length * CHAR_PX;
}

// Put text at (x, y) only if it fits in [lo, hi]; returns the node or null (removed).
function fitText(parent, text, x, y, lo, hi, cls) {
  const node = svg("text", { x, y, class: cls }, parent);
  node.textContent = text;
  const w = textWidth(node);
  if (x < lo || x + w > hi) { node.remove(); return null; }
  return node;
}

// Text cut with an ellipsis to fit maxW (lane titles in the gutter).
function clippedText(parent, text, x, y, maxW, cls) {
  const node = svg("text", { x, y, class: cls }, parent);
  node.textContent = text;
  let t = text;
  while (t.length > 1 && textWidth(node) > maxW) {
    t = t.slice(0, -1);
    node.textContent = t + "…";
  }
  if (t !== text) svg("title", {}, node).textContent = text;
  return node;
}

function render({ model, el }) {
  el.classList.add("cn-obs");
  const box = document.createElement("div");
  box.className = "cn-timeline";
  box.setAttribute("data-testid", "cn-timeline");
  el.appendChild(box);

  function setWindow(win) {
    model.set("window", win);
    model.save_changes();
  }

  function toolbar(view) {
    const bar = document.createElement("div");
    bar.className = "cn-tl-toolbar";
    const [a, b] = view.window || [0, view.t_end || 0];
    const full = Math.max(view.t_end || 0, 1);
    const span = b - a;
    const buttons = [
      ["−", "zoom out", () => { const m = (a + b) / 2; setWindow([m - span, m + span]); }],
      ["+", "zoom in", () => { const m = (a + b) / 2; setWindow([m - span / 4, m + span / 4]); }],
      ["◀", "pan left", () => { const d = Math.min(span / 2, a); setWindow([a - d, b - d]); }],
      ["▶", "pan right", () => { const d = Math.min(span / 2, full - b); setWindow([a + d, b + d]); }],
      ["whole run", "show the whole run", () => setWindow([])],
    ];
    for (const [text, title, act] of buttons) {
      const btn = document.createElement("button");
      btn.className = "cn-tl-btn";
      btn.textContent = text;
      btn.title = title;
      btn.setAttribute("aria-label", title);
      btn.addEventListener("click", act);
      bar.appendChild(btn);
    }
    const info = document.createElement("span");
    info.className = "cn-tl-info";
    const zoomed = span < full - 1e-6;
    info.textContent = `${view.events} events · ${view.activities} activities · ${view.waits} waits · ` +
      (zoomed ? `showing +${fmt(a)} → +${fmt(b)} of ${fmt(full)} (drag across the plot to zoom)`
              : `span ${fmt(full)} (drag across the plot to zoom)`);
    bar.appendChild(info);
    return bar;
  }

  function draw() {
    box.replaceChildren();
    const view = model.get("view") || {};
    if (!model.get("run_id") || !view.lanes) return;   // the run list's hint says what to do
    box.appendChild(toolbar(view));
    const lanes = view.lanes, bars = view.bars || [];
    const PLOT = view.width || 760;
    const W = GUTTER + PLOT + RIGHT;
    const height = AXIS + Math.max(lanes.length, 1) * ROW + FOOT;
    const [a, b] = view.window;
    const root = svg("svg", { viewBox: `0 0 ${W} ${height}`, width: "100%", role: "img",
      "data-plot-x0": GUTTER, "data-plot-x1": GUTTER + PLOT }, box);
    const defs = svg("defs", {}, root);
    const clip = svg("clipPath", { id: `cn-clip-${model.get("run_id")}` }, defs);
    svg("rect", { x: GUTTER, y: 0, width: PLOT, height }, clip);
    for (const kind of ["signal", "timer"]) {
      const pat = svg("pattern", { id: `cn-hatch-${kind}`, width: 6, height: 6, patternUnits: "userSpaceOnUse",
        patternTransform: "rotate(45)" }, defs);
      svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: `cn-hatch-line cn-hatch-${kind}` }, pat);
    }
    const x = (t) => GUTTER + ((t - a) / (b - a)) * PLOT;

    // The axis area: the plot background is the brush surface.
    const axis = svg("rect", { x: GUTTER, y: AXIS - 4, width: PLOT, height: height - AXIS - FOOT + 4,
      class: "cn-axis-area", "data-testid": "cn-axis-area" }, root);
    const plot = svg("g", { "clip-path": `url(#cn-clip-${model.get("run_id")})`, class: "cn-plot" }, root);
    svg("line", { x1: GUTTER, y1: AXIS - 4, x2: GUTTER + PLOT, y2: AXIS - 4, class: "cn-axis" }, root);
    // Ticks: a label only where it fits between its neighbours and inside the axis.
    const step = niceStep(b - a, 6);
    let lastRight = -Infinity;
    for (let t = Math.ceil(a / step) * step; t <= b + 1e-9; t += step) {
      svg("line", { x1: x(t), y1: AXIS - 8, x2: x(t), y2: height - FOOT, class: "cn-grid" }, plot);
      const label = svg("text", { x: x(t), y: AXIS - 10, class: "cn-tick cn-label" }, root);
      label.textContent = `+${fmt(t)}`;
      const w = textWidth(label);
      let left = x(t) - w / 2;
      left = Math.max(GUTTER, Math.min(left, GUTTER + PLOT - w));
      if (left < lastRight + 6) { label.remove(); continue; }
      label.setAttribute("x", left);
      lastRight = left + w;
    }
    // Lanes: title and totals in the gutter, a stripe in the plot.
    lanes.forEach((lane, i) => {
      const y = AXIS + i * ROW;
      svg("rect", { x: GUTTER, y, width: PLOT, height: ROW, class: `cn-lane-bg cn-lane-${i % 2 ? "odd" : "even"}` }, plot);
      clippedText(root, lane.title, 4, y + 12, GUTTER - 10, "cn-lane-title cn-label");
      clippedText(root, lane.summary, 4, y + 25, GUTTER - 10, "cn-lane-summary cn-label");
    });
    // Bars (already merged per lane in Python: they never overlap within a lane).
    for (const bar of bars) {
      const y = AXIS + bar.lane * ROW + (ROW - BAR_H) / 2;
      const x0 = GUTTER + bar.x0, w = Math.max(bar.x1 - bar.x0, 1);
      const cls = bar.kind === "wait"
        ? `cn-bar cn-gap cn-gap-${bar.wait}${bar.status === "waiting" ? " cn-gap-open" : ""} cn-wait-${bar.status.replace(" ", "-")}`
        : `cn-bar cn-kind-${bar.kind} cn-bar-${bar.status}`;
      const g = svg("g", { class: cls + (bar.count > 1 ? " cn-merged" : ""), "data-seq": bar.seqs[0],
        "data-count": bar.count }, plot);
      const rect = { x: x0, y, width: w, height: BAR_H, rx: 2 };
      // inline style: the hatch must win over the bars' CSS fill
      if (bar.kind === "wait") rect.style = `fill: url(#cn-hatch-${bar.wait})`;
      svg("rect", rect, g);
      svg("title", {}, g).textContent = bar.tip;
      fitText(g, bar.label, x0 + 4, y + BAR_H - 5, x0 + 2, x0 + w - 2, "cn-bar-label cn-label");
      g.addEventListener("click", (ev) => {
        ev.stopPropagation();
        model.set("selected", { seqs: bar.seqs, label: bar.label, count: bar.count });
        model.save_changes();
        for (const other of root.querySelectorAll(".cn-bar.cn-picked")) other.classList.remove("cn-picked");
        g.classList.add("cn-picked");
      });
    }
    // Brush: drag across the plot to zoom into that range.
    const brush = svg("rect", { x: 0, y: AXIS - 4, width: 0, height: height - AXIS - FOOT + 4, class: "cn-brush",
      visibility: "hidden" }, root);
    const toPlot = (ev) => {
      const m = root.getScreenCTM();
      if (!m) return null;
      const p = root.createSVGPoint();
      p.x = ev.clientX; p.y = ev.clientY;
      return Math.max(GUTTER, Math.min(GUTTER + PLOT, p.matrixTransform(m.inverse()).x));
    };
    let from = null;
    const onDown = (ev) => { from = toPlot(ev); };
    const onMove = (ev) => {
      if (from === null) return;
      const to = toPlot(ev);
      if (to === null) return;
      brush.setAttribute("x", Math.min(from, to));
      brush.setAttribute("width", Math.abs(to - from));
      brush.setAttribute("visibility", "visible");
    };
    const onUp = (ev) => {
      if (from === null) return;
      const to = toPlot(ev);
      const start = from;
      from = null;
      brush.setAttribute("visibility", "hidden");
      if (to === null || Math.abs(to - start) < 4) return;   // a click, not a drag
      const t = (px) => a + ((px - GUTTER) / PLOT) * (b - a);
      setWindow([t(Math.min(start, to)), t(Math.max(start, to))]);
    };
    axis.addEventListener("mousedown", onDown);
    plot.addEventListener("mousedown", (ev) => { if (!ev.target.closest(".cn-bar")) onDown(ev); });
    root.addEventListener("mousemove", onMove);
    root.addEventListener("mouseup", onUp);
    root.addEventListener("mouseleave", () => { from = null; brush.setAttribute("visibility", "hidden"); });
  }

  draw();
  model.on("change:view", draw);
  model.on("change:run_id", draw);
  // Drawn while hidden (another tab, a collapsed output), labels were fitted by an estimate: draw
  // again, measured, once the timeline is shown.
  let shownWidth = box.clientWidth;
  const resized = new ResizeObserver(() => {
    const w = box.clientWidth;
    if (w > 0 && shownWidth === 0) draw();
    shownWidth = w;
  });
  resized.observe(box);
  return () => {
    resized.disconnect();
    model.off("change:view", draw);
    model.off("change:run_id", draw);
  };
}

export default { render };
