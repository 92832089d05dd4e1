// Copyright 2026 the chanpool authors. MIT license.
// SET/GET through chanpool's memcached meta-protocol client
// (examples/memcached.ts), pipelined with tags (a pool of 4, up to 64 calls
// in flight per connection), against the two readings of "one call per
// connection": the same client with `pipeline: false` (one call per
// connection at a time, a pool of 64: each task has a connection of its
// own, kept), and with `pipeline: false, maxIdle: 0` (a connection dialed
// for each call and closed after it). At 1, 8 and 64 concurrent tasks,
// against one local memcached. Each iteration is 256 calls (`ms` then `mg`
// of one key, alternating, a 100-byte value); every get is checked. The
// fresh-connection rows leave thousands of client sockets in TIME_WAIT
// (Linux reuses them on loopback with the default `tcp_tw_reuse` 2).
//
// Run: deno bench --allow-net=127.0.0.1 --allow-run bench/memcached_bench.ts

import { MemcachedClient } from "../examples/memcached.ts";
import { HAVE_MEMCACHED, startMemcached } from "../tests/_memcached_server.ts";

const OPS = 256;
const VALUE = "v".repeat(100);

async function run(client: MemcachedClient, tasks: number): Promise<void> {
  const per = OPS / tasks;
  await Promise.all(Array.from({ length: tasks }, async (_, t) => {
    const key = `bench:${t}`;
    for (let i = 0; i < per; i += 2) {
      await client.set(key, VALUE);
      if (await client.getText(key) !== VALUE) throw new Error("bad reply");
    }
  }));
}

if (!HAVE_MEMCACHED) {
  console.log("memcached bench skipped: memcached is not on the PATH");
} else {
  const server = await startMemcached();
  const port = server.port;
  const pipelined = new MemcachedClient({ port, max: 4 });
  const single = new MemcachedClient({ port, max: 64, pipeline: false });
  const fresh = new MemcachedClient({
    port,
    max: 64,
    maxIdle: 0,
    pipeline: false,
  });
  globalThis.addEventListener("unload", () => {
    void pipelined.close();
    void single.close();
    void fresh.close();
    void server.stop();
  });

  // Warm both pools to their sizes.
  await run(pipelined, 64);
  await run(single, 64);

  for (const tasks of [1, 8, 64]) {
    const group = `memcached ${tasks} task${tasks === 1 ? "" : "s"}`;
    Deno.bench({
      group,
      name: "chanpool pipelined (tagged, pool of 4)",
      baseline: true,
      fn: async () => {
        await run(pipelined, tasks);
      },
    });
    Deno.bench({
      group,
      name: "chanpool pipeline: false (pool of 64)",
      fn: async () => {
        await run(single, tasks);
      },
    });
    Deno.bench({
      group,
      name: "chanpool fresh connection per call (maxIdle: 0)",
      fn: async () => {
        await run(fresh, tasks);
      },
    });
  }
}
