// The API document's JavaScript client example, typed with the generated contracts.
// Compiled with `tsc --strict` by tests/test_contracts.py; it must compile without errors.
import { io, type Socket } from "socket.io-client";
import type {
  AgentStatus,
  ClientToServerEvents,
  ConnectErrorData,
  ErrorCode,
  ServerToClientEvents,
} from "@swe-realtime/contracts";
import { resumable } from "@swe-realtime/contracts/resume";

declare const localStorage: { getItem(key: string): string | null };
declare const console: { log(...args: unknown[]): void; error(...args: unknown[]): void };

const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://localhost:8000/ws", {
  auth: { token: localStorage.getItem("jwt_token") },
  reconnection: true,
  reconnectionDelay: 1000,
  reconnectionDelayMax: 5000,
  reconnectionAttempts: 5,
});

socket.on("connection_established", (event) => {
  console.log("Connected:", event.data.connection_id, event.data.protocol_version);
});

socket.on("project.updated", (event) => {
  console.log("Project updated:", event.data.project_name, event.data.changes.fields.join(","));
});

socket.on("workflow.progress", (event) => {
  console.log("Progress:", event.data.progress + "%", event.data.logs.length);
});

socket.on("agent.status_changed", (event) => {
  const label = (status: AgentStatus): string => {
    switch (status) {
      case "online":
      case "idle":
        return "available";
      case "busy":
        return "working";
      case "offline":
      case "error":
        return "away";
    }
  };
  console.log(label(event.data.status), event.data.metadata.cpu_usage ?? "n/a");
});

socket.emit("subscribe", { room: "project:550e8400-e29b-41d4-a716-446655440000" }, (response) => {
  if (response.status === "success") {
    console.log("Subscribed to", response.room);
  } else {
    const code: ErrorCode = response.error_code;
    console.log(code, response.message);
  }
});

socket.emit("ping", {}, (response) => {
  const pong: "pong" = response.status;
  console.log(pong);
});

socket.on("connect_error", (error) => {
  const refusal = (error as Error & { data?: ConnectErrorData }).data;
  console.error("Connection error:", error.message, refusal?.data.error_code);
});

socket.on("disconnect", (reason) => {
  console.log("Disconnected:", reason);
});

// Missed-event recovery: positions kept across reconnections (and page loads).
const resume = resumable(socket, {
  positions: { "project:550e8400-e29b-41d4-a716-446655440000": { epoch: "k3J9", offset: 17 } },
  onNotRecovered: (answer) => console.log("refetch", answer.room, answer.reason),
});
void resume.subscribe("project:550e8400-e29b-41d4-a716-446655440000").then((ack) => {
  if (ack.status === "success") console.log("from", ack.position?.offset);
});
const saved: string = JSON.stringify(resume.positions());
console.log(saved);
