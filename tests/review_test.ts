// Copyright 2026 the chanpool authors. MIT license.
// Adversarial review of the issue-17 fixes: fault-injection tests for the
// promises README.md makes (a reply reaches only the call that asked for
// it; bytes arriving with a reply are seen; no early deadlines...).

import assert from "node:assert/strict";
import { FrameReader } from "../framing.ts";
import { readerHooks } from "../_frame_format.ts";
import { ConnectionBrokenError, ProtocolError, TcpPool } from "../tcp.ts";
import { acceptAll, selfSignedCert, type Served } from "./_servers.ts";
import { mulberry32 } from "./_random.ts";
import { readReply } from "../examples/redis.ts";
import { NodeSocket } from "../_socket.ts";
import { EventEmitter } from "node:events";
import type { TLSSocket } from "node:tls";

// -- Helpers --

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

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

async function readRequestFrame(conn: Deno.Conn): Promise<Uint8Array | null> {
  const header = await readFull(conn, 4);
  if (header === null) return null;
  const len = new DataView(header.buffer).getUint32(0);
  return len === 0 ? new Uint8Array(0) : await readFull(conn, len);
}

function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A reply of `size` bytes whose first 4 bytes are `id` (if it has 4). */
function tagged(id: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  if (size >= 4) new DataView(out.buffer).setUint32(0, id);
  return out;
}

// -- R1. An empty reply frame after a large one: the stray frame sent with
// it stays in the kernel and becomes the next request's reply --

Deno.test({
  name:
    "review: an unsolicited frame in the same write as an EMPTY reply frame, after a large reply on that connection, is never the next reply",
  async fn() {
    // Request 1 gets a 20 KiB reply (the reader then reads the next header
    // alone). Request 2 gets an empty frame plus a stray frame in one write.
    // Request 3 is answered late: whatever it reads first is the stray frame.
    await using server = startScriptServer(async (conn) => {
      for (let nth = 1;; nth++) {
        const request = await readRequestFrame(conn);
        if (request === null) return;
        if (nth === 1) await writeAll(conn, frame(tagged(1, 20_000)));
        else if (nth === 2) {
          await writeAll(
            conn,
            concat(frame(new Uint8Array(0)), frame(tagged(0xdead, 16))),
          );
        } else {
          await new Promise((r) => setTimeout(r, 30));
          await writeAll(conn, frame(tagged(nth, 16)));
        }
      }
    });
    await using pool = new TcpPool({ port: server.port, max: 1 });
    const id = (r: Uint8Array) =>
      new DataView(r.buffer, r.byteOffset).getUint32(0);
    assert.equal(id(await pool.request(tagged(1, 4), { timeout: 5_000 })), 1);
    let second: unknown;
    try {
      second = (await pool.request(tagged(2, 4), { timeout: 5_000 })).length;
    } catch (error) {
      second = error;
    }
    let third: unknown;
    try {
      third = id(await pool.request(tagged(3, 4), { timeout: 5_000 }));
    } catch (error) {
      third = error;
    }
    // The promise: the stray frame is a ProtocolError on request 2 (it came
    // in the same write as its reply), and request 3 gets its own reply.
    assert.notEqual(
      third,
      0xdead,
      "request 3 got the stray frame as its reply",
    );
    assert.ok(second instanceof ProtocolError, `request 2: ${second}`);
  },
});

// -- R2. A reply that exactly fills the read buffer: the stray frame in the
// same write is not read with it, stays in the kernel, and is the next
// request's reply --

for (const payload of [8192 - 4, 4096 - 4]) {
  Deno.test({
    name:
      `review: an unsolicited frame in the same write as a reply of exactly readBufferSize bytes (${payload} B payload) is never the next reply`,
    async fn() {
      const bufferSize = payload + 4;
      await using server = startScriptServer(async (conn) => {
        while (true) {
          const request = await readRequestFrame(conn);
          if (request === null) return;
          const id = new DataView(request.buffer).getUint32(0);
          await writeAll(
            conn,
            concat(frame(tagged(id, payload)), frame(tagged(0xdead, 16))),
          );
        }
      });
      await using pool = new TcpPool({
        port: server.port,
        max: 1,
        readBufferSize: bufferSize,
      });
      let wrong = 0, protocol = 0;
      for (let id = 1; id <= 6; id++) {
        try {
          const reply = await pool.request(tagged(id, 4), { timeout: 5_000 });
          if (
            new DataView(reply.buffer, reply.byteOffset).getUint32(0) !== id
          ) {
            wrong++;
          }
        } catch (error) {
          assert.ok(error instanceof ProtocolError, String(error));
          protocol++;
        }
      }
      assert.equal(
        wrong,
        0,
        `${wrong} replies shifted by an unsolicited frame`,
      );
      // Each reply is either refused (the stray frame was read with it) or
      // delivered whole on a connection that is then not reused: the read
      // that brought its last byte filled its space, so what followed could
      // not be seen (destroyed as unchecked).
      assert.equal(protocol + pool.stats.destroyed.unchecked, 6);
    },
  });
}

for (const total of [8192, 16384]) {
  Deno.test({
    name:
      `review: a stray line in the same write as a ${total} B reply line (the read buffer's size after growth) is never the next reply`,
    async fn() {
      const enc = new TextEncoder();
      await using server = startScriptServer(async (conn) => {
        const buf = new Uint8Array(64);
        for (let nth = 1;; nth++) {
          // one request line per read (the client waits for each reply)
          if (await conn.read(buf) === null) return;
          const body = `${nth}:`.padEnd(total - 2, "x") + "\r\n";
          await writeAll(conn, enc.encode(body + "STRAY\r\n"));
        }
      });
      await using pool = new TcpPool({ port: server.port, max: 1 });
      let wrong = 0, protocol = 0;
      for (let nth = 1; nth <= 6; nth++) {
        try {
          const line = await pool.exchange(
            enc.encode("GET\n"),
            (r) => r.readLine(),
            { timeout: 5_000 },
          );
          if (line?.length !== total - 2) wrong++;
        } catch (error) {
          assert.ok(error instanceof ProtocolError, String(error));
          protocol++;
        }
      }
      assert.equal(wrong, 0, `${wrong} replies were a stray line`);
      // Refused, or delivered whole on a connection not reused (unchecked).
      assert.equal(protocol + pool.stats.destroyed.unchecked, 6);
    },
  });
}

// -- R3. A reply read as a view larger than the buffer: the buffer grows to
// exactly the view's end, so bytes after it are never read with it (every
// RESP bulk string over ~8 KiB read by examples/redis.ts) --

for (const size of [10_000, 100_000]) {
  Deno.test({
    name:
      `review: RESP bulk string of ${size} B followed in the same write by a stray reply: never the next command's reply`,
    async fn() {
      const enc = new TextEncoder();
      const body = "v".repeat(size);
      await using server = startScriptServer(async (conn) => {
        const buf = new Uint8Array(256);
        for (let nth = 1;; nth++) {
          if (await conn.read(buf) === null) return;
          await writeAll(
            conn,
            enc.encode(`$${size}\r\n${body}\r\n:666\r\n`),
          );
        }
      });
      await using pool = new TcpPool({ port: server.port, max: 1 });
      let wrong = 0, protocol = 0;
      for (let nth = 1; nth <= 6; nth++) {
        try {
          const reply = await pool.exchange(
            enc.encode("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
            readReply,
            { timeout: 5_000 },
          );
          if (reply !== body) wrong++;
        } catch (error) {
          assert.ok(error instanceof ProtocolError, String(error));
          protocol++;
        }
      }
      assert.equal(wrong, 0, `${wrong} GETs got the stray :666 as their reply`);
      assert.equal(protocol, 6);
    },
  });
}

// -- F1. FrameReader in reply mode vs normal mode: the same values for any
// chunking, prefetches and shrinks; in reply mode, bytes that share the
// source's chunk with a value's last byte are buffered once it returns --

type Op =
  | { kind: "frame" | "frameView"; payload: Uint8Array }
  | { kind: "exact" | "exactView"; payload: Uint8Array }
  | { kind: "line"; payload: Uint8Array };

function pickSize(rand: () => number, bufferSize: number): number {
  const marks = [
    0,
    1,
    1023,
    1024,
    1025,
    (bufferSize >> 1) - 1,
    bufferSize >> 1,
    (bufferSize >> 1) + 1,
    bufferSize - 5,
    bufferSize - 4,
    bufferSize - 1,
    bufferSize,
    bufferSize + 1,
    16383,
    16384,
    16385,
    65535,
    65536,
    65537,
    Math.floor(rand() * 70_000),
    Math.floor(rand() * 100),
  ];
  return Math.max(0, marks[Math.floor(rand() * marks.length)]!);
}

function makeOps(rand: () => number, bufferSize: number, count: number): Op[] {
  const ops: Op[] = [];
  for (let i = 0; i < count; i++) {
    const size = pickSize(rand, bufferSize);
    const payload = new Uint8Array(size);
    for (let j = 0; j < size; j++) payload[j] = (i * 31 + j * 7) & 0xff;
    const r = rand();
    if (r < 0.3) ops.push({ kind: "frame", payload });
    else if (r < 0.4) ops.push({ kind: "frameView", payload });
    else if (r < 0.6) ops.push({ kind: "exact", payload });
    else if (r < 0.7) ops.push({ kind: "exactView", payload });
    else {
      // a line: printable bytes, no newline, under maxLineLength (65536)
      const n = Math.min(size, 60_000);
      const line = new Uint8Array(n);
      for (let j = 0; j < n; j++) line[j] = 0x41 + ((i + j) % 26);
      ops.push({ kind: "line", payload: line });
    }
  }
  return ops;
}

function encodeOps(ops: Op[]): { bytes: Uint8Array; ends: number[] } {
  const parts: Uint8Array[] = [];
  const ends: number[] = [];
  let off = 0;
  for (const op of ops) {
    let part: Uint8Array;
    if (op.kind === "frame" || op.kind === "frameView") {
      part = frame(op.payload);
    } else if (op.kind === "line") {
      part = concat(op.payload, new Uint8Array([0x0d, 0x0a]));
    } else part = op.payload;
    parts.push(part);
    off += part.length;
    ends.push(off);
  }
  return { bytes: concat(...parts), ends };
}

/** A source giving the stream in chunks cut at `cuts` (and by `p`'s size). */
function chunkedSource(bytes: Uint8Array, cuts: Set<number>) {
  let off = 0;
  return {
    reads: 0,
    read(p: Uint8Array): Promise<number | null> {
      this.reads++;
      if (off >= bytes.length) return Promise.resolve(null);
      let end = Math.min(bytes.length, off + p.length);
      for (let i = off + 1; i < end; i++) {
        if (cuts.has(i)) {
          end = i;
          break;
        }
      }
      p.set(bytes.subarray(off, end));
      const n = end - off;
      off = end;
      // Asynchronous, as a socket's read is (a macrotask now and then).
      return this.reads % 16 === 0
        ? new Promise((r) => setTimeout(() => r(n), 0))
        : Promise.resolve(n);
    },
    get offset() {
      return off;
    },
  };
}

async function runOps(
  reader: FrameReader,
  ops: Op[],
  reply: boolean,
  rand: () => number,
  onValue: (i: number) => void,
): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    readerHooks.replyMode(reader, reply);
    const action = rand();
    if (action < 0.15) reader.prefetch().catch(() => {});
    else if (action < 0.3) readerHooks.shrink(reader);
    let v: Uint8Array | string | null;
    switch (op.kind) {
      case "frame":
        v = await reader.readFrame();
        break;
      case "frameView":
        v = await reader.readFrameView();
        v = v && v.slice();
        break;
      case "exact":
        v = await reader.readExact(op.payload.length);
        break;
      case "exactView":
        v = await reader.readExactView(op.payload.length);
        v = v && v.slice();
        break;
      case "line":
        v = await reader.readLine();
        break;
    }
    readerHooks.replyMode(reader, false);
    onValue(i);
    out.push(
      v === null
        ? "null"
        : typeof v === "string"
        ? `L${v.length}:${v.slice(0, 8)}${v.slice(-8)}`
        : `B${v.length}:${Array.from(v.subarray(0, 4))}:${
          Array.from(v.subarray(-4))
        }:${v.reduce((a, b) => (a * 31 + b) >>> 0, 7)}`,
    );
  }
  return out;
}

function expected(ops: Op[]): string[] {
  return ops.map((op) => {
    if (op.kind === "line") {
      const v = new TextDecoder().decode(op.payload);
      return `L${v.length}:${v.slice(0, 8)}${v.slice(-8)}`;
    }
    const v = op.payload;
    // readExact(0) / an empty frame: empty, not null (bytes follow)
    return `B${v.length}:${Array.from(v.subarray(0, 4))}:${
      Array.from(v.subarray(-4))
    }:${v.reduce((a, b) => (a * 31 + b) >>> 0, 7)}`;
  });
}

const REPLAY_SEED = 0;

async function fuzzReplyMode(checkMates: boolean): Promise<void> {
  // To replay a run, set REPLAY_SEED to the seed it printed.
  const seed = REPLAY_SEED || (Date.now() & 0x7fffffff);
  console.log(`seed ${seed}`);
  const rand = mulberry32(seed);
  const problems: string[] = [];
  for (let round = 0; round < 60 && problems.length < 5; round++) {
    const bufferSize = [16, 64, 100, 1024, 4096, 8192][
      Math.floor(rand() * 6)
    ]!;
    const ops = makeOps(rand, bufferSize, 12);
    // A trailing op must not be an empty exact/frame read at EOF (that is
    // null by contract only for a non-empty read): end with a 1-byte frame.
    ops.push({ kind: "frame", payload: new Uint8Array([9]) });
    const { bytes, ends } = encodeOps(ops);
    const cuts = new Set<number>();
    for (const e of ends) if (rand() < 0.5) cuts.add(e);
    for (let k = 0; k < 8; k++) cuts.add(Math.floor(rand() * bytes.length));
    const want = expected(ops);
    for (const reply of [false, true]) {
      const src = chunkedSource(bytes, cuts);
      const reader = new FrameReader(src, {
        bufferSize,
        maxLineLength: 65536,
        maxFrameSize: 1 << 20,
      });
      const opRand = mulberry32(seed + round);
      let got: string[];
      try {
        got = await runOps(reader, ops, reply, opRand, (i) => {
          if (!reply || !checkMates) return;
          // Reply mode: if the source's offset is past this value's end,
          // the bytes after it were read: fine. If the value's end is not
          // a cut and the source stopped exactly at it, the next bytes
          // were in the same chunk but not read: the stray-byte check
          // cannot see them, and the reader must say it is unsure (the
          // last read filled its space), so the connection is not reused.
          const end = ends[i]!;
          // An exact read of 0 bytes reads nothing: there is no read whose
          // end could hide anything.
          const op = ops[i]!;
          const empty = op.payload.length === 0 &&
            (op.kind === "exact" || op.kind === "exactView");
          if (
            !empty && !cuts.has(end) && src.offset === end &&
            end < bytes.length &&
            reader.buffered === 0 && !readerHooks.unsure(reader)
          ) {
            problems.push(
              `seed ${seed} round ${round} buf ${bufferSize}: op ${i} (${
                ops[i]!.kind
              } ${
                ops[i]!.payload.length
              }) ended a read exactly at its last byte with more in the chunk`,
            );
          }
        });
      } catch (error) {
        problems.push(
          `seed ${seed} round ${round} buf ${bufferSize} reply ${reply}: ${error}`,
        );
        continue;
      }
      try {
        assert.deepEqual(got, want);
      } catch {
        const at = got.findIndex((g, i) => g !== want[i]);
        problems.push(
          `seed ${seed} round ${round} buf ${bufferSize} reply ${reply}: op ${at} ${
            ops[at]?.kind
          } got ${got[at]} want ${want[at]}`,
        );
      }
    }
  }
  assert.deepEqual(problems, []);
}

Deno.test("review: FrameReader fuzz, reply mode vs normal mode: the same values for any chunking, prefetch and shrink", async () => {
  await fuzzReplyMode(false);
});

Deno.test({
  name:
    "review: FrameReader fuzz, reply mode: bytes in the same source chunk as a value's last byte are buffered once it returns",
  fn: () => fuzzReplyMode(true),
});

/** Runs `ops` until the first null or error; errors are `E:<name>`. */
async function runUntilEnd(
  reader: FrameReader,
  ops: Op[],
  reply: boolean,
): Promise<string[]> {
  const out: string[] = [];
  const rand = mulberry32(out.length + 1);
  for (let i = 0; i < ops.length; i++) {
    try {
      out.push(...await runOps(reader, [ops[i]!], reply, rand, () => {}));
    } catch (error) {
      out.push(`E:${(error as Error).name}`);
      return out;
    }
    if (out[out.length - 1] === "null") return out;
  }
  return out;
}

Deno.test("review: FrameReader fuzz, a stream cut anywhere: reply mode gives the values before the cut, then null or UnexpectedEofError, never a partial value", async () => {
  const seed = REPLAY_SEED || (Date.now() & 0x7fffffff);
  console.log(`seed ${seed}`);
  const rand = mulberry32(seed);
  const problems: string[] = [];
  for (let round = 0; round < 40 && problems.length < 5; round++) {
    const bufferSize = [16, 64, 100, 1024, 8192][Math.floor(rand() * 5)]!;
    const ops = makeOps(rand, bufferSize, 8);
    const { bytes, ends } = encodeOps(ops);
    const trunc = rand() < 0.3
      ? ends[Math.floor(rand() * ends.length)]! // at a boundary
      : Math.floor(rand() * bytes.length);
    const cuts = new Set<number>();
    for (let k = 0; k < 6; k++) cuts.add(Math.floor(rand() * bytes.length));
    const want = expected(ops);
    const k = ends.findIndex((e) => e > trunc); // the op the cut falls in
    const results: string[][] = [];
    for (const reply of [false, true]) {
      const src = chunkedSource(bytes.subarray(0, trunc), cuts);
      const reader = new FrameReader(src, {
        bufferSize,
        maxLineLength: 65536,
        maxFrameSize: 1 << 20,
      });
      results.push(await runUntilEnd(reader, ops, reply));
    }
    const [normal, reply] = results as [string[], string[]];
    const where = `seed ${seed} round ${round} buf ${bufferSize} cut ${trunc}`;
    if (k < 0) {
      // The cut is at the very end: everything arrives.
      if (reply.join() !== want.join()) problems.push(`${where}: ${reply}`);
      continue;
    }
    for (let i = 0; i < k; i++) {
      if (reply[i] !== want[i]) {
        problems.push(`${where}: reply op ${i} ${ops[i]!.kind} ${reply[i]}`);
      }
    }
    const last = reply[k];
    const boundary = k === 0 ? trunc === 0 : trunc === ends[k - 1];
    const ok = last === "E:UnexpectedEofError" ||
      (boundary && (last === "null" || last === want[k]));
    if (!ok) {
      problems.push(
        `${where}: reply op ${k} (${ops[k]!.kind} ${
          ops[k]!.payload.length
        }) gave ${last}; normal gave ${normal[k]}`,
      );
    }
  }
  assert.deepEqual(problems, []);
});

// -- R4. TLS: NodeSocket.read returns one queued chunk at most, so bytes
// already received in the next chunk (the next TLS record) are not read
// with the reply's last bytes --

for (const payload of [16_380, 100]) {
  Deno.test({
    name:
      `review: TLS, an unsolicited frame in the same server write as a ${payload} B reply (ending ${
        payload === 16_380 ? "on" : "inside"
      } a TLS record) is never the next reply`,
    async fn() {
      const { cert, key } = await selfSignedCert();
      const listener = Deno.listenTls({
        hostname: "127.0.0.1",
        port: 0,
        cert,
        key,
      });
      const conns = new Set<Deno.Conn>();
      await using _server = acceptAll(listener, conns, async (conn) => {
        try {
          while (true) {
            const request = await readRequestFrame(conn);
            if (request === null) break;
            const id = new DataView(request.buffer).getUint32(0);
            await writeAll(
              conn,
              concat(frame(tagged(id, payload)), frame(tagged(0xdead, 16))),
            );
          }
        } catch {
          // the client went away
        }
        if (conns.delete(conn)) conn.close();
      });
      await using pool = new TcpPool({
        port: listener.addr.port,
        max: 1,
        tls: { caCerts: [cert] },
      });
      let wrong = 0, protocol = 0;
      for (let id = 1; id <= 6; id++) {
        try {
          const reply = await pool.request(tagged(id, 4), { timeout: 5_000 });
          if (
            new DataView(reply.buffer, reply.byteOffset).getUint32(0) !== id
          ) wrong++;
        } catch (error) {
          assert.ok(error instanceof ProtocolError, String(error));
          protocol++;
        }
      }
      assert.equal(wrong, 0, `${wrong} replies were the stray frame`);
      assert.equal(protocol, 6);
    },
  });
}

Deno.test({
  name:
    "review: TLS NodeSocket, bytes already received in a later chunk are read together with a reply's last bytes (reply mode sees them)",
  async fn() {
    // A stand-in for node:tls's socket: NodeSocket only listens to it.
    const fake = new EventEmitter() as EventEmitter & Record<string, unknown>;
    Object.assign(fake, {
      destroyed: false,
      writableEnded: false,
      remoteAddress: "127.0.0.1",
      remotePort: 1,
      localAddress: "127.0.0.1",
      localPort: 2,
      destroy() {
        fake.destroyed = true;
      },
    });
    const sock = new NodeSocket(fake as unknown as TLSSocket);
    const reader = new FrameReader(sock);
    // The reply (one TLS read's worth), then a stray frame in the next.
    fake.emit("data", frame(tagged(1, 100)));
    fake.emit("data", frame(tagged(0xdead, 16)));
    readerHooks.replyMode(reader, true);
    const reply = await reader.readFrame();
    readerHooks.replyMode(reader, false);
    assert.equal(reply?.length, 100);
    const queuedInSocket = sock.queued;
    sock.close();
    assert.ok(
      reader.buffered > 0,
      `the stray frame had arrived (${queuedInSocket} B queued in NodeSocket) but the exchange would see 0 B buffered`,
    );
  },
});

for (const transport of ["tcp", "tls"] as const) {
  Deno.test({
    name:
      `review: ${transport}, a stray frame that arrived while the exchange's read callback was busy is seen (never the next reply)`,
    // Passes for both: Deno's TLS layer delivered the two writes as one
    // chunk here, so R4 (the unit test above) did not show end to end.
    async fn() {
      const { cert, key } = await selfSignedCert();
      const listener = transport === "tls"
        ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key })
        : Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const conns = new Set<Deno.Conn>();
      await using _server = acceptAll(listener, conns, async (conn) => {
        try {
          while (true) {
            const request = await readRequestFrame(conn);
            if (request === null) break;
            const id = new DataView(request.buffer).getUint32(0);
            await writeAll(conn, frame(tagged(id, 100)));
            await new Promise((r) => setTimeout(r, 15));
            await writeAll(conn, frame(tagged(0xdead, 16)));
          }
        } catch {
          // the client went away
        }
        if (conns.delete(conn)) conn.close();
      });
      await using pool = new TcpPool({
        port: listener.addr.port,
        max: 1,
        ...(transport === "tls" ? { tls: { caCerts: [cert] } } : {}),
      });
      let wrong = 0, protocol = 0;
      for (let id = 1; id <= 4; id++) {
        const request = concat(
          new Uint8Array([0, 0, 0, 4]),
          tagged(id, 4),
        );
        try {
          const reply = await pool.exchange(request, async (r) => {
            // Busy elsewhere while the reply and the stray frame arrive.
            await new Promise((res) => setTimeout(res, 60));
            return await r.readFrame();
          }, { timeout: 5_000 });
          if (reply === null) throw new Error("EOF");
          if (
            new DataView(reply.buffer, reply.byteOffset).getUint32(0) !== id
          ) wrong++;
        } catch (error) {
          assert.ok(error instanceof ProtocolError, String(error));
          protocol++;
        }
      }
      assert.equal(wrong, 0, `${wrong} replies were the stray frame`);
      assert.equal(protocol, 4);
    },
  });
}

// -- Checked and sound: the retry rule is bounded --

Deno.test("review: a server that cuts every reply mid-way: an idempotent call on a reused connection is tried twice, never more", async () => {
  let requests = 0;
  await using server = startScriptServer(async (conn) => {
    const buf = new Uint8Array(64);
    while (await conn.read(buf) !== null) {
      requests++;
      await writeAll(conn, new TextEncoder().encode("hal"));
      return; // cut: EOF mid-line
    }
  });
  await using pool = new TcpPool({ port: server.port, max: 3 });
  // Three connections that count as reused (borrowed and released clean).
  const held = await Promise.all([1, 2, 3].map(() => pool.borrow()));
  for (const c of held) c.release();
  assert.equal(pool.stats.idle, 3);
  const results = await Promise.allSettled(
    [1, 2, 3].map(() =>
      pool.exchange(new TextEncoder().encode("GET\n"), (r) => r.readLine(), {
        timeout: 5_000,
      })
    ),
  );
  for (const r of results) {
    assert.equal(r.status, "rejected");
    assert.ok(
      (r as PromiseRejectedResult).reason instanceof ConnectionBrokenError,
    );
  }
  assert.equal(requests, 6, "each call: the reused connection, one fresh");
  assert.equal(pool.stats.retries, 3);
  await server.drained(2_000);
});

// -- Checked and sound: signals aborting at any point of an exchange --

Deno.test("review: exchanges whose signals abort at random points reject with the reason itself or get their own reply; nothing leaks", async () => {
  const seed = REPLAY_SEED || (Date.now() & 0x7fffffff);
  console.log(`seed ${seed}`);
  const rand = mulberry32(seed);
  const enc = new TextEncoder();
  // Echoes each line after 0-9 ms, in two writes 0-4 ms apart.
  await using server = startScriptServer(async (conn) => {
    const buf = new Uint8Array(256);
    let pending = "";
    const dec = new TextDecoder();
    let r = mulberry32(seed ^ 0x5a5a);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return;
      pending += dec.decode(buf.subarray(0, n));
      let nl;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        await new Promise((res) => setTimeout(res, Math.floor(r() * 10)));
        const reply = enc.encode(line + "\r\n");
        const cut = 1 + Math.floor(r() * (reply.length - 1));
        await writeAll(conn, reply.subarray(0, cut));
        await new Promise((res) => setTimeout(res, Math.floor(r() * 5)));
        await writeAll(conn, reply.subarray(cut));
      }
      r = mulberry32(seed ^ n);
    }
  });
  const pool = new TcpPool({ port: server.port, max: 4 });
  let ok = 0, aborted = 0;
  const calls = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  for (let i = 0; i < 80; i++) {
    const ctl = new AbortController();
    const reason = new Error(`abort ${i}`);
    const when = rand();
    if (when < 0.1) ctl.abort(reason);
    else if (when < 0.7) {
      const t = setTimeout(() => {
        timers.delete(t);
        ctl.abort(reason);
      }, Math.floor(rand() * 25));
      timers.add(t);
    }
    const token = `t${i}-${Math.floor(rand() * 1e9)}`;
    calls.push(
      pool.exchange(enc.encode(token + "\n"), (r) => r.readLine(), {
        signal: ctl.signal,
        timeout: 5_000,
      }).then((line) => {
        assert.equal(line, token, "a reply reached the wrong call");
        ok++;
      }, (error) => {
        assert.equal(error, reason, `call ${i}: ${error}`);
        aborted++;
      }),
    );
  }
  await Promise.all(calls);
  for (const t of timers) clearTimeout(t);
  assert.equal(ok + aborted, 80);
  assert.equal(pool.stats.inUse, 0);
  await pool.close();
  await server.drained(2_000);
});

// -- Checked and sound: a release while an exchange reads a reply's tail --

Deno.test("review: release() while an exchange waits for the last byte of a large reply (its tail read) rejects it typed and closes the socket", async () => {
  await using server = startScriptServer(async (conn) => {
    if (await readRequestFrame(conn) === null) return;
    const reply = frame(tagged(1, 100_000));
    await writeAll(conn, reply.subarray(0, reply.length - 1));
    const buf = new Uint8Array(16);
    while (await conn.read(buf) !== null) { /* until the client closes */ }
  });
  await using pool = new TcpPool({ port: server.port, max: 1 });
  const conn = await pool.borrow();
  const pending = conn.request(tagged(1, 4), { timeout: 5_000 });
  // Let the reply's bytes arrive: the exchange is then in its tail read.
  await new Promise((r) => setTimeout(r, 50));
  conn.release();
  await assert.rejects(pending, ConnectionBrokenError);
  assert.equal(pool.stats.destroyed.dirty, 1);
  await server.drained(2_000);
});

// -- R5. TLS: a reset mid-reply is a clean EOF (TCP: ConnectionBrokenError) --

for (const transport of ["tcp", "tls"] as const) {
  Deno.test({
    name:
      `review: ${transport}, a 3 MiB reply cut by a reset, read slowly: read() fails with ConnectionBrokenError, never a clean EOF`,
    // FAILS for tls (R5, also on 83d1d1b): Deno's node:tls reports the
    // reset as 'end' and 'close' with hadError false; read() returns null
    // after 64 KiB, as if the reply were complete.
    ignore: transport === "tls",
    async fn() {
      const { cert, key } = await selfSignedCert();
      const listener = transport === "tls"
        ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key })
        : Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const conns = new Set<Deno.Conn>();
      await using server = acceptAll(listener, conns, async (conn) => {
        try {
          // The request's first byte; the rest stays unread, so closing
          // makes the kernel send a reset.
          await conn.read(new Uint8Array(1));
          await writeAll(conn, new Uint8Array(3 << 20).fill(7));
        } catch {
          // the client went away
        }
        if (conns.delete(conn)) conn.close();
      });
      await using pool = new TcpPool({
        port: listener.addr.port,
        max: 1,
        ...(transport === "tls" ? { tls: { caCerts: [cert] } } : {}),
      });
      const conn = await pool.borrow();
      await conn.write(new Uint8Array(200_000).fill(1), { timeout: 5_000 });
      const buf = new Uint8Array(64 * 1024);
      let got = 0, outcome = "EOF";
      try {
        while (true) {
          const n = await conn.read(buf, { timeout: 10_000 });
          if (n === null) break;
          got += n;
          await new Promise((r) => setTimeout(r, 2)); // a slow reader
        }
      } catch (error) {
        outcome = (error as Error).name;
      }
      conn.release();
      await server.drained(2_000);
      assert.equal(
        outcome,
        "ConnectionBrokenError",
        `read ${got} of ${3 << 20} bytes, then ${outcome}`,
      );
    },
  });
}
