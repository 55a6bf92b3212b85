// The live inspector: cluster counts from the stats endpoint, a watched room's events as they
// arrive (over Socket.IO, with the admin token), and in dev mode a form to publish a test event.
// The token comes from the form or the URL fragment (#token=...&room=...), never from a query
// string, so it stays out of server logs; it is kept in sessionStorage for reloads.
"use strict";

const $ = (selector) => document.querySelector(selector);
const fragment = new URLSearchParams(location.hash.slice(1));
let token = fragment.get("token") || sessionStorage.getItem("inspector-token") || "";
let socket = null;
let watched = null;
let refresher = null;

function cell(text) {
  const td = document.createElement("td");
  td.textContent = String(text);
  return td;
}

function fill(table, rows) {
  const body = $(`${table} tbody`);
  body.replaceChildren(...rows.map((values) => {
    const tr = document.createElement("tr");
    tr.append(...values.map(cell));
    return tr;
  }));
}

async function refresh() {
  const response = await fetch("/api/v1/websocket/stats", { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) {
    $("#state").textContent = `stats: ${response.status}`;
    return;
  }
  const stats = await response.json();
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  $("#totals").textContent = `${plural(stats.connections, "connection")}, ${plural(Object.keys(stats.rooms).length, "room")}`
    + (stats.partial ? " (some instances did not answer)" : "");
  fill("#instances", Object.entries(stats.instances).map(([name, i]) => [name, i.connections, Object.keys(i.rooms).length]));
  fill("#rooms", Object.entries(stats.rooms).map(([room, members]) => [room, members]));
}

function show(name, event) {
  const item = document.createElement("li");
  item.className = "event";
  const title = document.createElement("span");
  title.className = "name";
  title.textContent = `${name}  ${event && event.timestamp ? event.timestamp : ""}`;
  const body = document.createElement("pre");
  body.textContent = JSON.stringify(event, null, 2);
  item.dataset.id = event && event.id ? event.id : "";
  item.append(title, body);
  $("#events").prepend(item);
  while ($("#events").children.length > 200) $("#events").lastChild.remove();
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
    if (!rooms.length || rooms.includes(watched)) show(name, event);
  });
}

async function watch(room) {
  if (watched && watched !== room) socket.emit("unsubscribe", { room: watched });
  watched = room;
  const ack = await socket.emitWithAck("subscribe", { room });
  $("#watching").textContent = ack.status === "success" ? `watching ${ack.room}` : `${ack.error_code}: ${ack.message}`;
  if (ack.status === "success") watched = ack.room;
}

function start() {
  if (!token) return;
  sessionStorage.setItem("inspector-token", token);
  connect();
  clearInterval(refresher);
  refresh();
  refresher = setInterval(refresh, 2000);
}

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

$("#login").addEventListener("submit", (submit) => {
  submit.preventDefault();
  token = $("#token").value.trim();
  start();
});
$("#watch").addEventListener("submit", (submit) => {
  submit.preventDefault();
  if (socket) watch($("#room").value.trim());
});
if (fragment.get("room")) {
  watched = fragment.get("room");
  $("#room").value = watched;
}
history.replaceState(null, "", location.pathname); // the token leaves the address bar
start();
setUpPublisher();
