// Copyright 2026 the chanpool authors. MIT license.
// A small RESP2 Redis client on TcpPool, and a demo against a local
// redis-server started on a free port (skipped, with a note, when
// redis-server is not on the PATH).
//
// What the pool gives it: a connection the server closed while idle
// (`timeout N` in redis.conf) is evicted by the idle watch, or, if it dies
// just as a command goes out, the command is retried once on a fresh
// connection when it is idempotent; a command that times out takes its
// connection with it, so its late reply reaches nobody.
//
// Run: deno run --allow-net=127.0.0.1 --allow-run=redis-server examples/redis.ts

import {
  type FrameReader,
  type PooledConn,
  PoolExhaustedError,
  ProtocolError,
  TcpPool,
  type TcpPoolOptions,
} from "../mod.ts";

/** A RESP2 reply: `null` is nil; errors are thrown as RedisError. */
export type RedisValue = string | number | null | RedisValue[];

/** An error reply from the server (`-ERR ...`): the connection is fine. */
export class RedisError extends Error {
  /** The error's first word: `ERR`, `WRONGTYPE`, `MOVED`... */
  readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = "RedisError";
    this.code = message.split(" ", 1)[0] ?? "";
  }
}

/** Options of one command. */
export interface CommandOptions {
  /** Bounds the whole command (wait, dial, write, read, retry), in ms. */
  timeout?: number;
  signal?: AbortSignal;
  /**
   * Whether to retry once on a fresh connection if a reused one died before
   * any reply byte. Default: `true` for the commands in IDEMPOTENT.
   */
  idempotent?: boolean;
}

/** Commands that may run twice without harm (no counters, no lists). */
export const IDEMPOTENT: ReadonlySet<string> = new Set([
  "GET",
  "MGET",
  "SET",
  "DEL",
  "EXISTS",
  "PING",
  "ECHO",
  "STRLEN",
  "TTL",
  "PTTL",
  "TYPE",
  "HGET",
  "HGETALL",
  "SMEMBERS",
  "LRANGE",
]);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A command as a RESP2 array of bulk strings. */
export function encodeCommand(args: readonly (string | number)[]): Uint8Array {
  const parts = args.map((a) => encoder.encode(String(a)));
  let head = `*${parts.length}\r\n`;
  let size = 0;
  for (const p of parts) size += `$${p.length}\r\n`.length + p.length + 2;
  const out = new Uint8Array(head.length + size);
  let off = encoder.encodeInto(head, out).written;
  for (const p of parts) {
    head = `$${p.length}\r\n`;
    off += encoder.encodeInto(head, out.subarray(off)).written;
    out.set(p, off);
    off += p.length;
    out[off++] = 13;
    out[off++] = 10;
  }
  return out;
}

/** A value read where a reply should be; RedisError is a value here. */
type Reply = RedisValue | RedisError;

/**
 * Reads one RESP2 reply. Returns `null` at EOF before it (the pool turns
 * that into ConnectionBrokenError); throws ProtocolError on bytes that are
 * not RESP2 (the connection is then destroyed).
 */
export async function readReply(reader: FrameReader): Promise<Reply> {
  const line = await reader.readLine();
  if (line === null) return null;
  const rest = line.slice(1);
  switch (line[0]) {
    case "+":
      return rest;
    case "-":
      return new RedisError(rest);
    case ":":
      return integer(rest);
    case "$": {
      const n = integer(rest);
      if (n === -1) return null;
      const bytes = await reader.readExact(n + 2);
      if (bytes === null || bytes[n] !== 13 || bytes[n + 1] !== 10) {
        throw new ProtocolError(`Redis: bad bulk string of ${n} bytes`);
      }
      return decoder.decode(bytes.subarray(0, n));
    }
    case "*": {
      const n = integer(rest);
      if (n === -1) return null;
      const items: RedisValue[] = [];
      for (let i = 0; i < n; i++) {
        const item = await readReply(reader);
        // An error inside an array (EXEC) stays a value.
        items.push(item instanceof RedisError ? item.message : item);
      }
      return items;
    }
    default:
      throw new ProtocolError(
        `Redis: not a RESP2 reply: ${JSON.stringify(line.slice(0, 40))}`,
      );
  }
}

function integer(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) {
    throw new ProtocolError(`Redis: bad integer ${JSON.stringify(text)}`);
  }
  return n;
}

/** Options of a {@linkcode RedisClient}: TcpPool's, `port` defaulting to 6379. */
export type RedisOptions = Omit<TcpPoolOptions, "port" | "frame"> & {
  port?: number;
};

/** A pooled Redis client: one command per borrowed connection. */
export class RedisClient implements AsyncDisposable {
  readonly pool: TcpPool;

  constructor(options: RedisOptions = {}) {
    this.pool = new TcpPool({ ...options, port: options.port ?? 6379 });
  }

  /** Sends one command; resolves with its reply, rejects with RedisError. */
  async command(
    args: readonly (string | number)[],
    options: CommandOptions = {},
  ): Promise<RedisValue> {
    const name = String(args[0] ?? "").toUpperCase();
    const reply = await this.pool.exchange(encodeCommand(args), readReply, {
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      idempotent: options.idempotent ?? IDEMPOTENT.has(name),
    });
    if (reply instanceof RedisError) throw reply;
    return reply;
  }

  get(key: string, options?: CommandOptions): Promise<string | null> {
    return this.command(["GET", key], options) as Promise<string | null>;
  }

  async set(
    key: string,
    value: string | number,
    options?: CommandOptions,
  ): Promise<void> {
    await this.command(["SET", key, value], options);
  }

  del(...keys: string[]): Promise<number> {
    return this.command(["DEL", ...keys]) as Promise<number>;
  }

  incr(key: string, options?: CommandOptions): Promise<number> {
    return this.command(["INCR", key], options) as Promise<number>;
  }

  ping(options?: CommandOptions): Promise<string> {
    return this.command(["PING"], options) as Promise<string>;
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A heartbeat for TcpPool's `heartbeat` option: `PING`, expecting `PONG`. */
export async function redisPing(
  conn: PooledConn,
  signal: AbortSignal,
): Promise<boolean> {
  return await conn.exchange(encodeCommand(["PING"]), readReply, { signal }) ===
    "PONG";
}

// -- The demo --

async function freePort(): Promise<number> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  await Promise.resolve();
  return port;
}

function onPath(command: string): boolean {
  try {
    new Deno.Command(command, { args: ["--version"], stdout: "null" })
      .outputSync();
    return true;
  } catch {
    return false;
  }
}

async function demo(): Promise<void> {
  if (!onPath("redis-server")) {
    console.log("example:redis skipped: redis-server is not on the PATH");
    return;
  }
  const port = await freePort();
  // `timeout 1`: the server closes connections idle for a second, as many
  // production configurations do.
  const server = new Deno.Command("redis-server", {
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--timeout",
      "1",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await using redis = new RedisClient({ port, max: 4 });
    for (let i = 0;; i++) {
      try {
        await redis.ping({ timeout: 500 });
        break;
      } catch (error) {
        if (i > 50) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    console.log(`redis-server on 127.0.0.1:${port} (timeout 1)`);
    await redis.set("greeting", "hello");
    console.log(`GET greeting -> ${await redis.get("greeting")}`);
    console.log(`INCR visits -> ${await redis.incr("visits")}`);
    try {
      await redis.command(["INCR", "greeting"]);
    } catch (error) {
      console.log(`INCR greeting -> ${(error as RedisError).code} (typed)`);
    }

    // The seed's scenario: a quiet spell longer than the server's timeout,
    // then a burst. Every pooled connection was closed by the server; the
    // idle watch evicted them, so the burst dials fresh ones.
    await Promise.all(Array.from({ length: 4 }, (_, i) => redis.get(`k${i}`)));
    console.log("idle for 2.5 s (the server closes idle connections)...");
    await new Promise((r) => setTimeout(r, 2_500));
    let errors = 0;
    await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      try {
        await redis.set(`burst:${i}`, i, { timeout: 2_000 });
        if (await redis.get(`burst:${i}`) !== String(i)) errors++;
      } catch {
        errors++;
      }
    }));
    const s = redis.pool.stats;
    console.log(
      `burst of 400 commands: ${errors} errors; evicted while idle: ${s.destroyed.evicted}, retried: ${s.retries}`,
    );

    // Three answers to an exhausted pool (max 1, the connection held).
    for (const whenExhausted of ["wait", "overflow", "fail"] as const) {
      await using small = new RedisClient({ port, max: 1, whenExhausted });
      const held = await small.pool.borrow();
      setTimeout(() => held.release(), 50);
      const start = performance.now();
      try {
        await small.ping({ timeout: 1_000 });
        console.log(
          `whenExhausted "${whenExhausted}": PONG after ${
            Math.round(performance.now() - start)
          } ms (${
            whenExhausted === "wait"
              ? "queued for the held connection"
              : "on a short-lived extra connection"
          })`,
        );
      } catch (error) {
        console.log(
          `whenExhausted "${whenExhausted}": ${
            error instanceof PoolExhaustedError ? "PoolExhaustedError" : error
          } at once`,
        );
      }
      await new Promise((r) => setTimeout(r, 60));
    }
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
}

if (import.meta.main) await demo();
