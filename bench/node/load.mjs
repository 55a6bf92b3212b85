// Load generator: N socket.io-client connections, each subscribed to a room, then events
// published over HTTP; measures deliveries and publish-to-receipt latency (from the
// envelope's timestamp, stamped by the server when it accepted the event).
// Usage: node load.mjs '<json config>'   Prints one JSON object.
import { openMany, publish, sinceStamp } from "./clients.mjs";

const c = JSON.parse(process.argv[2]);
const latencies = [];
let received = 0;
const expected = c.mode === "fanout" ? c.events * c.connections : c.events;
let finish;
const finished = new Promise((resolve) => (finish = resolve));
if (expected === 0) finish(); // a capacity run: connections only

const connectStart = performance.now();
const sockets = await openMany(c, 0, c.connections, c.connections, (event) => {
  latencies.push(sinceStamp(event));
  if (++received === expected) finish();
});
const connectSeconds = (performance.now() - connectStart) / 1000;

const start = performance.now();
for (let sent = 0; sent < c.events; sent += c.batch) {
  const count = Math.min(c.batch, c.events - sent);
  await publish(c, 0, sent, count, c.connections);
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
