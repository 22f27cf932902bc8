// The observer's run timeline (anywidget ESM, no build step): events on a time axis, activity
// attempts as bars (scheduled -> completed/failed), waits (signals, timers) as hatched gaps.
// Model: layout = {t_end, lanes, bars, gaps, markers} in ms since the run started (computed in
// Python by continuum_nb.observer.viewmodel.timeline_layout), run_id (string).
const NS = "http://www.w3.org/2000/svg";
const W = 900, LEFT = 10, RIGHT = 48, ROW = 22, AXIS = 28;

function svg(tag, attrs, parent) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function fmt(ms) {
  const s = ms / 1000;
  if (ms === 0) return "0 s";
  if (s < 1) return `${Math.round(ms)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function niceStep(span) {
  const raw = span / 6;
  const pow = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * pow) return m * pow;
  return 10 * pow;
}

function render({ model, el }) {
  el.classList.add("cn-obs");
  const box = document.createElement("div");
  box.className = "cn-timeline";
  box.setAttribute("data-testid", "cn-timeline");
  el.appendChild(box);

  function draw() {
    const lay = model.get("layout") || {};
    const bars = lay.bars || [], gaps = lay.gaps || [], markers = lay.markers || [];
    box.replaceChildren();
    if (!model.get("run_id")) {
      box.textContent = "Select a run to see its timeline.";
      return;
    }
    const span = Math.max(lay.t_end || 0, 1);
    const x = (t) => LEFT + (Math.max(0, Math.min(t, span)) / span) * (W - LEFT - RIGHT);
    const lanes = Math.max(lay.lanes || 0, 0);
    const waitRow = AXIS + lanes * ROW;
    const height = waitRow + (gaps.length ? ROW : 0) + 26;
    const root = svg("svg", { viewBox: `0 0 ${W} ${height}`, width: "100%", role: "img" }, box);
    const defs = svg("defs", {}, root);
    const pat = svg("pattern", { id: "cn-hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
      patternTransform: "rotate(45)" }, defs);
    svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: "cn-hatch-line" }, pat);

    // axis with ticks
    svg("line", { x1: LEFT, y1: AXIS - 6, x2: W - RIGHT, y2: AXIS - 6, class: "cn-axis" }, root);
    const step = niceStep(span);
    for (let t = 0; t <= span + 1e-9; t += step) {
      svg("line", { x1: x(t), y1: AXIS - 10, x2: x(t), y2: height - 20, class: "cn-grid" }, root);
      const lbl = svg("text", { x: x(t) + 2, y: AXIS - 12, class: "cn-tick" }, root);
      lbl.textContent = `+${fmt(t)}`;
    }
    // event markers on the axis
    for (const m of markers) {
      const tick = svg("line", { x1: x(m.t), y1: AXIS - 9, x2: x(m.t), y2: AXIS - 3,
        class: `cn-marker cn-ev-${m.type}` }, root);
      const title = svg("title", {}, tick);
      title.textContent = `#${m.seq} ${m.type}${m.label ? " " + m.label : ""} at +${fmt(m.t)}`;
    }
    // activity attempts
    for (const b of bars) {
      const y = AXIS + b.lane * ROW + 2;
      const w = Math.max(x(b.end) - x(b.start), 3);
      const g = svg("g", { class: `cn-bar cn-bar-${b.status}`, "data-seq": b.seq }, root);
      svg("rect", { x: x(b.start), y, width: w, height: ROW - 6, rx: 3 }, g);
      const label = svg("text", { x: x(b.start) + 4, y: y + ROW - 11, class: "cn-bar-label" }, g);
      const tries = b.attempts > 1 ? ` ×${b.attempts}` : "";
      label.textContent = `${b.label}${tries} · ${b.status} · ${fmt(b.end - b.start)}`;
      svg("title", {}, g).textContent = `${b.label} (seq ${b.seq}): ${b.status}, ${b.attempts} attempt(s), ${fmt(b.end - b.start)}`;
    }
    // waits
    for (const gp of gaps) {
      const w = Math.max(x(gp.end) - x(gp.start), 3);
      const g = svg("g", { class: `cn-gap cn-gap-${gp.kind}${gp.open ? " cn-gap-open" : ""}`, "data-seq": gp.seq }, root);
      svg("rect", { x: x(gp.start), y: waitRow + 2, width: w, height: ROW - 6, fill: "url(#cn-hatch)" }, g);
      const label = svg("text", { x: x(gp.start) + 4, y: waitRow + ROW - 9, class: "cn-gap-label" }, g);
      label.textContent = `${gp.label}${gp.open ? " …" : ""} · ${fmt(gp.end - gp.start)}`;
      svg("title", {}, g).textContent = `${gp.label}: ${gp.outcome || (gp.open ? "waiting" : "ended")}, ${fmt(gp.end - gp.start)}`;
    }
    const foot = svg("text", { x: LEFT, y: height - 6, class: "cn-tick" }, root);
    foot.textContent = `${markers.length} events · ${bars.length} activities · ${gaps.length} waits · span ${fmt(span)}`;
  }

  draw();
  model.on("change:layout", draw);
  model.on("change:run_id", draw);
  return () => {
    model.off("change:layout", draw);
    model.off("change:run_id", draw);
  };
}

export default { render };
