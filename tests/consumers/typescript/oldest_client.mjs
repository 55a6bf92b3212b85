// The resume helper from the installed package with the socket.io-client this project pins (the
// oldest the package's peer range allows), against a live gateway: subscribe through the helper
// (emitWithAck), get one published event, keep its position.
// Usage: node oldest_client.mjs BASE_URL TOKEN SERVICE_TOKEN PROJECT   Prints one JSON line.
import { createRequire } from "node:module";
import { io } from "socket.io-client";
import { SERVER_EVENTS } from "@swe-realtime/contracts";
import { resumable } from "@swe-realtime/contracts/resume";

const [baseUrl, token, serviceToken, project] = process.argv.slice(2);
const room = `project:${project}`;
const client = createRequire(import.meta.url)("socket.io-client/package.json").version;
const socket = io(`${baseUrl}/ws`, { auth: { token }, transports: ["websocket"], autoConnect: false });
const rooms = resumable(socket);
const received = new Promise((resolve) => socket.once("workflow.progress", resolve));
const timeout = setTimeout(() => { console.error("timed out"); process.exit(1); }, 15000);

socket.connect();
await new Promise((resolve) => socket.once("connection_established", resolve));
const ack = await rooms.subscribe(room);
const response = await fetch(`${baseUrl}/api/v1/events`, {
  method: "POST",
  headers: { "content-type": "application/json", authorization: `Bearer ${serviceToken}` },
  body: JSON.stringify({ type: "workflow.progress", source: "test", data: {
    workflow_id: "880e8400-e29b-41d4-a716-446655440003", project_id: project, status: "running",
    progress: 50, current_step: "build", logs: [] } }),
});
if (response.status !== 202) throw new Error(`publish answered ${response.status}`);
const event = await received;
console.log(JSON.stringify({ client, events: SERVER_EVENTS.length, ack, event, positions: rooms.positions() }));
clearTimeout(timeout);
socket.close();
