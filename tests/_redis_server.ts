// Copyright 2026 the chanpool authors. MIT license.
// A real redis-server for tests: started on a free 127.0.0.1 port with no
// persistence, stopped (and restartable on the same port) by the test.

import { freePort, spawnRedisServer } from "../examples/redis.ts";

/** Whether `redis-server` can be run here. */
export const HAVE_REDIS: boolean = (() => {
  try {
    return new Deno.Command("redis-server", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
})();

/** A running redis-server. */
export interface RedisServer extends AsyncDisposable {
  readonly port: number;
  /** Stops the server (SIGTERM) and waits for the process to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port and waits until it answers. */
  start(): Promise<void>;
  /** Sends one command on a connection of its own; returns the raw reply. */
  send(...args: string[]): Promise<string>;
}

/** One command on a fresh connection: its reply's first chunk, as text. */
async function sendOnce(port: number, args: string[]): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const enc = new TextEncoder();
    let out = `*${args.length}\r\n`;
    for (const a of args) out += `$${enc.encode(a).length}\r\n${a}\r\n`;
    await conn.write(enc.encode(out));
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    conn.close();
  }
}

/**
 * Starts redis-server with `--save "" --appendonly no` plus `args` on a free
 * port, and waits until it answers PING.
 */
export async function startRedis(args: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  let child: Deno.ChildProcess | null = null;
  const start = async () => {
    child = spawnRedisServer(port, args);
    const end = performance.now() + 5_000;
    while (true) {
      try {
        if ((await sendOnce(port, ["PING"])).startsWith("+PONG")) return;
      } catch {
        // not listening yet
      }
      if (performance.now() > end) throw new Error("redis-server not up");
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const stop = async () => {
    const c = child;
    if (c === null) return;
    child = null;
    try {
      c.kill("SIGTERM");
    } catch {
      // exited already
    }
    await c.status;
  };
  await start();
  return {
    port,
    stop,
    start,
    send: (...a: string[]) => sendOnce(port, a),
    [Symbol.asyncDispose]: stop,
  };
}
