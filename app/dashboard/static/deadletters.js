// The dead-letters panel: counts by group and reason (as `clickfan dlq --json`, pushed
// as the server-sent event "deadletters"), a page of one group's letters, and the
// re-drive (a dry run first, then confirmed) and purge actions. Whatever comes from a
// record is added as text (h() makes text nodes), never as markup.
import { h, onServerEvent } from "./app.js";

const TOKEN = document.querySelector('meta[name="clickfan-token"]').content;
const $ = (sel) => document.querySelector(sel);
const fmt = (n) => Number(n).toLocaleString("en");
const time = (ms) => new Date(ms).toLocaleTimeString("en-GB");
const fill = (el, ...children) => el.replaceChildren(...children.filter((c) => c)); // no "null"

let counts = null;
const finished = new Map(); // action log entry id -> the entry, once it is done
const waiting = new Map(); // entry id -> resolve of a promise waiting for it

function renderCounts(c) {
  counts = c;
  const rows = [];
  const byName = ([a], [b]) => (a < b ? -1 : a > b ? 1 : 0);
  for (const [group, reasons] of Object.entries(c.groups).sort(byName)) {
    for (const [reason, t] of Object.entries(reasons).sort(byName)) {
      rows.push(h("tr", { "data-group": group, "data-reason": reason },
        h("td", {}, group), h("td", {}, reason), h("td.count", {}, fmt(t.count)),
        h("td", {}, t.oldest), h("td", {}, t.newest),
        h("td", {}, h("button", { "data-action": "dlq-show",
          onclick: () => showLetters(group, reason) }, "show"))));
    }
  }
  fill($("#deadletters > .body"),
    h("div", {}, h("span.big", { id: "dlq-total" }, fmt(c.total)), ` dead letters on ${c.topic}`,
      c.at ? h("span.muted", {}, ` · counted ${time(c.at)}`) : null),
    h("div.muted", {}, "as `clickfan dlq` counts them: from each group's purge position on "
      + "(the dead-letters box above counts every record on the topic)"),
    c.error ? h("div.errors", { id: "dlq-error" }, c.error) : null,
    rows.length
      ? h("table", { id: "dlq-table" },
        h("tr", {}, ["group", "reason", "count", "oldest", "newest", ""].map((x) => h("th", {}, x))),
        rows)
      : h("p.muted", { id: "dlq-none" }, "no dead letters"));
}

// ---------------------------------------------------------------- show

function letterItem(topic, l) {
  const where = `${topic}[${l.partition}]@${l.offset}, dead-lettered ${l.dead_lettered}`;
  const about = l.problem
    ? h("div.errors", {}, `malformed headers: ${l.problem} (never re-driven)`)
    : h("div", {}, `group ${l.group} · reason ${l.reason} · attempt ${l.attempt} · from `
      + `${l.source.topic}[${l.source.partition}]@${l.source.offset}`);
  return h("li.letter", { "data-at": `${l.partition}:${l.offset}` },
    h("div", {}, where), about,
    l.message ? h("div.muted", {}, `message: ${l.message}`) : null,
    h("details", {}, h("summary", {}, `${l.headers.length} headers · key ${l.key}`),
      h("table", {}, l.headers.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v))))),
    h("pre.value", { title: l.value_bytes === null ? "null" : `${l.value_bytes} bytes` }, l.value));
}

async function showLetters(group, reason, after) {
  const box = $("#dlq-letters");
  const query = new URLSearchParams({ group, reason });
  if (after) query.set("after", after);
  box.replaceChildren(h("p.muted", {}, `reading the dead letters of ${group} (${reason})…`));
  const response = await fetch(`/api/deadletters/letters?${query}`,
    { headers: { "X-Clickfan-Token": TOKEN } });
  const body = await response.json();
  if (!response.ok) {
    box.replaceChildren(h("p.errors", { id: "dlq-letters-error" }, body.error));
    return;
  }
  fill(box,
    h("h3", {}, `${group} · ${reason}: ${body.letters.length} shown${after ? " (a later page)" : ""}`),
    h("ol", {}, body.letters.map((l) => letterItem(counts?.topic ?? "DLQ", l))),
    body.next
      ? h("button", { "data-action": "dlq-next", onclick: () => showLetters(group, reason, body.next) },
        "next page")
      : null);
}

// ---------------------------------------------------------------- actions

async function post(kind, params) {
  const response = await fetch(`/api/actions/${kind}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Clickfan-Token": TOKEN },
    body: JSON.stringify(params),
  });
  const body = await response.json();
  if (!response.ok) {
    $("#action-log").prepend(h("li.e-failed", { "data-refused": kind }, `refused: ${body.error}`));
    return null;
  }
  return body.entry;
}

function whenFinished(id) {
  return new Promise((resolve) => {
    if (finished.has(id)) resolve(finished.get(id));
    else waiting.set(id, resolve);
  });
}

onServerEvent("log", (e) => {
  if (e.state === "running") return;
  finished.set(e.id, e);
  if (finished.size > 200) finished.delete(finished.keys().next().value);
  const resolve = waiting.get(e.id);
  if (resolve) { waiting.delete(e.id); resolve(e); }
});

async function redrive(params) {
  // the dry run first: what would be sent, then a confirmation showing it
  const dry = await post("dlq-redrive", { ...params, dry_run: true });
  if (!dry) return;
  const done = await whenFinished(dry.id);
  if (done.state !== "ok") return;
  const question = `${done.lines.join("\n")}\n\nre-drive these into the sink of ${params.group} now?`;
  if (window.confirm(question)) await post("dlq-redrive", params);
}

function heldBy(group) {
  const reasons = counts?.groups[group] ?? {};
  return Object.values(reasons).reduce((n, t) => n + t.count, 0);
}

function renderActions(groups, reasons) {
  if (!groups.length) {
    $("#dlq-actions").replaceChildren(
      h("p.muted", {}, "re-drive and purge are offered only to a page opened on 127.0.0.1"));
    return;
  }
  const options = (id, values, first) => h("select", { id },
    first ? h("option", { value: "" }, first) : null, values.map((v) => h("option", { value: v }, v)));
  const rgroup = options("dlq-redrive-group", groups);
  const rreason = options("dlq-redrive-reason", reasons, "any reason");
  const since = h("input", { id: "dlq-redrive-since", placeholder: "since (2h, ISO time)" });
  const pgroup = options("dlq-purge-group", groups);
  const before = h("input", { id: "dlq-purge-before", value: "now" });
  $("#dlq-actions").replaceChildren(
    h("fieldset", {}, h("legend", {}, "re-drive a group's dead letters into its sink (after a fix)"),
      rgroup, rreason, since,
      h("button", { "data-action": "dlq-redrive", onclick: () => {
        const params = { group: rgroup.value };
        if (rreason.value) params.reason = rreason.value;
        if (since.value.trim()) params.since = since.value.trim();
        redrive(params);
      } }, "dry run, then re-drive"),
      h("button", { "data-action": "dlq-stop", onclick: () => {
        if (window.confirm(`stop the re-drive of ${rgroup.value}?`)) post("dlq-stop", { group: rgroup.value });
      } }, "stop")),
    h("fieldset", {}, h("legend", {}, "purge a group's dead letters (others' stay)"),
      pgroup, " dead-lettered before ", before,
      h("button", { "data-action": "dlq-purge", onclick: () => {
        const question = `drop the dead letters of ${pgroup.value} dead-lettered before `
          + `${before.value} (it has ${fmt(heldBy(pgroup.value))} now)? Other groups' stay.`;
        if (window.confirm(question)) post("dlq-purge", { group: pgroup.value, before: before.value });
      } }, "purge")));
}

// ---------------------------------------------------------------- start

async function start() {
  onServerEvent("deadletters", renderCounts);
  const [meta, first] = await Promise.all([
    fetch("/api/meta").then((r) => r.json()),
    fetch("/api/deadletters").then((r) => r.json()),
  ]);
  if (!counts) renderCounts(first);
  renderActions(meta.actions.groups, first.reasons);
}

start();
