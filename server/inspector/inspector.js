// The operator console: charts of the last 15 minutes per instance and summed, the instances,
// the connections (filter, page, disconnect), a room (members, position, recent events with
// their payloads) and its live events over Socket.IO, and in dev mode a form to publish a test
// event. Every call carries the admin token.
//
// Two rules hold throughout, because the page holds an admin token and shows strings that
// clients and services chose (room names, user strings, event payloads):
// - data reaches the page only as text (textContent, attribute values, SVG nodes), never as
//   markup: nothing here parses HTML;
// - the token travels only in the Authorization header and in Socket.IO's auth payload, never
//   in a URL, so it stays out of server and proxy logs. It comes from the form or the URL
//   fragment (#token=...&room=..., removed from the address bar at once) and is kept in
//   sessionStorage for reloads of this tab.
"use strict";

const $ = (selector) => document.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "inspector-token";
const WINDOW_SECONDS = 15 * 60;
const SHORTEST_SPAN = 30; // seconds: a cluster just started is drawn over this, not 15 minutes
const POLL_MS = 2000;
const LIVE_EVENTS_KEPT = 200;

// Columns of a sample row of GET /api/v1/instances: [t, connections, published/s,
// delivered/s, refused/s, dropped/s].
const METRICS = {
  connections: { column: 1, label: "connections" },
  published: { column: 2, label: "published/s" },
  delivered: { column: 3, label: "delivered/s" },
  refused: { column: 4, label: "refused/s" },
  dropped: { column: 5, label: "dropped/s" },
};
const CHARTS = [
  { figure: "#chart-connections", metrics: ["connections"] },
  { figure: "#chart-events", metrics: ["published", "delivered"] },
  { figure: "#chart-losses", metrics: ["refused", "dropped"] },
];

const fragment = new URLSearchParams(location.hash.slice(1));
let token = fragment.get("token") || sessionStorage.getItem(TOKEN_KEY) || "";
let socket = null;
let watched = null;
let poller = null;

// --- the status line and the API -------------------------------------------------------

// Which part of the page wrote the status line: a later success of that part clears its
// error, a success elsewhere leaves another part's error in view. A notice (a connection
// disconnected) stays until the next message.
let statusSource = "";

function say(source, text, kind = "") {
  statusSource = source;
  $("#status").textContent = text;
  $("#status").className = kind;
}

function clear(source) {
  if (statusSource === source && $("#status").className === "error") say("", "");
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  toString() {
    return [this.status || "network", this.code, this.message].filter(Boolean).join(" ");
  }
}

// One call of the admin API: the parsed JSON body, or an ApiError carrying the status and the
// gateway's {error_code, message}.
async function api(method, path) {
  let response;
  try {
    response = await fetch(path, { method, headers: { authorization: `Bearer ${token}` }, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "", `the gateway did not answer (${error.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null; // an error page of a proxy, say: the status alone tells what happened
  }
  if (!response.ok) {
    const code = body && typeof body.error_code === "string" ? body.error_code : "";
    const message = body && typeof body.message === "string" ? body.message : response.statusText;
    throw new ApiError(response.status, code, message);
  }
  return body;
}

// A refused token stays refused: stop polling with it until another one is given.
function failed(source, error) {
  say(source, `${source}: ${error}`, "error");
  if (error.status === 401 || error.status === 403) stopPolling();
}

// --- small DOM helpers ------------------------------------------------------------------

function element(name, text, className) {
  const node = document.createElement(name);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(values) {
  const tr = document.createElement("tr");
  tr.append(...values.map((value) => (value instanceof Node ? wrap(value) : element("td", value))));
  return tr;
}

function wrap(node) {
  const td = document.createElement("td");
  td.append(node);
  return td;
}

function svg(name, attributes = {}) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const days = Math.floor(s / 86400);
  const rest = `${Math.floor((s % 86400) / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return days ? `${days} d ${rest}` : rest;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

// The time of an RFC 3339 timestamp as a short text, the full one in a tooltip.
function moment(text) {
  const node = element("time", text);
  const date = new Date(text);
  if (!Number.isNaN(date.getTime())) {
    node.textContent = date.toLocaleTimeString();
    node.setAttribute("datetime", text);
    node.title = text;
  }
  return node;
}

// --- charts -----------------------------------------------------------------------------

// Samples by instance, then by t; each poll asks only for what came after the newest t seen.
const samples = new Map();
let newest = 0;
let step = 2;
let reporting = []; // the instances of the last answer

function merge(instances) {
  reporting = instances.map((instance) => instance.id);
  for (const instance of instances) {
    if (!samples.has(instance.id)) samples.set(instance.id, new Map());
    const series = samples.get(instance.id);
    // One note per t (the API's promise); a t asked for again replaces the earlier copy.
    for (const sample of instance.samples) {
      series.set(sample[0], sample);
      newest = Math.max(newest, sample[0]);
    }
  }
  // An instance that stopped answering keeps its line until the line leaves the window.
  for (const [id, series] of samples) {
    for (const t of series.keys()) if (t <= newest - WINDOW_SECONDS) series.delete(t);
    if (!series.size) samples.delete(id);
  }
}

// The sum stops at the newest t every reporting instance has sampled: past it, an instance
// whose sample of that step has not come yet would count as 0 and pull the sum down.
function sumUntil() {
  const ends = reporting.filter((id) => samples.has(id)).map((id) => Math.max(...samples.get(id).keys()));
  return ends.length ? Math.min(...ends) : newest;
}

// One metric's points per instance, and their sum by t (the instances align t to the step).
function seriesOf(metric) {
  const column = METRICS[metric].column;
  const lines = [];
  const sum = new Map();
  const until = sumUntil();
  [...samples].sort(([a], [b]) => a.localeCompare(b)).forEach(([id, series], order) => {
    const points = [...series.values()].sort((a, b) => a[0] - b[0]).map((s) => [s[0], s[column]]);
    for (const [t, value] of points) if (t <= until) sum.set(t, (sum.get(t) || 0) + value);
    lines.push({ name: id, points, sum: false, order });
  });
  const summed = [...sum].sort((a, b) => a[0] - b[0]);
  // With one instance its line is the sum: drawing both would only stack two equal lines.
  return lines.length > 1 ? [{ name: "all", points: summed, sum: true }, ...lines] : lines.map((l) => ({ ...l, sum: true }));
}

// A round upper bound for the y axis: 1, 2 or 5 times a power of ten, never below 1.
function ceiling(peak) {
  if (peak <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(peak));
  return [1, 2, 5, 10].map((m) => m * power).find((bound) => bound >= peak);
}

function format(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1);
}

const BOX = { width: 420, height: 170, left: 44, right: 8, top: 10, bottom: 22 };

function drawChart({ figure, metrics }) {
  const node = $(figure);
  const lines = metrics.flatMap((metric) => seriesOf(metric).map((line) => ({ ...line, metric })));
  const peak = Math.max(0, ...lines.flatMap((line) => line.points.map(([, value]) => value)));
  const top = ceiling(peak);
  const plotWidth = BOX.width - BOX.left - BOX.right;
  const plotHeight = BOX.height - BOX.top - BOX.bottom;
  const span = timeSpan();
  const start = newest - span;
  const x = (t) => BOX.left + ((t - start) / span) * plotWidth;
  const y = (value) => BOX.top + plotHeight - (value / top) * plotHeight;

  const chart = svg("svg", { viewBox: `0 0 ${BOX.width} ${BOX.height}`, role: "img", class: "plot" });
  chart.append(
    svg("line", { x1: BOX.left, y1: BOX.top, x2: BOX.left, y2: BOX.top + plotHeight, class: "axis" }),
    svg("line", { x1: BOX.left, y1: BOX.top + plotHeight, x2: BOX.width - BOX.right, y2: BOX.top + plotHeight, class: "axis" }),
    svg("line", { x1: BOX.left, y1: BOX.top, x2: BOX.width - BOX.right, y2: BOX.top, class: "grid" }),
    label(BOX.left - 4, BOX.top + 4, format(top), "end", "max"),
    label(BOX.left - 4, BOX.top + plotHeight + 4, "0", "end"),
    label(BOX.left, BOX.height - 4, `-${duration(span)}`, "start", "since"),
    label(BOX.width - BOX.right, BOX.height - 4, "now", "end"),
  );
  const legend = element("ul", null, "legend");
  lines.forEach((line) => {
    // An instance keeps its dash pattern in every chart; the metric gives the colour.
    const style = `metric-${line.metric} ${line.sum ? "sum" : `instance instance-${line.order % 4}`}`;
    const title = `${METRICS[line.metric].label} ${line.name}`;
    const polyline = svg("polyline", {
      points: line.points.map(([t, value]) => `${x(t).toFixed(1)},${y(value).toFixed(1)}`).join(" "),
      class: `series ${style}`,
      "data-series": `${line.metric}:${line.name}`,
      "data-peak": Math.max(0, ...line.points.map(([, value]) => value)),
      "data-points": JSON.stringify(line.points), // [t, value] pairs, for tests and the curious
    });
    polyline.append(svg("title"));
    polyline.lastChild.textContent = title;
    chart.append(polyline);
    const last = line.points.length ? line.points[line.points.length - 1][1] : 0;
    const item = element("li", null, style);
    item.append(element("span", null, "swatch"), element("span", `${title}: ${format(last)}`));
    legend.append(item);
  });
  if (!lines.length) chart.append(label(BOX.left + plotWidth / 2, BOX.top + plotHeight / 2, "no samples yet", "middle"));
  node.replaceChildren(node.querySelector("figcaption"), chart, legend);
}

// The x axis spans the samples held, from 30 s (a cluster just started) to 15 minutes.
function timeSpan() {
  let oldest = newest;
  for (const series of samples.values()) for (const t of series.keys()) oldest = Math.min(oldest, t);
  return Math.min(WINDOW_SECONDS, Math.max(SHORTEST_SPAN, newest - oldest));
}

function label(x, y, text, anchor, className = "") {
  const node = svg("text", { x, y, "text-anchor": anchor, class: `label ${className}`.trim() });
  node.textContent = text;
  return node;
}

// --- instances and the cluster's totals -----------------------------------------------------

async function pollInstances() {
  // Ask again for the last two steps: an instance a little behind another still gets its
  // samples of those steps in (samples are kept by t, so a repeat replaces itself).
  const since = newest ? newest - 2 * step : 0;
  let body;
  try {
    body = await api("GET", `/api/v1/instances?since=${since}`);
  } catch (error) {
    failed("instances", error);
    return;
  }
  clear("instances");
  step = body.step || step;
  merge(body.instances);
  CHARTS.forEach(drawChart);
  $("#instances tbody").replaceChildren(...body.instances.map((i) => {
    const tr = row([i.id, i.version, duration(i.uptime_seconds), i.redis, bytes(i.rss_bytes), i.connections, i.rooms]);
    tr.children[3].className = `redis-${i.redis}`;
    return tr;
  }));
  const connections = body.instances.reduce((n, i) => n + i.connections, 0);
  $("#totals").textContent = `${plural(connections, "connection")} on ${plural(body.instances.length, "instance")}`
    + (body.partial ? " (some instances did not answer)" : "");
}

// The rooms of the whole cluster and their sizes, from the stats endpoint: a click opens one.
async function pollRooms() {
  let stats;
  try {
    stats = await api("GET", "/api/v1/websocket/stats");
  } catch (error) {
    failed("rooms", error);
    return;
  }
  clear("rooms");
  $("#rooms tbody").replaceChildren(...Object.entries(stats.rooms).sort().map(([room, members]) => {
    const open = element("button", room, "link");
    open.type = "button";
    open.addEventListener("click", () => openRoom(room));
    return row([open, members]);
  }));
}

// A slow gateway must not pile requests up: a tick finds the previous one still out, it skips.
let inFlight = false;

async function poll() {
  if (inFlight) return;
  inFlight = true;
  try {
    await Promise.all([pollInstances(), pollRooms()]);
  } finally {
    inFlight = false;
  }
}

function stopPolling() {
  clearInterval(poller);
  poller = null;
}

// --- connections ------------------------------------------------------------------------------

let query = { user: "", room: "", limit: "100" };
let cursor = null; // the `after` of the page shown

async function listConnections(after = null) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value) params.set(key, value);
  if (after) params.set("after", after);
  let body;
  try {
    body = await api("GET", `/api/v1/connections?${params}`);
  } catch (error) {
    failed("connections", error);
    return;
  }
  clear("connections");
  cursor = after;
  $("#connections tbody").replaceChildren(...body.connections.map(connectionRow));
  $("#connections-total").textContent = `${plural(body.total, "connection")} match`
    + (body.partial ? " (some instances did not answer)" : "");
  const next = $("#next-page");
  next.hidden = body.next === null || body.next === undefined;
  next.dataset.after = body.next || "";
}

function connectionRow(connection) {
  const tr = row([
    element("code", connection.id),
    connection.user,
    connection.instance,
    connection.transport,
    connection.remote,
    moment(connection.connected_at),
    connection.rooms.join(", ") + (connection.room_count > connection.rooms.length
      ? ` (+${connection.room_count - connection.rooms.length} more)` : ""),
    `${connection.unread_packets} / ${bytes(connection.unread_bytes)}`,
    disconnectButton(connection.id),
  ]);
  tr.dataset.id = connection.id;
  return tr;
}

// Disconnecting takes two clicks (no confirm() dialog: the page opens none): the first arms
// the button for a few seconds, the second sends the DELETE.
function disconnectButton(id) {
  const button = element("button", "Disconnect", "disconnect");
  button.type = "button";
  let disarm = null;
  button.addEventListener("click", async () => {
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = "Really disconnect?";
      disarm = setTimeout(() => {
        button.classList.remove("armed");
        button.textContent = "Disconnect";
      }, 4000);
      return;
    }
    clearTimeout(disarm);
    button.disabled = true;
    try {
      const gone = await api("DELETE", `/api/v1/connections/${encodeURIComponent(id)}`);
      say("connections", `disconnected ${gone.id} (on ${gone.instance})`, "ok");
    } catch (error) {
      failed("connections", error);
    }
    listConnections(cursor);
  });
  return button;
}

// --- a room: its facts from the API, its events live over Socket.IO ---------------------------

let selectedEvent = null;

// A room name is a path segment: encoded, but its ":" kept readable (project:<uuid>).
function roomPath(room) {
  return `/api/v1/rooms/${encodeURIComponent(room).replaceAll("%3A", ":")}?events=20`;
}

async function showRoom(room) {
  let body;
  try {
    body = await api("GET", roomPath(room));
  } catch (error) {
    failed("room", error);
    return;
  }
  clear("room");
  $("#room-facts").hidden = false;
  $("#room-refresh").disabled = false;
  $("#room-members").textContent = String(body.members) + (body.partial ? " (some instances did not answer)" : "");
  $("#room-instances").textContent = Object.entries(body.instances).map(([id, n]) => `${id}: ${n}`).join(", ") || "-";
  const why = {
    off: "none (history is off: HISTORY_SIZE=0)",
    unavailable: "unknown (Redis did not answer in time; events not shown)",
    none: "none (no event kept: never published to, or expired)",
  };
  $("#room-position").textContent = body.position
    ? `epoch ${body.position.epoch}, offset ${body.position.offset}`
    : why[body.history] || body.history;
  $("#room-events tbody").replaceChildren(...[...body.events].reverse().map(eventRow));
  $("#room-connections tbody").replaceChildren(...body.connections.map((c) => row([element("code", c.id), c.user, c.instance, c.transport])));
}

function eventRow(event) {
  const tr = row([moment(event.timestamp), event.type, element("code", event.id), event.source]);
  tr.className = "selectable";
  tr.tabIndex = 0;
  tr.dataset.id = event.id;
  const pick = () => {
    for (const other of document.querySelectorAll("#room-events tr.selected")) other.classList.remove("selected");
    tr.classList.add("selected");
    selectedEvent = event.id;
    $("#payload").textContent = JSON.stringify(event, null, 2);
  };
  tr.addEventListener("click", pick);
  tr.addEventListener("keydown", (key) => { if (key.key === "Enter") pick(); });
  if (event.id === selectedEvent) tr.classList.add("selected");
  return tr;
}

function openRoom(room) {
  $("#room").value = room;
  showRoom(room);
  if (socket) watch(room);
  else watched = room;
}

function showLive(name, event) {
  const item = element("li", null, "event");
  item.append(element("span", `${name}  ${event && event.timestamp ? event.timestamp : ""}`, "name"),
              element("pre", JSON.stringify(event, null, 2)));
  item.dataset.id = event && event.id ? event.id : "";
  $("#events").prepend(item);
  while ($("#events").children.length > LIVE_EVENTS_KEPT) $("#events").lastChild.remove();
}

function connect() {
  if (socket) socket.close();
  socket = io("/ws", { auth: { token }, transports: ["websocket", "polling"] });
  socket.on("connect", () => {
    $("#state").textContent = "connected";
    $("#state").className = "live";
    if (watched) watch(watched);
  });
  socket.on("disconnect", (reason) => {
    $("#state").textContent = `disconnected (${reason})`;
    $("#state").className = "";
  });
  socket.on("connect_error", (error) => {
    $("#state").textContent = `refused: ${error.data && error.data.data ? error.data.data.error_code : error.message}`;
  });
  socket.onAny((name, event) => {
    if (name === "connection_established") return;
    const rooms = event && event.positions ? Object.keys(event.positions) : [];
    if (!rooms.length || rooms.includes(watched)) showLive(name, event);
  });
}

// Subscribe to the new room before leaving the old one: a refused room (a typo, no access)
// leaves the page watching what it watched.
async function watch(room) {
  const ack = await socket.emitWithAck("subscribe", { room });
  if (ack.status !== "success") {
    $("#watching").textContent = `${ack.error_code}: ${ack.message}` + (watched ? ` (still watching ${watched})` : "");
    return;
  }
  if (watched && watched !== ack.room) socket.emit("unsubscribe", { room: watched });
  watched = ack.room;
  $("#watching").textContent = `watching ${ack.room}`;
}

// --- dev mode: publish a test event -------------------------------------------------------------

async function setUpPublisher() {
  const config = await (await fetch("/inspector/config.json")).json();
  if (!config.dev) return;
  $("#publisher").hidden = false;
  $("#event").value = JSON.stringify(config.example, null, 2);
  $("#publish").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    let body;
    try {
      body = JSON.parse($("#event").value);
    } catch (error) {
      $("#published").textContent = `not JSON: ${error.message}`;
      return;
    }
    const response = await fetch("/api/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    $("#published").textContent = `${response.status} ${await response.text()}`;
  });
}

// --- start --------------------------------------------------------------------------------------

function start() {
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  say("", "");
  connect();
  stopPolling();
  poll();
  poller = setInterval(poll, POLL_MS);
  listConnections();
  if (watched) showRoom(watched);
}

$("#login").addEventListener("submit", (submit) => {
  submit.preventDefault();
  token = $("#token").value.trim();
  $("#token").value = "";
  start();
});
$("#watch").addEventListener("submit", (submit) => {
  submit.preventDefault();
  openRoom($("#room").value.trim());
});
$("#room-refresh").addEventListener("click", () => showRoom($("#room").value.trim()));
$("#connection-filter").addEventListener("submit", (submit) => {
  submit.preventDefault();
  query = { user: $("#filter-user").value.trim(), room: $("#filter-room").value.trim(), limit: $("#filter-limit").value.trim() };
  listConnections();
});
$("#next-page").addEventListener("click", () => listConnections($("#next-page").dataset.after));
if (fragment.get("room")) {
  watched = fragment.get("room");
  $("#room").value = watched;
}
history.replaceState(null, "", location.pathname); // the token leaves the address bar
CHARTS.forEach(drawChart);
start();
setUpPublisher();
