// Copyright 2026 the chanpool authors. MIT license.
// TcpPool with `pipeline`: fault cases found by review (a hostile server,
// a careless caller), against tests/_rpc.ts. Each counts the sockets the
// server accepted and checks they were all closed.

import assert from "node:assert/strict";
import {
  ConnectionBrokenError,
  PoolClosedError,
  TcpAgent,
  TcpPool,
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
import { acceptAll } from "./_servers.ts";
import { mulberry32 } from "./_random.ts";

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

/**
 * A hostile RPC server: replies (in request order, or reversed per read
 * for "tagged") go out cut into 1-7 byte pieces, one write per piece, so
 * a reply arrives split across reads and merged with the next one.
 */
function startChoppyServer(order: "fifo" | "tagged", seed: number) {
  const random = mulberry32(seed);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  return acceptAll(listener, conns, async (conn) => {
    const parser = new RequestParser();
    const chunk = new Uint8Array(65536);
    try {
      while (true) {
        const n = await conn.read(chunk);
        if (n === null) break;
        const replies = parser.push(chunk.subarray(0, n)).map((r) =>
          rpcReply(r.tag, r.body)
        );
        if (order === "tagged") replies.reverse();
        const all = concat(replies);
        for (let i = 0; i < all.length;) {
          const size = 1 + Math.floor(random() * 7);
          await conn.write(all.subarray(i, i + size));
          i += size;
          await new Promise((r) => setTimeout(r, 0));
        }
      }
    } catch {
      // reset
    }
    conns.delete(conn);
    conn.close();
  });
}

Deno.test("pipeline: replies cut into pieces and merged with the next reach their own calls", async () => {
  const seed = Date.now() >>> 0;
  console.log(`seed ${seed}`);
  for (const match of ["fifo", "tagged"] as const) {
    await using server = startChoppyServer(match, seed);
    {
      await using pool = new TcpPool({
        port: server.port,
        max: 2,
        pipeline: match === "fifo"
          ? { match, maxInFlight: 16 }
          : { match, tagOf, maxInFlight: 16 },
      });
      const replies = await Promise.all(
        Array.from({ length: 100 }, (_, i) => {
          const body = enc.encode(`${match}-${i}-${"z".repeat(i % 13)}`);
          return pool.exchange(
            match === "fifo"
              ? rpc(0, 0, body)
              : (tag: number) => rpc(tag, 0, body),
            readRpc,
            { timeout: 5_000 },
          );
        }),
      );
      replies.forEach((r, i) =>
        assert.equal(text(r), `${match}-${i}-${"z".repeat(i % 13)}`)
      );
      assert.equal(pool.stats.dials, server.accepted);
    }
    await server.drained(2_000);
  }
});

Deno.test("pipeline: an idempotent call is written at most twice, however many connections break under it", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: { match: "tagged", tagOf },
    });
    const calls = Array.from({ length: 8 }, (_, i) =>
      outcome(
        pool.exchange((tag) => rpc(tag, 80, enc.encode(`r${i}`)), readRpc, {
          timeout: 2_000,
        }),
      ));
    await until("written", () => server.requests === 8);
    server.kill(); // first break: each runs again on a new connection
    await until("written again", () => server.requests === 16);
    server.kill(); // second break: each rejects, written
    for (const p of calls) {
      const e = await p;
      assert.ok(e instanceof ConnectionBrokenError, String(e));
      assert.equal(e.written, true);
    }
    assert.equal(server.requests, 16, "never a third time");
    assert.equal(pool.stats.pipeline!.resent, 8);
  }
  assert.equal(server.accepted, 2);
  await server.drained(2_000);
});

Deno.test("pipeline: calls requeued by a break at max, with the other connection full, wait and then run", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = new TcpPool({
      port: server.port,
      max: 2,
      pipeline: { match: "tagged", tagOf, maxInFlight: 2 },
    });
    const go = (body: string, delay: number, idempotent = true) =>
      outcome(
        pool.exchange((tag) => rpc(tag, delay, enc.encode(body)), readRpc, {
          timeout: 2_000,
          idempotent,
        }),
      );
    // a, b fill one connection; c and KILL go on the second.
    const calls = [
      go("a", 40),
      go("b", 40),
      go("c", 40),
      go("KILL", 0, false),
    ];
    const killed = await calls[3]!;
    assert.ok(killed instanceof ConnectionBrokenError, String(killed));
    const texts = (await Promise.all(calls.slice(0, 3))).map((r) =>
      text(r as RpcReply)
    );
    assert.deepEqual(texts, ["a", "b", "c"]);
    assert.equal(pool.stats.pipeline!.resent, 1);
    assert.ok(pool.stats.open <= 2);
  }
  assert.equal(server.accepted, 3);
  await server.drained(2_000);
});

Deno.test("pipeline tagged: request() takes a function of the tag and frames what it returns", async () => {
  await using server = startRpcServer("tagged");
  {
    // request() replies are frame payloads: [u32 tag][body].
    const tagOfFrame = (reply: unknown) =>
      new DataView(
        (reply as Uint8Array).buffer,
        (reply as Uint8Array).byteOffset,
      )
        .getUint32(0);
    await using pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: { match: "tagged", tagOf: tagOfFrame },
    });
    const replies = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        pool.request(
          // rpc() without its length header is the frame's payload.
          (tag) => rpc(tag, 16 - i, enc.encode(`f${i}`)).subarray(4),
          { timeout: 2_000 },
        )),
    );
    replies.forEach((r, i) => assert.equal(dec.decode(r.subarray(4)), `f${i}`));
    // A frame too large fails its own call only.
    const big = await outcome(
      pool.request(() => new Uint8Array(2 ** 23), { timeout: 2_000 }),
    );
    assert.ok(big instanceof RangeError, String(big));
    assert.equal(pool.stats.dials, 1);
  }
  assert.equal(server.accepted, 1);
  await server.drained(2_000);
});

Deno.test("pipeline: close() while the queue's borrow waits behind a borrowed connection rejects the queue typed and ends once it is released", async () => {
  for (const force of [false, true]) {
    await using server = startRpcServer("fifo");
    const pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: { match: "fifo" },
    });
    const held = await pool.borrow({ timeout: 2_000 });
    const queued = Array.from({ length: 3 }, (_, i) =>
      outcome(
        pool.exchange(rpc(0, 0, enc.encode(`q${i}`)), readRpc, {
          timeout: 0, // no limit: only close() ends its wait
        }),
      ));
    await sleep(5);
    assert.equal(pool.stats.pipeline!.queued, 3);
    const closing = pool.close({ force });
    for (const p of queued) {
      const e = await p;
      assert.ok(e instanceof PoolClosedError, `force ${force}: ${e}`);
    }
    if (!force) {
      await sleep(20);
      held.release();
    }
    await closing;
    held.release();
    assert.equal(server.accepted, 1);
    await server.drained(2_000);
  }
});

Deno.test("pipeline: close() in the turn a call's reply parked its connection ends at once and closes it", async () => {
  for (const force of [false, true]) {
    await using server = startRpcServer("tagged");
    const pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: { match: "tagged", tagOf },
    });
    const r = await pool.exchange(
      (tag) => rpc(tag, 0, enc.encode("one")),
      readRpc,
      { timeout: 2_000 },
    );
    assert.equal(text(r), "one");
    assert.equal(pool.stats.pipeline!.conns, 1, "parked, not given back yet");
    const t0 = performance.now();
    await pool.close({ force });
    assert.ok(performance.now() - t0 < 500);
    assert.equal(pool.stats.open, 0);
    assert.equal(server.accepted, 1);
    await server.drained(2_000);
  }
});

Deno.test("pipeline: the server closes while a large batch is being written: every call settles typed, nothing leaks", async () => {
  // Reads 1 KiB, then closes: the client's write of a 4 MiB batch fails
  // or its read sees EOF first, whichever the OS reports first.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const server = acceptAll(listener, conns, async (conn) => {
    await conn.read(new Uint8Array(1024)).catch(() => null);
    conns.delete(conn);
    conn.close();
  });
  let dials = 0;
  {
    await using pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: { match: "fifo", maxBatchBytes: 2 ** 22 },
    });
    const body = new Uint8Array(2 ** 16);
    const calls = Array.from({ length: 64 }, (_, i) =>
      outcome(
        pool.exchange(rpc(0, 0, body), readRpc, {
          timeout: 2_000,
          idempotent: i % 2 === 0,
        }),
      ));
    for (const p of calls) {
      const e = await p;
      assert.ok(e instanceof ConnectionBrokenError, String(e));
      assert.equal(e.written, true);
    }
    // The idempotent half ran once more, on a connection dialed for it.
    assert.equal(pool.stats.pipeline!.resent, 32);
    assert.equal(pool.stats.pipeline!.inFlight, 0);
    dials = pool.stats.dials;
  }
  // Every connection dialed reached the server (a call not written when
  // the first broke may have gone on one of its own).
  assert.ok(dials >= 2);
  assert.equal(server.accepted, dials);
  await server.stop();
  await server.drained(2_000);
});

Deno.test("pipeline tagged at max 1: exclusive calls and a steady pipelined load both progress", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: { match: "tagged", tagOf },
    });
    let stop = false;
    let piped = 0;
    let alone = 0;
    const load = Array.from({ length: 16 }, async (_, t) => {
      while (!stop) {
        const r = await pool.exchange(
          (tag) => rpc(tag, 1, enc.encode(`p${t}`)),
          readRpc,
          { timeout: 2_000 },
        );
        assert.equal(text(r), `p${t}`);
        piped++;
      }
    });
    const exclusive = Array.from({ length: 2 }, async (_, t) => {
      while (!stop) {
        const r = await pool.exchange(
          rpc(0, 0, enc.encode(`x${t}`)),
          readRpc,
          { timeout: 2_000, exclusive: true },
        );
        assert.equal(text(r), `x${t}`);
        alone++;
      }
    });
    await sleep(300);
    const mark = [piped, alone];
    await sleep(200);
    stop = true;
    await Promise.all([...load, ...exclusive]);
    assert.ok(piped > mark[0]! + 20, `pipelined ${mark[0]} then ${piped}`);
    assert.ok(alone > mark[1]! + 5, `exclusive ${mark[1]} then ${alone}`);
    assert.equal(pool.stats.dials, 1);
  }
  assert.equal(server.accepted, 1);
  await server.drained(2_000);
});

Deno.test("pipeline tagged: tagOf returning a string, NaN or a fraction is a ProtocolError naming it, never a match", async () => {
  for (const bad of ["0", NaN, 0.5]) {
    await using server = startRpcServer("tagged");
    {
      await using pool = new TcpPool({
        port: server.port,
        max: 1,
        pipeline: { match: "tagged", tagOf: () => bad as number },
      });
      const e = await outcome(
        pool.exchange((tag) => rpc(tag, 0, enc.encode("x")), readRpc, {
          timeout: 2_000,
          idempotent: false,
        }),
      );
      assert.ok(e instanceof ConnectionBrokenError, String(e));
      assert.match(
        String(e.cause),
        /ProtocolError: .*a reply with tag .* answers no call in flight/,
      );
    }
    assert.equal(server.accepted, 1);
    await server.drained(2_000);
  }
});

Deno.test("pipeline: heartbeats ping connections the pipeline parked, and calls never fail for it", async () => {
  await using server = startRpcServer("tagged");
  {
    let pings = 0;
    await using pool = new TcpPool({
      port: server.port,
      max: 2,
      pipeline: { match: "tagged", tagOf },
      heartbeat: {
        interval: 10,
        ping: async (conn) => {
          const r = await conn.exchange(
            rpc(9, 0, enc.encode("ping")),
            readRpc,
            {
              timeout: 500,
            },
          );
          pings++;
          return text(r) === "ping";
        },
      },
    });
    let failed = 0;
    for (let round = 0; round < 20; round++) {
      const rs = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          outcome(
            pool.exchange((tag) => rpc(tag, 1, enc.encode(`h${i}`)), readRpc, {
              timeout: 2_000,
            }),
          )),
      );
      failed += rs.filter((r) => r instanceof Error).length;
      await sleep(round % 3 === 0 ? 25 : 1); // idle long enough to be pinged
    }
    assert.equal(failed, 0);
    assert.ok(pings > 0, "pinged while parked in the pool");
    assert.equal(pool.stats.destroyed.heartbeat, 0);
  }
  await server.drained(2_000);
});

Deno.test("pipeline: a call's timeout, not acquireTimeout, bounds its wait for a connection, as without pipeline", async () => {
  for (const pipeline of [undefined, { match: "fifo" } as const]) {
    await using server = startRpcServer("fifo");
    {
      await using pool = new TcpPool({
        port: server.port,
        max: 1,
        acquireTimeout: 50,
        ...(pipeline === undefined ? {} : { pipeline }),
      });
      const held = await pool.borrow({ timeout: 2_000 });
      setTimeout(() => held.release(), 150);
      const r = await outcome(
        pool.exchange(rpc(0, 0, enc.encode("late")), readRpc, {
          timeout: 2_000,
        }),
      );
      assert.equal(
        text(r as RpcReply),
        "late",
        `pipeline ${pipeline?.match}: ${r}`,
      );
      // No timeout of its own: acquireTimeout bounds the wait.
      const held2 = await pool.borrow({ timeout: 2_000 });
      const e = await outcome(
        pool.exchange(rpc(0, 0, enc.encode("none")), readRpc, { timeout: 0 }),
      );
      assert.ok(e instanceof TimeoutError, `pipeline ${pipeline?.match}: ${e}`);
      held2.release();
    }
    assert.equal(server.accepted, 1);
    await server.drained(2_000);
  }
});

Deno.test("pipeline tagged: every tag held by orphans at max 1: new calls wait for orphanTimeout, then run on a new connection", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: {
        match: "tagged",
        tagOf,
        maxInFlight: 4,
        tagLimit: 4,
        orphanTimeout: 100,
      },
    });
    const lost = Array.from({ length: 4 }, () =>
      outcome(
        pool.exchange((tag) => rpc(tag, NEVER, enc.encode("lost")), readRpc, {
          timeout: 10,
        }),
      ));
    for (const p of lost) assert.ok((await p) instanceof TimeoutError);
    const t0 = performance.now();
    const r = await pool.exchange(
      (tag) => rpc(tag, 0, enc.encode("next")),
      readRpc,
      { timeout: 2_000 },
    );
    assert.equal(text(r), "next");
    const waited = performance.now() - t0;
    assert.ok(waited >= 50 && waited < 1_000, `waited ${waited} ms`);
    assert.equal(pool.stats.dials, 2);
    assert.equal(pool.stats.pipeline!.orphans, 4);
  }
  assert.equal(server.accepted, 2);
  await server.drained(2_000);
});

Deno.test("pipeline fifo with maxInFlight 1: an orphan holds its connection; the next calls take another, up to max", async () => {
  await using server = startRpcServer("fifo");
  {
    await using pool = new TcpPool({
      port: server.port,
      max: 2,
      pipeline: { match: "fifo", maxInFlight: 1, orphanTimeout: 100 },
    });
    const lost = await outcome(
      pool.exchange(rpc(0, NEVER, enc.encode("lost")), readRpc, {
        timeout: 10,
      }),
    );
    assert.ok(lost instanceof TimeoutError);
    for (let i = 0; i < 5; i++) {
      const r = await pool.exchange(rpc(0, 0, enc.encode(`n${i}`)), readRpc, {
        timeout: 2_000,
      });
      assert.equal(text(r), `n${i}`);
    }
    assert.equal(pool.stats.dials, 2);
    await until("the orphaned connection closed", () => server.open === 1);
  }
  assert.equal(server.accepted, 2);
  await server.drained(2_000);
});

Deno.test("pipeline tagged: a payload function that throws when its call runs again fails that call alone", async () => {
  await using server = startRpcServer("tagged");
  {
    await using pool = new TcpPool({
      port: server.port,
      max: 1,
      pipeline: { match: "tagged", tagOf },
    });
    let made = 0;
    const once = outcome(pool.exchange(
      (tag) => {
        if (made++ > 0) throw new RangeError("made twice");
        return rpc(tag, 40, enc.encode("once"));
      },
      readRpc,
      { timeout: 2_000 },
    ));
    const other = outcome(
      pool.exchange((tag) => rpc(tag, 40, enc.encode("other")), readRpc, {
        timeout: 2_000,
      }),
    );
    await until("written", () => server.requests === 2);
    server.kill();
    const e = await once;
    assert.ok(e instanceof RangeError, String(e));
    assert.equal(made, 2);
    assert.equal(text((await other) as RpcReply), "other");
    assert.equal(pool.stats.pipeline!.resent, 2);
    assert.equal(pool.stats.pipeline!.inFlight, 0);
  }
  assert.equal(server.accepted, 2);
  await server.drained(2_000);
});
