// The API document's JavaScript client flows, written as the document writes them, run with
// the real socket.io-client. Usage: node spec_flow.mjs BASE_URL TOKEN PROJECT_ID TRANSPORT
// Prints one JSON object with what each flow observed; the Python test asserts on it.
import io from "socket.io-client";

const [baseUrl, token, projectId, transport] = process.argv.slice(2);
const transports = [transport];
const seen = {};

function timeout(ms, what) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms));
}

function emitWithAck(socket, event, payload) {
  return Promise.race([
    new Promise((resolve) => socket.emit(event, payload, (response) => resolve(response))),
    timeout(5000, event),
  ]);
}

// Connection, auth header method, with the document's reconnection options.
async function authFlow() {
  const socket = io(`${baseUrl}/ws`, {
    auth: { token },
    reconnection: true,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
    reconnectionAttempts: 5,
    transports,
  });
  const established = new Promise((resolve) => {
    socket.on("connection_established", (event) => {
      seen.connection_id_matches = event.data.connection_id === socket.id;
      resolve(event);
    });
  });
  // As in the document: subscribe right after io(), before the connection is up.
  const subscribed = emitWithAck(socket, "subscribe", { room: `project:${projectId}` });
  seen.established = await Promise.race([established, timeout(5000, "connection_established")]);
  seen.subscribe = await subscribed;
  seen.ping = await emitWithAck(socket, "ping", {});
  seen.denied = await emitWithAck(socket, "subscribe", { room: "project:00000000-0000-4000-8000-000000000000" });
  seen.invalid = await emitWithAck(socket, "subscribe", { room: "project:123" });
  seen.unsubscribe = await emitWithAck(socket, "unsubscribe", { room: `project:${projectId}` });
  const disconnected = new Promise((resolve) => socket.on("disconnect", (reason) => resolve(reason)));
  socket.disconnect();
  seen.disconnect_reason = await disconnected;
}

// Connection, query parameter method.
async function queryFlow() {
  const socket = io(`${baseUrl}/ws?token=${token}`, { transports });
  seen.query_established = await Promise.race([
    new Promise((resolve) => socket.on("connection_established", resolve)),
    timeout(5000, "query connection_established"),
  ]);
  socket.disconnect();
}

// Error handling: the connect_error handler gets err.message and err.data.
async function refusedFlow(name, options) {
  const socket = io(`${baseUrl}/ws`, { ...options, transports, reconnection: false });
  seen[name] = await Promise.race([
    new Promise((resolve) =>
      socket.on("connect_error", (error) => resolve({ message: error.message, data: error.data })),
    ),
    timeout(5000, name),
  ]);
  socket.close();
}

await authFlow();
await queryFlow();
await refusedFlow("refused_bad_token", { auth: { token: "not-a-token" } });
await refusedFlow("refused_no_token", {});
console.log(JSON.stringify(seen));
process.exit(0);
