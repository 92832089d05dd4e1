// Copyright 2026 the chanpool authors. MIT license.
// proxy({ reuse }) against upstreams that reply at length to a slow client:
// no session may see a byte of another's, none may lose one of its own. Upstream sockets are counted on
// the server side: every one accepted is closed once the proxy and the pool
// are.

import assert from "node:assert/strict";
import { type ProxyServer, serveProxy, TcpPool } from "../mod.ts";
import { acceptAll, type Served } from "./_servers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const encoder = new TextEncoder();

async function until(what: string, predicate: () => boolean, ms = 5_000) {
  const end = performance.now() + ms;
  while (!predicate()) {
    if (performance.now() > end) throw new Error(`Timed out: ${what}`);
    await sleep(5);
  }
}

/**
 * An upstream speaking lines, answered one at a time, in order:
 * `SEND <tag> <n> <delay>` answers, `delay` ms later, with `n` bytes of the
 * one-character `tag` (no newline).
 */
function commandUpstream(): Served {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const serve = async (conn: Deno.Conn) => {
    const buf = new Uint8Array(4096);
    const decoder = new TextDecoder();
    let text = "";
    const writeAll = async (p: Uint8Array) => {
      let off = 0;
      while (off < p.length) off += await conn.write(p.subarray(off));
    };
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += decoder.decode(buf.subarray(0, n), { stream: true });
        let nl;
        while ((nl = text.indexOf("\n")) !== -1) {
          const [, tag, size, delay] = text.slice(0, nl).split(" ");
          text = text.slice(nl + 1);
          if (Number(delay) > 0) await sleep(Number(delay));
          const block = new Uint8Array(1 << 20).fill(tag!.charCodeAt(0));
          for (let left = Number(size); left > 0; left -= block.length) {
            await writeAll(block.subarray(0, Math.min(left, block.length)));
          }
        }
      }
    } catch {
      // the proxy went away, or stop() closed it
    }
    if (conns.delete(conn)) conn.close();
  };
  return acceptAll(listener, conns, serve);
}

/** How a test client behaves. */
interface ClientPlan {
  /** Half-close once this many bytes came back (default: at once). */
  halfCloseAt?: number;
  /** Pause reading for `pauseMs` each time this many more bytes came. */
  pauseEvery?: number;
  pauseMs?: number;
  /** Called once, at the first pause. */
  onPause?: (() => void) | undefined;
}

/**
 * One client: writes `request`, half-closes as planned, reads until EOF.
 * Returns every byte it received; a deadline closes it so that no test can
 * hang.
 */
async function client(
  proxy: ProxyServer,
  request: string,
  plan: ClientPlan = {},
): Promise<Uint8Array> {
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  const deadline = setTimeout(() => conn.close(), 20_000);
  const chunks: Uint8Array[] = [];
  let size = 0;
  let halfClosed = false;
  const halfClose = async () => {
    if (halfClosed) return;
    halfClosed = true;
    await conn.closeWrite();
  };
  try {
    await conn.write(encoder.encode(request));
    if (plan.halfCloseAt === undefined) await halfClose();
    const buf = new Uint8Array(64 * 1024);
    let nextPause = plan.pauseEvery ?? Infinity;
    let n;
    while ((n = await conn.read(buf)) !== null) {
      chunks.push(buf.slice(0, n));
      size += n;
      if (plan.halfCloseAt !== undefined && size >= plan.halfCloseAt) {
        await halfClose();
      }
      if (size >= nextPause) {
        nextPause += plan.pauseEvery!;
        plan.onPause?.();
        plan.onPause = undefined;
        await sleep(plan.pauseMs ?? 0);
      }
    }
  } catch {
    // closed by the deadline or reset
  } finally {
    clearTimeout(deadline);
    try {
      conn.close();
    } catch {
      // closed by the deadline
    }
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** How many bytes of `bytes` are the character `tag`. */
function count(bytes: Uint8Array, tag: string): number {
  const code = tag.charCodeAt(0);
  let n = 0;
  for (const b of bytes) if (b === code) n++;
  return n;
}

Deno.test("proxy(reuse: true): a slow client gets all of a 16 MiB reply; the next session on that upstream gets none of it", async () => {
  const upstream = commandUpstream();
  const pool = new TcpPool({ port: upstream.port, max: 1 });
  const errors: unknown[] = [];
  const proxy = serveProxy({ port: 0 }, pool, {
    reuse: true,
    // Generous against scheduling stalls, shorter than A's pauses.
    drainTime: 150,
    // Longer than any one pause, shorter than the whole slow read.
    idleTimeout: 600,
    onError: (e) => errors.push(e),
  });
  const size = 16 << 20;
  let b: Promise<Uint8Array> | undefined;
  // A half-closes once its reply is flowing, then reads slowly: 300 ms
  // pauses every 4 MiB, while the proxy's writes to it are blocked.
  // Meanwhile B asks for the one upstream: it waits for A's to come back.
  const a = await client(proxy, `SEND A ${size} 0\n`, {
    halfCloseAt: 1,
    pauseEvery: 4 << 20,
    pauseMs: 300,
    onPause: () => {
      b = client(proxy, "SEND B 1000 0\n", { halfCloseAt: 1000 });
    },
  });
  assert.ok(b !== undefined, "B started during A's reply");
  const bBytes = await b;
  console.log(
    `A: ${a.length} bytes (${
      count(a, "A")
    } its own); B: ${bBytes.length} bytes (${count(bBytes, "A")} of A's)`,
  );
  assert.equal(a.length, size, "A lost no byte");
  assert.equal(count(a, "A"), size);
  assert.equal(count(bBytes, "A"), 0, "B got no byte of A's");
  assert.equal(bBytes.length, 1000);
  assert.equal(count(bBytes, "B"), 1000);
  await until("sessions ended", () => proxy.stats.active === 0);
  assert.deepEqual(errors, []);
  assert.equal(pool.stats.dials, 1, "B used A's upstream");
  assert.equal(proxy.stats.reused, 2);
  assert.equal(proxy.stats.received, size + 1000);
  await proxy.close();
  await pool.close();
  assert.equal(upstream.accepted, 1);
  await upstream.drained(2_000);
  await upstream.stop();
});

Deno.test("proxy(reuse: true): a client that stops reading a long reply is cut by idleTimeout; its upstream is destroyed", async () => {
  const upstream = commandUpstream();
  const pool = new TcpPool({ port: upstream.port, max: 1 });
  const errors: unknown[] = [];
  const proxy = serveProxy({ port: 0 }, pool, {
    reuse: true,
    drainTime: 300, // only a stall that long could end the session cleanly
    idleTimeout: 100,
    onError: (e) => errors.push(e),
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  await conn.write(encoder.encode(`SEND C ${16 << 20} 0\n`));
  await conn.closeWrite();
  // C reads nothing: the proxy's writes to it block once the socket
  // buffers are full, and no write completes for idleTimeout.
  await until("the session was cut", () => proxy.stats.active === 0);
  conn.close();
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as Error).name, "TimeoutError", String(errors[0]));
  assert.equal(proxy.stats.reused, 0);
  await until("the upstream closed", () => pool.stats.open === 0);
  await proxy.close();
  await pool.close();
  assert.equal(upstream.accepted, 1);
  await upstream.drained(2_000);
  await upstream.stop();
});
