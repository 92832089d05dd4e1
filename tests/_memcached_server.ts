// Copyright 2026 the chanpool authors. MIT license.
// A real memcached for tests: started on a free 127.0.0.1 port, stopped
// (and restartable on the same port) by the test; `stats()` reads its
// counters on a connection of its own.

import {
  freePort,
  haveMemcached,
  spawnMemcached,
} from "../examples/memcached.ts";

/** Whether `memcached` can be run here. */
export const HAVE_MEMCACHED: boolean = haveMemcached();

/** A running memcached. */
export interface MemcachedServer extends AsyncDisposable {
  readonly port: number;
  /** Stops the server (`signal`, default SIGTERM) and waits for its exit. */
  stop(signal?: Deno.Signal): Promise<void>;
  /** Starts it again on the same port and waits until it answers. */
  start(): Promise<void>;
  /** Its `stats` counters (read on a connection of its own). */
  stats(): Promise<Map<string, string>>;
  /**
   * Connections open now and accepted ever, not counting the ones `stats`
   * made (the listener included in `open`, as memcached counts it).
   */
  connections(): Promise<{ open: number; accepted: number }>;
}

/** One raw command on a fresh connection: the reply up to `until`. */
async function raw(port: number, command: string, until: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(command));
    const buf = new Uint8Array(65536);
    let text = "";
    while (!text.endsWith(until)) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text;
  } finally {
    conn.close();
  }
}

/** Starts memcached (plus `args`) on a free port; waits until it answers. */
export async function startMemcached(
  args: string[] = [],
): Promise<MemcachedServer> {
  const port = await freePort();
  let child: Deno.ChildProcess | null = null;
  let statsConns = 0;
  const start = async () => {
    child = spawnMemcached(port, args);
    statsConns = 0;
    const end = performance.now() + 5_000;
    while (true) {
      try {
        if ((await raw(port, "mn\r\n", "\r\n")).startsWith("MN")) {
          statsConns++;
          return;
        }
      } catch {
        // not listening yet
      }
      if (performance.now() > end) throw new Error("memcached not up");
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    const c = child;
    if (c === null) return;
    child = null;
    try {
      c.kill(signal);
    } catch {
      // exited already
    }
    await c.status;
  };
  const stats = async () => {
    const text = await raw(port, "stats\r\n", "END\r\n");
    statsConns++;
    const out = new Map<string, string>();
    for (const line of text.split("\r\n")) {
      const [tag, name, value] = line.split(" ");
      if (tag === "STAT" && name !== undefined && value !== undefined) {
        out.set(name, value);
      }
    }
    return out;
  };
  await start();
  return {
    port,
    stop,
    start,
    stats,
    async connections() {
      const s = await stats();
      return {
        // Minus the stats connection itself.
        open: Number(s.get("curr_connections")) - 1,
        accepted: Number(s.get("total_connections")) - statsConns,
      };
    },
    [Symbol.asyncDispose]: () => stop(),
  };
}
