// Copyright 2026 the chanpool authors. MIT license.
// Pipelining on one connection (`max: 1`) to an RPC server in another Deno
// process (bench/_rpc_server.ts) that answers each request `delay` ms after
// it arrived, replies overlapping:
//
// - "1 ms server": 64 calls in flight against 1 (tagged), and fifo against
//   tagged at 64 in flight. With 1 in flight each call waits out the delay
//   alone; with 64 they wait it out together.
// - "0 ms server": fifo against tagged at 64 in flight, where the cost per
//   call is the library's and the loopback's.
//
// Each iteration runs 256 calls shared by the workers; each call's body is
// unique and checked against its reply.
//
// Run: deno bench --allow-net=127.0.0.1 --allow-run bench/pipeline_bench.ts

import { TcpPool } from "../mod.ts";
import { readRpc, rpc, tagOf } from "../tests/_rpc.ts";
import { spawnServer } from "./_echo_server.ts";

const CALLS = 256;
const SERVER = new URL("./_rpc_server.ts", import.meta.url).href;
const tagged = await spawnServer(SERVER, ["tagged"]);
const fifo = await spawnServer(SERVER, ["fifo"]);

const taggedPool = new TcpPool({
  hostname: "127.0.0.1",
  port: tagged.port,
  max: 1,
  pipeline: { match: "tagged", maxInFlight: 64, tagOf },
});
const fifoPool = new TcpPool({
  hostname: "127.0.0.1",
  port: fifo.port,
  max: 1,
  pipeline: { match: "fifo", maxInFlight: 64 },
});

let serial = 0;

/** A unique 16-byte body. */
function body(): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setFloat64(0, ++serial);
  view.setFloat64(8, Math.random());
  return out;
}

function check(sent: Uint8Array, got: Uint8Array): void {
  if (got.length !== sent.length || got.some((b, i) => b !== sent[i])) {
    throw new Error("a reply answered another call");
  }
}

async function runTagged(inFlight: number, delay: number): Promise<void> {
  let left = CALLS;
  const worker = async () => {
    while (left > 0) {
      left--;
      const sent = body();
      const reply = await taggedPool.exchange(
        (tag) => rpc(tag, delay, sent),
        readRpc,
      );
      check(sent, reply!.body);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

async function runFifo(inFlight: number, delay: number): Promise<void> {
  let left = CALLS;
  const worker = async () => {
    while (left > 0) {
      left--;
      const sent = body();
      const reply = await fifoPool.exchange(rpc(0, delay, sent), readRpc);
      check(sent, reply!.body);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

// One connection each, dialed before the runs.
await runTagged(1, 0);
await runFifo(1, 0);

Deno.bench({
  name: "tagged, 1 in flight",
  group: "1 ms server, 1 conn: 64 in flight vs 1",
  baseline: true,
  n: 10,
  warmup: 2,
  async fn() {
    await runTagged(1, 1);
  },
});
Deno.bench({
  name: "tagged, 64 in flight",
  group: "1 ms server, 1 conn: 64 in flight vs 1",
  n: 200,
  async fn() {
    await runTagged(64, 1);
  },
});

Deno.bench({
  name: "tagged, 64 in flight",
  group: "1 ms server, 1 conn: fifo vs tagged",
  baseline: true,
  n: 200,
  async fn() {
    await runTagged(64, 1);
  },
});
Deno.bench({
  name: "fifo, 64 in flight",
  group: "1 ms server, 1 conn: fifo vs tagged",
  n: 200,
  async fn() {
    await runFifo(64, 1);
  },
});

Deno.bench({
  name: "tagged, 64 in flight",
  group: "0 ms server, 1 conn: fifo vs tagged",
  baseline: true,
  async fn() {
    await runTagged(64, 0);
  },
});
Deno.bench({
  name: "fifo, 64 in flight",
  group: "0 ms server, 1 conn: fifo vs tagged",
  async fn() {
    await runFifo(64, 0);
  },
});

globalThis.addEventListener("unload", () => {
  taggedPool.close();
  fifoPool.close();
});
