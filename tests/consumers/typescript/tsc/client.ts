// A browser client of the package as a team writes it, compiled by tests/test_consumers_typescript.py
// with tsconfig.json here (strict, verbatimModuleSyntax) under moduleResolution bundler, node16
// and nodenext.
import { io, type Socket } from "socket.io-client";
import {
  CLIENT_COMMANDS,
  SERVER_EVENTS,
  type ClientToServerEvents,
  type CommandAck,
  type Room,
  type ServerToClientEvents,
} from "@swe-realtime/contracts";
import { resumable, type Positions } from "@swe-realtime/contracts/resume";

const saved: Positions = JSON.parse(localStorage.getItem("positions") ?? "{}");
const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://localhost:8000/ws", {
  auth: { token: localStorage.getItem("jwt_token") },
  autoConnect: false,
});
const rooms = resumable(socket, {
  positions: saved,
  onNotRecovered: (answer) => console.log("refetch", answer.room, answer.reason),
});
socket.on("workflow.progress", (event) => console.log(event.data.progress, event.positions));

const room: Room = "project:550e8400-e29b-41d4-a716-446655440000";
// The API document's own line: a command without an ack callback.
socket.emit("subscribe", { room });
socket.emit("ping", {}, (response) => console.log(response.status));

export async function start(): Promise<string> {
  socket.connect();
  const answer = await rooms.subscribe(room);
  const left: CommandAck<"unsubscribe"> = await socket.emitWithAck("unsubscribe", { room });
  // The helper's types survive (not any): a wrong field is an error, checked by @ts-expect-error.
  // @ts-expect-error RoomAck | ErrorAck has no "recovered"
  console.log(answer.recovered);
  localStorage.setItem("positions", JSON.stringify(rooms.positions()));
  return `${answer.status} ${left.status} ${SERVER_EVENTS.length} ${CLIENT_COMMANDS.join(",")}`;
}
