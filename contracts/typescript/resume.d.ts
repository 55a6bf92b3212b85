// Types of resume.js: missed-event recovery for socket.io-client. Copied by `python -m codegen`.
import type { Socket } from "socket.io-client";
import type {
  ClientToServerEvents, ErrorAck, RecoverAck, Room, RoomAck, ServerToClientEvents, StreamPosition,
} from "./index.js";

export type Positions = Partial<Record<Room, StreamPosition>>;

export interface ResumeOptions {
  /** Positions kept from an earlier page load (from localStorage, say). */
  positions?: Positions;
  /** Called for each room whose missed events could not be replayed: refetch it over REST. */
  onNotRecovered?: (answer: RecoverAck) => void;
}

export interface Resumable {
  /** The last position of every room the socket is in: save it to resume a later page load. */
  positions(): Positions;
  /** Subscribe, and keep the room's position from now on. */
  subscribe(room: Room): Promise<RoomAck | ErrorAck>;
  /** Unsubscribe, and forget the room's position. */
  unsubscribe(room: Room): Promise<RoomAck | ErrorAck>;
}

/** Keep positions for ``socket`` and pass them on every (re)connection (auth.positions), so
 * that each reconnection replays what was missed, in order and once. Call before connecting. */
export function resumable(
  socket: Socket<ServerToClientEvents, ClientToServerEvents>,
  options?: ResumeOptions,
): Resumable;
