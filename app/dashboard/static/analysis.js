// The live analysis panel: `clickfan analyze`'s questions from Elasticsearch, last 15
// minutes of event time, asked again every few seconds (/api/analysis, analysis_panel.py).

const EVERY_MS = 5000;
const panel = document.querySelector("#analysis .body");
const fmt = (n) => Number(n).toLocaleString("en");

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text); // values are text, never HTML
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function table(question, title, columns, rows) {
  const box = el("div", null, { class: "analysis-part", "data-question": question });
  box.append(el("h3", title));
  const t = el("table");
  const head = el("tr");
  for (const c of columns) head.append(el("th", c));
  t.append(head);
  for (const row of rows) {
    const tr = el("tr");
    for (const c of columns) tr.append(el("td", typeof row[c] === "number" ? fmt(row[c]) : row[c], { title: String(row[c]) }));
    t.append(tr);
  }
  if (!rows.length) {
    const empty = el("tr");
    empty.append(el("td", "no events"));
    t.append(empty);
  }
  box.append(t);
  return box;
}

// events per minute: one bar per minute, its height the total, its title the types
function minutes(rows) {
  const box = el("div", null, { class: "analysis-part", "data-question": "events-per-minute" });
  box.append(el("h3", "events per minute"));
  const byMinute = new Map();
  for (const r of rows) {
    const m = byMinute.get(r.minute) || { total: 0, types: [] };
    m.total += r.events;
    m.types.push(`${r.event_type} ${fmt(r.events)}`);
    byMinute.set(r.minute, m);
  }
  const max = Math.max(1, ...[...byMinute.values()].map((m) => m.total));
  const bars = el("div", null, { class: "minute-bars" });
  for (const [minute, m] of byMinute) {
    const bar = el("div", null, { class: "minute-bar", title: `${minute}: ${fmt(m.total)} (${m.types.join(", ")})` });
    bar.style.height = `${Math.round((100 * m.total) / max)}%`;
    bar.dataset.events = m.total;
    bars.append(bar);
  }
  box.append(bars);
  return box;
}

async function refresh() {
  try {
    const response = await fetch("/api/analysis");
    const data = await response.json();
    const parts = [];
    if (data.error) parts.push(el("div", data.error, { class: "errors" }));
    const q = data.questions || {};
    if (q["events-per-minute"]) parts.push(minutes(q["events-per-minute"]));
    const tables = [
      ["funnel", "funnel (sessions)", ["step", "sessions"]],
      ["top-pages", "top pages", ["page_url", "events"]],
      ["top-referrers", "top referrers", ["referrer", "events"]],
      ["sessions-per-country", "sessions per country", ["country", "sessions"]],
    ];
    for (const [name, title, columns] of tables) if (q[name]) parts.push(table(name, title, columns, q[name]));
    parts.push(el("div", `${data.index_prefix}-*, since ${data.range.since} · ${data.seconds} s`, { class: "muted" }));
    panel.replaceChildren(...parts);
  } catch (err) {
    panel.replaceChildren(el("div", `analysis: ${err}`, { class: "errors" }));
  }
}

refresh();
setInterval(refresh, EVERY_MS);
