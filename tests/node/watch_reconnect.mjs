// Connect with socket.io-client's default reconnection and report, one JSON line each, what
// happens: connected, disconnect (with the reason), reconnect_attempt.
// Usage: node watch_reconnect.mjs BASE_URL TOKEN TRANSPORT [CA_FILE]
import { readFileSync } from "node:fs";
import io from "socket.io-client";

const [baseUrl, token, transport, caFile] = process.argv.slice(2);
const options = { auth: { token }, transports: [transport], reconnectionDelay: 200 };
if (caFile) options.ca = readFileSync(caFile);
const socket = io(`${baseUrl}/ws`, options);
const say = (what) => console.log(JSON.stringify(what));
socket.on("connection_established", (event) => say({ event: "established", user: event.data.user_id }));
socket.on("disconnect", (reason) => say({ event: "disconnect", reason }));
socket.on("connect_error", (error) => say({ event: "connect_error", message: error.message }));
socket.io.on("reconnect_attempt", (attempt) => {
  say({ event: "reconnect_attempt", attempt });
  socket.close();
  process.exit(0);
});
setTimeout(() => process.exit(3), 30000);
