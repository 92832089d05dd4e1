// Copyright 2026 the chanpool authors. MIT license.
// One rule for every timeout (a limit on how long something may wait,
// take or last): 0 and Infinity both mean "no limit". Each row runs one
// scenario three times: with 0, with Infinity, and with a short limit. 0
// and Infinity must both see no limit; the short limit must be seen (so
// that the scenario can tell). Options that take a clock run on a fake
// one, moved far past any limit; the proxy and the Redis example run on
// real time, with short waits.
//
// Then the internal deadline that can reach 0: TcpPool.exchange's retry
// borrow, when the call's deadline passed during the first attempt, fails
// at once with a TimeoutError and dials nothing. And the durations that are
// not timeouts: the proxy's drainTime (0: the session ends as soon as the
// last byte was delivered).

import assert from "node:assert/strict";
import {
  DialError,
  Pool,
  PoolTimeoutError,
  serveProxy,
  TcpPool,
  TimeoutError,
} from "../mod.ts";
import { RedisClient } from "../examples/redis.ts";
import { FakeClock } from "./_clock.ts";
import { startLineServer, startSilentServer } from "./_servers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const enc = (text: string) => new TextEncoder().encode(text);

/** Far past any limit a row sets, on a fake clock. */
const LONG = 10_000_000;
/** The short limit each row checks the scenario can see, in ms. */
const SHORT = 30;
/** How long a real-time scenario waits before it ends the wait, in ms. */
const WAIT = 150;

/** A promise whose outcome can be looked at without awaiting it. */
function track<T>(promise: Promise<T>) {
  const t = {
    promise,
    settled: false,
    error: undefined as unknown,
    value: undefined as T | undefined,
  };
  promise.then((value) => {
    t.settled = true;
    t.value = value;
  }, (error) => {
    t.settled = true;
    t.error = error;
  });
  return t;
}

interface TimeoutRow {
  /** The option, as the README names it. */
  option: string;
  /** What the scenario reports with no limit, and with a short one. */
  unlimited: string;
  limited: string;
  run: (timeout: number) => Promise<string>;
}

async function check(t: Deno.TestContext, rows: TimeoutRow[]): Promise<void> {
  for (const row of rows) {
    await t.step(row.option, async () => {
      const seen = {
        zero: await row.run(0),
        infinity: await row.run(Infinity),
        short: await row.run(SHORT),
      };
      assert.deepEqual(seen, {
        zero: row.unlimited,
        infinity: row.unlimited,
        short: row.limited,
      });
    });
  }
}

// -- Pool (fake clock) --

/** A borrow that waits for the one resource, held, for LONG fake ms. */
async function poolWait(
  borrow: (pool: Pool<object>) => Promise<unknown>,
  acquireTimeout?: number,
): Promise<string> {
  const clock = new FakeClock();
  const pool = new Pool(() => ({}), {
    max: 1,
    clock,
    ...(acquireTimeout === undefined ? {} : { acquireTimeout }),
  });
  const held = await pool.borrow();
  const waiting = track(borrow(pool));
  await clock.advance(LONG);
  const seen = !waiting.settled
    ? "still waiting"
    : waiting.error instanceof PoolTimeoutError
    ? "timed out"
    : `other: ${waiting.error}`;
  held.release();
  await waiting.promise.catch(() => {});
  await pool.close({ force: true });
  return seen;
}

Deno.test("timeouts: 0 and Infinity mean no limit for every Pool timeout", async (t) => {
  await check(t, [
    {
      option: "Pool acquireTimeout",
      unlimited: "still waiting",
      limited: "timed out",
      run: (v) => poolWait((pool) => pool.borrow(), v),
    },
    {
      option: "Pool borrow({ timeout })",
      unlimited: "still waiting",
      limited: "timed out",
      run: (v) => poolWait((pool) => pool.borrow({ timeout: v })),
    },
    {
      option: "Pool use(fn, { timeout })",
      unlimited: "still waiting",
      limited: "timed out",
      run: (v) => poolWait((pool) => pool.use(() => {}, { timeout: v })),
    },
    {
      option: "Pool connectTimeout",
      unlimited: "still dialing",
      limited: "dial timed out",
      run: async (v) => {
        const clock = new FakeClock();
        let land: ((r: object) => void) | undefined;
        const pool = new Pool<object>(
          (signal) =>
            new Promise((resolve, reject) => {
              land = resolve;
              signal.addEventListener("abort", () => reject(signal.reason));
            }),
          { connectTimeout: v, acquireTimeout: Infinity, clock },
        );
        const borrow = track(pool.borrow());
        await clock.advance(LONG);
        const seen = !borrow.settled
          ? "still dialing"
          : borrow.error instanceof DialError
          ? "dial timed out"
          : `other: ${borrow.error}`;
        land?.({});
        await borrow.promise.then((l) => l.release(), () => {});
        await pool.close();
        return seen;
      },
    },
    {
      option: "Pool connectTimeout (validate)",
      unlimited: "validated",
      limited: "check timed out",
      run: async (v) => {
        const clock = new FakeClock();
        let pass: (() => void) | undefined;
        let validating = false;
        const pool = new Pool(() => ({}), {
          connectTimeout: v,
          clock,
          validate: (_r, signal) =>
            validating
              ? new Promise<boolean>((resolve, reject) => {
                pass = () => resolve(true);
                signal.addEventListener("abort", () => reject(signal.reason));
              })
              : true,
        });
        (await pool.borrow()).release();
        validating = true;
        const borrow = track(pool.borrow());
        await clock.advance(LONG);
        pass?.();
        await clock.advance(0);
        const lease = await borrow.promise;
        const seen = pool.stats.destroyed.invalid === 0
          ? "validated"
          : "check timed out";
        lease.release();
        await pool.close();
        return seen;
      },
    },
    ...(["idleTimeout", "maxLifetime"] as const).map((option) => ({
      option: `Pool ${option}`,
      unlimited: "kept",
      limited: "closed",
      run: async (v: number) => {
        const clock = new FakeClock();
        const pool = new Pool(() => ({}), {
          clock,
          idleTimeout: Infinity,
          maxLifetime: Infinity,
          [option]: v,
        });
        (await pool.borrow()).release();
        await clock.advance(LONG);
        const seen = pool.stats.open === 1 ? "kept" : "closed";
        await pool.close();
        return seen;
      },
    })),
    {
      option: "Pool leakTimeout",
      unlimited: "not reported",
      limited: "reported",
      run: async (v) => {
        const clock = new FakeClock();
        let reports = 0;
        const pool = new Pool(() => ({}), {
          clock,
          leakTimeout: v,
          onLeak: () => void reports++,
        });
        const lease = await pool.borrow();
        await clock.advance(LONG);
        lease.release();
        await pool.close();
        return reports === 0 ? "not reported" : "reported";
      },
    },
  ]);
});

// -- TcpPool, PooledConn (fake clock for the pool and every I/O deadline) --

/** A line server that answers every line but `hold`, which it never answers. */
function holdServer() {
  return startLineServer(({ line }) => line === "hold" ? {} : { reply: line });
}

/** A call that waits for a reply that never comes, for LONG fake ms. */
async function tcpWait(
  call: (pool: TcpPool, clock: FakeClock) => Promise<unknown>,
): Promise<string> {
  await using server = holdServer();
  const clock = new FakeClock();
  const pool = new TcpPool({ port: server.port, clock });
  // A connection idle in the pool first (the call takes it at once).
  await pool.exchange(enc("warm\n"), (r) => r.readLine());
  const waiting = track(call(pool, clock));
  await sleep(20); // the request is on the server
  await clock.advance(LONG);
  const seen = !waiting.settled
    ? "still waiting"
    : waiting.error instanceof TimeoutError
    ? "timed out"
    : `other: ${waiting.error}`;
  await pool.close({ force: true });
  await waiting.promise.catch(() => {});
  return seen;
}

/** A call on a borrowed connection that waits for a reply that never comes. */
function connWait(
  call: (conn: Awaited<ReturnType<TcpPool["borrow"]>>) => Promise<unknown>,
): Promise<string> {
  return tcpWait(async (pool) => {
    const conn = await pool.borrow();
    try {
      await conn.write(enc("hold\n"));
      return await call(conn);
    } finally {
      conn.release();
    }
  });
}

Deno.test("timeouts: 0 and Infinity mean no limit for every TcpPool and PooledConn timeout", async (t) => {
  await check(t, [
    {
      option: "TcpPool exchange({ timeout })",
      unlimited: "still waiting",
      limited: "timed out",
      run: (v) =>
        tcpWait((pool) =>
          pool.exchange(enc("hold\n"), (r) => r.readLine(), { timeout: v })
        ),
    },
    {
      option: "TcpPool request({ timeout })",
      unlimited: "still waiting",
      limited: "timed out",
      // A frame without a newline: the line server never answers it.
      run: (v) => tcpWait((pool) => pool.request(enc("x"), { timeout: v })),
    },
    {
      option: "PooledConn readLine({ timeout }) (every call's limits)",
      unlimited: "still waiting",
      limited: "timed out",
      run: (v) => connWait((conn) => conn.readLine({ timeout: v })),
    },
    {
      option: "PooledConn read({ timeout })",
      unlimited: "still waiting",
      limited: "timed out",
      run: (v) =>
        connWait((conn) => conn.read(new Uint8Array(8), { timeout: v })),
    },
    {
      option: "PooledConn exchange({ timeout })",
      unlimited: "still waiting",
      limited: "timed out",
      run: (v) =>
        tcpWait(async (pool) => {
          await using conn = await pool.borrow();
          return await conn.exchange(enc("hold\n"), (r) => r.readLine(), {
            timeout: v,
          });
        }),
    },
    {
      option: "TcpPool connectTimeout (a TLS handshake that never ends)",
      unlimited: "still dialing",
      limited: "dial timed out",
      run: async (v) => {
        await using server = startSilentServer();
        const clock = new FakeClock();
        const pool = new TcpPool({
          port: server.port,
          tls: true,
          connectTimeout: v,
          acquireTimeout: Infinity,
          clock,
        });
        const borrow = track(pool.borrow());
        await sleep(20); // connected; the handshake hangs
        await clock.advance(LONG);
        const seen = !borrow.settled
          ? "still dialing"
          : borrow.error instanceof DialError
          ? "dial timed out"
          : `other: ${borrow.error}`;
        await pool.close();
        await borrow.promise.then((c) => c.release(), () => {});
        await server.drained(2_000);
        return seen;
      },
    },
  ]);
});

Deno.test("timeouts: TcpPool.exchange whose deadline passed during a first attempt that broke fails at once with TimeoutError and dials nothing more", async () => {
  // The second request on a connection: the server closes it, after 30 ms.
  await using server = startLineServer(({ line }) =>
    line === "second" ? { close: true, delay: 30 } : { reply: line }
  );
  const clock = new FakeClock();
  await using pool = new TcpPool({ port: server.port, clock });
  await pool.exchange(enc("first\n"), (r) => r.readLine());
  assert.equal(pool.stats.dials, 1);
  const call = track(
    pool.exchange(enc("second\n"), (r) => r.readLine(), { timeout: 100 }),
  );
  // Time passes beyond the deadline, but no timer of the clock runs (a
  // stalled event loop): then the connection breaks, and the call would
  // retry on a fresh connection with no time left.
  clock.stall(200);
  for (let i = 0; i < 100 && !call.settled; i++) await sleep(5);
  assert.ok(call.settled, "the call is still pending");
  assert.ok(call.error instanceof TimeoutError, String(call.error));
  assert.ok(!(call.error instanceof PoolTimeoutError));
  assert.equal((call.error as TimeoutError).timeout, 100);
  assert.equal(pool.stats.dials, 1, "a fresh connection was dialed");
  assert.equal(server.accepted, 1);
});

// -- proxy (real time) --

/** An upstream echoing lines, a pool on it and a proxy in front. */
async function proxied(
  poolOptions: { max?: number; acquireTimeout?: number },
  options: Parameters<typeof serveProxy>[2],
  session: (port: number, pool: TcpPool) => Promise<void>,
): Promise<{ errors: unknown[]; stats: ReturnType<typeof statsOf> }> {
  await using upstream = startLineServer();
  await using pool = new TcpPool({ port: upstream.port, ...poolOptions });
  const errors: unknown[] = [];
  const server = serveProxy({ port: 0 }, pool, {
    ...options,
    onError: (e) => errors.push(e),
  });
  try {
    await session(server.addr.port, pool);
    for (let i = 0; i < 200 && server.stats.active > 0; i++) await sleep(5);
  } finally {
    await server.close();
  }
  return { errors, stats: statsOf(server) };
}

function statsOf(server: ReturnType<typeof serveProxy>) {
  const { sessions, errors, reused, resetFailures } = server.stats;
  return { sessions, errors, reused, resetFailures };
}

/** A client: optionally silent for `pause` ms, then one line, echoed. */
async function client(port: number, pause = 0): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    if (pause > 0) await sleep(pause);
    await conn.write(enc("a\n")).catch(() => {});
    await conn.closeWrite().catch(() => {});
    return await new Response(conn.readable).text().catch(() => "");
  } finally {
    try {
      conn.close();
    } catch {
      // closed with its readable
    }
  }
}

Deno.test("timeouts: 0 and Infinity mean no limit for every proxy timeout", async (t) => {
  await check(t, [
    {
      option: "proxy idleTimeout",
      unlimited: "served",
      limited: "cut",
      run: async (v) => {
        let reply = "";
        const { errors } = await proxied(
          {},
          { idleTimeout: v },
          async (port) => {
            reply = await client(port, WAIT);
          },
        );
        return reply === "a\n" && errors.length === 0
          ? "served"
          : errors[0] instanceof TimeoutError
          ? "cut"
          : `other: ${errors[0]}`;
      },
    },
    {
      option: "proxy connectTimeout",
      unlimited: "served",
      limited: "timed out",
      run: async (v) => {
        let reply = "";
        // The pool's own acquireTimeout is short: connectTimeout overrides it.
        const { errors } = await proxied(
          { max: 1, acquireTimeout: 20 },
          { connectTimeout: v },
          async (port, pool) => {
            const held = await pool.borrow();
            setTimeout(() => held.release(), WAIT);
            reply = await client(port);
          },
        );
        return reply === "a\n" && errors.length === 0
          ? "served"
          : errors[0] instanceof TimeoutError
          ? "timed out"
          : `other: ${errors[0]}`;
      },
    },
    {
      option: "proxy reuse.timeout",
      unlimited: "reused",
      limited: "reset failed",
      run: async (v) => {
        const reset = (_conn: unknown, signal: AbortSignal) =>
          new Promise<boolean>((resolve, reject) => {
            const timer = setTimeout(() => resolve(true), WAIT);
            signal.addEventListener("abort", () => {
              clearTimeout(timer);
              reject(signal.reason);
            });
          });
        const { stats } = await proxied(
          {},
          { reuse: { reset, timeout: v }, drainTime: 10 },
          async (port) => void await client(port),
        );
        return stats.reused === 1
          ? "reused"
          : stats.resetFailures === 1
          ? "reset failed"
          : `other: ${JSON.stringify(stats)}`;
      },
    },
  ]);
});

// -- The Redis example (real time, a fake server) --

/**
 * A fake Redis: answers PING with +PONG, RESET with +RESET, SUBSCRIBE with
 * its confirmations, each after `delay[command]` ms; counts connections.
 */
function fakeRedis(delay: Record<string, number>) {
  const replies: Record<string, (args: string[]) => string> = {
    PING: () => "+PONG\r\n",
    RESET: () => "+RESET\r\n",
    SUBSCRIBE: (args) =>
      args.slice(1).map((ch, i) =>
        `*3\r\n$9\r\nsubscribe\r\n$${ch.length}\r\n${ch}\r\n:${i + 1}\r\n`
      ).join(""),
  };
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let accepted = 0;
  const tasks: Promise<void>[] = [];
  const serve = async (conn: Deno.Conn) => {
    let text = "";
    const buf = new Uint8Array(4096);
    let writes = Promise.resolve();
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
        // Whole commands: *N, then N bulk strings.
        while (true) {
          const lines = text.split("\r\n");
          const count = Number(lines[0]?.slice(1));
          if (!(count > 0) || lines.length < 1 + 2 * count + 1) break;
          const args = [];
          for (let i = 0; i < count; i++) args.push(lines[2 + 2 * i]!);
          text = lines.slice(1 + 2 * count).join("\r\n");
          const name = args[0]!.toUpperCase();
          const reply = (replies[name] ?? (() => "+OK\r\n"))(args);
          const send = () => {
            writes = writes.then(() => conn.write(enc(reply))).then(
              () => {},
              () => {},
            );
          };
          const ms = delay[name] ?? 0;
          if (ms === 0) send();
          else {
            const timer = setTimeout(() => {
              timers.delete(timer);
              send();
            }, ms);
            timers.add(timer);
          }
        }
      }
    } catch {
      // closed
    } finally {
      await writes;
      if (conns.delete(conn)) conn.close();
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        conns.add(conn);
        tasks.push(serve(conn));
      }
    } catch {
      // closed
    }
  })();
  return {
    port: listener.addr.port,
    get accepted() {
      return accepted;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      for (const timer of timers) clearTimeout(timer);
      for (const conn of conns) conn.close();
      conns.clear();
      await Promise.all(tasks);
    },
  };
}

/** "ok", "timed out" (a TimeoutError), or what else happened. */
function outcome(error: unknown): string {
  if (error === undefined) return "ok";
  if (error instanceof TimeoutError) return "timed out";
  return `other: ${error}`;
}

Deno.test("timeouts: 0 and Infinity mean no limit for every timeout of the Redis example", async (t) => {
  const slowPing = async (
    pipeline: boolean,
    run: (redis: RedisClient) => Promise<unknown>,
  ) => {
    await using server = fakeRedis({ PING: WAIT });
    await using redis = new RedisClient({ port: server.port, pipeline });
    try {
      await run(redis);
      return "ok";
    } catch (error) {
      return outcome(error);
    }
  };
  await check(t, [
    {
      option: "RedisClient command({ timeout }) (pipelined)",
      unlimited: "ok",
      limited: "timed out",
      run: (v) => slowPing(true, (redis) => redis.ping({ timeout: v })),
    },
    {
      option: "RedisClient command({ timeout }) (pipeline: false)",
      unlimited: "ok",
      limited: "timed out",
      run: (v) => slowPing(false, (redis) => redis.ping({ timeout: v })),
    },
    {
      option: "RedisSession command({ timeout })",
      unlimited: "ok",
      limited: "timed out",
      run: (v) =>
        slowPing(true, (redis) => redis.session((s) => s.ping({ timeout: v }))),
    },
    {
      option: "RedisClient session({ timeout })",
      unlimited: "ok",
      limited: "timed out",
      run: async (v) => {
        await using server = fakeRedis({});
        await using redis = new RedisClient({ port: server.port, max: 1 });
        const first = redis.session(() => sleep(WAIT));
        await sleep(10);
        let seen = "ok";
        try {
          await redis.session(() => {}, { timeout: v });
        } catch (error) {
          seen = outcome(error);
        }
        await first;
        return seen;
      },
    },
    {
      option: "RedisClient session({ resetTimeout })",
      unlimited: "given back",
      limited: "destroyed",
      run: async (v) => {
        await using server = fakeRedis({ RESET: WAIT });
        await using redis = new RedisClient({ port: server.port });
        await redis.session(() => {}, { resetTimeout: v });
        const { idle, open } = redis.pool.stats;
        return idle === 1
          ? "given back"
          : open === 0
          ? "destroyed"
          : `other: ${JSON.stringify(redis.pool.stats)}`;
      },
    },
    {
      option: "RedisClient subscribe({ timeout })",
      unlimited: "ok",
      limited: "timed out",
      run: async (v) => {
        await using server = fakeRedis({ SUBSCRIBE: WAIT });
        await using redis = new RedisClient({ port: server.port });
        try {
          const sub = await redis.subscribe("news", { timeout: v });
          await sub.close();
          return "ok";
        } catch (error) {
          return outcome(error);
        }
      },
    },
  ]);
});

// -- Durations that are not timeouts --

Deno.test("proxy drainTime: 0 ends a reused session as soon as the last byte was delivered", async () => {
  await using upstream = startLineServer();
  await using pool = new TcpPool({ port: upstream.port });
  const errors: unknown[] = [];
  await using server = serveProxy({ port: 0 }, pool, {
    reuse: true,
    drainTime: 0,
    idleTimeout: 2_000, // (else a session that never ends lasts a minute)
    onError: (e) => errors.push(e),
  });
  const started = performance.now();
  assert.equal(await client(server.addr.port), "a\n");
  for (let i = 0; i < 200 && server.stats.active > 0; i++) await sleep(5);
  const took = performance.now() - started;
  assert.deepEqual(errors, []);
  assert.equal(server.stats.active, 0, `still active after ${took} ms`);
  assert.equal(server.stats.reused, 1);
  assert.equal(pool.stats.idle, 1);
});

Deno.test("proxy drainTime: Infinity never ends a session on the drain", async () => {
  await using upstream = startLineServer();
  await using pool = new TcpPool({ port: upstream.port });
  await using server = serveProxy({ port: 0 }, pool, {
    reuse: true,
    drainTime: Infinity,
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(enc("a\n"));
  await conn.closeWrite();
  const buf = new Uint8Array(16);
  assert.equal(await conn.read(buf), 2);
  await sleep(100);
  assert.equal(server.stats.active, 1, "the session ended on the drain");
  conn.close();
  await server.close();
  assert.equal(server.stats.reused, 0);
});
