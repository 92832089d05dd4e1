// Copyright 2026 the chanpool authors. MIT license.
// TcpPool under the faults an adversarial run found: replies cut short at
// EOF, bytes sent with a large reply, huge replies that leave huge buffers
// behind, aborted signals, streams and exchanges at once, dials that race
// close() or ignore their signal, leases dropped with a read pending.

import assert from "node:assert/strict";
import { type FrameReader, UnexpectedEofError } from "../framing.ts";
import {
  ConnectionBrokenError,
  type PooledConn,
  ProtocolError,
  TcpPool,
} from "../tcp.ts";
import { readReply } from "../examples/redis.ts";
import { acceptAll, type Served } from "./_servers.ts";
import { mulberry32 } from "./_random.ts";
import { FakeClock } from "./_clock.ts";

// -- Helpers --

const enc = (s: string) => new TextEncoder().encode(s);

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/**
 * A server that runs `handle` for every connection it accepts: the handler
 * reads and writes what it likes; the connection is closed when it returns.
 */
function startScriptServer(
  handle: (conn: Deno.Conn, id: number) => Promise<void>,
): Served {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  return acceptAll(listener, conns, async (conn, id) => {
    try {
      await handle(conn, id);
    } catch {
      // the client went away, or stop() closed it
    }
    if (conns.delete(conn)) conn.close();
  });
}

/** Reads up to the next `\n` (or null at EOF), byte by byte: a test server. */
async function readRequestLine(conn: Deno.Conn): Promise<string | null> {
  const one = new Uint8Array(1);
  let line = "";
  while (true) {
    const n = await conn.read(one);
    if (n === null) return line === "" ? null : line;
    if (one[0] === 0x0a) return line;
    line += String.fromCharCode(one[0]!);
  }
}

/** Reads one 4-byte big-endian length-prefixed frame, or null at EOF. */
async function readRequestFrame(conn: Deno.Conn): Promise<Uint8Array | null> {
  const header = await readFull(conn, 4);
  if (header === null) return null;
  const len = new DataView(header.buffer).getUint32(0);
  return len === 0 ? new Uint8Array(0) : await readFull(conn, len);
}

async function readFull(
  conn: Deno.Conn,
  n: number,
): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(out.subarray(got));
    if (r === null) return null;
    got += r;
  }
  return out;
}

function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

/** A reply of `size` bytes whose first 4 bytes are `id`. */
function tagged(id: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, id);
  return out;
}

const readLine = (r: FrameReader) => r.readLine();

// -- 1. A reply cut short at EOF is never a value --

Deno.test("TcpPool.exchange(): a line cut by EOF is a ConnectionBrokenError, never the partial line", async () => {
  // Every connection answers "12345" without its newline, then closes.
  await using server = startScriptServer(async (conn) => {
    if (await readRequestLine(conn) === null) return;
    await writeAll(conn, enc("12345"));
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  await assert.rejects(
    pool.exchange(enc("GET\n"), readLine, { timeout: 2_000 }),
    (e) => {
      assert.ok(e instanceof ConnectionBrokenError, String(e));
      assert.equal(e.beforeResponse, false);
      assert.ok(e.cause instanceof UnexpectedEofError);
      return true;
    },
  );
  assert.equal(pool.stats.retries, 0, "a fresh connection is not retried");
  assert.equal(pool.stats.open, 0);
});

Deno.test("TcpPool.exchange(): a reused connection cut mid-reply is retried once when idempotent, never when not", async () => {
  // The second request on each connection gets half a line, then EOF.
  await using server = startScriptServer(async (conn) => {
    for (let nth = 1;; nth++) {
      const line = await readRequestLine(conn);
      if (line === null) return;
      if (nth === 2) return await writeAll(conn, enc(line.slice(0, 2)));
      await writeAll(conn, enc(line + "\r\n"));
    }
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  assert.equal(await pool.exchange(enc("one\n"), readLine), "one");
  // The second request on the connection: cut, retried on a fresh one.
  assert.equal(await pool.exchange(enc("two\n"), readLine), "two");
  assert.equal(pool.stats.retries, 1);
  // The second on the fresh one, not idempotent: the caller is told.
  await assert.rejects(
    pool.exchange(enc("three\n"), readLine, { idempotent: false }),
    (e) => e instanceof ConnectionBrokenError && !e.beforeResponse,
  );
  assert.equal(pool.stats.retries, 1);
});

Deno.test("TcpPool.exchange() with a RESP reader: ':123' cut to ':12' fails typed, never resolves 12", async () => {
  await using server = startScriptServer(async (conn) => {
    while (await readRequestLine(conn) !== null) {
      await writeAll(conn, enc(":12"));
      return;
    }
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  await assert.rejects(
    pool.exchange(enc("INCR counter\r\n"), readReply, { idempotent: false }),
    ConnectionBrokenError,
  );
});

for (
  const [name, cut] of [
    ["an array cut after its first item", "*3\r\n$1\r\na\r\n"],
    ["a bulk string cut after its length", "$5\r\n"],
    ["a bulk string cut inside", "$5\r\nab"],
  ]
) {
  Deno.test(`TcpPool.exchange() with a RESP reader: ${name} fails typed, never resolves a value`, async () => {
    await using server = startScriptServer(async (conn) => {
      if (await readRequestLine(conn) !== null) await writeAll(conn, enc(cut!));
    });
    await using pool = new TcpPool({ port: server.port, max: 1 });
    await assert.rejects(
      pool.exchange(enc("GET k\r\n"), readReply, { idempotent: false }),
      (e) => e instanceof ConnectionBrokenError && !e.beforeResponse,
    );
  });
}

Deno.test("TcpPool.request(): a frame cut by EOF is a ConnectionBrokenError whose cause is UnexpectedEofError", async () => {
  await using server = startScriptServer(async (conn) => {
    if (await readRequestFrame(conn) === null) return;
    await writeAll(conn, frame(new Uint8Array(100)).subarray(0, 50));
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  await assert.rejects(pool.request(new Uint8Array([1])), (e) => {
    assert.ok(e instanceof ConnectionBrokenError, String(e));
    assert.ok(e.cause instanceof UnexpectedEofError);
    return true;
  });
});

Deno.test("PooledConn.readLine() still returns a last line without a newline at EOF (a stream, not a reply)", async () => {
  await using server = startScriptServer(async (conn) => {
    await writeAll(conn, enc("a\nlast"));
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  await using conn = await pool.borrow();
  assert.equal(await conn.readLine({ timeout: 2_000 }), "a");
  assert.equal(await conn.readLine({ timeout: 2_000 }), "last");
  assert.equal(await conn.readLine({ timeout: 2_000 }), null);
});

// -- 2. Bytes sent with a large reply are seen --

for (const size of [100, 8191, 8192, 8193, 9_000, 1 << 20]) {
  Deno.test(`TcpPool.request(): an unsolicited frame in the same write as a ${size} B reply is a ProtocolError, never the next reply`, async () => {
    // Each reply goes out in one write together with an extra frame.
    await using server = startScriptServer(async (conn) => {
      while (true) {
        const request = await readRequestFrame(conn);
        if (request === null) return;
        const id = new DataView(request.buffer).getUint32(0);
        const reply = frame(tagged(id, size));
        const extra = frame(tagged(0xdead, 16));
        const both = new Uint8Array(reply.length + extra.length);
        both.set(reply);
        both.set(extra, reply.length);
        await writeAll(conn, both);
      }
    });
    await using pool = new TcpPool({ port: server.port, max: 1 });
    let wrong = 0, protocol = 0;
    for (let id = 1; id <= 6; id++) {
      try {
        const reply = await pool.request(tagged(id, 4), { timeout: 5_000 });
        if (new DataView(reply.buffer, reply.byteOffset).getUint32(0) !== id) {
          wrong++;
        }
      } catch (error) {
        assert.ok(error instanceof ProtocolError, String(error));
        protocol++;
      }
    }
    assert.equal(wrong, 0, "replies shifted by an unsolicited frame");
    assert.equal(protocol, 6);
    assert.equal(pool.stats.destroyed.broken, 6);
  });
}

Deno.test("TcpPool: a line reply that ends exactly where its read's space did is delivered, and its connection is not reused (unchecked)", async () => {
  // 8191 bytes with an 8192-byte buffer: the read that brings the newline
  // fills its space (the buffer's last byte is left unused), so the stray
  // line sent right behind it cannot be seen.
  const line = "x".repeat(8189) + "\r\n";
  await using server = startScriptServer(async (conn) => {
    while (await readRequestLine(conn) !== null) {
      await writeAll(conn, enc(line + "STRAY\r\n"));
    }
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  for (let i = 0; i < 3; i++) {
    assert.equal(
      (await pool.exchange(enc("GET\n"), readLine, { timeout: 2_000 }))
        ?.length,
      8189,
    );
  }
  assert.equal(pool.stats.destroyed.unchecked, 3, "never reused");
  // On a held connection the next exchange is refused before a byte is sent.
  await using conn = await pool.borrow();
  assert.equal((await conn.exchange(enc("GET\n"), readLine))?.length, 8189);
  assert.equal(conn.broken, true);
  await assert.rejects(
    conn.exchange(enc("GET\n"), readLine),
    (e) => e instanceof ConnectionBrokenError && e.beforeResponse,
  );
});

// -- 13. Idle connections drop grown buffers --

Deno.test({
  name:
    "TcpPool: connections going idle after huge replies drop their grown read buffers",
  async fn() {
    const SIZE = 24 << 20;
    const body = new Uint8Array(SIZE);
    const gc = (globalThis as { gc?: () => void }).gc;
    assert.ok(gc, "run with --v8-flags=--expose-gc");
    await using server = startScriptServer(async (conn) => {
      for (let line; (line = await readRequestLine(conn)) !== null;) {
        const reply = line === "big" ? body : body.subarray(0, 10);
        await writeAll(conn, enc(`${reply.length}\n`));
        await writeAll(conn, reply);
      }
    });
    await using pool = new TcpPool({ port: server.port, max: 3 });
    // A reply read as a view into the connection's buffer (a RESP bulk
    // string is read so): the buffer grows to hold it.
    const read = async (r: FrameReader) => {
      const n = Number(await r.readLine());
      const view = await r.readExactView(n);
      return view === null ? -1 : view.length;
    };
    const memory = async () => {
      // Backing stores are freed by the collector's sweeper: collect until
      // the figure settles.
      let last = Infinity;
      for (let i = 0; i < 10; i++) {
        gc!();
        await new Promise((r) => setTimeout(r, 10));
        const m = Deno.memoryUsage();
        const now = m.heapUsed + m.external;
        if (Math.abs(now - last) < 64 * 1024) return now;
        last = now;
      }
      return last;
    };
    // Warm up (code, the pool's own structures), then measure.
    assert.equal(await pool.exchange(enc("small\n"), read), 10);
    const before = await memory();
    const sizes = await Promise.all(
      [1, 2, 3].map(() => pool.exchange(enc("big\n"), read)),
    );
    assert.deepEqual(sizes, [SIZE, SIZE, SIZE]);
    assert.equal(pool.stats.idle, 3);
    const after = await memory();
    assert.ok(
      after - before < 2 << 20,
      `${((after - before) / 2 ** 20).toFixed(1)} MiB kept by idle connections`,
    );
  },
});

// -- 5. An aborted signal is honoured before anything is done --

Deno.test("TcpPool.exchange()/request() with an already-aborted signal reject with its reason and send nothing, an idle connection notwithstanding", async () => {
  let requests = 0;
  await using server = startScriptServer(async (conn) => {
    // Answers the first request on each connection, then stays silent.
    for (let nth = 1;; nth++) {
      const line = await readRequestLine(conn);
      if (line === null) return;
      requests++;
      if (nth === 1) await writeAll(conn, enc(line + "\n"));
    }
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  assert.equal(await pool.exchange(enc("warm\n"), readLine), "warm");
  assert.equal(pool.stats.idle, 1);
  const reason = new Error("gave up");
  const aborted = AbortSignal.abort(reason);
  await assert.rejects(
    pool.exchange(enc("late\n"), readLine, { signal: aborted }),
    (e) => e === reason,
  );
  await assert.rejects(
    pool.request(new Uint8Array([1]), { signal: aborted }),
    (e) => e === reason,
  );
  await assert.rejects(pool.borrow({ signal: aborted }), (e) => e === reason);
  // Nothing was sent, and the connection is still idle and clean.
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(requests, 1);
  assert.deepEqual([pool.stats.idle, pool.stats.inUse], [1, 0]);
});

Deno.test("TcpPool.exchange(): a signal that aborts as a waiting call is handed a connection settles it at once, sending nothing", async () => {
  let requests = 0;
  await using server = startScriptServer(async (conn) => {
    while (await readRequestLine(conn) !== null) requests++; // never answers
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const holder = await pool.borrow();
  const controller = new AbortController();
  const reason = new Error("gave up");
  const call = pool.exchange(enc("x\n"), readLine, {
    signal: controller.signal,
  });
  await new Promise((r) => setTimeout(r, 10)); // parked on the pool
  holder.release(); // hands the connection to the waiting call...
  controller.abort(reason); // ...which is aborted before it runs
  await assert.rejects(call, (e) => e === reason);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(requests, 0);
  assert.deepEqual([pool.stats.idle, pool.stats.open], [1, 1]);
});

// -- 6. One reader at a time --

Deno.test("PooledConn.exchange()/request() while its readable stream has a read pending throw TypeError and send nothing", async () => {
  let received = 0;
  await using server = startScriptServer(async (conn) => {
    const buf = new Uint8Array(1024);
    for (let n; (n = await conn.read(buf)) !== null;) received += n;
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  await using conn = await pool.borrow();
  const reader = conn.readable.getReader();
  const pending = reader.read();
  await new Promise((r) => setTimeout(r, 10)); // the stream's pull is pending
  await assert.rejects(
    conn.exchange(enc("x\n"), readLine, { timeout: 1_000 }),
    TypeError,
  );
  await assert.rejects(
    conn.request(new Uint8Array([1]), { timeout: 1_000 }),
    TypeError,
  );
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(received, 0);
  await reader.cancel();
  await pending;
});

// -- 8. close() racing dials leaves no socket open --

/**
 * Runs `fn` with `Deno.connect` replaced by one with the fault Deno 2.9.6
 * was seen to have: a connect whose `signal` aborts just as it succeeds
 * drops the new connection without closing it. Dropped connections are
 * closed afterwards (the test's own cleanup) and counted.
 */
async function withLeakyConnect(fn: () => Promise<void>): Promise<number> {
  const real = Deno.connect;
  const dropped: Deno.Conn[] = [];
  const leaky = async (options: Deno.ConnectOptions) => {
    const { signal, ...rest } = options as Deno.ConnectOptions & {
      signal?: AbortSignal;
    };
    const conn = await real(rest);
    if (signal !== undefined) {
      await new Promise((r) => setTimeout(r, 0)); // the window
      if (signal.aborted) {
        dropped.push(conn);
        throw new DOMException("The connect was aborted", "AbortError");
      }
    }
    return conn;
  };
  Object.defineProperty(Deno, "connect", { value: leaky, configurable: true });
  try {
    await fn();
  } finally {
    Object.defineProperty(Deno, "connect", { value: real, configurable: true });
    for (const conn of dropped) conn.close();
  }
  return dropped.length;
}

Deno.test("TcpPool.close() racing its dials: every socket the server accepted is closed (Deno.connect never gets a signal that could drop one)", async () => {
  const seed = Date.now() % 1_000_000;
  console.log(`close-races-dials seed: ${seed}`);
  const random = mulberry32(seed);
  await using server = startScriptServer(async (conn) => {
    const buf = new Uint8Array(64);
    while (await conn.read(buf) !== null) { /* until the client closes */ }
  });
  const dropped = await withLeakyConnect(async () => {
    for (let round = 0; round < 300; round++) {
      const pool = new TcpPool({
        port: server.port,
        minIdle: 8,
        max: 8,
        maxDialing: 8,
      });
      // Close while the dials are in flight, at a random point of them.
      const wait = random() * 3;
      if (wait > 2) await new Promise((r) => setTimeout(r, wait - 2));
      else if (wait > 1) await new Promise((r) => setTimeout(r, 0));
      else for (let i = 0; i < wait * 20; i++) await Promise.resolve();
      await pool.close();
    }
    // Every accepted socket is closed by the client within a grace period.
    await server.drained(2_000);
  });
  assert.equal(dropped, 0, "connections dropped by a signalled connect");
});

// -- 10. A lease dropped with a read pending is reclaimed --

const gc = (globalThis as { gc?: () => void }).gc;

Deno.test({
  name:
    "TcpPool reclaims a connection dropped with a read pending (the pending read does not hold its lease); the read rejects typed",
  ignore: gc === undefined,
  async fn() {
    await using server = startScriptServer(async (conn) => {
      const buf = new Uint8Array(64);
      while (await conn.read(buf) !== null) { /* silent */ }
    });
    const clock = new FakeClock();
    const reports: unknown[] = [];
    const pool = new TcpPool({
      port: server.port,
      max: 4,
      clock,
      onLeak: (report) => reports.push(report),
    });
    // Forced: a lease the pool failed to reclaim must not hang the test.
    await using _closer = {
      [Symbol.asyncDispose]: () => pool.close({ force: true }),
    };
    const errors: unknown[] = [];
    // Four connections, each dropped with a call pending on it: a read, a
    // readLine under a timeout (its deadline must not hold it either), a
    // read of its readable stream, and an exchange.
    await (async () => {
      const a = await pool.borrow();
      a.read(new Uint8Array(16)).catch((e) => errors.push(e));
      const b = await pool.borrow();
      b.readLine({ timeout: 60_000 }).catch((e) => errors.push(e));
      const c = await pool.borrow();
      c.readable.getReader().read().catch((e) => errors.push(e));
      const d = await pool.borrow();
      d.exchange(enc("x\n"), readLine).catch((e) => errors.push(e));
    })();
    assert.equal(pool.stats.inUse, 4);
    // Leases still held after a second are watched for collection.
    await clock.advance(1_000);
    for (let i = 0; i < 50 && reports.length < 4; i++) {
      gc!();
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(reports.length, 4, "every dropped lease was reported");
    assert.equal(pool.stats.destroyed.leaked, 4);
    assert.equal(pool.stats.inUse, 0);
    for (let i = 0; i < 50 && errors.length < 4; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(errors.length, 4);
    for (const e of errors) {
      assert.ok(e instanceof ConnectionBrokenError, String(e));
    }
    // The pool has its slots back: two connections can be borrowed.
    const c = await pool.borrow({ timeout: 1_000 });
    const d = await pool.borrow({ timeout: 1_000 });
    c.release();
    d.release();
  },
});

// -- 12. No refill storm against a server that accepts, then closes --

Deno.test("TcpPool({ minIdle }) against a server that closes every connection at once backs off: a few dials a second, counted as failures", async () => {
  await using server = startScriptServer(() => Promise.resolve()); // closes
  const pool = new TcpPool({ port: server.port, minIdle: 2 });
  await new Promise((r) => setTimeout(r, 2_000));
  const { dials, dialErrors } = pool.stats;
  await pool.close();
  console.log(`${dials} dials in 2 s, ${dialErrors} counted as failed`);
  assert.ok(dials <= 16, `${dials} dials in 2 s`);
  assert.ok(dialErrors >= dials - 2, `${dialErrors} of ${dials} failed`);
  await server.drained(2_000);
});

// -- Retries are classified by what the socket did, not by the parser --

for (
  const [name, read] of [
    ["returns null", (r: FrameReader) => r.readLine()],
    ["throws a plain Error", async (r: FrameReader) => {
      const line = await r.readLine();
      if (line === null) throw new Error("no reply");
      return line;
    }],
    ["throws the library's own ConnectionBrokenError", async (
      r: FrameReader,
    ) => {
      const line = await r.readLine();
      if (line === null) throw new ConnectionBrokenError("no reply");
      return line;
    }],
  ] as const
) {
  Deno.test(`TcpPool.exchange(): a parser that ${name} at EOF on a stale reused connection is retried once (idempotent), never when not`, async () => {
    // The second request on each connection: the server closes without a
    // reply (it had just closed the idle connection).
    await using server = startScriptServer(async (conn) => {
      for (let nth = 1;; nth++) {
        const line = await readRequestLine(conn);
        if (line === null || nth === 2) return;
        await writeAll(conn, enc(line + "\n"));
      }
    });
    await using pool = new TcpPool({ port: server.port, max: 1 });
    assert.equal(await pool.exchange(enc("one\n"), read), "one");
    assert.equal(await pool.exchange(enc("two\n"), read), "two");
    assert.equal(pool.stats.retries, 1);
    await assert.rejects(
      pool.exchange(enc("three\n"), read, { idempotent: false }),
      (e) => e instanceof ConnectionBrokenError && e.beforeResponse,
    );
    assert.equal(pool.stats.retries, 1);
  });
}

Deno.test("TcpPool.exchange(): a parser that throws ConnectionBrokenError on a live connection is not taken for a broken one (no retry; its error as thrown)", async () => {
  await using server = startScriptServer(async (conn) => {
    for (let line; (line = await readRequestLine(conn)) !== null;) {
      await writeAll(conn, enc(line + "\n"));
    }
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  assert.equal(await pool.exchange(enc("warm\n"), readLine), "warm");
  const mine = new ConnectionBrokenError("the parser's own");
  await assert.rejects(
    pool.exchange(enc("x\n"), async (r) => {
      await r.readLine();
      throw mine;
    }),
    (e) => e === mine,
  );
  assert.equal(pool.stats.retries, 0);
});

// Keeps the type import used when only some tests run.
export type { PooledConn };
