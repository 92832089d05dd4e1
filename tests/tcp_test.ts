// Copyright 2026 the chanpool authors. MIT license.
// TcpPool against a fault-injection server on 127.0.0.1: dead idle
// connections, servers that hang up after each response, late responses,
// stray bytes, resets mid-frame, a server that goes away and comes back, TLS.

import assert from "node:assert/strict";
import { FrameTooLargeError, UnexpectedEofError } from "../framing.ts";
import {
  DialError,
  PoolClosedError,
  PoolTimeoutError,
  TimeoutError,
} from "../pool.ts";
import {
  ConnectionBrokenError,
  type PooledConn,
  ProtocolError,
  TcpPool,
} from "../tcp.ts";
import { encodeFrame, startFaultServer } from "./_fault_server.ts";
import { mulberry32 } from "./_random.ts";
import {
  acceptAll,
  selfSignedCert,
  type Served,
  startLineServer,
  startRelay,
  startSilentServer,
} from "./_servers.ts";

// -- Helpers --

/** A TCP address's port (a pool's conns over TCP have `Deno.NetAddr`s). */
function portOf(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

/** A request payload: a 4-byte big-endian id, then `body`. */
function payload(id: number, body: Uint8Array | string = ""): Uint8Array {
  const bytes = typeof body === "string"
    ? new TextEncoder().encode(body)
    : body;
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, id);
  out.set(bytes, 4);
  return out;
}

function idOf(response: Uint8Array): number {
  return new DataView(response.buffer, response.byteOffset).getUint32(0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` every few ms for up to `timeout` ms. */
async function until(
  predicate: () => boolean,
  what: string,
  timeout = 3_000,
): Promise<void> {
  const end = performance.now() + timeout;
  while (!predicate()) {
    if (performance.now() > end) throw new Error(`Timed out waiting: ${what}`);
    await sleep(5);
  }
}

/** Pool counts add up (TcpPool has nothing checking: no validate/ping). */
function checkStats(pool: TcpPool): void {
  const s = pool.stats;
  assert.equal(s.open, s.idle + s.inUse + s.dialing + s.checking);
  assert.ok(s.open <= s.max);
}

// -- Reuse --

Deno.test("TcpPool reuses one connection for sequential requests (same local port)", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 4 });
  const ports = new Set<number>();
  for (let id = 1; id <= 20; id++) {
    await using conn = await pool.borrow();
    ports.add(portOf(conn.localAddr));
    assert.equal(conn.reused, id > 1);
    assert.equal(portOf(conn.remoteAddr), server.port);
    const response = await conn.request(payload(id, "hello"));
    assert.equal(idOf(response), id);
  }
  assert.equal(ports.size, 1);
  assert.equal(server.stats.connections, 1);
  assert.equal(pool.stats.dials, 1);
});

Deno.test("TcpPool hands a borrower the idle watch's pending read, losing nothing (large frames)", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({
    port: server.port,
    max: 1,
    readBufferSize: 512,
  });
  const body = new Uint8Array(100_000).map((_, i) => i % 251);
  for (let id = 1; id <= 5; id++) {
    const response = await pool.request(payload(id, body));
    assert.equal(idOf(response), id);
    assert.deepEqual(response.subarray(4), body);
  }
  assert.equal(pool.stats.dials, 1);
});

Deno.test("PooledConn throws TypeError once released", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port });
  const conn = await pool.borrow();
  conn.release();
  conn.release(); // a no-op
  assert.throws(() => conn.localAddr, TypeError);
  assert.throws(() => conn.reused, TypeError);
  await assert.rejects(async () => await conn.request(payload(1)), TypeError);
  await assert.rejects(async () => await conn.readFrame(), TypeError);
  await assert.rejects(
    async () => await conn.write(new Uint8Array(1)),
    TypeError,
  );
  assert.equal(pool.stats.idle, 1);
});

Deno.test("PooledConn read, readExact, readLine and write work on the raw stream", async () => {
  // A line echo server built on the fault server's frames would not do:
  // use a raw echo.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    for await (const conn of listener) {
      conn.readable.pipeTo(conn.writable).catch(() => {});
    }
  })();
  {
    await using pool = new TcpPool({ port: listener.addr.port });
    await using conn = await pool.borrow();
    await conn.write(new TextEncoder().encode("one\r\ntwo\nabcdef"));
    assert.equal(await conn.readLine(), "one");
    assert.equal(await conn.readLine(), "two");
    assert.deepEqual(await conn.readExact(3), new TextEncoder().encode("abc"));
    const buf = new Uint8Array(10);
    const n = await conn.read(buf);
    assert.ok(n !== null && n >= 1);
    assert.equal(conn.buffered, 3 - n);
  }
  listener.close();
  await served;
});

// -- Dead and dirty connections --

Deno.test("TcpPool: zero errors after the server closed every idle connection", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 4 });
  // Four connections in use at once, then idle.
  const held: PooledConn[] = await Promise.all(
    Array.from({ length: 4 }, () => pool.borrow()),
  );
  await Promise.all(held.map((c, i) => c.request(payload(i))));
  for (const c of held) c.release();
  assert.equal(pool.stats.idle, 4);

  server.setMode({ closeIdleAfter: 30 }); // Redis `timeout`
  await server.waitFor((s) => s.stats.closedIdle === 4);
  await until(() => pool.stats.destroyed.evicted === 4, "4 evictions");
  assert.equal(pool.stats.open, 0);
  server.setMode("echo");

  const results = await Promise.allSettled(
    Array.from({ length: 8 }, (_, i) => pool.request(payload(100 + i))),
  );
  assert.deepEqual(results.map((r) => r.status), Array(8).fill("fulfilled"));
  assert.equal(pool.stats.retries, 0, "the idle watch caught them all");
  checkStats(pool);
});

Deno.test("TcpPool: zero errors when the server closes after every response", async () => {
  await using server = startFaultServer({ mode: { closeAfterResponse: true } });
  await using pool = new TcpPool({ port: server.port, max: 2 });
  for (let id = 1; id <= 50; id++) {
    const response = await pool.request(payload(id));
    assert.equal(idOf(response), id);
  }
  const s = pool.stats;
  console.log(
    `50 requests: ${s.dials} dials, ${s.destroyed.evicted} evicted while idle, ${s.stale} stale at borrow, ${s.retries} retried`,
  );
  assert.equal(s.dials, 50 + 0, "one connection per request");
  checkStats(pool);
});

Deno.test("TcpPool: a timed-out request's late response reaches nobody", async () => {
  await using server = startFaultServer({ mode: { delay: 150 } });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  await assert.rejects(
    pool.request(payload(1), { timeout: 30 }),
    TimeoutError,
  );
  server.setMode("echo");
  // The only connection was poisoned and destroyed; the next request gets a
  // new one and its own response, never response 1.
  for (let id = 2; id <= 4; id++) {
    assert.equal(idOf(await pool.request(payload(id))), id);
  }
  await server.waitFor((s) =>
    s.stats.delayed >= 1 || s.stats.closedByClient >= 1
  );
  assert.equal(pool.stats.dials, 2);
  assert.equal(pool.stats.destroyed.broken, 1);
});

Deno.test("PooledConn.request() rejects with the signal's reason and poisons the connection", async () => {
  await using server = startFaultServer({ mode: { delay: 100 } });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const controller = new AbortController();
  const reason = new Error("user gave up");
  const conn = await pool.borrow();
  const pending = conn.request(payload(1), { signal: controller.signal });
  await sleep(10);
  controller.abort(reason);
  await assert.rejects(pending, (e) => e === reason);
  assert.equal(conn.broken, true);
  const port = portOf(conn.localAddr);
  conn.release();
  server.setMode("echo");
  await using next = await pool.borrow();
  assert.notEqual(portOf(next.localAddr), port);
  assert.equal(idOf(await next.request(payload(2))), 2);
});

Deno.test("PooledConn.request() with an already aborted signal sends nothing and keeps the connection", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  await using conn = await pool.borrow();
  await assert.rejects(
    conn.request(payload(1), { signal: AbortSignal.abort(new Error("no")) }),
    /no/,
  );
  assert.equal(conn.broken, false);
  assert.equal(idOf(await conn.request(payload(2))), 2);
});

Deno.test("TcpPool: stray bytes on an idle connection destroy it", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 2 });
  let port: number;
  {
    await using conn = await pool.borrow();
    port = portOf(conn.localAddr);
    await conn.request(payload(1));
  }
  server.setMode({ strayBytesWhenIdleAfter: 20 });
  await server.waitFor((s) => s.stats.strayWrites >= 1);
  await until(() => pool.stats.destroyed.evicted === 1, "eviction");
  server.setMode("echo");
  await using conn = await pool.borrow();
  assert.notEqual(portOf(conn.localAddr), port);
  assert.equal(idOf(await conn.request(payload(2))), 2);
});

Deno.test("TcpPool: a connection released with unread bytes is dirty and destroyed", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 2 });
  const conn = await pool.borrow();
  const port = portOf(conn.localAddr);
  await conn.writeFrame(payload(1));
  await conn.writeFrame(payload(2));
  assert.equal(idOf((await conn.readFrame())!), 1);
  await until(() => conn.buffered > 0, "the second response buffered");
  conn.release();
  assert.equal(pool.stats.open, 0);
  await using next = await pool.borrow();
  assert.notEqual(portOf(next.localAddr), port);
  assert.equal(idOf(await next.request(payload(3))), 3);
});

Deno.test("TcpPool: a reset mid-frame costs one connection and one request", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 2 });
  const a = await pool.borrow();
  const b = await pool.borrow();
  await a.request(payload(1));
  await b.request(payload(2));
  server.setMode({ closeMidResponse: true });
  await assert.rejects(
    a.request(payload(3)),
    (e) =>
      e instanceof ConnectionBrokenError &&
      e.cause instanceof UnexpectedEofError,
  );
  server.setMode("echo");
  assert.equal(
    idOf(await b.request(payload(4))),
    4,
    "the other caller is untouched",
  );
  assert.equal(a.broken, true);
  a.release();
  b.release();
  assert.deepEqual([pool.stats.open, pool.stats.idle], [1, 1]);
  assert.equal(idOf(await pool.request(payload(5))), 5);
});

Deno.test("TcpPool: a huge length header costs one connection, with FrameTooLargeError", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({
    port: server.port,
    max: 2,
    frame: { maxFrameSize: 1 << 20 },
  });
  server.setMode({ garbage: true });
  await assert.rejects(pool.request(payload(1)), FrameTooLargeError);
  server.setMode("echo");
  assert.equal(pool.stats.open, 0);
  assert.equal(idOf(await pool.request(payload(2))), 2);
});

// -- Retries --

Deno.test("TcpPool.request() retries a stale reused connection once, on a fresh one", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 2 });
  await pool.request(payload(1)); // one idle, reused next
  server.setMode({ closeBeforeResponse: true });
  // Reused conn: EOF before any byte → retried on a fresh connection, which
  // the server also hangs up on: that error reaches the caller.
  await assert.rejects(
    pool.request(payload(2)),
    (e) => e instanceof ConnectionBrokenError && e.beforeResponse,
  );
  assert.equal(pool.stats.retries, 1);
  assert.equal(server.stats.connections, 2);
  // A fresh connection is not retried.
  await assert.rejects(pool.request(payload(3)), ConnectionBrokenError);
  assert.equal(pool.stats.retries, 1);
  // idempotent: false surfaces the first failure.
  server.setMode("echo");
  await pool.request(payload(4));
  server.setMode({ closeBeforeResponse: true });
  await assert.rejects(
    pool.request(payload(5), { idempotent: false }),
    ConnectionBrokenError,
  );
  assert.equal(pool.stats.retries, 1);
});

Deno.test("TcpPool.request() timeout bounds the whole call, borrow included", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  await using _holder = await pool.borrow();
  await assert.rejects(
    pool.request(payload(1), { timeout: 30 }),
    (e) =>
      e instanceof TimeoutError && e.cause instanceof PoolTimeoutError &&
      /timed out after 30 ms/.test(e.message),
  );
});

// -- Server down --

/**
 * A pool of `max` that served one request, then its server went down and
 * the idle connection was evicted. Disposing closes both.
 */
async function outage(max: number) {
  const server = startFaultServer();
  const pool = new TcpPool({ port: server.port, max, connectTimeout: 1_000 });
  assert.equal(idOf(await pool.request(payload(0))), 0);
  await server.stop({ closeConnections: true });
  await until(() => pool.stats.open === 0, "the idle connection evicted");
  return {
    server,
    pool,
    async [Symbol.asyncDispose]() {
      await pool.close();
      await server[Symbol.asyncDispose]();
    },
  };
}

Deno.test("TcpPool: server down gives DialError within connectTimeout; the pool serves again when it is back", async () => {
  await using down = await outage(2);
  const { server, pool } = down;
  const start = performance.now();
  await assert.rejects(pool.request(payload(2)), DialError);
  assert.ok(performance.now() - start < 1_000);
  server.restart();
  assert.equal(idOf(await pool.request(payload(3))), 3);
  checkStats(pool);
});

// -- TLS --

Deno.test("TcpPool with tls verifies the certificate", async () => {
  const { cert, key } = await selfSignedCert();
  await using server = tlsEcho(cert, key);
  {
    await using pool = new TcpPool({
      hostname: "127.0.0.1",
      port: server.port,
      tls: { caCerts: [cert] },
    });
    for (let id = 1; id <= 3; id++) {
      assert.equal(idOf(await pool.request(payload(id))), id);
    }
    assert.equal(pool.stats.dials, 1);
  }
  {
    // Without the CA, verification fails: certificates are checked.
    await using pool = new TcpPool({ port: server.port, tls: true });
    await assert.rejects(
      pool.request(payload(9)),
      (e) => e instanceof DialError && /certificate/.test(e.message),
    );
  }
});

// -- Reuse safety: release with I/O in flight --

const enc = (s: string) => new TextEncoder().encode(s);

/** A line server replying `<token>` to `<token> <delay ms>`, after the delay. */
function tokenServer() {
  return startLineServer(({ line }) => {
    const [token = "", delay = "0"] = line.split(" ");
    return { reply: token, delay: Number(delay) };
  });
}

Deno.test("TcpPool: release with a read in flight destroys the connection (Promise.race + await using); the next borrower gets its own reply", async () => {
  await using server = tokenServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  let abandoned: Promise<string | null> | undefined;
  try {
    await using conn = await pool.borrow();
    await conn.write(enc("first 100\n"));
    abandoned = conn.readLine();
    // The caller's own timeout, the obvious way; `await using` then releases.
    await Promise.race([
      abandoned,
      sleep(20).then(() => {
        throw new Error("my timeout");
      }),
    ]);
  } catch (error) {
    assert.equal((error as Error).message, "my timeout");
  }
  // The abandoned read rejects (the connection was closed), typed.
  await assert.rejects(abandoned!, ConnectionBrokenError);
  assert.equal(pool.stats.destroyed.dirty, 1);
  {
    await using conn = await pool.borrow();
    await conn.write(enc("second 0\n"));
    assert.equal(await conn.readLine({ timeout: 1_000 }), "second");
  }
  await sleep(120); // "first" is answered now, on a closed connection
  {
    await using conn = await pool.borrow();
    await conn.write(enc("third 0\n"));
    assert.equal(await conn.readLine({ timeout: 1_000 }), "third");
  }
});

Deno.test("TcpPool: release with a reply unread destroys the connection: c2 never reads c1's reply", async () => {
  await using server = tokenServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const c1 = await pool.borrow();
  await c1.write(enc("first\n"));
  c1.release();
  assert.equal(pool.stats.destroyed.dirty, 1);
  await using c2 = await pool.borrow();
  await c2.write(enc("second\n"));
  assert.equal(await c2.readLine({ timeout: 1_000 }), "second");
});

Deno.test("TcpPool: release with a write in flight destroys the connection", async () => {
  await using server = startSilentServer(); // reads, never answers
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const conn = await pool.borrow();
  // Larger than any loopback socket buffer: the write stays in flight.
  const pending = conn.write(new Uint8Array(64 << 20));
  await sleep(10);
  conn.release();
  await assert.rejects(pending, ConnectionBrokenError);
  assert.equal(pool.stats.destroyed.dirty, 1);
  assert.equal(pool.stats.open, 0);
});

Deno.test("PooledConn: write({ expectReply: false }) leaves the connection reusable; a plain write does not", async () => {
  await using server = tokenServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  let port: number;
  {
    await using conn = await pool.borrow();
    port = portOf(conn.localAddr);
    await conn.write(enc(""), { expectReply: false });
  }
  {
    await using conn = await pool.borrow();
    assert.equal(portOf(conn.localAddr), port, "pooled, not destroyed");
    await conn.write(enc("a\n"));
    assert.equal(await conn.readLine(), "a");
  }
  {
    await using conn = await pool.borrow();
    assert.equal(portOf(conn.localAddr), port, "answered: clean again");
  }
  assert.equal(pool.stats.destroyed.dirty, 0);
});

Deno.test("TcpPool: 8 callers with their own Promise.race timeouts never get another caller's token", async () => {
  await using server = tokenServer();
  await using pool = new TcpPool({ port: server.port, max: 2 });
  const seed = 0x9e37;
  console.log(`race seed: ${seed}`);
  const random = mulberry32(seed);
  let mismatches = 0;
  let ok = 0;
  const abandoned: Promise<unknown>[] = [];
  const task = async (t: number) => {
    for (let i = 0; i < 15; i++) {
      const token = `t${t}-${i}`;
      const delay = Math.floor(random() * 40);
      await using conn = await pool.borrow();
      await conn.write(enc(`${token} ${delay}\n`));
      const read = conn.readLine();
      abandoned.push(read.catch(() => {}));
      const line = await Promise.race([read, sleep(20).then(() => null)]);
      if (line === null) continue; // gave up; `await using` releases
      if (line === token) ok++;
      else mismatches++;
    }
  };
  await Promise.all(Array.from({ length: 8 }, (_, t) => task(t)));
  await Promise.all(abandoned);
  assert.equal(mismatches, 0);
  assert.ok(ok > 0);
  assert.ok(pool.stats.destroyed.dirty > 0, "some were released mid-read");
});

// -- Options on every I/O call --

Deno.test("PooledConn: every I/O call takes { timeout }, rejects with TimeoutError and poisons the connection", async () => {
  await using server = startSilentServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const reads: [string, (c: PooledConn) => Promise<unknown>][] = [
    ["read", (c) => c.read(new Uint8Array(8), { timeout: 20 })],
    ["read line", (c) => c.readLine({ timeout: 20 })],
    ["read exact", (c) => c.readExact(4, { timeout: 20 })],
    ["read frame", (c) => c.readFrame({ timeout: 20 })],
    ["write", (c) => c.write(new Uint8Array(64 << 20), { timeout: 20 })],
    [
      "write frame",
      (c) => c.writeFrame(new Uint8Array(3 << 20), { timeout: 20 }),
    ],
  ];
  for (const [what, call] of reads) {
    await using conn = await pool.borrow();
    await assert.rejects(
      what === "write frame"
        ? (async () => {
          // Fill the socket buffers first so the frame's write stalls.
          conn.write(new Uint8Array(64 << 20)).catch(() => {});
          await sleep(5);
          // The first write is in flight: a second one is refused.
          await assert.rejects(call(conn), TypeError);
          throw new TimeoutError("stand-in", 20);
        })()
        : call(conn),
      (e) =>
        e instanceof TimeoutError &&
        (what === "write frame" || e.message ===
            `Cannot ${what}: timed out after 20 ms`),
      what,
    );
    if (what !== "write frame") assert.equal(conn.broken, true, what);
  }
  await using big = new TcpPool({
    port: server.port,
    max: 1,
    frame: { maxFrameSize: 64 << 20 },
  });
  await using conn = await big.borrow();
  await assert.rejects(
    conn.writeFrame(new Uint8Array(64 << 20), { timeout: 20 }),
    /Cannot write frame: timed out after 20 ms/,
  );
  assert.equal(conn.broken, true);
});

Deno.test("PooledConn: every I/O call takes { signal }; abort rejects with the reason and poisons, an aborted signal sends nothing", async () => {
  await using server = tokenServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const reason = new Error("caller gave up");
  const calls: [string, (c: PooledConn, s: AbortSignal) => Promise<unknown>][] =
    [
      ["read", (c, signal) => c.read(new Uint8Array(8), { signal })],
      ["readLine", (c, signal) => c.readLine({ signal })],
      ["readExact", (c, signal) => c.readExact(4, { signal })],
      ["readFrame", (c, signal) => c.readFrame({ signal })],
    ];
  for (const [what, call] of calls) {
    await using conn = await pool.borrow();
    // Already aborted: rejects at once, nothing happens to the connection.
    await assert.rejects(
      call(conn, AbortSignal.abort(reason)),
      (e) => e === reason,
    );
    assert.equal(conn.broken, false, what);
    const controller = new AbortController();
    const pending = call(conn, controller.signal);
    await sleep(5);
    controller.abort(reason);
    await assert.rejects(pending, (e) => e === reason, what);
    assert.equal(conn.broken, true, what);
  }
  await using conn = await pool.borrow();
  await assert.rejects(
    conn.write(enc("x\n"), { signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
  await assert.rejects(
    conn.writeFrame(enc("x"), { signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
  assert.equal(conn.broken, false);
  assert.equal(conn.buffered, 0);
});

Deno.test("PooledConn: bad arguments throw before any I/O and leave a healthy connection alone", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({
    port: server.port,
    max: 1,
    frame: { maxFrameSize: 16 },
  });
  await using conn = await pool.borrow();
  const port = portOf(conn.localAddr);
  await assert.rejects(
    conn.writeFrame(new Uint8Array(17)),
    /RangeError: Cannot write frame: payload length 17 exceeds maxFrameSize 16/,
  );
  await assert.rejects(
    conn.request(new Uint8Array(17)),
    (e) => e instanceof RangeError && /maxFrameSize 16/.test(e.message),
  );
  await assert.rejects(
    conn.readExact(-1),
    /RangeError: Cannot read exact: n must be a non-negative integer, received -1/,
  );
  await assert.rejects(
    conn.request("str" as never),
    /TypeError: Cannot request: payload must be a Uint8Array, received "str"/,
  );
  await assert.rejects(conn.read("x" as never), TypeError);
  await assert.rejects(
    conn.readLine({ timeout: -1 }),
    /RangeError: Cannot read line: timeout must be a non-negative number of milliseconds, received -1/,
  );
  await assert.rejects(
    conn.readLine({ signal: "x" as never }),
    /TypeError: Cannot read line: signal must be an AbortSignal/,
  );
  await assert.rejects(
    pool.request(new Uint8Array(17)),
    (e) => e instanceof RangeError,
  );
  await assert.rejects(
    pool.exchange(enc("x"), "no" as never),
    /read must be a function/,
  );
  assert.equal(conn.broken, false);
  assert.equal(idOf(await conn.request(payload(7))), 7);
  conn.release();
  await using again = await pool.borrow();
  assert.equal(portOf(again.localAddr), port);
  assert.equal(pool.stats.destroyed.broken, 0);
  assert.equal(pool.stats.destroyed.dirty, 0);
});

// -- Unsolicited frames --

/**
 * 3 000 sequential requests to a server that follows 2 % of its replies
 * with a copy 2 ms later; counts replies to the wrong request.
 */
async function unsolicitedRun(verify: boolean) {
  const seed = verify ? 0xd0b1e : 0xd0b1f;
  await using server = startFaultServer({
    mode: { random: { seed, pDuplicate: 0.02, duplicateMs: 2 } },
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  let ok = 0;
  let wrong = 0;
  let rejected = 0;
  for (let id = 1; id <= 3_000; id++) {
    try {
      const reply = await pool.request(payload(id), {
        timeout: 1_000,
        ...(verify
          ? {
            verify: (req: Uint8Array, rep: Uint8Array) =>
              idOf(rep) === idOf(req),
          }
          : {}),
      });
      if (idOf(reply) === id) ok++;
      else wrong++;
    } catch (error) {
      assert.ok(error instanceof ProtocolError, String(error));
      rejected++;
    }
  }
  const duplicates = server.stats.duplicateWrites;
  console.log(
    `unsolicited seed ${seed}, ${
      verify ? "with" : "without"
    } verify: ${ok} ok, ${wrong} replies to another request, ${rejected} ProtocolError; ${duplicates} unsolicited frames, ${pool.stats.dials} dials`,
  );
  return { ok, wrong, rejected, duplicates };
}

Deno.test("TcpPool.request({ verify }): a server sending unsolicited frames never gets a reply to the wrong caller", async () => {
  const { ok, wrong, rejected, duplicates } = await unsolicitedRun(true);
  assert.equal(wrong, 0);
  assert.ok(duplicates >= 10, `${duplicates} unsolicited frames`);
  assert.ok(rejected <= duplicates, "at most one failed call per frame");
  assert.equal(ok + rejected, 3_000);
});

Deno.test("TcpPool.request() without verify: unsolicited frames found buffered are a ProtocolError; the rest is reported", async () => {
  const { ok, wrong, rejected } = await unsolicitedRun(false);
  // No pool can tell a copy that arrives on its own from a reply: this is
  // what `verify` is for. Reported, not asserted.
  assert.equal(ok + wrong + rejected, 3_000);
});

/** A server answering every frame with two copies of the reply, in one write. */
function doublingServer(): Served {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  return acceptAll(listener, conns, async (conn) => {
    const buf = new Uint8Array(1024);
    try {
      let n;
      while ((n = await conn.read(buf)) !== null) {
        const frame = encodeFrame(buf.slice(4, n));
        const two = new Uint8Array(frame.length * 2);
        two.set(frame);
        two.set(frame, frame.length);
        await conn.write(two);
      }
    } catch { /* closed */ }
    if (conns.delete(conn)) conn.close();
  });
}

Deno.test("TcpPool: bytes buffered after the reply fail the call with ProtocolError (or, verified, keep the reply) and destroy the connection", async () => {
  await using server = doublingServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  await assert.rejects(
    pool.request(payload(1)),
    (e) =>
      e instanceof ProtocolError && /more bytes arrived after the reply/.test(
        e.message,
      ),
  );
  assert.equal(pool.stats.open, 0);
  const reply = await pool.request(payload(2), {
    verify: (req, rep) => idOf(req) === idOf(rep),
  });
  assert.equal(idOf(reply), 2);
  assert.equal(pool.stats.open, 0, "verified, but still destroyed");
  assert.equal(pool.stats.dials, 2);
  // The same through exchange with a verify that says no.
  await assert.rejects(
    pool.exchange(payload(3), (r) => r.readFrame(), { verify: () => false }),
    (e) =>
      e instanceof ProtocolError && /verify returned false/.test(e.message),
  );
  assert.equal(pool.stats.retries, 0, "a delivered request is not retried");
});

Deno.test("PooledConn.exchange(): bytes buffered before the request are a ProtocolError; release with bytes buffered is dirty", async () => {
  await using server = startLineServer(({ line }) => ({ reply: `${line}\nb` }));
  await using pool = new TcpPool({ port: server.port, max: 1 });
  {
    await using conn = await pool.borrow();
    await conn.write(enc("a\n"));
    assert.equal(await conn.readLine(), "a");
    await until(() => conn.buffered > 0 || server.open === 0, "b");
    // "b\n" is buffered: a reply nobody asked for.
    await assert.rejects(
      conn.exchange(enc("c\n"), (r) => r.readLine()),
      /ProtocolError: Cannot exchange: \d+ unread bytes were buffered before the request/,
    );
    assert.equal(conn.broken, true);
  }
  {
    await using conn = await pool.borrow();
    await conn.write(enc("d\n"));
    assert.equal(await conn.readLine(), "d");
  }
  assert.equal(pool.stats.destroyed.broken, 1);
  assert.equal(pool.stats.destroyed.dirty, 1);
});

// -- exchange: any protocol --

Deno.test("TcpPool.exchange(): a line protocol gets request()'s guarantees: EOF is ConnectionBrokenError, a stale reused connection is retried once", async () => {
  // Each connection answers its first line, then closes on the second
  // without a reply (the server's idle timeout hit just as it arrived).
  await using server = startLineServer(({ line, nth }) =>
    nth === 1 && line !== "die" ? { reply: line } : { close: true }
  );
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const readLine = (r: import("../framing.ts").FrameReader) => r.readLine();
  assert.equal(await pool.exchange(enc("one\n"), readLine), "one");
  // Reused, closed before the reply: retried on a fresh connection.
  assert.equal(await pool.exchange(enc("two\n"), readLine), "two");
  assert.equal(pool.stats.retries, 1);
  assert.equal(pool.stats.dials, 2);
  // Not idempotent: no retry; the EOF is typed, not a null line.
  await assert.rejects(
    pool.exchange(enc("three\n"), readLine, { idempotent: false }),
    (e) =>
      e instanceof ConnectionBrokenError && e.beforeResponse === true &&
      /the server closed the connection/.test(e.message),
  );
  // A fresh connection that fails is never retried.
  await assert.rejects(
    pool.exchange(enc("die\n"), (r) => r.readExact(3), { timeout: 1_000 }),
    (e) => e instanceof ConnectionBrokenError,
  );
  assert.equal(pool.stats.retries, 1);
});

Deno.test("PooledConn.destroy() during a read rejects it with ConnectionBrokenError, not Interrupted", async () => {
  await using server = startSilentServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const conn = await pool.borrow();
  const pending = conn.readLine();
  await sleep(5);
  const why = new Error("shutting down");
  conn.destroy(why);
  await assert.rejects(
    pending,
    (e) => e instanceof ConnectionBrokenError && e.cause === why,
  );
});

Deno.test("TcpPool.close({ force: true }) with a request in flight rejects it with PoolClosedError", async () => {
  await using server = startSilentServer();
  const pool = new TcpPool({ port: server.port, max: 2 });
  const exchange = pool.exchange(enc("hi\n"), (r) => r.readLine());
  const request = pool.request(payload(1));
  await until(() => pool.stats.inUse === 2, "both in flight");
  await pool.close({ force: true });
  await assert.rejects(exchange, PoolClosedError);
  await assert.rejects(request, PoolClosedError);
  await server.drained(1_000);
});

// -- Timeouts bound the whole call --

Deno.test("TcpPool.request({ timeout }): the wait for a connection counts", async () => {
  await using server = startFaultServer({ mode: { delay: 300 } });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const holder = await pool.borrow();
  setTimeout(() => holder.release(), 250);
  const start = performance.now();
  await assert.rejects(
    pool.request(payload(1), { timeout: 400 }),
    (e) => e instanceof TimeoutError && e.timeout === 400,
  );
  const took = performance.now() - start;
  // 400 ms bounds it: 250 waiting + 150 of the 300 ms reply (was 650).
  assert.ok(took < 550, `took ${Math.round(took)} ms`);
});

function tlsEcho(cert: string, key: string): Served {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert,
    key,
  });
  const conns = new Set<Deno.Conn>();
  return acceptAll(listener, conns, async (conn) => {
    try {
      const buf = new Uint8Array(4096);
      let n;
      while ((n = await conn.read(buf)) !== null) {
        await conn.write(buf.subarray(0, n));
      }
    } catch { /* closed */ }
    if (conns.delete(conn)) conn.close();
  });
}

Deno.test("TcpPool.request({ timeout }) over TLS: a retry whose fresh dial hangs in the handshake still ends at the timeout", async () => {
  const { cert, key } = await selfSignedCert();
  await using backend = await tlsEcho(cert, key);
  await using relay = startRelay(backend.port);
  await using pool = new TcpPool({
    port: relay.port,
    max: 2,
    connectTimeout: 3_000,
    tls: { caCerts: [cert] },
  });
  assert.equal(idOf(await pool.request(payload(1))), 1);
  relay.cutNext = true; // the reused connection dies under the request
  relay.mode = "silent"; // and the fresh dial never gets a handshake
  const start = performance.now();
  await assert.rejects(
    pool.request(payload(2), { timeout: 300 }),
    (e) => e instanceof TimeoutError && /after 300 ms/.test(e.message),
  );
  const took = performance.now() - start;
  assert.ok(took < 1_000, `took ${Math.round(took)} ms (was 3 004)`);
  assert.equal(pool.stats.retries, 1);
});

Deno.test("TcpPool.request({ timeout }) to a TLS server that never handshakes ends at the timeout", async () => {
  await using server = startSilentServer();
  await using pool = new TcpPool({ port: server.port, tls: true });
  const start = performance.now();
  await assert.rejects(
    pool.request(payload(1), { timeout: 200 }),
    (e) => e instanceof TimeoutError && e.cause instanceof PoolTimeoutError,
  );
  assert.ok(performance.now() - start < 1_000);
  await pool.close();
  await server.drained(2_000);
});

// -- TLS dials leave no socket open --

Deno.test("TcpPool over TLS: 50 borrows from a server that never handshakes give 50 DialErrors and leave no socket open", async () => {
  await using server = startSilentServer();
  const pool = new TcpPool({
    port: server.port,
    max: 4,
    tls: true,
    connectTimeout: 100,
  });
  let dialErrors = 0;
  await Promise.all(Array.from({ length: 5 }, async () => {
    for (let i = 0; i < 10; i++) {
      await assert.rejects(pool.borrow(), (e) => {
        assert.ok(e instanceof DialError, String(e));
        assert.match(
          e.message,
          new RegExp(`Cannot dial 127\\.0\\.0\\.1:${server.port}`),
        );
        dialErrors++;
        return true;
      });
    }
  }));
  assert.equal(dialErrors, 50);
  assert.equal(pool.stats.open, 0);
  await server.drained(2_000); // every socket we opened is closed
  await pool.close({ force: true });
  console.log(`${server.accepted} TLS dials reached the server`);
});

// -- Dial errors and outages --

Deno.test("TcpPool: DialError names host:port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await using pool = new TcpPool({ port });
  await assert.rejects(
    pool.request(payload(1)),
    (e) =>
      e instanceof DialError &&
      e.message.startsWith(`Cannot dial 127.0.0.1:${port}: `),
  );
});

// -- Heartbeat and leaks --

Deno.test("TcpPool heartbeat: pings idle connections; a failed ping destroys one", async () => {
  await using server = startLineServer(({ line }) => ({
    reply: line === "PING" ? "PONG" : line,
  }));
  let pings = 0;
  let fail = false;
  await using pool = new TcpPool({
    port: server.port,
    max: 1,
    heartbeat: {
      interval: 30,
      ping: async (conn, signal) => {
        pings++;
        if (fail) return false;
        return await conn.exchange(enc("PING\n"), (r) => r.readLine(), {
          signal,
        }) === "PONG";
      },
    },
  });
  let port: number;
  {
    await using conn = await pool.borrow();
    port = portOf(conn.localAddr);
  }
  await until(() => pings >= 2, "two pings");
  {
    await using conn = await pool.borrow();
    assert.equal(portOf(conn.localAddr), port, "still the same connection");
  }
  fail = true;
  await until(() => pool.stats.destroyed.heartbeat >= 1, "a failed ping");
  assert.equal(pool.stats.open, 0);
});

Deno.test("TcpPool onLeak: reports a connection held past leakTimeout, with its addresses", async () => {
  await using server = startLineServer();
  const reports: import("../tcp.ts").TcpConnInfo[] = [];
  await using pool = new TcpPool({
    port: server.port,
    leakTimeout: 20,
    onLeak: (report) => reports.push(report.resource),
  });
  const conn = await pool.borrow();
  await until(() => reports.length === 1, "a leak report");
  assert.equal(portOf(reports[0]!.localAddr), portOf(conn.localAddr));
  assert.equal(portOf(reports[0]!.remoteAddr), server.port);
  conn.release();
});

// -- A stalled event loop --

Deno.test("TcpPool: connections the server closed while the event loop was stalled: idempotent requests succeed, others fail typed before the request counts", async () => {
  await using server = startFaultServer({ mode: { closeIdleAfter: 20 } });
  await using pool = new TcpPool({ port: server.port, max: 2 });
  await Promise.all([pool.request(payload(1)), pool.request(payload(2))]);
  // CPU-bound work: nothing else runs while the server closes both, so
  // their close is not seen until a write or read on them.
  const stall = performance.now() + 150;
  while (performance.now() < stall) { /* busy */ }
  const [retried, once] = await Promise.allSettled([
    pool.request(payload(3)),
    pool.request(payload(4), { idempotent: false }),
  ]);
  assert.equal(retried.status, "fulfilled");
  assert.equal(idOf(retried.value), 3);
  if (once.status === "fulfilled") assert.equal(idOf(once.value), 4);
  else {
    // Not retried, since it may have been delivered; but it was not: the
    // error says so, and the caller may resend.
    assert.ok(once.reason instanceof ConnectionBrokenError);
    assert.equal(once.reason.beforeResponse, true);
  }
  assert.ok(pool.stats.retries >= 1);
});

// -- Options --

Deno.test("new TcpPool() rejects bad options naming the option and value", () => {
  const cases: [unknown, typeof TypeError, RegExp][] = [
    [undefined, TypeError, /options must be an object/],
    [{}, TypeError, /port must be a number, received undefined/],
    [
      { port: 70_000 },
      RangeError,
      /port must be an integer from 1 to 65535, received 70000/,
    ],
    [
      { port: 1, hostname: 5 },
      TypeError,
      /hostname must be a non-empty string, received 5/,
    ],
    [
      { port: 1, readBufferSize: 0 },
      RangeError,
      /readBufferSize must be a positive integer, received 0/,
    ],
    [
      { port: 1, tls: "yes" },
      TypeError,
      /tls must be a boolean or TLS options, received "yes"/,
    ],
    [{ port: 1, max: 0 }, RangeError, /max must be an integer ≥ 1.*received 0/],
    [{ port: 1, frame: { headerSize: 3 } }, RangeError, /headerSize/],
    [
      { port: 1, frame: { maxFrameSize: 0 } },
      RangeError,
      /maxFrameSize must be a positive integer, received 0/,
    ],
    [
      { port: 1, frame: { maxFrameSize: -1 } },
      RangeError,
      /maxFrameSize must be a positive integer, received -1/,
    ],
    [{ port: 1, onLeak: 5 }, TypeError, /onLeak must be a function/],
    [
      { port: 1, heartbeat: { interval: 10 } },
      TypeError,
      /heartbeat.ping must be a function, received undefined/,
    ],
    [
      { port: 1, heartbeat: { interval: -1, ping: () => true } },
      RangeError,
      /heartbeat.interval/,
    ],
  ];
  for (const [options, type, message] of cases) {
    assert.throws(
      () => new TcpPool(options as never),
      (e: unknown) => e instanceof type && message.test((e as Error).message),
      JSON.stringify(options),
    );
  }
});

// -- Soak --

const SOAK_SEED = 0x50a4_2026;

Deno.test("TcpPool soak: 20 000 requests from 64 tasks through 8 connections with seeded faults; verified replies never reach the wrong caller", async () => {
  const random = mulberry32(SOAK_SEED);
  await using server = startFaultServer({
    mode: {
      random: {
        seed: SOAK_SEED,
        pClose: 0.004,
        pCloseAfter: 0.004,
        pCloseMid: 0.004,
        pDelay: 0.002,
        delayMs: 300,
        pStray: 0.004,
        pGarbage: 0.002,
        pDuplicate: 0.01,
        duplicateMs: 2,
      },
    },
  });
  const pool = new TcpPool({
    port: server.port,
    max: 8,
    frame: { maxFrameSize: 1 << 16 },
  });
  // Beside it, TLS dials to a server that never handshakes.
  await using silent = startSilentServer();
  const tls = new TcpPool({
    port: silent.port,
    max: 2,
    tls: true,
    connectTimeout: 30,
  });
  const outcomes = new Map<string, number>();
  const note = (what: string) =>
    outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
  const typed = (error: unknown): string => {
    if (error instanceof ConnectionBrokenError) return "broken";
    if (error instanceof UnexpectedEofError) return "eof mid-frame";
    if (error instanceof FrameTooLargeError) return "too large";
    if (error instanceof TimeoutError) return "timeout";
    if (error instanceof ProtocolError) return "protocol";
    throw error;
  };
  const verify = (req: Uint8Array, rep: Uint8Array) => idOf(rep) === idOf(req);
  let wrongVerified = 0;
  const abandoned: Promise<void>[] = [];
  let next = 0;
  const total = 20_000;
  const task = async () => {
    while (next < total) {
      const id = next++;
      const body = new Uint8Array(Math.floor(random() * 256)).fill(id & 0xff);
      const request = payload(id, body);
      const kind = random();
      try {
        if (kind < 0.7) {
          const reply = await pool.request(request, { timeout: 100, verify });
          if (idOf(reply) !== id) wrongVerified++;
          assert.deepEqual(reply.subarray(4), body);
          note("ok verified");
        } else if (kind < 0.8) {
          // The framing done by hand: exchange writes bytes as they are.
          const reply = await pool.exchange(
            encodeFrame(request),
            (r) => r.readFrame(),
            { timeout: 100 },
          );
          note(
            reply !== null && idOf(reply) === id
              ? "exchange ok"
              : "exchange, another reply",
          );
        } else if (kind < 0.9) {
          const reply = await pool.request(request, { timeout: 100 });
          note(
            idOf(reply) === id ? "ok unverified" : "unverified, another reply",
          );
        } else {
          // The caller's own timeout: release with the read pending.
          await using conn = await pool.borrow({ timeout: 100 });
          await conn.writeFrame(request, { timeout: 100 });
          const read = conn.readFrame();
          abandoned.push(read.then(() => {}, (e) => void typed(e)));
          const reply = await Promise.race([read, sleep(1).then(() => 0)]);
          if (reply === 0) note("released mid-read");
          else if (reply instanceof Uint8Array && idOf(reply) === id) {
            note("manual ok");
          } else note("manual, another reply");
        }
      } catch (error) {
        note(typed(error));
      }
    }
  };
  let tlsErrors = 0;
  const tlsTask = async () => {
    while (next < total) {
      await assert.rejects(tls.borrow(), DialError);
      tlsErrors++;
      await sleep(5);
    }
  };
  await Promise.all([...Array.from({ length: 64 }, task), tlsTask()]);
  await Promise.all(abandoned);
  const { dials, retries, destroyed } = pool.stats;
  console.log(
    `tcp soak seed ${SOAK_SEED}: ${
      [...outcomes].map(([what, n]) => `${what} ${n}`).join(", ")
    }; ${dials} dials, ${retries} retries, destroyed broken ${destroyed.broken}, dirty ${destroyed.dirty}; TLS: ${tlsErrors} DialErrors, ${silent.accepted} dials`,
  );
  assert.equal(wrongVerified, 0, "a verified reply for another request");
  assert.ok((outcomes.get("ok verified") ?? 0) >= total * 0.6);
  const s = pool.stats;
  assert.equal(s.inUse, 0);
  assert.equal(s.waiting, 0);
  checkStats(pool);
  await pool.close();
  await tls.close();
  await server.waitFor((x) => x.stats.open === 0);
  await silent.drained(2_000);
});

// -- Without the idle watch --

Deno.test("TcpPool({ idleWatch: false }): a connection the server closed while idle is found out on use and retried", async () => {
  await using server = startFaultServer({ mode: { closeIdleAfter: 20 } });
  await using pool = new TcpPool({
    port: server.port,
    max: 1,
    idleWatch: false,
  });
  assert.equal(idOf(await pool.request(payload(1))), 1);
  await server.waitFor((s) => s.stats.closedIdle >= 1);
  await sleep(20);
  assert.equal(pool.stats.open, 1, "not evicted: nothing watched it");
  assert.equal(idOf(await pool.request(payload(2))), 2);
  assert.equal(pool.stats.retries + pool.stats.stale, 1);
  assert.throws(
    () => new TcpPool({ port: 1, idleWatch: "no" as never }),
    /idleWatch must be a boolean, received "no"/,
  );
});

// -- Streams and half-close --

Deno.test("PooledConn.readable yields buffered bytes first, then the socket's; writable and closeWrite half-close", async () => {
  await using server = startLineServer(({ line }) => ({
    reply: `${line}\nrest`,
  }));
  await using pool = new TcpPool({ port: server.port, max: 1 });
  {
    await using conn = await pool.borrow();
    await conn.write(enc("a\n"));
    assert.equal(await conn.readLine(), "a"); // "rest\n" may be buffered now
    const writer = conn.writable.getWriter();
    await writer.write(enc("b\n"));
    await writer.close(); // closeWrite: the server reads EOF and hangs up
    const text = await new Response(conn.readable).text();
    assert.equal(text, "rest\nb\nrest\n");
  }
  // Half-closed: not reusable, destroyed on release.
  assert.equal(pool.stats.open, 0);
});

Deno.test("PooledConn.readable: cancelling a pending read loses nothing, and release destroys the connection", async () => {
  await using server = startSilentServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  {
    await using conn = await pool.borrow();
    const reader = conn.readable.getReader();
    const pending = reader.read();
    await sleep(5);
    await reader.cancel();
    assert.deepEqual(await pending, { done: true, value: undefined });
    assert.equal(conn.broken, true, "not reusable");
  }
  assert.equal(pool.stats.destroyed.broken, 1);
  assert.equal(pool.stats.open, 0);
  await server.drained(1_000);
});

Deno.test("TcpPool pipeline: calls written on connections cut together are sent again once, each on a freshly dialed connection, and succeed", async () => {
  // A line server that, on cue, closes every connection it holds at once
  // (as CLIENT KILL or a restart does), with requests read and unanswered.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held = new Set<Deno.Conn>();
  let cut = false;
  let accepted = 0;
  let closed = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      held.add(conn);
      (async () => {
        const buf = new Uint8Array(4096);
        try {
          while (true) {
            const n = await conn.read(buf);
            if (n === null) break;
            if (cut) continue; // read, never answered
            const lines = new TextDecoder().decode(buf.subarray(0, n));
            await conn.write(enc(lines.toUpperCase()));
          }
        } catch {
          // closed below
        } finally {
          held.delete(conn);
          try {
            conn.close();
          } catch {
            // closed already
          }
          closed++;
        }
      })();
    }
  })();
  await using pool = new TcpPool({
    port: portOf(listener.addr),
    max: 4,
    pipeline: { match: "fifo", maxInFlight: 16 },
  });
  const line = (s: string) =>
    pool.exchange(enc(`${s}\n`), (r) => r.readLine(), { timeout: 2_000 });
  // Four connections in use, then every one of them cut mid-flight.
  await Promise.all(Array.from({ length: 64 }, (_, i) => line(`w${i}`)));
  const before = accepted;
  assert.ok(before >= 2, `${before} connections`);
  cut = true;
  const calls = Array.from({ length: 64 }, (_, i) => line(`c${i}`));
  await sleep(20);
  cut = false;
  for (const conn of [...held]) conn.close();
  const replies = await Promise.all(calls);
  assert.deepEqual(replies, Array.from({ length: 64 }, (_, i) => `C${i}`));
  const s = pool.stats.pipeline!;
  assert.ok(s.resent >= 1, `${s.resent} sent again`);
  await pool.close();
  listener.close();
  await serving.catch(() => {});
  await until(() => closed === accepted, "every accepted socket closed");
});
