// Copyright 2026 the chanpool authors. MIT license.
// TcpPool with `pipeline`: fault cases found by review (a hostile server,
// a careless caller), against tests/_rpc.ts. Each counts the sockets the
// server accepted and checks they were all closed.

import assert from "node:assert/strict";
import {
  ConnectionBrokenError,
  TcpAgent,
  TcpPool,
  TimeoutError,
} from "../mod.ts";
import {
  NEVER,
  readRpc,
  rpc,
  type RpcReply,
  startRpcServer,
  tagOf,
} from "./_rpc.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const text = (r: RpcReply | null) => dec.decode(r!.body);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The outcome of `p`, handled at once (no unhandled rejection). */
const outcome = <T>(p: Promise<T>): Promise<T | Error> =>
  p.then((v) => v, (e: Error) => e);

Deno.test("pipeline: under TcpAgent's maxTotal, a steady pipelined load on one address does not starve another address", async () => {
  await using a = startRpcServer("fifo");
  await using b = startRpcServer("fifo");
  {
    await using agent = new TcpAgent({
      maxTotal: 1,
      acquireTimeout: 1_000,
      pipeline: { match: "fifo" },
    });
    let stop = false;
    const load = Array.from({ length: 8 }, async (_, t) => {
      while (!stop) {
        const r = await agent.exchange(
          { port: a.port },
          rpc(0, 1, enc.encode(`a${t}`)),
          readRpc,
          { timeout: 5_000 },
        );
        assert.equal(text(r), `a${t}`);
      }
    });
    await sleep(20);
    const t0 = performance.now();
    const other = await outcome(agent.exchange(
      { port: b.port },
      rpc(0, 0, enc.encode("b")),
      readRpc,
      { timeout: 3_000 },
    ));
    const took = performance.now() - t0;
    stop = true;
    await Promise.all(load);
    assert.equal(text(other as RpcReply), "b", String(other));
    assert.ok(took < 500, `the other address waited ${took} ms`);
  }
  assert.equal(a.accepted + b.accepted >= 2, true);
  await a.drained(2_000);
  await b.drained(2_000);
});

Deno.test("pipeline: close() does not wait for orphanTimeout when only replies nobody awaits are owed", async () => {
  for (const match of ["fifo", "tagged"] as const) {
    await using server = startRpcServer(match);
    const pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: match === "fifo"
        ? { match, orphanTimeout: 3_000 }
        : { match, tagOf, orphanTimeout: 3_000 },
    });
    const payload = (body: string, delay: number) =>
      match === "fifo"
        ? rpc(0, delay, enc.encode(body))
        : (tag: number) => rpc(tag, delay, enc.encode(body));
    const lost = await outcome(
      pool.exchange(payload("lost", NEVER), readRpc, { timeout: 10 }),
    );
    assert.ok(lost instanceof TimeoutError, String(lost));
    assert.equal(pool.stats.pipeline!.orphans, 1);
    const t0 = performance.now();
    await pool.close();
    const took = performance.now() - t0;
    assert.ok(took < 1_000, `${match}: close() took ${Math.round(took)} ms`);
    assert.equal(server.accepted, 1);
    await server.drained(2_000);
  }
});

Deno.test("pipeline tagged: close() lets a written call finish, then closes its connection though an orphan's reply is still owed", async () => {
  await using server = startRpcServer("tagged");
  const pool = new TcpPool({
    port: server.port,
    max: 1,
    pipeline: { match: "tagged", tagOf, orphanTimeout: 3_000 },
  });
  const tcall = (body: string, delay: number, timeout: number) =>
    pool.exchange((tag) => rpc(tag, delay, enc.encode(body)), readRpc, {
      timeout,
    });
  const kept = tcall("kept", 50, 2_000);
  const lost = await outcome(tcall("lost", NEVER, 10));
  assert.ok(lost instanceof TimeoutError, String(lost));
  const t0 = performance.now();
  const closing = pool.close();
  assert.equal(text(await kept), "kept");
  await closing;
  const took = performance.now() - t0;
  assert.ok(took < 1_000, `close() took ${Math.round(took)} ms`);
  assert.equal(server.accepted, 1);
  await server.drained(2_000);
});

Deno.test("pipeline tagged: a payload function that aborts its own call loses no other call of its batch", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: { match: "tagged", tagOf },
    });
    const tcall = (body: string, opts = {}) =>
      pool.exchange((tag) => rpc(tag, 0, enc.encode(body)), readRpc, {
        timeout: 1_000,
        ...opts,
      });
    assert.equal(text(await tcall("warm")), "warm");
    const before = server.requests;
    const ac = new AbortController();
    const a = outcome(tcall("a"));
    const b = outcome(pool.exchange(
      (tag) => {
        ac.abort(); // a careless caller: gives up inside its own payload
        return rpc(tag, 0, enc.encode("b"));
      },
      readRpc,
      { timeout: 1_000, signal: ac.signal },
    ));
    const c = outcome(tcall("c"));
    assert.equal(text((await a) as RpcReply), "a");
    assert.equal(((await b) as Error).name, "AbortError");
    assert.equal(text((await c) as RpcReply), "c", String(await c));
    assert.equal(server.requests - before, 2, "the aborted call was not sent");
    assert.equal(pool.stats.pipeline!.inFlight, 0);
    // Its place was freed once, not twice or never: 64 more fit.
    const more = await Promise.all(
      Array.from({ length: 64 }, (_, i) => tcall(`m${i}`)),
    );
    more.forEach((r, i) => assert.equal(text(r), `m${i}`));
    assert.equal(pool.stats.dials, 1);
  }
  assert.equal(server.accepted, 1);
  await server.drained(2_000);
});

Deno.test("pipeline tagged: a read that throws cannot be pinned on a call: every call on the connection is treated as after a break", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: { match: "tagged", tagOf },
    });
    const a = outcome(
      pool.exchange((tag) => rpc(tag, 30, enc.encode("a")), readRpc, {
        timeout: 2_000,
      }),
    );
    // The last call written: its read parses whichever reply comes next.
    const b = outcome(pool.exchange(
      (tag) => rpc(tag, 0, enc.encode("b")),
      () => {
        throw new SyntaxError("not a reply I know");
      },
      { timeout: 2_000, idempotent: false },
    ));
    const error = await b;
    assert.ok(error instanceof ConnectionBrokenError, String(error));
    assert.equal(error.written, true);
    assert.ok(error.cause instanceof SyntaxError, String(error.cause));
    assert.equal(text((await a) as RpcReply), "a", "run again");
    assert.equal(pool.stats.pipeline!.resent, 1);
    assert.equal(pool.stats.destroyed.broken, 1);
  }
  assert.equal(server.accepted, 2);
  await server.drained(2_000);
});

Deno.test("pipeline: stats.pipeline.queued drops as queued calls give up", async () => {
  await using server = startRpcServer("fifo");
  {
    await using pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: { match: "fifo", maxInFlight: 1 },
    });
    const first = pool.exchange(rpc(0, 60, enc.encode("first")), readRpc, {
      timeout: 2_000,
    });
    const queued = Array.from({ length: 10 }, (_, i) =>
      outcome(
        pool.exchange(rpc(0, 0, enc.encode(`q${i}`)), readRpc, {
          timeout: 10,
        }),
      ));
    await sleep(5);
    assert.equal(pool.stats.pipeline!.queued, 10);
    for (const p of queued) assert.ok((await p) instanceof TimeoutError);
    assert.equal(pool.stats.pipeline!.queued, 0);
    assert.equal(text(await first), "first");
  }
  assert.equal(server.accepted, 1);
  await server.drained(2_000);
});
