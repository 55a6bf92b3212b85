// The resume helper of the contracts package with socket.io-client's own reconnection: the
// transport drops, events are published meanwhile, and the reconnection replays them.
// Usage: node resume_flow.mjs BASE_URL TOKEN SERVICE_TOKEN PROJECT   Prints one JSON line.
import { io } from "socket.io-client";
import { resumable } from "../../contracts/typescript/resume.js";

const [baseUrl, token, serviceToken, project] = process.argv.slice(2);
const room = `project:${project}`;
const socket = io(`${baseUrl}/ws`, { auth: { token }, transports: ["websocket"], reconnectionDelay: 300 });
const resume = resumable(socket);
const numbers = [];
const answers = [];
let connects = 0;
let waiting = null;
socket.on("workflow.progress", (event) => {
  numbers.push(Number(event.data.current_step));
  if (waiting && numbers.length >= waiting.count) waiting.resolve();
});
socket.on("connection_established", (event) => { connects += 1; answers.push(...event.data.recovery); });
const until = (count) => new Promise((resolve, reject) => {
  if (numbers.length >= count) return resolve();
  waiting = { count, resolve };
  setTimeout(() => reject(new Error(`got ${numbers.length} of ${count}`)), 15000);
});

async function publish(from, to) {
  const body = [];
  for (let n = from; n < to; n++) {
    body.push({ type: "workflow.progress", source: "test", data: {
      workflow_id: "880e8400-e29b-41d4-a716-446655440003", project_id: project, status: "running",
      progress: n % 101, current_step: String(n), logs: [] } });
  }
  const response = await fetch(`${baseUrl}/api/v1/events/batch`, {
    method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${serviceToken}` },
    body: JSON.stringify(body) });
  if (response.status !== 202) throw new Error(`publish ${response.status}`);
}

await new Promise((resolve) => socket.once("connection_established", resolve));
await resume.subscribe(room);
await publish(0, 5);
await until(5);
socket.io.engine.close(); // the network drops: socket.io-client reconnects by itself
await publish(5, 105);
await until(105);
await publish(105, 108);
await until(108);
await new Promise((resolve) => setTimeout(resolve, 300));
console.log(JSON.stringify({ numbers, answers, connects, positions: resume.positions() }));
socket.close();
process.exit(0);
