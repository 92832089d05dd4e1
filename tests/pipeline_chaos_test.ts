// Copyright 2026 the chanpool authors. MIT license.
// Chaos for pipelined TcpPools (issue 20): 100 000 calls each, 5 % aborted
// or timed out at random moments, server delays 0-5 ms, replies
// overlapping. See tests/_chaos.ts for what is counted. Each test prints
// its seed; `deno task bench:chaos -- --seed=N --calls=100000
// --match=fifo|tagged` replays one.

import assert from "node:assert/strict";
import { TcpPool } from "../mod.ts";
import {
  type ChaosOptions,
  chaosOptions,
  formatChaos,
  runChaos,
} from "./_chaos.ts";
import { readRpc, rpc, startRpcServer, tagOf } from "./_rpc.ts";

function options(match: "fifo" | "tagged"): ChaosOptions {
  return chaosOptions(match, 100_000, (Math.random() * 2 ** 32) >>> 0);
}

async function chaos(match: "fifo" | "tagged"): Promise<void> {
  const o = options(match);
  console.log(`${match} chaos seed: ${o.seed}`);
  const r = await runChaos(o);
  console.log(formatChaos(o, r));
  assert.equal(r.wrong, 0, "replies to the wrong caller");
  assert.equal(r.hangs, 0, "calls that never settled");
  assert.equal(r.untyped, 0, "untyped errors");
  assert.equal(r.unexpectedTyped, 0, "unexpected typed errors");
  assert.equal(r.calls, o.calls);
  assert.equal(r.ok + r.timedOut + r.aborted, o.calls);
  // The chaos happened: calls gave up, some after they were written.
  assert.ok(r.timedOut > o.calls * 0.005, `timed out: ${r.timedOut}`);
  assert.ok(r.aborted > o.calls * 0.005, `aborted: ${r.aborted}`);
  assert.ok(r.stats.pipeline!.orphans > 0, "no call gave up once written");
  assert.equal(r.stats.pipeline!.inFlight, 0);
  assert.equal(r.stats.pipeline!.queued, 0);
  // Server side: every connection it accepted was closed after close().
  assert.ok(r.accepted >= 1);
  assert.equal(r.openAfterClose, 0, "server sockets still open");
}

Deno.test("TcpPool pipeline tagged: 100 000 calls under aborts and timeouts reach their own callers", async () => {
  await chaos("tagged");
});

Deno.test("TcpPool pipeline fifo: a call that timed out or aborted never shifts a later reply", async () => {
  await chaos("fifo");
});

// -- Regressions found by the chaos --

Deno.test("TcpPool pipeline: a queued call takes the first place freed, ahead of later calls", async () => {
  await using server = startRpcServer("tagged", { overlap: true });
  await using pool = new TcpPool({
    hostname: "127.0.0.1",
    port: server.port,
    max: 1,
    pipeline: { match: "tagged", maxInFlight: 2, tagOf },
  });
  const body = new Uint8Array([1, 2, 3, 4]);
  // The connection is up before the race.
  await pool.exchange((tag) => rpc(tag, 0, body), readRpc);
  let rounds = 0;
  let stop = false;
  // Two callers keep both places busy: each call starts as the last ends.
  const caller = async (delay: number) => {
    while (!stop && rounds < 100) {
      rounds++;
      await pool.exchange((tag) => rpc(tag, delay, body), readRpc);
    }
  };
  const callers = [caller(1), caller(2)];
  // No place left: this one waits in the queue.
  const queued = pool.exchange((tag) => rpc(tag, 0, body), readRpc);
  const queuedAtStart = pool.stats.pipeline!.queued;
  await queued;
  const roundsBefore = rounds;
  stop = true;
  await Promise.all(callers);
  assert.equal(queuedAtStart, 1);
  // It went out with the first reply's place (a round or two), not once
  // the callers stopped (100 rounds).
  assert.ok(roundsBefore <= 4, `the queued call waited ${roundsBefore} rounds`);
});
