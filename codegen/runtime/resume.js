// Missed-event recovery for socket.io-client: keeps the last position of every room the
// socket is in and hands them to the gateway (auth.positions) on each (re)connection, so
// that socket.io-client's own reconnection resumes where the socket left off. Copied into
// the package by `python -m codegen`; its types are in resume.d.ts.

function newer(current, next) {
  return !current || current.epoch !== next.epoch || next.offset > current.offset;
}

export function resumable(socket, { positions: initial = {}, onNotRecovered } = {}) {
  const positions = new Map(Object.entries(initial));
  const rooms = new Set(positions.keys());
  const auth = socket.auth;
  socket.auth = (send) => {
    const withPositions = (base) => send({ ...(base ?? {}), positions: Object.fromEntries(positions) });
    if (typeof auth === "function") auth(withPositions);
    else withPositions(auth);
  };

  // An answer's position is where live delivery goes on from. When the room was recovered the
  // replayed events are still on their way: they move the position themselves, one by one.
  function settle(answer) {
    if (answer.status !== "success") {
      if (answer.room) forget(answer.room);
      return;
    }
    rooms.add(answer.room);
    if (answer.recovered === false && onNotRecovered) onNotRecovered(answer);
    if (answer.position && answer.recovered !== true && newer(positions.get(answer.room), answer.position)) {
      positions.set(answer.room, answer.position);
    }
  }

  function forget(room) {
    rooms.delete(room);
    positions.delete(room);
  }

  socket.on("connection_established", (event) => {
    rooms.add(`user:${event.data.user_id}`);
    rooms.add("global");
    for (const [room, position] of Object.entries(event.positions)) {
      if (newer(positions.get(room), position)) positions.set(room, position);
    }
    for (const answer of event.data.recovery) settle(answer);
  });
  socket.onAny((_name, event) => {
    if (!event || typeof event !== "object" || !event.positions) return;
    for (const [room, position] of Object.entries(event.positions)) {
      // An event of several rooms can arrive after later events of one of them: keep the
      // newest position of each room, never step back.
      if (rooms.has(room) && newer(positions.get(room), position)) positions.set(room, position);
    }
  });

  return {
    positions: () => Object.fromEntries(positions),
    async subscribe(room) {
      const ack = await socket.emitWithAck("subscribe", { room });
      if (ack.status === "success" && ack.position && newer(positions.get(ack.room), ack.position)) {
        positions.set(ack.room, ack.position);
      }
      if (ack.status === "success") rooms.add(ack.room);
      return ack;
    },
    async unsubscribe(room) {
      const ack = await socket.emitWithAck("unsubscribe", { room });
      if (ack.status === "success") forget(ack.room);
      return ack;
    },
  };
}
