// Load generator: N socket.io-client connections, each subscribed to a room, then events
// published over HTTP; measures deliveries and publish-to-receipt latency (from the
// envelope's timestamp, stamped by the server when it accepted the event).
// Usage: node load.mjs '<json config>'   Prints one JSON object.
import { io } from "socket.io-client";

const c = JSON.parse(process.argv[2]);
const rooms = Array.from({ length: c.mode === "fanout" ? 1 : c.connections }, (_, i) =>
  `project:${String(i).padStart(8, "0")}-0000-4000-8000-${String(c.seed).padStart(12, "0")}`);
const latencies = [];
let received = 0;
const expected = c.mode === "fanout" ? c.events * c.connections : c.events;
let finish;
const finished = new Promise((resolve) => (finish = resolve));
if (expected === 0) finish(); // a capacity run: connections only

async function open(index) {
  const socket = io(`${c.url}/ws`, { auth: { token: c.token }, transports: ["websocket"], reconnection: false });
  socket.on("workflow.progress", (event) => {
    latencies.push(Date.now() - Date.parse(event.timestamp));
    if (++received === expected) finish();
  });
  await new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", reject);
  });
  const ack = await socket.emitWithAck("subscribe", { room: rooms[index % rooms.length] });
  if (ack.status !== "success") throw new Error(JSON.stringify(ack));
  return socket;
}

const connectStart = performance.now();
const sockets = [];
for (let i = 0; i < c.connections; i += 100) {
  sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, c.connections - i) }, (_, k) => open(i + k)))));
}
const connectSeconds = (performance.now() - connectStart) / 1000;

function body(first, count) {
  return Array.from({ length: count }, (_, k) => {
    const n = first + k;
    const room = rooms[n % rooms.length];
    const data = { workflow_id: "880e8400-e29b-41d4-a716-446655440003", project_id: room.slice(8), status: "running",
                   progress: n % 101, current_step: "Analyzing code structure", logs: ["step"] };
    return c.kind === "gateway"
      ? { type: "workflow.progress", source: "bench", data }
      : { room, event: "workflow.progress", data: { type: "workflow.progress", source: "bench", data } };
  });
}

const headers = { "content-type": "application/json", authorization: `Bearer ${c.publishToken}` };
const start = performance.now();
for (let sent = 0; sent < c.events; sent += c.batch) {
  const count = Math.min(c.batch, c.events - sent);
  const response = await fetch(c.publishUrl, { method: "POST", headers, body: JSON.stringify(body(sent, count)) });
  if (response.status !== 202) throw new Error(`publish: ${response.status} ${await response.text()}`);
  if (c.rate) {
    const due = start + ((sent + count) / c.rate) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
const publishSeconds = (performance.now() - start) / 1000;
await Promise.race([finished, new Promise((resolve) => setTimeout(resolve, c.timeout * 1000))]);
const seconds = (performance.now() - start) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : null;
console.log(JSON.stringify({
  connections: c.connections, events: c.events, expected, received, connect_seconds: connectSeconds,
  publish_seconds: publishSeconds, seconds, deliveries_per_s: received / seconds,
  p50_ms: pct(0.5), p99_ms: pct(0.99), max_ms: latencies.at(-1) ?? null,
}));
for (const socket of sockets) socket.disconnect();
process.exit(0);
