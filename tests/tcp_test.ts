// Copyright 2026 the chanpool authors. MIT license.
// TcpPool against a fault-injection server on 127.0.0.1: dead idle
// connections, servers that hang up after each response, late responses,
// stray bytes, resets mid-frame, a server that goes away and comes back, TLS.

import assert from "node:assert/strict";
import { FrameTooLargeError, UnexpectedEofError } from "../framing.ts";
import { DialError, PoolTimeoutError } from "../pool.ts";
import { ConnectionBrokenError, type PooledConn, TcpPool } from "../tcp.ts";
import { startFaultServer } from "./_fault_server.ts";
import { mulberry32 } from "./_random.ts";

// -- Helpers --

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
    ports.add(conn.localAddr.port);
    assert.equal(conn.reused, id > 1);
    assert.equal(conn.remoteAddr.port, server.port);
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
    (e) => e instanceof DOMException && e.name === "TimeoutError",
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
  assert.equal(pool.stats.destroyed.destroyed, 1);
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
  const port = conn.localAddr.port;
  conn.release();
  server.setMode("echo");
  await using next = await pool.borrow();
  assert.notEqual(next.localAddr.port, port);
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
    port = conn.localAddr.port;
    await conn.request(payload(1));
  }
  server.setMode({ strayBytesWhenIdleAfter: 20 });
  await server.waitFor((s) => s.stats.strayWrites >= 1);
  await until(() => pool.stats.destroyed.evicted === 1, "eviction");
  server.setMode("echo");
  await using conn = await pool.borrow();
  assert.notEqual(conn.localAddr.port, port);
  assert.equal(idOf(await conn.request(payload(2))), 2);
});

Deno.test("TcpPool: a connection released with unread bytes is dirty and destroyed", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 2 });
  const conn = await pool.borrow();
  const port = conn.localAddr.port;
  await conn.writeFrame(payload(1));
  await conn.writeFrame(payload(2));
  assert.equal(idOf((await conn.readFrame())!), 1);
  await until(() => conn.buffered > 0, "the second response buffered");
  conn.release();
  assert.equal(pool.stats.open, 0);
  await using next = await pool.borrow();
  assert.notEqual(next.localAddr.port, port);
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
  await assert.rejects(a.request(payload(3)), UnexpectedEofError);
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
  // retry: false surfaces the first failure.
  server.setMode("echo");
  await pool.request(payload(4));
  server.setMode({ closeBeforeResponse: true });
  await assert.rejects(
    pool.request(payload(5), { retry: false }),
    ConnectionBrokenError,
  );
  assert.equal(pool.stats.retries, 1);
});

Deno.test("TcpPool.request() timeout bounds the whole call, borrow included", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const holder = await pool.borrow();
  await assert.rejects(
    pool.request(payload(1), { timeout: 30 }),
    PoolTimeoutError,
  );
  holder.release();
});

// -- Server down --

Deno.test("TcpPool: server down gives DialError within connectTimeout; the pool serves again when it is back", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({
    port: server.port,
    max: 2,
    connectTimeout: 1_000,
  });
  assert.equal(idOf(await pool.request(payload(1))), 1);
  await server.stop({ closeConnections: true });
  await until(() => pool.stats.open === 0, "the idle connection evicted");
  const start = performance.now();
  await assert.rejects(pool.request(payload(2)), DialError);
  assert.ok(performance.now() - start < 1_000);
  server.restart();
  assert.equal(idOf(await pool.request(payload(3))), 3);
  checkStats(pool);
});

// -- TLS --

async function selfSignedCert(): Promise<{ cert: string; key: string }> {
  const { code, stdout, stderr } = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-keyout",
      "/dev/stdout",
      "-out",
      "/dev/stdout",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const key = text.match(
    /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/,
  )?.[0];
  const cert = text.match(
    /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/,
  )?.[0];
  assert.ok(key && cert, "openssl printed a key and a certificate");
  return { cert, key };
}

Deno.test("TcpPool with tls dials Deno.connectTls and verifies the certificate", async () => {
  const { cert, key } = await selfSignedCert();
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert,
    key,
  });
  const conns: Deno.Conn[] = [];
  const served = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      conn.readable.pipeTo(conn.writable).catch(() => {});
    }
  })();
  try {
    {
      await using pool = new TcpPool({
        hostname: "127.0.0.1",
        port: listener.addr.port,
        tls: { caCerts: [cert] },
      });
      for (let id = 1; id <= 3; id++) {
        assert.equal(idOf(await pool.request(payload(id))), id);
      }
      assert.equal(pool.stats.dials, 1);
    }
    {
      // Without the CA, verification fails: certificates are checked.
      await using pool = new TcpPool({ port: listener.addr.port, tls: true });
      await assert.rejects(pool.request(payload(9)), DialError);
    }
  } finally {
    listener.close();
    await served;
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed by the client already */ }
    }
  }
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
      /tls must be a boolean or Deno.ConnectTlsOptions, received "yes"/,
    ],
    [{ port: 1, max: 0 }, RangeError, /max must be an integer ≥ 1.*received 0/],
    [{ port: 1, frame: { headerSize: 3 } }, RangeError, /headerSize/],
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

Deno.test("TcpPool soak: 20 000 requests from 64 tasks through 8 connections with random faults", async () => {
  console.log(`tcp soak seed: ${SOAK_SEED}`);
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
      },
    },
  });
  await using pool = new TcpPool({
    port: server.port,
    max: 8,
    frame: { maxFrameSize: 1 << 16 },
  });
  const outcomes = new Map<string, number>();
  const note = (what: string) =>
    outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
  let next = 0;
  const total = 20_000;
  const task = async () => {
    while (next < total) {
      const id = next++;
      const body = new Uint8Array(Math.floor(random() * 256)).fill(id & 0xff);
      try {
        const response = await pool.request(payload(id, body), {
          timeout: 100,
        });
        assert.equal(idOf(response), id, "a response for another request");
        assert.deepEqual(response.subarray(4), body);
        note("ok");
      } catch (error) {
        if (error instanceof ConnectionBrokenError) note("broken");
        else if (error instanceof UnexpectedEofError) note("eof mid-frame");
        else if (error instanceof FrameTooLargeError) note("too large");
        else if (
          error instanceof DOMException && error.name === "TimeoutError"
        ) {
          note("timeout");
        } else if (error instanceof PoolTimeoutError) note("pool timeout");
        else throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: 64 }, task));
  console.log("soak outcomes:", Object.fromEntries(outcomes), pool.stats);
  assert.ok((outcomes.get("ok") ?? 0) >= total * 0.95);
  const s = pool.stats;
  assert.equal(s.inUse, 0);
  assert.equal(s.waiting, 0);
  checkStats(pool);
});
