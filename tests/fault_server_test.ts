// Copyright 2026 the chanpool authors. MIT license.
// The fault-injection server itself, driven with raw Deno.connect.

import assert from "node:assert/strict";
import { mulberry32 } from "./_random.ts";
import {
  encodeRequest,
  GARBAGE_LENGTH,
  startFaultServer,
  STRAY_BYTES,
} from "./_fault_server.ts";

// -- Client helpers --

/** Reads until `n` bytes or EOF/reset; may return fewer than `n`. */
async function readUpTo(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    let got: number | null;
    try {
      got = await conn.read(out.subarray(off));
    } catch {
      break;
    }
    if (got === null) break;
    off += got;
  }
  return out.subarray(0, off);
}

/** Writes all of `bytes` (one `write` may take only part). */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Reads everything until EOF or reset. */
async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  while (true) {
    let got: number | null;
    try {
      got = await conn.read(buf);
    } catch {
      break;
    }
    if (got === null) break;
    chunks.push(buf.slice(0, got));
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Reads one frame; returns its id and body. */
async function readResponse(
  conn: Deno.Conn,
): Promise<{ id: number; body: string }> {
  const header = await readUpTo(conn, 4);
  assert.equal(header.length, 4, "EOF before a response header");
  const length = new DataView(header.buffer).getUint32(0);
  const payload = await readUpTo(conn, length);
  assert.equal(payload.length, length, "EOF inside a response");
  return {
    id: new DataView(payload.buffer).getUint32(0),
    body: new TextDecoder().decode(payload.subarray(4)),
  };
}

function request(id: number, body = ""): Uint8Array {
  return encodeRequest(id, new TextEncoder().encode(body));
}

// -- Echo --

Deno.test("FaultServer echoes pipelined requests in order with their ids", async () => {
  await using server = startFaultServer();
  using conn = await Deno.connect(server.addr);
  await writeAll(
    conn,
    new Uint8Array([
      ...request(7, "a"),
      ...request(8, ""),
      ...request(9, "ccc"),
    ]),
  );
  assert.deepEqual(await readResponse(conn), { id: 7, body: "a" });
  assert.deepEqual(await readResponse(conn), { id: 8, body: "" });
  assert.deepEqual(await readResponse(conn), { id: 9, body: "ccc" });
  assert.equal(server.stats.requests, 3);
  assert.equal(server.stats.responses, 3);
  assert.equal(server.stats.connections, 1);
  assert.equal(server.stats.open, 1);
  const [info] = server.connectionsSeen;
  assert.equal(info?.remotePort, conn.localAddr.port);
  assert.equal(info?.lastRequestId, 9);
});

Deno.test("FaultServer reassembles a request split across writes", async () => {
  await using server = startFaultServer();
  using conn = await Deno.connect(server.addr);
  const big = "x".repeat(200_000);
  const frame = request(1, big);
  await writeAll(conn, frame.subarray(0, 3));
  await server.waitFor(() => server.stats.open === 1);
  await writeAll(conn, frame.subarray(3));
  const res = await readResponse(conn);
  assert.equal(res.id, 1);
  assert.equal(res.body, big);
});

Deno.test("FaultServer sees a client close and counts it", async () => {
  await using server = startFaultServer();
  const conn = await Deno.connect(server.addr);
  await writeAll(conn, request(1));
  await readResponse(conn);
  conn.close();
  await server.waitFor((s) => s.stats.open === 0);
  assert.equal(server.stats.closedByClient, 1);
  assert.equal(server.connectionsSeen[0]?.closedBy, "client");
});

Deno.test("FaultServer survives clients that vanish mid-response", async () => {
  await using server = startFaultServer();
  const body = "y".repeat(4 * 1024 * 1024); // more than the socket buffers hold
  await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const conn = await Deno.connect(server.addr);
    await writeAll(conn, request(i, body));
    await readUpTo(conn, 1000); // read a little of the echo, then leave
    conn.close();
  }));
  await server.waitFor((s) => s.stats.open === 0);
  assert.equal(server.stats.closedByClient, 8);
  // close() rejects if any connection task failed
});

// -- Per-request faults --

Deno.test("FaultServer closeAfterResponse writes the response, then closes", async () => {
  await using server = startFaultServer({
    mode: { closeAfterResponse: true },
  });
  using conn = await Deno.connect(server.addr);
  await writeAll(conn, request(5, "hi"));
  assert.deepEqual(await readResponse(conn), { id: 5, body: "hi" });
  assert.equal((await readToEnd(conn)).length, 0);
  assert.equal(server.stats.closedAfterResponse, 1);
  assert.equal(server.stats.open, 0);
});

Deno.test("FaultServer closeBeforeResponse closes without responding", async () => {
  await using server = startFaultServer({
    mode: { closeBeforeResponse: true },
  });
  using conn = await Deno.connect(server.addr);
  await writeAll(conn, request(5, "hi"));
  assert.equal((await readToEnd(conn)).length, 0);
  assert.equal(server.stats.closedBeforeResponse, 1);
  assert.equal(server.stats.requests, 1);
  assert.equal(server.stats.responses, 0);
});

Deno.test("FaultServer closeMidResponse writes half a frame, then closes", async () => {
  await using server = startFaultServer({ mode: { closeMidResponse: true } });
  using conn = await Deno.connect(server.addr);
  await writeAll(conn, request(5, "abcdef")); // payload 10 bytes
  const got = await readToEnd(conn);
  assert.equal(got.length, 4 + 5);
  assert.equal(new DataView(got.buffer).getUint32(0), 10);
  assert.equal(server.stats.closedMidResponse, 1);
});

Deno.test("FaultServer garbage declares a huge length and keeps the conn open", async () => {
  await using server = startFaultServer({ mode: { garbage: true } });
  using conn = await Deno.connect(server.addr);
  await writeAll(conn, request(5, "zz"));
  const got = await readUpTo(conn, 4 + 6);
  assert.equal(new DataView(got.buffer).getUint32(0), GARBAGE_LENGTH);
  assert.equal(server.stats.garbageWrites, 1);
  assert.equal(server.stats.open, 1);
});

Deno.test("FaultServer delay responds late, still on the same open conn", async () => {
  await using server = startFaultServer({ mode: { delay: 40 } });
  using conn = await Deno.connect(server.addr);
  const t0 = performance.now();
  await writeAll(conn, new Uint8Array([...request(1), ...request(2)]));
  // the delay counts from each request's arrival, so both come at ~40 ms
  assert.equal((await readResponse(conn)).id, 1);
  assert.equal((await readResponse(conn)).id, 2);
  const elapsed = performance.now() - t0;
  assert.ok(elapsed >= 35, `responded after ${elapsed} ms`);
  assert.ok(elapsed < 1_000, `responded after ${elapsed} ms`);
  assert.equal(server.stats.delayed, 2);
});

Deno.test("FaultServer drops a delayed response when the client leaves", async () => {
  await using server = startFaultServer({ mode: { delay: 20 } });
  const conn = await Deno.connect(server.addr);
  await writeAll(conn, request(1));
  await server.waitFor((s) => s.stats.requests === 1);
  conn.close();
  await server.waitFor((s) => s.stats.open === 0);
  assert.equal(server.stats.responses, 0);
  // close() awaits the handler, whose delay timer was cleared by the close
});

Deno.test("FaultServer setMode() changes behaviour at run time", async () => {
  await using server = startFaultServer();
  using conn = await Deno.connect(server.addr);
  await writeAll(conn, request(1));
  assert.equal((await readResponse(conn)).id, 1);
  server.setMode({ closeAfterResponse: true });
  await writeAll(conn, request(2));
  assert.equal((await readResponse(conn)).id, 2);
  assert.equal((await readToEnd(conn)).length, 0);
  server.setMode("echo");
  assert.deepEqual(server.mode, {});
  assert.throws(() => server.setMode({ delay: -1 }), RangeError);
  assert.throws(
    () => server.setMode({ random: { seed: 1, pClose: 0.6, pDelay: 0.6 } }),
    RangeError,
  );
});

Deno.test("FaultServer random mode draws faults from a seeded PRNG", async () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  const xs = Array.from({ length: 5 }, a);
  assert.deepEqual(xs, Array.from({ length: 5 }, b));
  assert.ok(xs.every((x) => x >= 0 && x < 1));

  await using server = startFaultServer({
    mode: { random: { seed: 7, pCloseAfter: 1 } },
  });
  using conn = await Deno.connect(server.addr);
  await writeAll(conn, request(3));
  assert.equal((await readResponse(conn)).id, 3);
  assert.equal((await readToEnd(conn)).length, 0);
  assert.equal(server.stats.closedAfterResponse, 1);
});

Deno.test("FaultServer random mode mixes faults across requests", async () => {
  await using server = startFaultServer({
    mode: {
      random: { seed: 99, pClose: 0.3, pCloseMid: 0.3, pCloseAfter: 0.4 },
    },
  });
  for (let i = 0; i < 30; i++) {
    using conn = await Deno.connect(server.addr);
    await writeAll(conn, request(i, "body"));
    await readToEnd(conn); // every drawn fault closes the conn
  }
  const s = server.stats;
  assert.ok(s.closedBeforeResponse > 0, JSON.stringify(s));
  assert.ok(s.closedMidResponse > 0, JSON.stringify(s));
  assert.ok(s.closedAfterResponse > 0, JSON.stringify(s));
  assert.equal(
    s.closedBeforeResponse + s.closedMidResponse + s.closedAfterResponse,
    30,
  );
});

// -- Idle behaviour --

Deno.test("FaultServer closeIdleAfter closes an idle conn", async () => {
  await using server = startFaultServer({ mode: { closeIdleAfter: 30 } });
  using conn = await Deno.connect(server.addr);
  const t0 = performance.now();
  assert.equal((await readToEnd(conn)).length, 0);
  const elapsed = performance.now() - t0;
  assert.ok(elapsed >= 20 && elapsed < 1_000, `closed after ${elapsed} ms`);
  assert.equal(server.stats.closedIdle, 1);
  assert.equal(server.connectionsSeen[0]?.closedBy, "idle");
});

Deno.test("FaultServer closeIdleAfter spares a conn with a request pending", async () => {
  await using server = startFaultServer({
    mode: { closeIdleAfter: 20, delay: 60 },
  });
  using conn = await Deno.connect(server.addr);
  await writeAll(conn, request(1));
  assert.equal((await readResponse(conn)).id, 1);
  assert.equal((await readToEnd(conn)).length, 0); // idle again: closed
  assert.equal(server.stats.closedIdle, 1);
});

Deno.test("FaultServer strayBytesWhenIdleAfter writes stray bytes once per idle period", async () => {
  await using server = startFaultServer({
    mode: { strayBytesWhenIdleAfter: 10, closeIdleAfter: 60 },
  });
  using conn = await Deno.connect(server.addr);
  assert.deepEqual(await readToEnd(conn), STRAY_BYTES);
  assert.equal(server.stats.strayWrites, 1);
  assert.equal(server.stats.closedIdle, 1);
});

// -- Lifecycle --

Deno.test("FaultServer stop() refuses dials and restart() listens on the same port", async () => {
  await using server = startFaultServer();
  const port = server.port;
  using kept = await Deno.connect(server.addr);
  await server.stop();
  assert.equal(server.listening, false);
  await assert.rejects(
    () => Deno.connect(server.addr),
    Deno.errors.ConnectionRefused,
  );
  // a conn accepted before stop() still works
  await writeAll(kept, request(1));
  assert.equal((await readResponse(kept)).id, 1);

  server.restart();
  assert.equal(server.listening, true);
  assert.equal(server.port, port);
  using conn = await Deno.connect(server.addr);
  await writeAll(conn, request(2));
  assert.equal((await readResponse(conn)).id, 2);
  assert.equal(server.stats.connections, 2);
});

Deno.test("FaultServer stop({ closeConnections }) closes existing conns too", async () => {
  await using server = startFaultServer();
  using conn = await Deno.connect(server.addr);
  await server.waitFor((s) => s.stats.open === 1);
  await server.stop({ closeConnections: true });
  assert.equal((await readToEnd(conn)).length, 0);
  assert.equal(server.stats.open, 0);
  server.restart();
  using again = await Deno.connect(server.addr);
  await writeAll(again, request(3));
  assert.equal((await readResponse(again)).id, 3);
});

Deno.test("FaultServer close() closes every conn and is idempotent", async () => {
  const server = startFaultServer({ mode: { delay: 10_000 } });
  using a = await Deno.connect(server.addr);
  using b = await Deno.connect(server.addr);
  await writeAll(a, request(1)); // a 10 s delay: close() must cancel its timer
  await server.waitFor((s) => s.stats.open === 2 && s.stats.requests === 1);
  const waiting = assert.rejects(server.waitFor(() => false), /closed/);
  await server.close();
  await waiting;
  assert.equal(server.stats.open, 0);
  assert.equal((await readToEnd(a)).length, 0);
  assert.equal((await readToEnd(b)).length, 0);
  await server.close();
  await assert.rejects(() => Deno.connect(server.addr));
  assert.throws(() => server.restart());
});

Deno.test("FaultServer waitFor() rejects on timeout and on abort", async () => {
  await using server = startFaultServer();
  await assert.rejects(
    server.waitFor(() => false, { timeout: 10 }),
    /Timed out/,
  );
  const controller = new AbortController();
  const waiting = server.waitFor(() => false, { signal: controller.signal });
  controller.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
});
