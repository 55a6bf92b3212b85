// One instance of the Node reference (reference.mjs) on Redis, for the cluster benchmark
// (bench/cluster.py): instances on one Redis deliver each other's emits. ADAPTER is
//   sharded  @socket.io/redis-adapter's sharded adapter (SPUBLISH), subscription mode
//            "dynamic": a channel per room, so an instance hears only rooms it has members in;
//   streams  @socket.io/redis-streams-adapter with its defaults (one stream, MAXLEN ~10,000),
//            and connection state recovery on, the history it keeps the stream for: every
//            event carries its stream offset, as the gateway's carry positions.
// Both use the `redis` (node-redis) client.
// Usage: node cluster_server.mjs PORT ADAPTER REDIS_URL
import { createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";
import { serve } from "./reference.mjs";

const [port, adapter, url] = process.argv.slice(2);

async function connected(client) {
  client.on("error", (error) => console.error(`redis: ${error.message}`));
  await client.connect();
  return client;
}

const adapters = {
  async sharded() {
    const publisher = await connected(createClient({ url }));
    const subscriber = await connected(publisher.duplicate());
    return { adapter: createShardedAdapter(publisher, subscriber, { subscriptionMode: "dynamic" }) };
  },
  async streams() {
    return { adapter: createAdapter(await connected(createClient({ url }))), connectionStateRecovery: {} };
  },
};

if (!(adapter in adapters)) throw new Error(`ADAPTER is sharded or streams, not ${adapter}`);
serve(Number(port), await adapters[adapter]());
