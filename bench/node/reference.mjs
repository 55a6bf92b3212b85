// The Node reference: socket.io 4.x doing the same job as the gateway, minus auth and
// validation. Namespace /ws; `subscribe` {room} joins a room; POST /publish with a JSON
// array of {room, event, data} (or one such object, the counterpart of the gateway's
// single-event POST) emits each (data gets a `timestamp`, as the gateway's envelope has
// one). Shared by reference_server.mjs (one process) and cluster_server.mjs (instances on
// Redis), so that the load generators drive both alike.
import { createServer } from "node:http";
import { Server } from "socket.io";

// Listens on 127.0.0.1:`port`; `options` go to socket.io's Server (an adapter, say).
export function serve(port, options = {}) {
  const http = createServer((request, response) => {
    if (request.method === "POST" && request.url === "/publish") {
      const chunks = [];
      request.on("data", (chunk) => chunks.push(chunk));
      request.on("end", () => {
        const events = [JSON.parse(Buffer.concat(chunks).toString())].flat();
        for (const { room, event, data } of events) {
          io.of("/ws").to(room).emit(event, { ...data, timestamp: new Date().toISOString() });
        }
        response.writeHead(202, { "content-type": "application/json" }).end("{}");
      });
      return;
    }
    response.writeHead(request.url.startsWith("/socket.io/") ? 400 : 200).end();
  });
  const io = new Server(http, { serveClient: false, ...options });
  io.of("/ws").on("connection", (socket) => {
    socket.emit("connection_established", { data: { connection_id: socket.id } });
    socket.on("subscribe", (payload, ack) => {
      socket.join(payload.room);
      ack({ status: "success", room: payload.room });
    });
    socket.on("ping", (payload, ack) => ack({ status: "pong" }));
  });
  http.listen(port, "127.0.0.1");
}
