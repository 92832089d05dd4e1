// Copyright 2026 the chanpool authors. MIT license.
// Request/response over loopback to a framed echo server in another Deno
// process (bench/_echo_server.ts), in one `deno bench` run:
//
// - "TcpPool (max 8)": `pool.request(payload)` from every task.
// - "8 persistent conns (limit)": the hand-written limit: 8 `Deno.TcpConn`s
//   opened once, a free list and a queue of parked tasks, and the least
//   framing code that works (one write per request, a reused read buffer).
//   No timeouts, no health checks, no idle watch.
// - "dial per request": `Deno.connect`, one request, close.
// - "TcpPool pipeline fifo (max 8)": `pool.request(payload)` on a pool with
//   `pipeline: { match: "fifo" }`: up to 64 requests in flight per
//   connection, those placed in one turn written together.
//
// Groups cross the payload (4-byte length + 64 B, + 4 KiB) with the number of
// concurrent tasks (1, 8, 64); each iteration is 256 requests shared by the
// tasks, and every response is checked against its request.
//
// Run: deno bench --allow-net=127.0.0.1 --allow-run bench/tcp_bench.ts
// (--allow-run starts the server process; it exits with this one.)

import { TcpPool } from "../mod.ts";
import { spawnEchoServer } from "./_echo_server.ts";

const REQUESTS = 256;
const server = await spawnEchoServer();
const { hostname, port } = server;

function frame(size: number): { request: Uint8Array; payload: Uint8Array } {
  const payload = new Uint8Array(size).map((_, i) => i & 0xff);
  const request = new Uint8Array(4 + size);
  new DataView(request.buffer).setUint32(0, size);
  request.set(payload, 4);
  return { request, payload };
}

/** Reads one 4-byte length-prefixed frame from `conn` with a reused buffer. */
class MiniReader {
  #buf = new Uint8Array(16 * 1024);
  #start = 0;
  #end = 0;
  constructor(readonly conn: Deno.Conn) {}

  async readFrame(): Promise<Uint8Array> {
    await this.#fill(4);
    const view = this.#buf;
    const s = this.#start;
    const len = ((view[s]! << 24) | (view[s + 1]! << 16) | (view[s + 2]! << 8) |
      view[s + 3]!) >>> 0;
    await this.#fill(4 + len);
    const out = this.#buf.slice(this.#start + 4, this.#start + 4 + len);
    this.#start += 4 + len;
    return out;
  }

  async #fill(n: number): Promise<void> {
    while (this.#end - this.#start < n) {
      if (this.#buf.length - this.#start < n) {
        const bigger = new Uint8Array(Math.max(this.#buf.length, n * 2));
        bigger.set(this.#buf.subarray(this.#start, this.#end));
        this.#end -= this.#start;
        this.#start = 0;
        this.#buf = bigger;
      } else if (this.#buf.length - this.#end < n - (this.#end - this.#start)) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      const r = await this.conn.read(this.#buf.subarray(this.#end));
      if (r === null) throw new Error("unexpected EOF");
      this.#end += r;
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** 8 persistent connections shared through a free list: the limit. */
class HandWritten {
  readonly #free: { conn: Deno.TcpConn; reader: MiniReader }[] = [];
  readonly #parked:
    ((c: { conn: Deno.TcpConn; reader: MiniReader }) => void)[] = [];

  static async open(n: number): Promise<HandWritten> {
    const h = new HandWritten();
    for (let i = 0; i < n; i++) {
      const conn = await Deno.connect({ hostname, port });
      conn.setNoDelay(true);
      h.#free.push({ conn, reader: new MiniReader(conn) });
    }
    return h;
  }

  async request(bytes: Uint8Array): Promise<Uint8Array> {
    const c = this.#free.pop() ??
      await new Promise<{ conn: Deno.TcpConn; reader: MiniReader }>((r) =>
        this.#parked.push(r)
      );
    await writeAll(c.conn, bytes);
    const response = await c.reader.readFrame();
    const next = this.#parked.shift();
    if (next !== undefined) next(c);
    else this.#free.push(c);
    return response;
  }
}

async function dialPerRequest(bytes: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname, port });
  try {
    conn.setNoDelay(true);
    await writeAll(conn, bytes);
    return await new MiniReader(conn).readFrame();
  } finally {
    conn.close();
  }
}

const pool = new TcpPool({ hostname, port, max: 8 });
const handWritten = await HandWritten.open(8);
const pipelined = new TcpPool({
  hostname,
  port,
  max: 8,
  pipeline: { match: "fifo" },
});

// Warm the pools to 8 connections.
await Promise.all(
  Array.from({ length: 8 }, () => pool.request(new Uint8Array(1))),
);
await Promise.all(
  Array.from({ length: 8 * 64 }, () => pipelined.request(new Uint8Array(1))),
);

/** Runs REQUESTS requests from `tasks` concurrent tasks; checks each reply. */
async function run(
  tasks: number,
  size: number,
  send: (request: Uint8Array, payload: Uint8Array) => Promise<Uint8Array>,
  request: Uint8Array,
  payload: Uint8Array,
): Promise<void> {
  let left = REQUESTS;
  const worker = async () => {
    while (left > 0) {
      left--;
      const response = await send(request, payload);
      if (
        response.length !== size || response[size - 1] !== payload[size - 1]
      ) {
        throw new Error("wrong response");
      }
    }
  };
  await Promise.all(Array.from({ length: tasks }, worker));
}

for (const size of [64, 4096]) {
  const { request, payload } = frame(size);
  const label = size === 64 ? "64 B" : "4 KiB";
  for (const tasks of [1, 8, 64]) {
    const group = `${label}, ${tasks} task${tasks > 1 ? "s" : ""}`;
    Deno.bench({
      name: "TcpPool (max 8)",
      group,
      baseline: true,
      async fn() {
        await run(tasks, size, (_r, p) => pool.request(p), request, payload);
      },
    });
    Deno.bench({
      name: "8 persistent conns (limit)",
      group,
      async fn() {
        await run(tasks, size, (r) => handWritten.request(r), request, payload);
      },
    });
    Deno.bench({
      name: "TcpPool pipeline fifo (max 8)",
      group,
      async fn() {
        await run(
          tasks,
          size,
          (_r, p) => pipelined.request(p),
          request,
          payload,
        );
      },
    });
    Deno.bench({
      name: "dial per request",
      group,
      async fn() {
        await run(tasks, size, (r) => dialPerRequest(r), request, payload);
      },
    });
  }
}
