// Copyright 2026 the chanpool authors. MIT license.
// TcpAgent's cost over a plain TcpPool on a warm address: 1 000 sequential
// borrow + release of an idle connection, the pool's own and the agent's
// (one address, and one of 1 000 warm addresses), in one `deno bench` run.
// The connections go to listeners in this process; borrow and release move
// no byte, so this measures the bookkeeping: the agent's address lookup, its
// coarse clock stamp, and the pool's.
//
// Run: deno bench --allow-net=127.0.0.1 bench/agent_bench.ts

import { TcpAgent, TcpPool } from "../mod.ts";

const ROUNDS = 1_000;
const KEYS = 1_000;

const listeners = Array.from(
  { length: KEYS },
  () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
);
for (const l of listeners) {
  (async () => {
    try {
      for await (const conn of l) {
        conn.readable.pipeTo(conn.writable).catch(() => {});
      }
    } catch {
      // closed
    }
  })();
}
const ports = listeners.map((l) => l.addr.port);
const first = `127.0.0.1:${ports[0]}`;

const pool = new TcpPool({ port: ports[0]! });
const one = new TcpAgent();
const many = new TcpAgent();
// Warm: one idle connection each.
(await pool.borrow()).release();
(await one.borrow(first)).release();
for (const port of ports) (await many.borrow(`127.0.0.1:${port}`)).release();
const middle = `127.0.0.1:${ports[KEYS >> 1]}`;

Deno.bench({
  name: "TcpPool borrow + release",
  group: "warm address",
  baseline: true,
  async fn() {
    for (let i = 0; i < ROUNDS; i++) (await pool.borrow()).release();
  },
});

Deno.bench({
  name: "TcpAgent borrow + release (1 address)",
  group: "warm address",
  async fn() {
    for (let i = 0; i < ROUNDS; i++) (await one.borrow(first)).release();
  },
});

Deno.bench({
  name: "TcpAgent borrow + release (1 of 1 000 addresses)",
  group: "warm address",
  async fn() {
    for (let i = 0; i < ROUNDS; i++) (await many.borrow(middle)).release();
  },
});

Deno.bench({
  name: "TcpAgent borrow + release ({ port } object address)",
  group: "warm address",
  async fn() {
    const address = { port: ports[0]! };
    for (let i = 0; i < ROUNDS; i++) (await one.borrow(address)).release();
  },
});
