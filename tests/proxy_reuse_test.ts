// Copyright 2026 the chanpool authors. MIT license.
// proxy({ reuse }) against upstreams that reply late, reply at length to a
// slow client, or keep per-connection state (redis-server): no session may
// see a byte of another's, none may lose one of its own, and an upstream
// that cannot be proven clean is destroyed. Upstream sockets are counted on
// the server side: every one accepted is closed once the proxy and the pool
// are.

import assert from "node:assert/strict";
import {
  type PooledConn,
  type ProxyServer,
  serveProxy,
  TcpPool,
} from "../mod.ts";
import { acceptAll, type Served } from "./_servers.ts";
import { HAVE_REDIS, startRedis } from "./_redis_server.ts";

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
 * one-character `tag` (no newline); `RESET` answers `+RESET\n`.
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
          const [cmd, tag, size, delay] = text.slice(0, nl).split(" ");
          text = text.slice(nl + 1);
          if (cmd === "RESET") {
            await writeAll(encoder.encode("+RESET\n"));
            continue;
          }
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

/** A reset for the command upstream: `RESET`, verified. */
function resetCommand(
  calls: { n: number },
): (conn: PooledConn, signal: AbortSignal) => Promise<unknown> {
  return (conn, signal) => {
    calls.n++;
    return conn.exchange(
      encoder.encode("RESET\n"),
      (reader) => reader.readLine(),
      { signal, verify: (_, line) => line === "+RESET" },
    );
  };
}

for (const withReset of [false, true]) {
  const name = withReset ? "reuse: { reset }" : "reuse: true";
  Deno.test(`proxy(${name}): a slow client gets all of a 16 MiB reply; the next session on that upstream gets none of it`, async () => {
    const upstream = commandUpstream();
    const pool = new TcpPool({ port: upstream.port, max: 1 });
    const errors: unknown[] = [];
    const resets = { n: 0 };
    const proxy = serveProxy({ port: 0 }, pool, {
      reuse: withReset ? { reset: resetCommand(resets) } : true,
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
    assert.equal(resets.n, withReset ? 2 : 0);
    assert.equal(proxy.stats.received, size + 1000);
    await proxy.close();
    await pool.close();
    assert.equal(upstream.accepted, 1);
    await upstream.drained(2_000);
    await upstream.stop();
  });
}

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

Deno.test("proxy(reuse: { reset }): a reply that comes after drainTime fails the reset; the upstream is destroyed and the next session gets none of it", async () => {
  const upstream = commandUpstream();
  const pool = new TcpPool({ port: upstream.port, max: 1 });
  const errors: unknown[] = [];
  const resets = { n: 0 };
  const proxy = serveProxy({ port: 0 }, pool, {
    reuse: { reset: resetCommand(resets) },
    drainTime: 50,
    onError: (e) => errors.push(e),
  });
  // A pipelines two requests; the second's reply comes 400 ms later, long
  // after A's session drained (its first reply answered its writes).
  const a = client(proxy, "SEND A 5 0\nSEND A 5 400\n", { halfCloseAt: 5 });
  await until("A's session started", () => proxy.stats.active === 1);
  // B waits for the one upstream meanwhile.
  const b = client(proxy, "SEND B 10 0\n", { halfCloseAt: 10 });
  const [aBytes, bBytes] = await Promise.all([a, b]);
  assert.equal(new TextDecoder().decode(aBytes), "AAAAA");
  assert.equal(count(bBytes, "A"), 0, "B got no byte of A's");
  assert.equal(new TextDecoder().decode(bBytes), "BBBBBBBBBB");
  await until("sessions ended", () => proxy.stats.active === 0);
  assert.deepEqual(errors, []);
  assert.equal(resets.n, 2);
  assert.equal(proxy.stats.resetFailures, 1, "A's reset read A's late reply");
  assert.equal(proxy.stats.reused, 1, "B's upstream went back");
  assert.equal(pool.stats.dials, 2, "B got a fresh upstream");
  await proxy.close();
  await pool.close();
  assert.equal(upstream.accepted, 2);
  await upstream.drained(2_000);
  await upstream.stop();
});

Deno.test("proxy(reuse: true): a reply that comes after drainTime while the upstream idles in the pool evicts it", async () => {
  const upstream = commandUpstream();
  const pool = new TcpPool({ port: upstream.port, max: 1 });
  const proxy = serveProxy({ port: 0 }, pool, { reuse: true, drainTime: 50 });
  const a = await client(proxy, "SEND A 5 0\nSEND A 5 400\n", {
    halfCloseAt: 5,
  });
  assert.equal(new TextDecoder().decode(a), "AAAAA");
  await until("A's session ended", () => proxy.stats.active === 0);
  assert.equal(proxy.stats.reused, 1, "A's upstream went back, idle");
  await until("the late reply evicted it", () => pool.stats.open === 0);
  const b = await client(proxy, "SEND B 10 0\n", { halfCloseAt: 10 });
  assert.equal(new TextDecoder().decode(b), "BBBBBBBBBB");
  assert.equal(pool.stats.dials, 2);
  await proxy.close();
  await pool.close();
  assert.equal(upstream.accepted, 2);
  await upstream.drained(2_000);
  await upstream.stop();
});

Deno.test("proxy(reuse: { reset }): reset returning false, throwing or timing out destroys the upstream; an unclean end is never reset", async () => {
  const upstream = commandUpstream();
  const pool = new TcpPool({ port: upstream.port, max: 1 });
  let mode: "false" | "throw" | "hang" | "ok" = "false";
  let calls = 0;
  const proxy = serveProxy({ port: 0 }, pool, {
    reuse: {
      timeout: 50,
      reset: async (conn, signal) => {
        calls++;
        if (mode === "false") return false;
        if (mode === "throw") throw new Error("boom");
        if (mode === "hang") return await new Promise(() => {}); // ignores signal
        return await resetCommand({ n: 0 })(conn, signal);
      },
    },
    drainTime: 50,
  });
  for (const m of ["false", "throw", "hang", "ok"] as const) {
    mode = m;
    const bytes = await client(proxy, "SEND X 3 0\n", { halfCloseAt: 3 });
    assert.equal(new TextDecoder().decode(bytes), "XXX", m);
    await until(`${m}: session ended`, () => proxy.stats.active === 0);
  }
  assert.equal(calls, 4);
  assert.equal(proxy.stats.resetFailures, 3);
  assert.equal(proxy.stats.reused, 1);
  assert.equal(pool.stats.dials, 4, "each failed reset destroyed its upstream");
  // A request never answered within drainTime: the end is not clean, so it
  // is destroyed without a reset.
  await client(proxy, "SEND Y 3 400\n");
  await until("session ended", () => proxy.stats.active === 0);
  assert.equal(calls, 4, "no reset on an unclean end");
  assert.equal(proxy.stats.reused, 1);
  await until("destroyed", () => pool.stats.open === 0);
  assert.equal(pool.stats.dials, 4, "Y used the upstream the reset kept");
  await proxy.close();
  await pool.close();
  assert.equal(upstream.accepted, 4);
  await upstream.drained(2_000);
  await upstream.stop();
});

/** RESP: one command. */
function resp(...args: string[]): string {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${encoder.encode(a).length}\r\n${a}\r\n`;
  return out;
}

Deno.test({
  name:
    "proxy(reuse: { reset }) over redis-server: SELECT 5 and an open MULTI do not reach the next session",
  ignore: !HAVE_REDIS,
  fn: async () => {
    await using redis = await startRedis();
    const pool = new TcpPool({ port: redis.port, max: 1 });
    const proxy = serveProxy({ port: 0 }, pool, {
      drainTime: 30,
      reuse: {
        reset: (conn, signal) =>
          conn.exchange(
            encoder.encode(resp("RESET")),
            (reader) => reader.readLine(),
            { signal, verify: (_, line) => line === "+RESET" },
          ),
      },
    });
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    // Session 1 selects db 5, sets a key there and leaves a MULTI open.
    const first = "+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n";
    const s1 = await client(
      proxy,
      resp("SELECT", "5") + resp("SET", "proxy-key", "a") + resp("MULTI") +
        resp("SET", "proxy-key", "b"),
      { halfCloseAt: first.length },
    );
    assert.equal(text(s1), first);
    // Session 2, on the same connection: db 0, no transaction.
    const s2 = await client(proxy, resp("GET", "proxy-key"), {
      halfCloseAt: 5,
    });
    assert.equal(text(s2), "$-1\r\n", "db 0, not in a MULTI");
    // Session 3: the queued SET was discarded.
    const third = "+OK\r\n$1\r\na\r\n";
    const s3 = await client(
      proxy,
      resp("SELECT", "5") + resp("GET", "proxy-key"),
      { halfCloseAt: third.length },
    );
    assert.equal(text(s3), third);
    await until("sessions ended", () => proxy.stats.active === 0);
    assert.equal(proxy.stats.errors, 0);
    assert.equal(proxy.stats.reused, 3);
    assert.equal(pool.stats.dials, 1, "one connection served all three");
    await proxy.close();
    await pool.close();
  },
});
