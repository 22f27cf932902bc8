// The observer's runs table (anywidget ESM, no build step).
// Model: rows (list of {id, short_id, workflow, version, state, started, duration, lease_owner}),
// selected_id (string; written here when a row is clicked), loading (bool), message (string).
const COLUMNS = [
  ["short_id", "run"], ["workflow", "workflow"], ["version", "version"], ["state", "state"],
  ["started", "started (UTC)"], ["duration", "duration"], ["lease_owner", "lease owner"],
];

function render({ model, el }) {
  el.classList.add("cn-obs");
  const wrap = document.createElement("div");
  wrap.className = "cn-runs";
  el.appendChild(wrap);

  function draw() {
    const rows = model.get("rows") || [];
    const selected = model.get("selected_id");
    wrap.replaceChildren();
    const table = document.createElement("table");
    table.className = "cn-runs-table";
    table.setAttribute("data-testid", "cn-runs-table");
    const head = table.createTHead().insertRow();
    for (const [, title] of COLUMNS) {
      const th = document.createElement("th");
      th.textContent = title;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const r of rows) {
      const tr = body.insertRow();
      tr.dataset.runId = r.id;
      tr.title = r.id;
      if (r.id === selected) tr.classList.add("cn-selected");
      for (const [key] of COLUMNS) {
        const td = tr.insertCell();
        td.textContent = r[key] ?? "";
        if (key === "short_id" && r.id) {
          // the rest of the id at font-size 0: not seen, but selected and copied with the cell
          const rest = document.createElement("span");
          rest.className = "cn-id-rest";
          rest.textContent = r.id.slice((r.short_id || "").length);
          td.appendChild(rest);
        }
        if (key === "state") {
          td.className = `cn-state cn-state-${r.state}`;
          td.dataset.state = r.state;
        }
      }
      tr.addEventListener("click", () => {
        model.set("selected_id", r.id);
        model.save_changes();
      });
    }
    wrap.appendChild(table);
    if (!rows.length) {
      const p = document.createElement("p");
      p.className = "cn-empty";
      p.textContent = model.get("message") || "No runs match.";
      wrap.appendChild(p);
    }
  }

  draw();
  model.on("change:rows", draw);
  model.on("change:selected_id", draw);
  model.on("change:message", draw);
  return () => {
    model.off("change:rows", draw);
    model.off("change:selected_id", draw);
    model.off("change:message", draw);
  };
}

export default { render };
