// Copyright 2026 the chanpool authors. MIT license.
// TcpPool with `pipeline`: placement, coalescing, matching, orphans, the
// failure scope, exclusive calls and bad input, against tests/_rpc.ts.

import assert from "node:assert/strict";
import {
  ConnectionBrokenError,
  type FrameReader,
  PoolClosedError,
  ProtocolError,
  TcpAgent,
  TcpCluster,
  TcpPool,
  type TcpPoolOptions,
  TimeoutError,
} from "../mod.ts";
import {
  concat,
  dec,
  enc,
  NEVER,
  outcome,
  readRpc,
  RequestParser,
  rpc,
  type RpcReply,
  rpcReply,
  sleep,
  startRpcServer,
  tagOf,
  text,
  until,
} from "./_rpc.ts";
import { mulberry32 } from "./_random.ts";

function fifoPool(port: number, extra: Partial<TcpPoolOptions> = {}) {
  return new TcpPool({
    port,
    max: 1,
    pipeline: { match: "fifo", orphanTimeout: 500 },
    ...extra,
  });
}

function taggedPool(port: number, extra: Partial<TcpPoolOptions> = {}) {
  return new TcpPool({
    port,
    max: 1,
    pipeline: { match: "tagged", tagOf, orphanTimeout: 500 },
    ...extra,
  });
}

const call = (pool: TcpPool, body: string, delay = 0, opts = {}) =>
  pool.exchange(rpc(0, delay, enc.encode(body)), readRpc, {
    timeout: 5_000,
    ...opts,
  });

const tcall = (pool: TcpPool, body: string, delay = 0, opts = {}) =>
  pool.exchange((tag) => rpc(tag, delay, enc.encode(body)), readRpc, {
    timeout: 5_000,
    ...opts,
  });

Deno.test("pipeline fifo: 64 calls in flight on one connection, each gets its own reply", async () => {
  await using server = startRpcServer("fifo");
  {
    await using pool = fifoPool(server.port);
    const replies = await Promise.all(
      Array.from({ length: 64 }, (_, i) => call(pool, `c${i}`, i % 3)),
    );
    replies.forEach((r, i) => assert.equal(text(r), `c${i}`));
    assert.equal(pool.stats.dials, 1);
    assert.equal(server.accepted, 1);
  }
  await server.drained(2_000);
});

Deno.test("pipeline tagged: replies out of order reach their callers; tags are allocated by the pool", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = taggedPool(server.port);
    const seen = new Set<number>();
    const replies = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        pool.exchange(
          (tag) => {
            assert.ok(!seen.has(tag), `tag ${tag} given twice while in flight`);
            seen.add(tag);
            // Later calls answer first.
            return rpc(tag, 64 - i, enc.encode(`t${i}`));
          },
          readRpc,
          { timeout: 5_000 },
        )),
    );
    replies.forEach((r, i) => assert.equal(text(r), `t${i}`));
    assert.equal(seen.size, 64);
    assert.equal(pool.stats.dials, 1);
  }
  await server.drained(2_000);
});

Deno.test("pipeline: past maxInFlight, calls go to the least-loaded connection, then a new one up to max, then wait in order", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = taggedPool(server.port, {
      max: 2,
      pipeline: { match: "tagged", tagOf, maxInFlight: 3 },
    });
    const order: number[] = [];
    const calls = Array.from(
      { length: 9 },
      (_, i) =>
        tcall(pool, `w${i}`, 40).then((r) => {
          order.push(i);
          return r;
        }),
    );
    await sleep(10);
    const s = pool.stats.pipeline!;
    assert.equal(s.conns, 2, "a second connection past maxInFlight");
    assert.equal(s.inFlight, 6, "3 on each");
    assert.equal(s.queued, 3, "the rest wait");
    const replies = await Promise.all(calls);
    replies.forEach((r, i) => assert.equal(text(r), `w${i}`));
    // The waiting calls went out after the first six, in their order.
    assert.deepEqual(order.slice(6).sort(), [6, 7, 8]);
    assert.equal(pool.stats.dials, 2);
  }
  await server.drained(2_000);
});

Deno.test("pipeline: the calls of one turn go out in one write; a call past maxBatchBytes goes in the next", async () => {
  // A server that records the size of each read it gets and answers fifo.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const reads: number[] = [];
  const served = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(1 << 20);
    const parser = new RequestParser();
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      reads.push(n);
      for (const { tag, body } of parser.push(buf.subarray(0, n))) {
        await conn.write(rpcReply(tag, body));
      }
    }
    conn.close();
  })();
  {
    await using pool = new TcpPool({
      port: listener.addr.port,
      max: 1,
      pipeline: { match: "fifo", maxBatchBytes: 1000 },
    });
    // Warm: the connection is open before the burst.
    await call(pool, "warm");
    reads.length = 0;
    // 20 requests of 112 bytes in one turn: 8 fit in 1000 bytes.
    const body = "x".repeat(100);
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => call(pool, body)),
    );
    assert.equal(replies.length, 20);
    const total = reads.reduce((a, b) => a + b, 0);
    assert.equal(total, 20 * 112);
    // Written as 896 + 896 + 448 bytes (TCP may merge them, never split a
    // batch smaller than what was written at once on loopback).
    assert.ok(reads.length <= 3, `reads: ${reads}`);
    assert.ok(reads.every((n) => n % 112 === 0), `reads: ${reads}`);
    assert.ok(reads[0]! >= 896, `reads: ${reads}`);
  }
  listener.close();
  await served;
});

/**
 * A tagged RPC server on one connection that answers each run of `run`
 * requests with one write (so their replies arrive together).
 */
function batchServer(run: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(1 << 16);
    const parser = new RequestParser();
    let replies: Uint8Array[] = [];
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      for (const { tag, body } of parser.push(buf.subarray(0, n))) {
        replies.push(rpcReply(tag, body));
      }
      if (replies.length >= run) {
        const out = concat(replies);
        replies = [];
        await conn.write(out);
      }
    }
    conn.close();
  })();
  return {
    port: listener.addr.port,
    async close() {
      listener.close();
      await served;
    },
  };
}

Deno.test("pipeline tagged: the calls that replies read together set off go out in one write", async () => {
  const RUN = 32;
  const server = batchServer(RUN);
  const listener = { addr: { port: server.port } };
  // Counts the writes of the pool's sockets (the server's own are skipped);
  // a connection to a listener of its own lends the class's prototype.
  using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const probe = await Deno.connect({
    hostname: "127.0.0.1",
    port: other.addr.port,
  });
  const proto = Object.getPrototypeOf(probe) as {
    write(this: Deno.Conn, p: Uint8Array): Promise<number>;
  };
  const write = proto.write;
  let writes = 0;
  const serverSide = (c: Deno.Conn) =>
    (c.localAddr as Deno.NetAddr).port === listener.addr.port;
  proto.write = function (p) {
    if (!serverSide(this)) writes++;
    return write.call(this, p);
  };
  try {
    probe.close();
    await using pool = taggedPool(listener.addr.port);
    // Each task's second call starts once its first reply is handed out,
    // three awaits later; the 32 first replies come in one read.
    const task = async (i: number) => {
      const first = await tcall(pool, `a${i}`);
      const again = async () => await tcall(pool, `b${text(first)}`);
      return await again();
    };
    const done = Promise.all(Array.from({ length: RUN }, (_, i) => task(i)));
    const replies = await done;
    replies.forEach((r, i) => assert.equal(text(r), `ba${i}`));
    // One write for the first calls, one for the second ones.
    assert.equal(writes, 2);
  } finally {
    proto.write = write;
    await server.close();
  }
});

Deno.test("pipeline: a read function that returns a reply parsed from buffered bytes (no promise) has replies read together handed out together", async () => {
  const server = batchServer(8);
  const events: string[] = [];
  // Parses a reply that is whole in the buffer synchronously.
  const readSync = (
    reader: FrameReader,
  ): RpcReply | Promise<RpcReply | null> => {
    const view = reader.peek();
    const dv = new DataView(view.buffer, view.byteOffset, view.length);
    if (view.length >= 8 && view.length >= 4 + dv.getUint32(0)) {
      const len = dv.getUint32(0);
      const reply = { tag: dv.getUint32(4), body: view.slice(8, 4 + len) };
      reader.skip(4 + len);
      events.push("parsed");
      return reply;
    }
    // The first reply: nothing is buffered yet when the read loop starts.
    return readRpc(reader).then((reply) => {
      events.push("parsed");
      return reply;
    });
  };
  try {
    await using pool = taggedPool(server.port);
    const calls = Array.from(
      { length: 8 },
      (_, i) =>
        pool.exchange((tag) => rpc(tag, 0, enc.encode(`s${i}`)), readSync, {
          timeout: 5_000,
        }).then((r) => {
          events.push("handed out");
          return text(r);
        }),
    );
    assert.deepEqual(
      await Promise.all(calls),
      [0, 1, 2, 3, 4, 5, 6, 7].map((i) => `s${i}`),
    );
    // All eight were parsed before the first caller ran: no await between.
    assert.deepEqual(events, [
      ...Array(8).fill("parsed"),
      ...Array(8).fill("handed out"),
    ]);
  } finally {
    await server.close();
  }
});

Deno.test("pipeline fifo: a call that times out does not free its place: its late reply is read and dropped, the next call gets its own", async () => {
  await using server = startRpcServer("fifo");
  {
    await using pool = fifoPool(server.port);
    const slow = call(pool, "slow", 60, { timeout: 20 });
    const next = call(pool, "next");
    await assert.rejects(slow, TimeoutError);
    assert.equal(text(await next), "next");
    assert.equal(text(await call(pool, "after")), "after");
    assert.equal(pool.stats.pipeline!.orphans, 1);
    assert.equal(pool.stats.dials, 1, "the connection survived");
  }
  await server.drained(2_000);
});

Deno.test("pipeline fifo: an aborted call never shifts replies, in 500 calls with one in five aborted", async () => {
  const seed = Date.now() >>> 0;
  console.log(`seed ${seed}`);
  const random = mulberry32(seed);
  await using server = startRpcServer("fifo");
  {
    await using pool = fifoPool(server.port, { max: 2 });
    await call(pool, "warm"); // a connection to write on at once
    let wrong = 0;
    let aborted = 0;
    await Promise.all(Array.from({ length: 500 }, async (_, i) => {
      const ac = new AbortController();
      // One in five is aborted 0-4 ms in, before its reply (5 ms) can come:
      // those among the first 64 (on the warm connection) are written then.
      const abort = random() < 0.2;
      const delay = abort ? 5 : Math.floor(random() * 2);
      const p = call(pool, `a${i}`, delay, { signal: ac.signal });
      if (abort) setTimeout(() => ac.abort(), Math.floor(random() * 5));
      try {
        if (text(await p) !== `a${i}`) wrong++;
      } catch (error) {
        assert.equal((error as Error).name, "AbortError");
        aborted++;
      }
    }));
    assert.equal(wrong, 0);
    const orphans = pool.stats.pipeline!.orphans;
    console.log(`aborted ${aborted}, of which after their write ${orphans}`);
    assert.ok(orphans > 0, "some calls were aborted after their write");
  }
  await server.drained(2_000);
});

Deno.test("pipeline fifo: a reply that never comes closes its connection after orphanTimeout; the idempotent calls behind it run again on a new one", async () => {
  await using server = startRpcServer("fifo");
  {
    await using pool = fifoPool(server.port, {
      max: 1,
      pipeline: { match: "fifo", orphanTimeout: 50 },
    });
    const lost = outcome(call(pool, "lost", NEVER, { timeout: 10 }));
    const behind = call(pool, "behind", 0, { timeout: 2_000 });
    const once = outcome(
      call(pool, "once", 0, { timeout: 2_000, idempotent: false }),
    );
    assert.ok((await lost) instanceof TimeoutError);
    assert.equal(text(await behind), "behind");
    const error = await once;
    assert.ok(error instanceof ConnectionBrokenError, String(error));
    assert.match(error.message, /orphanTimeout/);
    assert.equal(error.written, true);
    assert.equal(pool.stats.pipeline!.resent, 1);
    assert.equal(pool.stats.dials, 2);
  }
  await server.drained(2_000);
});

Deno.test("pipeline tagged: a given-up tag is never reused before its reply arrives (python-driver #1114)", async () => {
  await using server = startRpcServer("tagged");
  {
    // Four tags only: without the orphan rule, tag 0 would be handed out
    // again at once and its late reply would reach the new call.
    await using pool = taggedPool(server.port, {
      pipeline: { match: "tagged", tagOf, maxInFlight: 4, tagLimit: 4 },
    });
    let lateTag = -1;
    const late = pool.exchange(
      (tag) => {
        lateTag = tag;
        return rpc(tag, 80, enc.encode("late"));
      },
      readRpc,
      { timeout: 10 },
    );
    await assert.rejects(late, TimeoutError);
    const used = new Set<number>();
    for (let i = 0; i < 60; i++) {
      const r = await pool.exchange(
        (tag) => {
          used.add(tag);
          return rpc(tag, 0, enc.encode(`n${i}`));
        },
        readRpc,
        { timeout: 2_000 },
      );
      assert.equal(text(r), `n${i}`);
    }
    assert.ok(!used.has(lateTag), `tag ${lateTag} reused while orphaned`);
    await sleep(100); // the late reply came and was dropped
    const again = new Set<number>();
    for (let i = 0; i < 8; i++) {
      await pool.exchange(
        (tag) => {
          again.add(tag);
          return rpc(tag, 0, enc.encode("x"));
        },
        readRpc,
        { timeout: 2_000 },
      );
    }
    assert.ok(again.has(lateTag), "free again once its reply came");
    assert.equal(pool.stats.dials, 1);
  }
  await server.drained(2_000);
});

Deno.test("pipeline tagged: orphans past 25 % of maxInFlight replace the connection; new calls go to a new one", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = taggedPool(server.port, {
      max: 2,
      pipeline: {
        match: "tagged",
        tagOf,
        maxInFlight: 8,
        orphanTimeout: 100,
      },
    });
    // Three replies that never come: 3 > 8 / 4.
    const lost = [0, 1, 2].map(() =>
      outcome(tcall(pool, "lost", NEVER, { timeout: 10 }))
    );
    for (const p of lost) assert.ok((await p) instanceof TimeoutError);
    assert.equal(text(await tcall(pool, "fresh")), "fresh");
    assert.equal(pool.stats.dials, 2, "a new connection took the call");
    await until("the old connection closed", () => server.open === 1, 2_000);
    const s = pool.stats.pipeline!;
    assert.equal(s.orphans, 3);
    assert.ok(pool.stats.destroyed.broken >= 1);
  }
  await server.drained(2_000);
});

Deno.test("pipeline: the server kills the connection mid-flight: every call settles within 10 ms of the first, typed; idempotent ones succeed on a new connection", async () => {
  for (const order of ["fifo", "tagged"] as const) {
    await using server = startRpcServer(order);
    {
      await using pool = order === "fifo"
        ? fifoPool(server.port)
        : taggedPool(server.port);
      const go = order === "fifo" ? call : tcall;
      const settled: number[] = [];
      const note = <T>(p: Promise<T>) =>
        outcome(p.finally(() => settled.push(performance.now())));
      const idem = Array.from(
        { length: 10 },
        (_, i) => note(go(pool, `i${i}`, 30)),
      );
      const once = Array.from(
        { length: 10 },
        (_, i) => note(go(pool, `o${i}`, 30, { idempotent: false })),
      );
      await sleep(5);
      const kill = note(go(pool, "KILL", 0, { idempotent: false }));
      const killError = await kill;
      assert.ok(killError instanceof ConnectionBrokenError);
      for (const [i, p] of idem.entries()) {
        assert.equal(text((await p) as RpcReply), `i${i}`);
      }
      for (const p of once) {
        const e = await p;
        assert.ok(e instanceof ConnectionBrokenError, `${order}: ${e}`);
        assert.equal(e.written, true);
      }
      // The broken calls all settled at once (idempotent ones later, on
      // their new connection).
      const broken = settled.slice(0, 11).sort((a, b) => a - b);
      assert.ok(
        broken[broken.length - 1]! - broken[0]! < 10,
        `${order}: settled over ${broken[broken.length - 1]! - broken[0]!} ms`,
      );
      assert.equal(pool.stats.pipeline!.resent, 10);
    }
    await server.drained(2_000);
  }
});

Deno.test("pipeline tagged: a reply with a tag nobody is waiting for is a ProtocolError that closes the connection; the others run again", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = taggedPool(server.port);
    const others = Array.from(
      { length: 5 },
      (_, i) => outcome(tcall(pool, `k${i}`, 30)),
    );
    await sleep(5);
    const error = await outcome(tcall(pool, "JUNK", 0, { idempotent: false }));
    // JUNK's reply carries a tag nobody holds: the connection is closed,
    // JUNK (not idempotent) fails typed, the others run again.
    assert.ok(error instanceof ConnectionBrokenError, String(error));
    assert.ok(error.cause instanceof ProtocolError, String(error.cause));
    assert.match(String(error.cause), /a reply with tag 6 answers no call/);
    for (const [i, p] of others.entries()) {
      assert.equal(text((await p) as RpcReply), `k${i}`);
    }
    assert.equal(pool.stats.destroyed.broken, 1);
    assert.equal(pool.stats.pipeline!.resent, 5);
    assert.equal(pool.stats.dials, 2);
  }
  await server.drained(2_000);
});

Deno.test("pipeline: verify runs per call; a reply that fails it rejects that call with ProtocolError and closes the connection", async () => {
  await using server = startRpcServer("fifo");
  {
    await using pool = fifoPool(server.port);
    const good = call(pool, "good", 20);
    const bad = outcome(pool.exchange(rpc(0, 0, enc.encode("bad")), readRpc, {
      timeout: 2_000,
      verify: () => false,
    }));
    const after = call(pool, "after", 0);
    assert.equal(text(await good), "good");
    assert.ok((await bad) instanceof ProtocolError);
    assert.equal(text(await after), "after");
    assert.equal(pool.stats.destroyed.broken, 1);
  }
  await server.drained(2_000);
});

Deno.test("pipeline fifo: bytes with no call in flight are a ProtocolError; the connection is not reused", async () => {
  await using server = startRpcServer("fifo");
  {
    await using pool = fifoPool(server.port);
    assert.equal(text(await call(pool, "one")), "one");
    await server.inject(rpc(0, 0, enc.encode("stray")));
    await until("evicted", () => pool.stats.open === 0);
    assert.equal(text(await call(pool, "two")), "two");
    assert.equal(pool.stats.dials, 2);
  }
  await server.drained(2_000);
});

Deno.test("pipeline: a call aborted or timed out before its turn's write is never sent", async () => {
  await using server = startRpcServer("fifo");
  {
    await using pool = fifoPool(server.port);
    await call(pool, "warm");
    const before = server.requests;
    const ac = new AbortController();
    const p = call(pool, "aborted", 0, { signal: ac.signal });
    ac.abort();
    await assert.rejects(p, { name: "AbortError" });
    const q = call(pool, "sent");
    assert.equal(text(await q), "sent");
    assert.equal(server.requests - before, 1);
    assert.equal(pool.stats.pipeline!.orphans, 0);
  }
  await server.drained(2_000);
});

Deno.test("pipeline: exclusive calls and borrow() get a connection of their own while pipelined calls keep going", async () => {
  await using server = startRpcServer("fifo");
  {
    await using pool = fifoPool(server.port, { max: 1 });
    let stop = false;
    let done = 0;
    const load = Array.from({ length: 8 }, async (_, t) => {
      while (!stop) {
        assert.equal(text(await call(pool, `l${t}`, 1)), `l${t}`);
        done++;
      }
    });
    await sleep(20);
    const alone = await pool.exchange(
      rpc(0, 0, enc.encode("alone")),
      readRpc,
      { exclusive: true, timeout: 2_000 },
    );
    assert.equal(text(alone), "alone");
    {
      await using conn = await pool.borrow({ timeout: 2_000 });
      const r = await conn.exchange(
        rpc(0, 0, enc.encode("borrowed")),
        readRpc,
        {
          timeout: 2_000,
        },
      );
      assert.equal(text(r), "borrowed");
    }
    const before = done;
    await until("pipelined calls go on", () => done > before + 10);
    stop = true;
    await Promise.all(load);
    assert.equal(pool.stats.dials, 1);
  }
  await server.drained(2_000);
});

Deno.test("pipeline: request() frames pipelined requests", async () => {
  // A frame echo server: [u32 len][payload] back as it came.
  await using server = startRpcServer("fifo");
  {
    await using pool = fifoPool(server.port);
    // rpc() without its length header is a frame payload the server reads.
    const replies = await Promise.all(
      Array.from(
        { length: 16 },
        (_, i) =>
          pool.request(rpc(0, 0, enc.encode(`f${i}`)).subarray(4), {
            timeout: 2_000,
          }),
      ),
    );
    replies.forEach((r, i) => assert.equal(dec.decode(r.subarray(4)), `f${i}`));
  }
  await server.drained(2_000);
});

Deno.test("pipeline: close() rejects queued calls with PoolClosedError and lets written ones finish", async () => {
  await using server = startRpcServer("tagged");
  const pool = taggedPool(server.port, {
    pipeline: { match: "tagged", tagOf, maxInFlight: 2 },
  });
  const inFlight = [tcall(pool, "a", 20), tcall(pool, "b", 20)];
  const queued = outcome(tcall(pool, "c", 0));
  await sleep(5);
  const closing = pool.close();
  assert.ok((await queued) instanceof PoolClosedError);
  assert.deepEqual((await Promise.all(inFlight)).map(text), ["a", "b"]);
  await closing;
  await assert.rejects(tcall(pool, "d"), PoolClosedError);
  await server.drained(2_000);
});

Deno.test("pipeline: bad options and arguments are TypeError/RangeError naming the option and value", async () => {
  const bad: [unknown, RegExp, ErrorConstructor][] = [
    [1, /pipeline must be an object.*received 1/, TypeError],
    [
      { match: "lifo" },
      /pipeline.match must be "fifo" or "tagged", received "lifo"/,
      RangeError,
    ],
    [{}, /pipeline.match .*received undefined/, TypeError],
    [
      { match: "fifo", maxInFlight: 0 },
      /pipeline.maxInFlight .*received 0/,
      RangeError,
    ],
    [
      { match: "fifo", maxInFlight: "8" },
      /pipeline.maxInFlight .*received "8"/,
      TypeError,
    ],
    [
      { match: "fifo", maxBatchBytes: 1.5 },
      /pipeline.maxBatchBytes .*received 1.5/,
      RangeError,
    ],
    [
      { match: "fifo", orphanTimeout: 2 ** 31 },
      /pipeline.orphanTimeout .*received 2147483648/,
      RangeError,
    ],
    [{ match: "tagged" }, /pipeline.tagOf must be a function/, TypeError],
    [
      { match: "tagged", tagOf, tagLimit: 10, maxInFlight: 64 },
      /pipeline.tagLimit .*received 10/,
      RangeError,
    ],
    [
      { match: "fifo", tagOf },
      /pipeline.tagOf is for match "tagged"/,
      TypeError,
    ],
  ];
  for (const [pipeline, message, type] of bad) {
    assert.throws(
      () => new TcpPool({ port: 1, pipeline } as TcpPoolOptions),
      (e: Error) => e instanceof type && message.test(e.message),
      JSON.stringify(pipeline),
    );
  }
  await using server = startRpcServer("tagged");
  {
    await using fifo = fifoPool(server.port);
    assert.throws(
      () => fifo.exchange(() => new Uint8Array(1), readRpc),
      /payload must be a Uint8Array/,
    );
    assert.throws(
      () =>
        fifo.exchange(new Uint8Array(1), readRpc, { exclusive: 1 as never }),
      /exclusive must be a boolean, received 1/,
    );
    await using tagged = taggedPool(server.port);
    assert.throws(
      () => tagged.exchange(new Uint8Array(1), readRpc),
      /payload must be a function \(tag\) => Uint8Array/,
    );
    assert.throws(
      () => tagged.exchange(() => new Uint8Array(1), "x" as never),
      /read must be a function/,
    );
    // A payload function that returns no bytes fails its own call only.
    const bad = outcome(tagged.exchange(() => "x" as never, readRpc, {
      timeout: 1_000,
    }));
    const good = tcall(tagged, "good");
    assert.match(String(await bad), /must return a Uint8Array, received "x"/);
    assert.equal(text(await good), "good");
  }
  await server.drained(2_000);
});

Deno.test("pipeline: TcpAgent and TcpCluster give it to their pools; tagged calls go through both", async () => {
  await using a = startRpcServer("tagged");
  await using b = startRpcServer("tagged");
  const pipeline = { match: "tagged", tagOf } as const;
  {
    await using agent = new TcpAgent({ pipeline });
    const replies = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        agent.exchange(
          { port: i % 2 === 0 ? a.port : b.port },
          (tag) => rpc(tag, 32 - i, enc.encode(`g${i}`)),
          readRpc,
          { timeout: 2_000 },
        )),
    );
    replies.forEach((r, i) => assert.equal(text(r), `g${i}`));
    await using cluster = new TcpCluster({
      hosts: [{ port: a.port }, { port: b.port }],
      pipeline,
    });
    const more = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        cluster.exchange(
          (tag) => rpc(tag, 32 - i, enc.encode(`h${i}`)),
          readRpc,
          { timeout: 2_000 },
        )),
    );
    more.forEach((r, i) => assert.equal(text(r), `h${i}`));
    // request() frames what the function of the tag makes; its replies
    // are frames, so tagOf reads the tag from one.
    await using framing = new TcpCluster({
      hosts: [{ port: a.port }, { port: b.port }],
      pipeline: {
        match: "tagged",
        tagOf: (frame) =>
          new DataView(
            (frame as Uint8Array).buffer,
            (frame as Uint8Array).byteOffset,
          )
            .getUint32(0),
      },
    });
    const framed = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        framing.request(
          (tag) => rpc(tag, 8 - i, enc.encode(`r${i}`)).subarray(4),
          { timeout: 2_000 },
        )),
    );
    framed.forEach((r, i) => assert.equal(dec.decode(r.subarray(4)), `r${i}`));
  }
  assert.equal(a.accepted + b.accepted, 6, "one connection per pool");
  await a.drained(2_000);
  await b.drained(2_000);
});

Deno.test("pipeline: a connection kept busy is still replaced at maxLifetime, with no call failing", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = taggedPool(server.port, { max: 2, maxLifetime: 150 });
    let failed = 0;
    let done = 0;
    const end = performance.now() + 500;
    await Promise.all(Array.from({ length: 16 }, async (_, t) => {
      while (performance.now() < end) {
        try {
          assert.equal(text(await tcall(pool, `m${t}`, 1)), `m${t}`);
          done++;
        } catch {
          failed++;
        }
      }
    }));
    assert.equal(failed, 0);
    assert.ok(done > 100, `${done} calls`);
    assert.ok(pool.stats.destroyed.lifetime >= 1, "replaced at maxLifetime");
    assert.ok(pool.stats.dials >= 2);
  }
  await server.drained(2_000);
});

Deno.test("pipeline: a connection busy with calls for longer than leakTimeout is not reported as leaked", async () => {
  await using server = startRpcServer("tagged");
  {
    const leaks: unknown[] = [];
    await using pool = taggedPool(server.port, {
      leakTimeout: 100,
      onLeak: (report) => leaks.push(report),
    });
    const end = performance.now() + 400;
    await Promise.all(Array.from({ length: 8 }, async (_, t) => {
      while (performance.now() < end) {
        assert.equal(text(await tcall(pool, `k${t}`, 2)), `k${t}`);
      }
    }));
    assert.deepEqual(leaks, []);
    assert.equal(pool.stats.dials, 1, "the same connection all along");
  }
  await server.drained(2_000);
});

Deno.test("pipeline: a call whose read throws gets that error; the connection is closed and the others run again", async () => {
  await using server = startRpcServer("fifo");
  {
    await using pool = fifoPool(server.port);
    const before = outcome(call(pool, "before", 20));
    const bad = outcome(pool.exchange(rpc(0, 0, enc.encode("bad")), () => {
      throw new SyntaxError("not a reply I know");
    }, { timeout: 2_000 }));
    const after = outcome(call(pool, "after", 0));
    assert.equal(text((await before) as RpcReply), "before");
    const error = await bad;
    assert.ok(error instanceof SyntaxError, String(error));
    assert.equal(text((await after) as RpcReply), "after");
    assert.equal(pool.stats.destroyed.broken, 1);
    assert.equal(pool.stats.pipeline!.resent, 1);
  }
  await server.drained(2_000);
});

Deno.test("pipeline: close({ force: true }) rejects written calls with PoolClosedError at once and closes every socket", async () => {
  await using server = startRpcServer("tagged");
  const pool = taggedPool(server.port, { max: 2 });
  const calls = Array.from(
    { length: 20 },
    (_, i) => outcome(tcall(pool, `f${i}`, 5_000)),
  );
  await until("written", () => server.requests === 20);
  const t0 = performance.now();
  await pool.close({ force: true });
  for (const p of calls) {
    const e = await p;
    assert.ok(e instanceof PoolClosedError, String(e));
  }
  assert.ok(performance.now() - t0 < 1_000);
  await server.drained(2_000);
});
