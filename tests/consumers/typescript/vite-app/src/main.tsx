// Vite's react-ts template (verbatimModuleSyntax) with the package: type-only and value imports
// from the root, the resume helper, and a component that shows live events.
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { io, type Socket } from "socket.io-client";
import {
  SERVER_EVENTS,
  type ClientToServerEvents,
  type ServerToClientEvents,
  type WorkflowProgress,
} from "@swe-realtime/contracts";
import { resumable } from "@swe-realtime/contracts/resume";

const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("/ws", {
  auth: { token: localStorage.getItem("jwt_token") },
  autoConnect: false,
});
const rooms = resumable(socket);

function Progress({ project }: { project: string }) {
  const [last, setLast] = useState<WorkflowProgress | null>(null);
  useEffect(() => {
    socket.on("workflow.progress", setLast);
    socket.emit("subscribe", { room: `project:${project}` });
    return () => {
      socket.off("workflow.progress", setLast);
      void rooms.unsubscribe(`project:${project}`);
    };
  }, [project]);
  return (
    <p>
      {last ? `${last.data.progress}%` : "waiting"} ({SERVER_EVENTS.length} kinds of event)
    </p>
  );
}

socket.connect();
createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <Progress project="550e8400-e29b-41d4-a716-446655440000" />
  </StrictMode>,
);
