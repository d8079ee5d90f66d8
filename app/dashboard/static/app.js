// The dashboard page: one ES module, no build step. State arrives by server-sent
// events (/api/events) once per reading; actions are POSTed with this page's token.

const TOKEN = document.querySelector('meta[name="clickfan-token"]').content;
const HISTORY_MS = 15 * 60 * 1000;
const $ = (sel) => document.querySelector(sel);
const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
const rate = (n) => (n === null || n === undefined ? "–" : `${Number(n).toFixed(0)}/s`);
const time = (ms) => new Date(ms).toLocaleTimeString("en-GB");

// h("div.a", {title: "x"}, child, "text") -> element; children may be arrays (text
// children become text nodes, never markup)
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) el.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}
const badge = (s) => h(`span.status.s-${s || "none"}`, {}, s || "no commits");
const bytes = (n) => {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
};

// ---------------------------------------------------------------- topology

function renderBrokers(state) {
  // up/down as the cluster's metadata says; on a local stack also whether its process runs
  // (a killed broker stays in the metadata until its session times out)
  const running = Object.fromEntries((state.services || []).map((s) => [s.name, s.running]));
  $("#brokers").replaceChildren(
    ...state.brokers.map((b) => {
      const process = running[`kafka-${b.id}`];
      const gone = b.up && process === false;
      const label = gone ? "process stopped, still in metadata" : b.up ? "up" : "down";
      return h(`span.broker.${gone ? "leaving" : b.up ? "up" : "down"}`, { "data-broker": b.id },
        `broker ${b.id} ${label}`);
    }),
  );
}

function renderProducer(state) {
  const p = state.producer;
  const proc = state.processes.find((x) => x.name === "producer");
  $("#producer .body").replaceChildren(
    h("div.big", { id: "rate-in" }, rate(state.groups[0]?.rate_in)),
    h("div", {}, "appended to the topic"),
    h("div.muted", {}, p.managed ? `run here at ${fmt(p.rate)} events/s (${proc?.state ?? "-"})` : "runs elsewhere"),
  );
}

function renderTopic(state) {
  const t = state.topic;
  $("#topic h2").textContent = `topic ${t.name}`;
  const rows = t.partitions.map((p) =>
    h("tr", { "data-partition": p.partition },
      h("td", {}, String(p.partition)),
      h("td", {}, p.leader >= 0 ? String(p.leader) : "none"),
      h("td", { class: p.under_replicated ? "s-WARN" : "" }, p.isr.join(",")),
      h("td", {}, fmt(p.log_start)),
      h("td", {}, fmt(p.log_end))));
  $("#topic .body").replaceChildren(
    h("div", {}, h("span.big", { id: "records" }, fmt(t.records)), " records, ",
      h("span", { id: "produced" }, fmt(t.produced)), " appended"),
    h("div.scroll", {}, h("table", {},
      h("tr", {}, ...["partition", "leader", "ISR", "log start", "log end"].map((c) => h("th", {}, c))),
      rows)),
  );
}

function renderGroups(state) {
  const boxes = state.groups.map((g) => {
    const tiles = g.partitions.map((p) =>
      h(`div.tile.s-${p.status || "none"}`,
        { title: `partition ${p.partition}: lag ${p.lag}, committed ${p.committed ?? "none"}, ${p.status || "no commits"}, owner ${p.owner || "none"}`,
          "data-partition": p.partition, "data-status": p.status || "" },
        `${p.partition}: ${fmt(p.lag)}`));
    const members = g.members.length
      ? g.members.map((m) => h("li", {}, `${m.client_id} (${m.host}): ${m.partitions.join(", ")}`))
      : [h("li.muted", {}, "no members")];
    const proc = state.processes.find((x) => x.name === (g.role === "indexer" ? "es-indexer" : "hdfs-archiver"));
    return h("div.box.group", { id: `group-${g.role}`, "data-status": g.status || "" },
      h("h2", {}, h("span", {}, `group ${g.name}`), badge(g.status)),
      h("div", {}, "lag ", h("span.big.lag", {}, fmt(g.totallag)),
        ` · in ${rate(g.rate_in)} · out `, h("span.rate-out", {}, rate(g.rate_out))),
      h("div.tiles", {}, tiles),
      h("ul", {}, members),
      h("div.muted", {}, `dead letters written: ${fmt(g.dead_letters)}`,
        proc ? ` · worker run here: ${proc.state}` : ""));
  });
  $("#groups").replaceChildren(...boxes);
}

function renderSinks(state) {
  const es = state.elasticsearch;
  $("#elasticsearch .body").replaceChildren(
    es
      ? h("div", {}, h("div.big", { id: "es-docs" }, fmt(es.documents)), "documents",
        h("ul", {}, es.indices.map((i) => h("li", {}, `${i.name}: ${fmt(i.documents)}`))))
      : h("div.errors", { id: "es-docs" }, "not reachable"));
  const hd = state.hdfs;
  $("#hdfs .body").replaceChildren(
    hd
      ? h("div", {}, h("div.big", { id: "hdfs-files" }, fmt(hd.files)), `files, ${bytes(hd.bytes)}`,
        h("div.muted", {}, hd.newest ? `newest ${hd.newest} (${time(hd.newest_mtime)})` : "no file yet"))
      : h("div.errors", { id: "hdfs-files" }, "not reachable"));
  const d = state.dlq;
  $("#dlq h2").textContent = `dead letters: ${d.topic}`;
  $("#dlq .body").replaceChildren(
    h("div", {}, h("span.big", { id: "dlq-records" }, fmt(d.records)), " records on the topic"),
    // a purge moves a position and deletes nothing: the panel below counts past it
    h("div.muted", {}, "kept until retention, purged or not"),
    h("ul", {}, Object.entries(d.by_group).map(([g, n]) => h("li", {}, `from ${g}: ${fmt(n)}`))),
    h("div.errors", { id: "errors" }, state.errors.join("; ")));
}

const lastStatus = {};
function logStatusChanges(state) {
  for (const g of state.groups) {
    const now = g.status || "none";
    if (lastStatus[g.name] !== undefined && lastStatus[g.name] !== now) {
      $("#status-log").prepend(h("li", { "data-group": g.role, "data-status": now },
        `${time(state.at)} ${g.name}: ${lastStatus[g.name]} → ${now} (lag ${fmt(g.totallag)})`));
    }
    lastStatus[g.name] = now;
  }
}

// ---------------------------------------------------------------- charts

const charts = { groups: [], lag: null, rate: null, data: { t: [], lag: {}, in: [], out: {} } };
const COLOURS = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a"];

function initCharts(groups) {
  charts.groups = groups;
  if (typeof window.uPlot !== "function") {
    for (const id of ["#chart-lag", "#chart-rate"]) $(id).textContent = "charts need the chart library: run `make install`";
    return;
  }
  const width = () => Math.max($("#chart-lag").clientWidth, 300);
  const series = (label, i, dash) => ({ label, stroke: COLOURS[i % COLOURS.length], width: 2, dash });
  charts.lag = new window.uPlot({ width: width(), height: 200, series: [{}, ...groups.map((g, i) => series(g, i))] },
    [[], ...groups.map(() => [])], $("#chart-lag"));
  charts.rate = new window.uPlot({ width: width(), height: 200,
    series: [{}, series("in (appended)", 3, [4, 4]), ...groups.map((g, i) => series(`out of ${g}`, i))] },
  [[], [], ...groups.map(() => [])], $("#chart-rate"));
  window.addEventListener("resize", () => {
    for (const c of [charts.lag, charts.rate]) c.setSize({ width: width(), height: 200 });
  });
}

function addPoint(p) {
  const d = charts.data;
  if (!p || (d.t.length && p.t <= d.t[d.t.length - 1] * 1000)) return;
  d.t.push(p.t / 1000);
  d.in.push(p.in);
  for (const g of charts.groups) {
    (d.lag[g] ||= []).push(p.lag[g] ?? null);
    (d.out[g] ||= []).push(p.out[g] ?? null);
  }
  while (d.t.length && d.t[0] * 1000 < p.t - HISTORY_MS) {
    d.t.shift(); d.in.shift();
    for (const g of charts.groups) { d.lag[g].shift(); d.out[g].shift(); }
  }
}

function drawCharts() {
  const d = charts.data;
  if (!charts.lag) return;
  charts.lag.setData([d.t, ...charts.groups.map((g) => d.lag[g] || [])]);
  charts.rate.setData([d.t, d.in, ...charts.groups.map((g) => d.out[g] || [])]);
}

// ---------------------------------------------------------------- actions

async function act(kind, params, question) {
  if (!window.confirm(question)) return;
  const response = await fetch(`/api/actions/${kind}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Clickfan-Token": TOKEN },
    body: JSON.stringify(params),
  });
  if (!response.ok) {
    const { error } = await response.json();
    $("#action-log").prepend(h("li.e-failed", { "data-refused": kind }, `refused: ${error}`));
  }
}

function renderActions(a) {
  const parts = [];
  if (a.services.length) {
    parts.push(h("fieldset", { id: "act-services" }, h("legend", {}, "services (local stack)"),
      a.services.map((s) => h("div", { "data-service": s }, `${s} `,
        ["stop", "start", ...(a.brokers.includes(s) ? ["kill"] : [])].map((verb) =>
          h("button", { "data-action": `${verb}-${s}`,
            onclick: () => act("service", { name: s, verb }, `${verb} ${s}?`) }, verb))))));
  } else {
    parts.push(h("p.muted", {}, "services: not a local stack, so no service can be stopped from here"));
  }
  if (a.workers.length) {
    parts.push(h("fieldset", {}, h("legend", {}, "workers run here"),
      a.workers.map((w) => h("div", {}, `${w} `, ["stop", "start"].map((verb) =>
        h("button", { "data-action": `${verb}-${w}`,
          onclick: () => act("worker", { name: w, verb }, `${verb} worker ${w}?`) }, verb))))));
  }
  if (a.producer) {
    const input = h("input", { id: "producer-rate", type: "number", min: "0", step: "10", value: "200" });
    parts.push(h("fieldset", {}, h("legend", {}, "producer"), "events/s ", input,
      h("button", { "data-action": "producer-rate",
        onclick: () => act("producer", { rate: input.value }, `set the producer to ${input.value} events/s?`) }, "set")));
  }
  if (!a.groups.length) {
    $("#actions .body").replaceChildren(h("p.muted", {}, "actions are offered only to a page opened on 127.0.0.1"));
    return;
  }
  const group = h("select", { id: "replay-group" }, a.groups.map((g) => h("option", { value: g }, g)));
  const mode = h("select", { id: "replay-mode" },
    ["earliest", "a time", "a shift"].map((m) => h("option", { value: m }, m)));
  const value = h("input", { id: "replay-value", placeholder: "2025-01-31T12:00 or -100" });
  parts.push(h("fieldset", {}, h("legend", {}, "replay a group (its workers stopped)"), group, mode, value,
    h("button", { "data-action": "replay", onclick: () => {
      const params = { group: group.value };
      if (mode.value === "earliest") params.to = "earliest";
      else if (mode.value === "a time") params.to = value.value;
      else params.shift = value.value;
      act("replay", params, `reset ${group.value} to ${mode.value} ${mode.value === "earliest" ? "" : value.value}?`);
    } }, "replay")));
  if (a.experiments.length) {
    const pick = h("select", { id: "experiment-name" }, a.experiments.map((n) => h("option", { value: n }, n)));
    parts.push(h("fieldset", {}, h("legend", {}, "run a quick experiment"), pick,
      h("button", { "data-action": "experiment",
        onclick: () => act("experiment", { name: pick.value }, `run experiment ${pick.value} (a minute or two)?`) }, "run")));
  }
  $("#actions .body").replaceChildren(...parts);
}

const entries = new Map();
function renderEntry(e) {
  const li = h(`li.e-${e.state}`, { "data-entry": e.id, "data-state": e.state },
    `${time(e.started)} ${e.action}: ${e.state}`,
    e.lines.length ? h("pre", {}, e.lines.join("\n")) : null);
  const old = entries.get(e.id);
  if (old) old.replaceWith(li); else $("#action-log").prepend(li);
  entries.set(e.id, li);
  if (e.state !== "running" && e.action.startsWith("experiment")) loadReports();
}

// ---------------------------------------------------------------- reports

async function loadReports() {
  const { folder, reports } = await (await fetch("/api/reports")).json();
  $("#reports .body").replaceChildren(
    reports.length
      ? h("ul", {}, reports.map((r) => h("li", {}, h("a", { href: `#report=${r.name}`,
        onclick: () => showReport(r.name) }, r.name), ` ${r.title}`)))
      : h("p.muted", {}, `no reports in ${folder} yet`));
}

async function showReport(name) {
  const { html } = await (await fetch(`/api/reports/${encodeURIComponent(name)}`)).json();
  $("#report").innerHTML = html; // rendered by the server with raw HTML escaped
}

// ---------------------------------------------------------------- start

// other modules' listeners for server-sent events (deadletters.js: "deadletters", "log")
const serverEvents = [];
let events = null;
export function onServerEvent(name, handler) {
  serverEvents.push([name, handler]);
  if (events) events.addEventListener(name, (ev) => handler(JSON.parse(ev.data)));
}

const drawn = []; // milliseconds each of the last 60 renders took (shown in the header)
function render(state) {
  const began = performance.now();
  renderBrokers(state);
  renderProducer(state);
  renderTopic(state);
  renderGroups(state);
  renderSinks(state);
  logStatusChanges(state);
  if (!charts.groups.length) initCharts(state.groups.map((g) => g.name));
  addPoint(state.point);
  drawCharts();
  document.body.dataset.updated = String(state.at);
  drawn.push(performance.now() - began);
  if (drawn.length > 60) drawn.shift();
  if (drawn.length === 1) performance.mark("clickfan-first-render");
  const mean = drawn.reduce((a, b) => a + b, 0) / drawn.length;
  $("#connection").textContent =
    `live · read ${time(state.at)} in ${state.read_ms} ms · drawn in ${mean.toFixed(1)} ms`;
  window.dispatchEvent(new CustomEvent("clickfan-state", { detail: state }));
}

async function start() {
  // the state first: actions and reports fill in beside it
  fetch("/api/meta").then((r) => r.json()).then((meta) => {
    renderActions(meta.actions);
    meta.log.forEach(renderEntry);
  });
  loadReports();
  const history = await (await fetch("/api/history")).json();
  events = new EventSource("/api/events");
  for (const [name, handler] of serverEvents) {
    events.addEventListener(name, (ev) => handler(JSON.parse(ev.data)));
  }
  let first = true;
  events.addEventListener("state", (ev) => {
    const state = JSON.parse(ev.data);
    if (first) {
      initCharts(state.groups.map((g) => g.name));
      history.forEach(addPoint);
      first = false;
    }
    render(state);
  });
  events.addEventListener("log", (ev) => renderEntry(JSON.parse(ev.data)));
  events.onerror = () => { $("#connection").textContent = "reconnecting…"; };
}

start();
