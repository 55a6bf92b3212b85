// What both load generators share: the rooms of a run, a subscribed socket.io-client
// connection, the events they publish, and a received event's latency from its timestamp.
// An event carries "<run>:<sequence>" as its only log line, so a receiver knows which event
// (and which run of a driver) it holds.
import { io } from "socket.io-client";

// The room of connection or event `index`: one room for fan-out, one per connection else.
export function room(c, index, connections) {
  const n = c.mode === "fanout" ? 0 : index % connections;
  return `project:${String(n).padStart(8, "0")}-0000-4000-8000-${String(c.seed).padStart(12, "0")}`;
}

// A connection subscribed to `roomName`; `onEvent` gets every workflow.progress it receives.
export async function open(c, roomName, onEvent) {
  const socket = io(`${c.url}/ws`, { auth: { token: c.token }, transports: ["websocket"], reconnection: false });
  socket.on("workflow.progress", onEvent);
  await new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", reject);
  });
  const ack = await socket.emitWithAck("subscribe", { room: roomName });
  if (ack.status !== "success") throw new Error(JSON.stringify(ack));
  return socket;
}

// Opens connections `from` .. `to` - 1, a hundred at a time.
export async function openMany(c, from, to, connections, onEvent) {
  const sockets = [];
  for (let i = from; i < to; i += 100) {
    const group = Array.from({ length: Math.min(100, to - i) }, (_, k) => open(c, room(c, i + k, connections), onEvent));
    sockets.push(...(await Promise.all(group)));
  }
  return sockets;
}

// The sequence number of a received event of run `run`, or -1 for another run's.
export function sequence(event, run) {
  const [eventRun, n] = event.data.logs[0].split(":");
  return Number(eventRun) === run ? Number(n) : -1;
}

// Milliseconds from the moment the server that accepted `event` stamped it to now (both
// clocks read to the millisecond).
export function sinceStamp(event) {
  return Date.now() - Date.parse(event.timestamp);
}

// Publishes events `first` .. `first + count - 1` of run `run` in one request; `single`: the
// one event as a bare object to the single-event URL (the gateway's POST /api/v1/events).
export async function publish(c, run, first, count, connections, single = false) {
  const events = Array.from({ length: count }, (_, k) => {
    const n = first + k;
    const roomName = room(c, n, connections);
    const data = { workflow_id: "880e8400-e29b-41d4-a716-446655440003", project_id: roomName.slice(8), status: "running",
                   progress: n % 101, current_step: "Analyzing code structure", logs: [`${run}:${n}`] };
    return c.kind === "gateway"
      ? { type: "workflow.progress", source: "bench", data }
      : { room: roomName, event: "workflow.progress", data: { type: "workflow.progress", source: "bench", data } };
  });
  const response = await fetch(single ? c.publishOneUrl : c.publishUrl, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${c.publishToken}` },
    body: JSON.stringify(single ? events[0] : events),
  });
  if (response.status !== 202) throw new Error(`publish: ${response.status} ${await response.text()}`);
}
