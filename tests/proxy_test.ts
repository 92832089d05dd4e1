// Copyright 2026 the chanpool authors. MIT license.
// proxy.ts between real sockets on 127.0.0.1: bytes conserved both ways,
// upstream resets, client aborts, a slowloris, an upstream that is down,
// and reused upstreams that must never carry one session's bytes into
// another.

import assert from "node:assert/strict";
import {
  ConnectionBrokenError,
  DialError,
  proxy,
  type ProxyListener,
  type ProxyServer,
  type ProxyStats,
  serveProxy,
  TcpPool,
  TimeoutError,
} from "../mod.ts";
import { mulberry32 } from "./_random.ts";
import { acceptAll } from "./_servers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How the echo upstream treats each connection. */
interface EchoMode {
  /** Close abruptly once this many bytes were read. */
  cutAfter?: number;
  /** Close (after echoing) with this probability per read, seeded. */
  closeProbability?: number;
  seed?: number;
}

/**
 * An echo server: echoes every byte; at EOF it half-closes back (so a
 * proxied client sees EOF once everything came back).
 */
function echoUpstream(port = 0, mode: EchoMode = {}) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const conns = new Set<Deno.Conn>();
  const random = mulberry32(mode.seed ?? 1);
  const serve = async (conn: Deno.Conn) => {
    const buf = new Uint8Array(64 * 1024);
    let total = 0;
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) {
          await conn.closeWrite();
          while (await conn.read(buf) !== null) { /* until the peer closes */ }
          break;
        }
        total += n;
        if (mode.cutAfter !== undefined && total >= mode.cutAfter) break;
        let off = 0;
        while (off < n) off += await conn.write(buf.subarray(off, n));
        if (mode.closeProbability && random() < mode.closeProbability) break;
      }
    } catch {
      // the peer went away
    }
    if (conns.delete(conn)) conn.close();
  };
  return acceptAll(listener, conns, serve);
}

/**
 * One client session: writes `payload`, half-closes, reads until EOF (or
 * until the proxy closes). `abortAfter`: close abruptly after writing that
 * many bytes, reading nothing.
 */
async function session(
  proxy: ProxyServer,
  payload: Uint8Array,
  abortAfter?: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reading = (async () => {
    if (abortAfter !== undefined) return;
    const buf = new Uint8Array(64 * 1024);
    try {
      let n;
      while ((n = await conn.read(buf)) !== null) {
        chunks.push(buf.slice(0, n));
        size += n;
      }
    } catch {
      // reset by the proxy
    }
  })();
  try {
    const end = abortAfter ?? payload.length;
    let off = 0;
    while (off < end) {
      off += await conn.write(
        payload.subarray(off, Math.min(end, off + 65536)),
      );
    }
    if (abortAfter === undefined) await conn.closeWrite();
  } catch {
    // the proxy closed us
  }
  await reading;
  conn.close();
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

function randomBytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const random = mulberry32(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = random() * 256;
  return out;
}

async function until(what: string, predicate: () => boolean, ms = 3_000) {
  const end = performance.now() + ms;
  while (!predicate()) {
    if (performance.now() > end) throw new Error(`Timed out: ${what}`);
    await sleep(5);
  }
}

Deno.test("proxy: 50 concurrent sessions of 1 MiB each way, bytes conserved exactly", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port, max: 50, minIdle: 4 });
  await using proxy = serveProxy({ port: 0 }, pool);
  const payloads = Array.from(
    { length: 50 },
    (_, i) => randomBytes(1 << 20, i),
  );
  const replies = await Promise.all(payloads.map((p) => session(proxy, p)));
  for (let i = 0; i < 50; i++) {
    assert.equal(replies[i]!.length, 1 << 20, `session ${i} length`);
    assert.equal(await sha256(replies[i]!), await sha256(payloads[i]!));
  }
  await until("sessions ended", () => proxy.stats.active === 0);
  const s = proxy.stats;
  assert.equal(s.sessions, 50);
  assert.equal(s.errors, 0);
  assert.equal(s.sent, 50 << 20);
  assert.equal(s.received, 50 << 20);
  assert.equal(s.reused, 0, "reuse is off by default");
  // Every used upstream is closed; only the warm minIdle set stays open.
  await until("used upstreams closed", () => upstream.open === pool.stats.open);
  assert.equal(pool.stats.inUse, 0);
  assert.ok(pool.stats.open <= 4);
});

Deno.test("proxy: an upstream reset mid-stream ends the session with a typed error and closes the client; the proxy keeps serving", async () => {
  await using upstream = echoUpstream(0, { cutAfter: 100_000 });
  await using pool = new TcpPool({ port: upstream.port, max: 4 });
  const errors: unknown[] = [];
  await using proxy = serveProxy({ port: 0 }, pool, {
    onError: (e) => errors.push(e),
  });
  const reply = await session(proxy, randomBytes(1 << 20, 7));
  assert.ok(reply.length < 1 << 20, "the client got less, then EOF");
  await until("the session ended", () => proxy.stats.active === 0);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof ConnectionBrokenError, String(errors[0]));
  // Still serving: a small session fits under the cut.
  const small = randomBytes(1_000, 8);
  assert.deepEqual(await session(proxy, small), small);
  assert.equal(pool.stats.inUse, 0);
});

Deno.test("proxy: a client that aborts mid-stream ends its session; the upstream is closed, nothing is left pending", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port, max: 4 });
  await using proxy = serveProxy({ port: 0 }, pool);
  await session(proxy, randomBytes(1 << 20, 9), 512 * 1024);
  await until("the session ended", () => proxy.stats.active === 0);
  await until("the upstream closed", () => upstream.open === 0);
  assert.equal(pool.stats.open, 0);
  assert.equal(proxy.stats.sessions, 1);
});

Deno.test("proxy: a slowloris client is cut by idleTimeout", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port, max: 4 });
  const errors: unknown[] = [];
  await using proxy = serveProxy({ port: 0 }, pool, {
    idleTimeout: 100,
    onError: (e) => errors.push(e),
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  const start = performance.now();
  await conn.write(new Uint8Array([1]));
  const buf = new Uint8Array(16);
  let got = 0;
  try {
    let n;
    while ((n = await conn.read(buf)) !== null) got += n;
  } catch {
    // reset
  }
  const took = performance.now() - start;
  conn.close();
  assert.equal(got, 1, "the one byte came back, then the cut");
  assert.ok(took >= 90 && took < 1_000, `cut after ${Math.round(took)} ms`);
  await until("the session ended", () => proxy.stats.active === 0);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof TimeoutError, String(errors[0]));
});

Deno.test("proxy: idleTimeout counts from the last byte moved, not from when its timer was last armed", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port, max: 4 });
  const idle = 200;
  const errors: unknown[] = [];
  await using proxy = serveProxy({ port: 0 }, pool, {
    idleTimeout: idle,
    onError: (e) => errors.push(e),
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  const buf = new Uint8Array(16);
  // One byte starts the session, a second one moves an eighth of
  // idleTimeout later (the old clock re-armed at most every quarter, so it
  // ignored that one and cut after three quarters of quiet); then nothing.
  await conn.write(new Uint8Array([1]));
  assert.equal(await conn.read(buf), 1);
  await sleep(idle / 8);
  await conn.write(new Uint8Array([2]));
  assert.equal(await conn.read(buf), 1);
  const last = performance.now();
  let more = 0;
  try {
    let n;
    while ((n = await conn.read(buf)) !== null) more += n;
  } catch {
    // reset
  }
  const quiet = performance.now() - last;
  conn.close();
  assert.equal(more, 0);
  // 5 ms of slack for the timer's rounding; the cut may come a tick late.
  assert.ok(
    quiet >= idle - 5 && quiet < 5 * idle,
    `cut after ${Math.round(quiet)} ms of quiet (idleTimeout ${idle} ms)`,
  );
  await until("the session ended", () => proxy.stats.active === 0);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof TimeoutError, String(errors[0]));
});

Deno.test("proxy: sessions that end any way hand their copy buffers on; a session that takes one gets only its own bytes", async () => {
  const seed = 0x19b0;
  console.log(`seed ${seed}`);
  const random = mulberry32(seed);
  await using upstream = echoUpstream(0, { closeProbability: 0.05, seed });
  await using pool = new TcpPool({ port: upstream.port, max: 8 });
  await using proxy = serveProxy({ port: 0 }, pool, { onError: () => {} });
  let whole = 0;
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < 240 && !failed) {
      const i = next++;
      const size = 1 + Math.floor(random() * 200 * 1024);
      const payload = randomBytes(size, seed + i);
      // A quarter of the clients abort mid-stream; the upstream cuts some
      // sessions short. Whatever comes back must be a prefix of our bytes.
      const abortAfter = random() < 0.25
        ? Math.floor(random() * size)
        : undefined;
      // Bytes mixed up between sessions can leave one waiting for ever.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const reply = await Promise.race([
        session(proxy, payload, abortAfter),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`session ${i} did not end in 10 s`)),
            10_000,
          );
        }),
      ]).finally(() => clearTimeout(timer)).catch((error) => {
        failed = true;
        throw error;
      });
      // (node:assert's diff of two large arrays would take minutes)
      const wrong = reply.findIndex((byte, at) => byte !== payload[at]);
      failed ||= reply.length > size || wrong !== -1;
      assert.ok(reply.length <= size, `session ${i}: more bytes than sent`);
      assert.equal(wrong, -1, `session ${i}: byte ${wrong} is not its own`);
      if (abortAfter === undefined && reply.length === size) whole++;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  assert.ok(whole > 0, "some sessions came back whole");
  await until("the sessions ended", () => proxy.stats.active === 0);
});

Deno.test("proxy: upstream down gives the session a DialError and closes the client; service resumes when it is back", async () => {
  const first = echoUpstream();
  const port = first.port;
  await first.stop();
  await using pool = new TcpPool({ port, max: 4, connectTimeout: 500 });
  const errors: unknown[] = [];
  await using proxy = serveProxy({ port: 0 }, pool, {
    onError: (e) => errors.push(e),
  });
  const reply = await session(proxy, randomBytes(100, 1));
  assert.equal(reply.length, 0);
  await until("the session ended", () => proxy.stats.active === 0);
  assert.ok(errors[0] instanceof DialError, String(errors[0]));
  await using again = echoUpstream(port);
  const payload = randomBytes(100, 2);
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) {
    const r = await session(proxy, payload);
    ok = r.length === payload.length;
    if (!ok) await sleep(20); // dials may be paused for a moment
  }
  assert.ok(ok, "served again");
  assert.ok(again.accepted >= 1);
});

Deno.test("proxy({ reuse: true }): 2 000 sessions with random early closes on both sides never see another session's bytes", async () => {
  const seed = 0x9e0c;
  const random = mulberry32(seed);
  await using upstream = echoUpstream(0, { closeProbability: 0.05, seed });
  await using pool = new TcpPool({ port: upstream.port, max: 8 });
  const errors: unknown[] = [];
  await using proxy = serveProxy({ port: 0 }, pool, {
    reuse: true,
    drainTime: 10,
    onError: (e) => errors.push(e),
  });
  let next = 0;
  let foreign = 0;
  let complete = 0;
  const total = 2_000;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < total) {
      const i = next++;
      const token = new TextEncoder().encode(
        `<${i}:${crypto.randomUUID()}>`.repeat(1 + Math.floor(random() * 3)),
      );
      const abort = random() < 0.1
        ? Math.floor(random() * token.length)
        : undefined;
      const reply = await session(proxy, token, abort);
      // Whatever came back must be a prefix of what this session sent.
      const own = reply.every((b, k) => b === token[k]);
      if (!own) foreign++;
      else if (reply.length === token.length) complete++;
    }
  }));
  await until("sessions ended", () => proxy.stats.active === 0, 5_000);
  const s = proxy.stats;
  console.log(
    `proxy reuse seed ${seed}: ${complete} complete, ${foreign} with foreign bytes; ${s.reused} upstreams reused, ${pool.stats.dials} dials, ${s.errors} session errors`,
  );
  assert.equal(foreign, 0);
  assert.ok(s.reused > 500, `${s.reused} reused`);
  assert.ok(complete > 1_000);
  for (const e of errors) {
    assert.ok(
      e instanceof ConnectionBrokenError || e instanceof TimeoutError,
      String(e),
    );
  }
});

Deno.test("proxy(): bad options throw TypeError/RangeError naming the option", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port });
  assert.throws(
    () => serveProxy({ port: 0 }, pool, { idleTimeout: -1 }),
    /RangeError: Cannot proxy: idleTimeout must be a non-negative number of milliseconds, received -1/,
  );
  assert.throws(
    () => serveProxy({ port: 0 }, pool, { reuse: "yes" as never }),
    /TypeError: Cannot proxy: reuse must be a boolean or an object with a reset function, received "yes"/,
  );
  assert.throws(
    () => serveProxy({ port: 0 }, pool, { reuse: {} as never }),
    /TypeError: Cannot proxy: reuse.reset must be a function, received undefined/,
  );
  assert.throws(
    () =>
      serveProxy({ port: 0 }, pool, {
        reuse: { reset: () => true, timeout: -5 },
      }),
    /RangeError: Cannot proxy: reuse.timeout must be a non-negative number of milliseconds, received -5/,
  );
  assert.throws(
    () => serveProxy({ port: 0 }, pool, { onError: 1 as never }),
    /TypeError: Cannot serve proxy: onError must be a function/,
  );
});

Deno.test("proxy: sessions on warm upstreams (their idle watch's read pending) get every byte, in order", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port, max: 4, minIdle: 4 });
  await until("4 warm upstreams", () => pool.stats.idle === 4);
  await sleep(10); // their idle watches are armed
  await using proxy = serveProxy({ port: 0 }, pool);
  for (let i = 0; i < 4; i++) {
    const payload = randomBytes(256 * 1024, 100 + i);
    const reply = await session(proxy, payload);
    assert.equal(await sha256(reply), await sha256(payload), `session ${i}`);
  }
  assert.equal(proxy.stats.errors, 0);
});

Deno.test("proxy(): an already-aborted signal rejects with its reason before borrowing anything; so do serveProxy's sessions", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port, minIdle: 1 });
  await until("a warm upstream", () => pool.stats.idle === 1);
  const reason = new Error("stopped");
  const signal = AbortSignal.abort(reason);
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  const accepted = await listener.accept();
  await assert.rejects(
    proxy(accepted, pool, { signal, idleTimeout: 300 }),
    (e) => e === reason,
  );
  assert.equal(await client.read(new Uint8Array(16)), null, "client closed");
  client.close();
  assert.equal(pool.stats.borrows, 0);
  const errors: unknown[] = [];
  await using server = serveProxy({ port: 0 }, pool, {
    signal,
    idleTimeout: 300,
    onError: (e) => errors.push(e),
  });
  const reply = await session(server, randomBytes(10, 1));
  assert.equal(reply.length, 0);
  await until("the session ended", () => server.stats.active === 0);
  assert.equal(errors.length, 1);
  assert.equal(errors[0], reason);
  assert.equal(pool.stats.borrows, 0);
  assert.equal(pool.stats.idle, 1, "the warm upstream is untouched");
});

/** An accept error as Deno raises it when out of file descriptors. */
function emfile(): Error {
  return Object.assign(new Error("Too many open files (os error 24)"), {
    code: "EMFILE",
  });
}

/**
 * A listener on 127.0.0.1 whose first `failures` accepts (all, with
 * `Infinity`) throw an EMFILE error.
 */
function failingListener(failures: number): ProxyListener & { calls: number } {
  const inner = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let left = failures;
  return {
    calls: 0,
    addr: inner.addr,
    accept() {
      this.calls++;
      if (left-- > 0) return Promise.reject(emfile());
      return inner.accept();
    },
    close: () => inner.close(),
  };
}

Deno.test("serveProxy(listener): failed accepts go to onError with a null address, are counted, and accepting goes on after pauses of 5, 10, 20... ms", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port, max: 4 });
  const reports: { error: unknown; remote: unknown; at: number }[] = [];
  const listener = failingListener(4);
  await using server = serveProxy(listener, pool, {
    onError: (error, remote) =>
      reports.push({ error, remote, at: performance.now() }),
  });
  assert.equal(server.addr.port, listener.addr.port);
  const payload = randomBytes(1_000, 3);
  assert.deepEqual(await session(server, payload), payload);
  assert.equal(reports.length, 4);
  for (const r of reports) {
    assert.equal(r.remote, null);
    assert.equal((r.error as { code?: string }).code, "EMFILE");
  }
  const gaps = reports.slice(1).map((r, i) => r.at - reports[i]!.at);
  console.log(`pauses: ${gaps.map((g) => g.toFixed(1)).join(", ")} ms`);
  // Timers never fire early (1 ms for rounding); they may fire late.
  assert.ok(gaps[0]! >= 4 && gaps[1]! >= 9 && gaps[2]! >= 19, String(gaps));
  await until("the session ended", () => server.stats.active === 0);
  const s = server.stats;
  assert.equal(s.acceptErrors, 4);
  assert.equal(s.errors, 0);
  assert.equal(s.sessions, 1);
});

Deno.test("serveProxy(listener): close() during the pause after a failed accept ends at once and closes the listener", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port });
  const listener = failingListener(Infinity);
  const server = serveProxy(listener, pool);
  await until("a few failures", () => server.stats.acceptErrors >= 3);
  const start = performance.now();
  await server.close();
  assert.ok(performance.now() - start < 500);
  const calls = listener.calls;
  await sleep(50);
  assert.equal(listener.calls, calls, "no accept after close()");
  // The listener is closed: its port refuses connections.
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    Deno.errors.ConnectionRefused,
  );
});

const HAVE_PRLIMIT = (() => {
  try {
    return new Deno.Command("prlimit", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
})();

/** One client with a deadline: sends `payload`, half-closes, reads to EOF. */
async function clientWithin(
  port: number,
  payload: Uint8Array,
  ms: number,
): Promise<number> {
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return -1; // refused: the backlog was full
  }
  const deadline = setTimeout(() => conn.close(), ms);
  let got = 0;
  try {
    await conn.write(payload);
    await conn.closeWrite();
    const buf = new Uint8Array(1024);
    let n;
    while ((n = await conn.read(buf)) !== null) got += n;
  } catch {
    // closed by the proxy, or by the deadline
  } finally {
    clearTimeout(deadline);
    try {
      conn.close();
    } catch {
      // closed by the deadline
    }
  }
  return got;
}

Deno.test({
  name:
    "serveProxy under ulimit -n 40: after a burst of 60 clients (EMFILE on accept) it still accepts and serves",
  ignore: !HAVE_PRLIMIT,
  fn: async () => {
    await using upstream = echoUpstream();
    // The child starts with the usual limit (a cold start, its module
    // cache empty, opens more files than 40), and is held to 40 once it
    // listens: `prlimit --pid` below.
    const child = new Deno.Command("prlimit", {
      args: [
        "--nofile=1024:1024",
        Deno.execPath(),
        "run",
        "--allow-net=127.0.0.1",
        new URL("./_proxy_emfile_child.ts", import.meta.url).pathname,
        String(upstream.port),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    const line = async () => {
      while (!out.includes("\n")) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`the child exited; it wrote ${out}`);
        out += value;
      }
      const nl = out.indexOf("\n");
      const first = out.slice(0, nl);
      out = out.slice(nl + 1);
      return first;
    };
    let exited = false;
    try {
      const port = Number(await line());
      const limited = await new Deno.Command("prlimit", {
        args: ["--pid", String(child.pid), "--nofile=40:1024"],
      }).output();
      assert.ok(limited.success, "prlimit --pid");
      const payload = randomBytes(100, 60);
      const burst = await Promise.all(
        Array.from({ length: 60 }, () => clientWithin(port, payload, 5_000)),
      );
      const served = burst.filter((n) => n === payload.length).length;
      // The pool pauses its dials for a moment after failed ones (those
      // sessions fail fast with a DialError): try again for up to 5 s.
      let after = 0;
      const end = performance.now() + 5_000;
      while (after !== payload.length && performance.now() < end) {
        after = await clientWithin(port, payload, end - performance.now());
        if (after !== payload.length) await sleep(50);
      }
      // Back to the usual limit before the child shuts down: Deno's
      // runtime opens descriptors of its own on the way out (its signal
      // handling panics on EMFILE), which is not what this test is about.
      // Only the soft limit was lowered, so raising it needs no privilege.
      const restored = await new Deno.Command("prlimit", {
        args: ["--pid", String(child.pid), "--nofile=1024:1024"],
      }).output();
      assert.ok(restored.success, "prlimit --pid (restore)");
      await child.stdin.close();
      const stats = JSON.parse(await line()) as ProxyStats;
      await child.status;
      exited = true;
      console.log(
        `burst: ${served} of 60 served; ${stats.acceptErrors} failed accepts, ${stats.errors} session errors`,
      );
      assert.equal(after, payload.length, "served after the burst");
      assert.ok(stats.acceptErrors >= 1, "the burst ran out of descriptors");
      await upstream.drained(2_000);
    } finally {
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch {
          // exited already
        }
        await child.status;
      }
      await lines.cancel();
    }
  },
});

Deno.test("serveProxy().close(): the sessions it ends are not errors: counted in stats.closed, never reported to onError, their bytes counted", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port, max: 2 });
  const errors: unknown[] = [];
  const server = serveProxy({ port: 0 }, pool, {
    onError: (e) => errors.push(e),
  });
  const port = server.addr.port;
  // Two live sessions that moved 5 bytes each way, and a third that waits
  // for an upstream (both are in use).
  const clients: Deno.Conn[] = [];
  const buf = new Uint8Array(16);
  for (let i = 0; i < 2; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    clients.push(conn);
    await conn.write(new TextEncoder().encode("hello"));
    let got = 0;
    while (got < 5) got += (await conn.read(buf.subarray(got)))!;
  }
  clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  await until("a session waits", () => pool.stats.waiting === 1);
  await server.close();
  for (const conn of clients) {
    assert.equal(await conn.read(buf), null, "the client was closed");
    conn.close();
  }
  assert.deepEqual(errors, []);
  const { sessions, closed, errors: failed, active, sent, received } =
    server.stats;
  assert.deepEqual(
    { sessions, closed, failed, active, sent, received },
    { sessions: 3, closed: 3, failed: 0, active: 0, sent: 10, received: 10 },
  );
  // Every used upstream is closed (a dial started for the waiting session
  // may land idle in the pool).
  assert.equal(pool.stats.inUse, 0);
  await until("used upstreams closed", () => upstream.open === pool.stats.open);
});

Deno.test("serveProxy({ reuse: { reset } }).close() during a reset: the session is closed, not a reset failure", async () => {
  await using upstream = echoUpstream();
  await using pool = new TcpPool({ port: upstream.port });
  const errors: unknown[] = [];
  let resetting = false;
  const server = serveProxy({ port: 0 }, pool, {
    drainTime: 10,
    reuse: {
      // Never settles on its own: only its signal ends it.
      reset: (_conn, signal) =>
        new Promise((_, reject) => {
          resetting = true;
          signal.addEventListener("abort", () => reject(signal.reason));
        }),
      timeout: Infinity,
    },
    onError: (e) => errors.push(e),
  });
  const reply = session(server, new TextEncoder().encode("hi"));
  await until("the reset runs", () => resetting);
  assert.equal(new TextDecoder().decode(await reply), "hi");
  await server.close();
  assert.deepEqual(errors, []);
  const { closed, resetFailures, reused, errors: failed } = server.stats;
  assert.deepEqual(
    { closed, resetFailures, reused, failed },
    { closed: 1, resetFailures: 0, reused: 0, failed: 0 },
  );
  assert.equal(pool.stats.open, 0, "the upstream was destroyed");
});
