// The cluster dashboard: polls /cluster/ and /cluster/tasks/, shows a task from /tasks/<id>/.
// Records come from producers: they are shown with textContent only, never as HTML.
"use strict";

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
let workersSeen = [];
let shown = null; // the task on its page, as last read
let airflowUrl = ""; // Airflow's UI, for the link to a try's whole log
const IN_FLIGHT = ["queued", "running", "up_for_retry"];

function token() {
  return $("token").value.trim();
}

async function call(path, method = "GET", sent = undefined) {
  const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
  if (sent !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: sent === undefined ? undefined : JSON.stringify(sent) });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function cell(row, value, className) {
  const td = row.insertCell();
  td.textContent = value === null || value === undefined ? "" : String(value);
  if (className) td.className = className;
  return td;
}

function taskLink(row, task) {
  const a = document.createElement("a");
  a.href = `#/task/${encodeURIComponent(queue())}/${encodeURIComponent(task.id)}`;
  a.textContent = task.id;
  row.insertCell().appendChild(a);
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return seconds < 90 ? `${Math.round(seconds)} s ago` : `${Math.round(seconds / 60)} min ago`;
}

// A time in a list: the time of day, with the date when it is not today's.
function time(epoch) {
  if (!epoch) return "";
  const at = new Date(epoch * 1000);
  return at.toDateString() === new Date().toDateString() ? at.toLocaleTimeString() : at.toLocaleString();
}

function stamp(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleString() : "";
}

function duration(seconds) {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 90 ? `${minutes} min ${Math.round(seconds % 60)} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// An Airflow try's identity, in its own columns; empty for other tasks.
function airflowCells(row, task) {
  const a = task.airflow || {};
  cell(row, a.dag_id);
  cell(row, a.task_id === undefined ? "" : a.map_index !== undefined && a.map_index !== -1 ? `${a.task_id} [${a.map_index}]` : a.task_id);
  cell(row, a.run_id);
  cell(row, a.try_number);
}

function listFilters(params) {
  const dag = $("feed-dag").value.trim();
  const search = $("feed-search").value.trim();
  if (dag) params.set("dag_id", dag);
  if (search) params.set("search", search);
  return params;
}

function fill(tableId, rows, render) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  for (const item of rows) render(body.insertRow(), item);
}

function queue() {
  return $("queue").value || "default";
}

function setOptions(select, values, keep) {
  const chosen = select.value;
  const wanted = [...keep, ...values];
  if ([...select.options].map((o) => o.value).join() === wanted.join()) return;
  select.replaceChildren(...wanted.map((v) => new Option(v || "any", v)));
  if (wanted.includes(chosen)) select.value = chosen;
}

function partitions(byQueue) {
  return Object.entries(byQueue || {}).map(([name, parts]) => `${name}: ${parts.join(", ") || "none"}`).join("; ");
}

// The last hour's charts of a queue, drawn as SVG from the workers' minutes (/cluster/'s rates).
const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 600, height: 140, left: 48, bottom: 18, top: 8 };

function svgNode(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function frame(svg, top, label) {
  const plotHeight = CHART.height - CHART.bottom - CHART.top;
  const nodes = [];
  for (const fraction of [0, 0.5, 1]) {
    const y = CHART.top + plotHeight * (1 - fraction);
    nodes.push(svgNode("line", { class: "grid", x1: CHART.left, x2: CHART.width, y1: y, y2: y }));
    nodes.push(svgNode("text", { class: "axis", x: CHART.left - 4, y: y + 4, "text-anchor": "end" }, label(top * fraction)));
  }
  nodes.push(svgNode("text", { class: "axis", x: CHART.left, y: CHART.height - 4 }, "60 min ago"));
  nodes.push(svgNode("text", { class: "axis", x: CHART.width, y: CHART.height - 4, "text-anchor": "end" }, "now"));
  svg.replaceChildren(...nodes);
  return (value) => CHART.top + plotHeight * (1 - (top ? value / top : 0));
}

function drawEnded(svg, ended) {
  const top = Math.max(1, ...ended);
  const y = frame(svg, top, (v) => String(Math.round(v)));
  const step = (CHART.width - CHART.left) / ended.length;
  ended.forEach((count, n) => {
    if (!count) return;
    const bar = svgNode("rect", { class: "bar", x: CHART.left + n * step + 1, width: Math.max(1, step - 2), y: y(count), height: y(0) - y(count) });
    bar.appendChild(svgNode("title", {}, `${count} ended`));
    svg.appendChild(bar);
  });
}

function drawRunTime(svg, p50, p99) {
  const top = Math.max(0.001, ...p99.filter((v) => v !== null));
  const y = frame(svg, top, (v) => duration(v));
  const step = (CHART.width - CHART.left) / p50.length;
  for (const [values, name] of [[p50, "p50"], [p99, "p99"]]) {
    const points = values.map((v, n) => (v === null ? null : [CHART.left + (n + 0.5) * step, y(v), v])).filter(Boolean);
    if (points.length) svg.appendChild(svgNode("polyline", { class: name, points: points.map(([x, py]) => `${x},${py}`).join(" ") }));
    for (const [x, py, v] of points) {
      const dot = svgNode("circle", { class: `${name} dot`, cx: x, cy: py, r: 2.5 });
      dot.appendChild(svgNode("title", {}, `${name} ${duration(v)}`));
      svg.appendChild(dot); // a minute alone draws no line
    }
  }
}

function drawCharts(rates) {
  const series = rates[queue()];
  $("chart-queue").textContent = queue();
  const empty = new Array(60).fill(0);
  drawEnded($("chart-ended"), series ? series.ended : empty);
  drawRunTime($("chart-runtime"), series ? series.p50_s : empty.map(() => null), series ? series.p99_s : empty.map(() => null));
}

async function refreshCluster() {
  const cluster = await call("/cluster/");
  fill("workers", cluster.workers, (row, w) => {
    row.dataset.worker = w.worker || w.url;
    cell(row, w.worker || "(no answer)");
    cell(row, w.status, `status-${w.status}`);
    cell(row, w.maintenance || "");
    cell(row, ago(w.last_seen_s_ago));
    cell(row, partitions(w.partitions));
    cell(row, w.concurrency ? `${w.running} of ${w.concurrency}` : w.running);
    cell(row, w.error ? `${w.url}: ${w.error}` : w.url);
    const action = row.insertCell();
    if (w.worker && w.status !== "lost" && w.status !== "stopped") action.appendChild(maintenanceButton(w));
  });
  fill("queues", Object.entries(cluster.queues), (row, [name, counts]) => {
    row.dataset.queue = name;
    cell(row, name);
    for (const state of ["queued", "running", "up_for_retry", "success", "failed", "cancelled"]) cell(row, counts[state] || 0);
    cell(row, counts.dead_letters || 0);
    const rate = (cluster.rates || {})[name];
    cell(row, rate ? rate.per_minute : 0);
  });
  setOptions($("queue"), Object.keys(cluster.queues), []);
  drawCharts(cluster.rates || {});
  setOptions($("feed-state"), cluster.states, [""]);
  airflowUrl = cluster.airflow_url || "";
  workersSeen = cluster.workers.map((w) => w.worker).filter(Boolean);
  setOptions($("feed-worker"), workersSeen, [""]);
}

async function refreshFeed() {
  const params = listFilters(new URLSearchParams({ queue: queue(), limit: "50" }));
  if ($("feed-state").value) params.set("state", $("feed-state").value);
  if ($("feed-worker").value) params.set("worker", $("feed-worker").value);
  const [feed, failed] = await Promise.all([
    call(`/cluster/tasks/?${params}`),
    call(`/cluster/tasks/?${listFilters(new URLSearchParams({ queue: queue(), state: "failed", limit: "20" }))}`),
  ]);
  fill("feed", feed.tasks, (row, t) => {
    row.dataset.task = t.id;
    taskLink(row, t);
    airflowCells(row, t);
    cell(row, t.command && t.command.kind);
    cell(row, t.state, `state-${t.state}`);
    cell(row, t.attempt);
    cell(row, t.worker);
    cell(row, time(t.updated_at));
  });
  fill("failed", failed.tasks, (row, t) => {
    row.dataset.task = t.id;
    taskLink(row, t);
    airflowCells(row, t);
    cell(row, t.worker);
    cell(row, t.exit_code);
    cell(row, time(t.ended_at));
    cell(row, readable(t.detail, t.command && t.command.kind === "airflow"), "detail");
  });
}

// Each refresh reads the dead-letters topic's tail: every few seconds, not every second.
const DEAD_LETTERS_EVERY = 5;
let ticks = 0;

async function refreshDeadLetters() {
  const answer = await call("/dead-letters/?limit=20");
  fill("dead-letters", answer.dead_letters, (row, d) => {
    cell(row, time(d.at));
    cell(row, d.key);
    cell(row, d.reason, "detail");
    cell(row, d.size);
    cell(row, d.truncated ? `${d.value}…` : d.value, "detail");
    cell(row, d.source);
  });
}

function route() {
  const match = location.hash.match(/^#\/task\/([^/]+)\/(.+)$/);
  return match ? { queue: decodeURIComponent(match[1]), id: decodeURIComponent(match[2]) } : null;
}

// An Airflow try's output is its log's JSON records, the first one cut short by the 4 KiB
// kept: each is shown as a line, and the cut one is left out.
function readable(detail, airflow) {
  const [summary, ...lines] = (detail || "").split("\n");
  if (!airflow) return detail || "";
  const out = [];
  lines.forEach((line, n) => {
    try {
      const record = JSON.parse(line);
      const level = record.level ? ` ${String(record.level).toUpperCase()}` : "";
      const source = record.logger ? ` ${record.logger}:` : "";
      out.push(`${record.timestamp || ""}${level}${source} ${record.event === undefined ? line : record.event}`.trim());
    } catch {
      if (n > 0 || !line.trim()) out.push(line); // the first line is cut: left out
      else out.push("…");
    }
  });
  return [summary, ...out].join("\n");
}

function airflowLog(t) {
  const a = t.airflow;
  if (!a || !airflowUrl) return "";
  const mapped = a.map_index !== undefined && a.map_index !== -1 ? `/mapped/${a.map_index}` : "";
  const path = ["dags", a.dag_id, "runs", a.run_id, "tasks", a.task_id].map(encodeURIComponent).join("/");
  return `${airflowUrl.replace(/\/$/, "")}/${path}${mapped}?try_number=${encodeURIComponent(a.try_number)}`;
}

function showTask(t, target) {
  $("task-id").textContent = t ? t.id : target.id;
  $("task-id").className = t ? "" : "missing";
  const a = (t && t.airflow) || {};
  const now = Date.now() / 1000;
  const took = t && t.started_at ? (t.ended_at || now) - t.started_at : null;
  const rows = !t ? [] : [
    ["State", t.state], ["Attempt", t.attempt], ["First attempt of this command", t.first_attempt],
    ["Worker", t.worker], ["Exit code", t.exit_code], ["Queued", stamp(t.queued_at)],
    ["Started", stamp(t.started_at)], ["Ended", stamp(t.ended_at)],
    ["Duration", took === null ? "" : `${duration(took)}${t.ended_at ? "" : " so far"}`],
    ["Changed", stamp(t.updated_at)], ["Queue", target.queue],
    ...(t.airflow ? [["DAG", a.dag_id], ["Airflow task", a.task_id], ["Run", a.run_id], ["Try", a.try_number]] : []),
    ...(t.airflow && a.map_index !== undefined && a.map_index !== -1 ? [["Map index", a.map_index]] : []),
  ];
  fill("task-fields", rows, (row, [name, value]) => {
    cell(row, name);
    cell(row, value, name === "State" ? `state-${value}` : "");
  });
  const earlier = t ? [...(t.earlier || [])].reverse() : [];
  $("task-attempts-section").hidden = earlier.length === 0;
  fill("task-attempts", earlier, (row, e) => {
    cell(row, e.attempt);
    cell(row, e.state, `state-${e.state}`);
    cell(row, e.worker);
    cell(row, e.exit_code);
    cell(row, time(e.started_at));
    cell(row, time(e.ended_at));
    cell(row, e.detail, "detail");
  });
  const airflow = Boolean(t && t.command && t.command.kind === "airflow");
  $("task-detail").textContent = t ? readable(t.detail, airflow) : "";
  const link = t ? airflowLog(t) : "";
  $("task-log-link").hidden = !link;
  $("task-log-link").firstElementChild.href = link || "#";
  $("task-command").textContent = t ? JSON.stringify(t.command, null, 2) : "";
  // Each button only where it can act: a cancel while the task is in flight, a replay once it
  // has ended, never for an Airflow try, whose state is Airflow's.
  shown = t;
  $("cancel").disabled = !t || !IN_FLIGHT.includes(t.state);
  $("replay").disabled = !t || IN_FLIGHT.includes(t.state) || airflow;
  $("replay").title = airflow ? "An Airflow try: clear it in Airflow, which runs it again" : "";
}

async function refreshTask(target) {
  // Opened at a task's address, the queue selector shows the task's queue.
  if (![...$("queue").options].some((o) => o.value === target.queue)) setOptions($("queue"), [target.queue], []);
  $("queue").value = target.queue;
  try {
    showTask(await call(`/tasks/${encodeURIComponent(target.id)}/?queue=${encodeURIComponent(target.queue)}`), target);
  } catch (error) {
    showTask(null, target); // never the task shown before
    $("task-detail").textContent = `no task ${target.id} in queue ${target.queue}: ${error.message}`;
    throw error;
  }
}

// An operator's order (POST /control/), sent by this worker to every worker.
async function order(body, what) {
  try {
    await call("/control/", "POST", body);
    $("worker-action").textContent = `${what}: sent`;
  } catch (error) {
    $("worker-action").textContent = `${what} refused: ${error.message}`;
  }
}

function maintenanceButton(w) {
  const button = document.createElement("button");
  button.textContent = w.maintenance ? "End maintenance" : "Maintenance…";
  button.addEventListener("click", () => {
    if (w.maintenance) return order({ to: w.worker, maintenance: null }, `${w.worker} out of maintenance`);
    const comment = window.prompt(`Put ${w.worker} in maintenance: it starts no new task. Why?`, "maintenance");
    if (comment) order({ to: w.worker, maintenance: comment }, `${w.worker} in maintenance`);
  });
  return button;
}

async function act(action) {
  const target = route();
  let force = "";
  if (action === "replay" && shown && shown.state === "success") {
    if (!window.confirm(`${shown.id} succeeded. Run it again anyway?`)) {
      $("action-result").textContent = "replay not sent";
      return;
    }
    force = "&force=1";
  }
  try {
    const answer = await call(`/tasks/${encodeURIComponent(target.id)}/${action}/?queue=${encodeURIComponent(target.queue)}${force}`, "POST");
    $("action-result").textContent = `${action} sent: ${JSON.stringify(answer)}`;
  } catch (error) {
    $("action-result").textContent = `${action} refused: ${error.message}`;
  }
}

async function tick() {
  const target = route();
  $("cluster-page").hidden = Boolean(target);
  $("task-page").hidden = !target;
  try {
    if (target) await refreshTask(target);
    else await Promise.all([refreshCluster(), refreshFeed(), ticks++ % DEAD_LETTERS_EVERY ? null : refreshDeadLetters()]);
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
    $("status").className = "";
  } catch (error) {
    $("status").textContent = `not updated: ${error.message}`;
    $("status").className = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = sessionStorage.getItem("airkafka-token") || "";
  $("token").addEventListener("change", () => sessionStorage.setItem("airkafka-token", token()));
  $("cancel").addEventListener("click", () => act("cancel"));
  $("replay").addEventListener("click", () => act("replay"));
  for (const id of ["feed-dag", "feed-search"]) $(id).addEventListener("input", () => tick());
  window.addEventListener("hashchange", () => {
    $("action-result").textContent = "";
    tick();
  });
  // The queues and Airflow's address, also for a page opened at a task.
  if (route()) refreshCluster().catch(() => {});
  tick();
  setInterval(tick, POLL_MS);
});
