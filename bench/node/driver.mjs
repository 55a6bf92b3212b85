// Load driver for curves: holds socket.io-client connections across several measurements
// of one server, so that Python can read the server's /proc between them. Commands come on
// stdin, one JSON object a line; each is answered on stdout with one JSON line.
//   {"op": "connect", "total": N}    open connections (each subscribed to its room) up to N
//   {"op": "publish", "events": E, "rate": R or null, "batch": B, "warmup": W, "timeout": T,
//    "single": S, "inflight": I, "quiet": Q (the last three optional)}
//       publish E events in requests of B (S true: one bare event per request to the
//       single-event URL), R events/s on a fixed schedule (null: as fast as answered), at
//       most I (default INFLIGHT) requests outstanding; wait up to T s after the last for
//       every delivery, and with Q, no longer than Q s without one (an event lost is not
//       waited for until T). Latency runs from the moment the schedule says the event's request
//       is due (or, unpaced, is sent) to its receipt, so a publisher that falls behind shows
//       as latency, not as a lower rate; stamp latency from the event's timestamp (when the
//       server accepted it) to its receipt. The first W events are not counted. A request
//       that fails (a 503, say) counts its events as failed, not expected, and the run goes on.
// Usage: node driver.mjs '<json config>'
import { createInterface } from "node:readline";
import { openMany, publish, sequence, sinceStamp } from "./clients.mjs";

const INFLIGHT = 4;
const c = JSON.parse(process.argv[2]);
const sockets = [];
let run = 0;
let current = null; // the publish command being measured

function receive(event) {
  if (current === null) return;
  const n = sequence(event, current.run);
  if (n < 0) return; // a late delivery of an earlier run
  const now = performance.now();
  current.lastAt = now;
  if (n >= current.warmup) {
    current.stamped[current.samples] = sinceStamp(event);
    current.latencies[current.samples++] = now - current.sendTimes[n];
  }
  if (++current.received === current.expected) current.finish();
}

async function connect({ total }) {
  const start = performance.now();
  const before = sockets.length;
  sockets.push(...(await openMany(c, before, total, total, receive)));
  return { connected: sockets.length, opened: sockets.length - before, seconds: (performance.now() - start) / 1000 };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function measure({ events, rate, batch, warmup, timeout, single = false, inflight: most = INFLIGHT, quiet }) {
  const perEvent = c.mode === "fanout" ? sockets.length : 1;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const counted = Math.max(0, events - warmup) * perEvent;
  current = {
    run: ++run, warmup, finish, received: 0, expected: events * perEvent, failed: 0, error: null, samples: 0, lastAt: null,
    sendTimes: new Float64Array(events), latencies: new Float64Array(counted), stamped: new Float64Array(counted),
  };
  const inflight = new Set();
  let maxLagMs = 0;
  const start = performance.now();
  for (let sent = 0; sent < events; sent += batch) {
    const due = rate ? start + (sent / rate) * 1000 : null;
    if (due !== null && due > performance.now()) await sleep(due - performance.now());
    while (inflight.size >= most) await Promise.race(inflight);
    const now = performance.now();
    if (due !== null) maxLagMs = Math.max(maxLagMs, now - due);
    const count = Math.min(batch, events - sent);
    current.sendTimes.fill(due ?? now, sent, sent + count);
    const request = publish(c, current.run, sent, count, sockets.length, single)
      .catch((error) => {
        current.failed += count;
        current.expected -= count * perEvent;
        current.error ??= error.message;
      })
      .finally(() => inflight.delete(request));
    inflight.add(request);
  }
  await Promise.all(inflight);
  if (current.received >= current.expected) current.finish();
  const published = performance.now();
  const publishSeconds = (published - start) / 1000;
  while (current.received < current.expected) {
    const now = performance.now();
    const idle = now - Math.max(current.lastAt ?? 0, published);
    if (now - published > timeout * 1000 || (quiet && idle > quiet * 1000)) break;
    await Promise.race([finished, sleep(100)]);
  }
  const { received, expected, failed, error, samples, lastAt } = current;
  const latencies = current.latencies.subarray(0, samples).sort();
  const stamped = current.stamped.subarray(0, samples).sort();
  current = null;
  const seconds = lastAt === null ? null : (lastAt - start) / 1000;
  const pct = (p, sorted = latencies) => (samples ? sorted[Math.min(samples - 1, Math.floor(p * samples))] : null);
  return {
    connections: sockets.length, events, offered_events_per_s: rate, expected, received, failed, publish_error: error,
    publish_seconds: publishSeconds, publish_events_per_s: events / publishSeconds, max_lag_ms: maxLagMs,
    seconds, deliveries_per_s: seconds ? received / seconds : null,
    events_per_s: seconds ? received / perEvent / seconds : null,
    samples, p50_ms: pct(0.5), p99_ms: pct(0.99), p999_ms: pct(0.999), max_ms: samples ? latencies[samples - 1] : null,
    stamp_p50_ms: pct(0.5, stamped), stamp_p99_ms: pct(0.99, stamped), stamp_p999_ms: pct(0.999, stamped),
  };
}

const commands = { connect, publish: measure };
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  process.stdout.write(JSON.stringify(await commands[command.op](command)) + "\n");
}
for (const socket of sockets) socket.disconnect();
process.exit(0);
