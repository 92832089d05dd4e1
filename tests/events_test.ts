// Copyright 2026 the chanpool authors. MIT license.
// Pool events and histograms: each event type counted against the `stats`
// counter it matches, under a seeded chaos of failing and hanging dials,
// aborts, timeouts, destroys and closes.

import assert from "node:assert/strict";
import {
  Pool,
  POOL_EVENT_TYPES,
  type PoolEventMap,
  type PoolEventType,
  serveProxy,
  TcpPool,
} from "../mod.ts";
import { mulberry32 } from "./_random.ts";

/** Counts every event of `target`, and the destroys by reason. */
function count(
  target: {
    on<K extends PoolEventType>(
      type: K,
      listener: (event: PoolEventMap[K]) => void,
    ): () => void;
  },
) {
  const counts = Object.fromEntries(
    POOL_EVENT_TYPES.map((t) => [t, 0]),
  ) as Record<
    PoolEventType,
    number
  >;
  const destroyed: Record<string, number> = {};
  const offs = POOL_EVENT_TYPES.map((type) =>
    target.on(type, (e: PoolEventMap[PoolEventType]) => {
      counts[type]++;
      if (e.type === "destroy") {
        destroyed[e.reason] = (destroyed[e.reason] ?? 0) + 1;
      }
    })
  );
  return { counts, destroyed, off: () => offs.forEach((f) => f()) };
}

async function chaos(ops: number, histograms: boolean) {
  const seed = Date.now() >>> 0;
  console.log(`events chaos seed ${seed}, histograms ${histograms}`);
  const random = mulberry32(seed);
  const hanging = new Set<() => void>();
  let made = 0;
  const pool = new Pool<{ id: number }>((signal) => {
    const roll = random();
    if (roll < 0.05) throw new Error("refused");
    if (roll < 0.08) {
      // Hangs until its dial is given up (connectTimeout, a borrow's
      // timeout or abort, close).
      return new Promise((_, reject) => {
        const stop = () => reject(signal.reason);
        signal.addEventListener("abort", stop, { once: true });
        hanging.add(stop);
      });
    }
    if (roll < 0.2) {
      return new Promise((resolve) =>
        setTimeout(() => resolve({ id: ++made }), Math.floor(random() * 3))
      );
    }
    return { id: ++made };
  }, {
    max: 8,
    maxIdle: 4,
    connectTimeout: 20,
    acquireTimeout: 50,
    idleTimeout: 5,
    maxLifetime: 20,
    backoff: { initial: 1, max: 2, multiplier: 2, jitter: 0 },
    histograms,
    name: "chaos",
  });
  const seen = count(pool);
  let done = 0;
  const task = async () => {
    while (done < ops) {
      done++;
      const roll = random();
      const ac = new AbortController();
      const options: { timeout?: number; signal?: AbortSignal } = {};
      if (roll < 0.05) options.timeout = 1 + Math.floor(random() * 5);
      else if (roll < 0.1) {
        options.signal = ac.signal;
        setTimeout(() => ac.abort(), Math.floor(random() * 3));
      }
      try {
        const lease = await pool.borrow(options);
        if (random() < 0.3) await Promise.resolve();
        else if (random() < 0.05) await new Promise((r) => setTimeout(r, 0));
        if (random() < 0.01) lease.destroy();
        else lease.release();
      } catch {
        // a timeout, an abort, a DialError, PoolExhaustedError...
      } finally {
        ac.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: 32 }, task));
  await pool.close({ force: true });
  for (const stop of hanging) stop();
  const s = pool.stats;
  const { counts, destroyed } = seen;
  console.log(JSON.stringify({ counts, destroyed, stats: s }));
  assert.equal(counts.borrow, s.borrows);
  assert.equal(counts.timeout, s.timeouts);
  assert.equal(counts.dialstart, s.dials);
  assert.equal(counts.dialerror, s.dialErrors);
  assert.equal(
    counts.dial + counts.dialerror + counts.dialabandon,
    counts.dialstart,
    "every dial ended once",
  );
  assert.equal(counts.release, counts.borrow, "every lease ended");
  for (const [reason, n] of Object.entries(s.destroyed)) {
    assert.equal(destroyed[reason] ?? 0, n, `destroyed.${reason}`);
  }
  assert.ok(
    counts.timeout > 0 && counts.dialerror > 0,
  );
  assert.ok(s.destroyed.lifetime > 0 && s.destroyed.destroyed > 0);
  const h = pool.histograms;
  if (histograms) {
    assert.equal(h!.wait.count, counts.borrow);
    assert.equal(h!.use.count, counts.release);
    assert.equal(h!.dial.count, counts.dial);
    for (const x of [h!.wait, h!.use, h!.dial]) {
      assert.equal(x.counts.reduce((a, b) => a + b, 0), x.count);
    }
  } else assert.equal(h, null);
}

Deno.test("events: 100 000 borrows under failing and hanging dials, aborts, timeouts, destroys and a forced close: each event's count equals its stats counter", async () => {
  await chaos(100_000, false);
});

Deno.test("events: the same chaos with histograms: their counts equal the events'", async () => {
  await chaos(20_000, true);
});

Deno.test("events: a listener that throws is counted in stats.callbackErrors and the pool goes on; removing the last listener stops the events", async () => {
  await using pool = new Pool(() => ({}));
  let calls = 0;
  const off = pool.on("borrow", () => {
    calls++;
    throw new Error("listener bug");
  });
  (await pool.borrow()).release();
  (await pool.borrow()).release();
  assert.equal(calls, 2);
  assert.equal(pool.stats.callbackErrors, 2);
  off();
  (await pool.borrow()).release();
  assert.equal(calls, 2);
  assert.equal(pool.stats.callbackErrors, 2);
});

Deno.test("events: bad arguments to on() are TypeErrors naming the value", () => {
  const pool = new Pool(() => ({}));
  assert.throws(
    () => pool.on("borow" as "borrow", () => {}),
    /type must be one of "statechange", "borrow", .*received "borow"/,
  );
  assert.throws(
    () => pool.on("borrow", 1 as never),
    /listener must be a function, received 1/,
  );
  assert.throws(
    () => new Pool(() => ({}), { histograms: "yes" as never }),
    /histograms must be a boolean, received "yes"/,
  );
  return pool.close();
});

Deno.test("events: wait and use times with histograms come from the precise clock; buckets are exponential", async () => {
  await using pool = new Pool(() => ({}), { max: 1, histograms: true });
  (await pool.borrow()).release(); // dialed: the next borrow finds it idle
  const waits: number[] = [];
  const uses: number[] = [];
  pool.on("borrow", (e) => waits.push(e.wait));
  pool.on("release", (e) => uses.push(e.use));
  const first = await pool.borrow();
  const second = pool.borrow();
  await new Promise((r) => setTimeout(r, 30));
  first.release();
  (await second).release();
  assert.equal(waits[0], 0);
  assert.ok(waits[1]! >= 25 && waits[1]! < 1_000, `wait ${waits[1]}`);
  assert.ok(uses[0]! >= 25, `use ${uses[0]}`);
  const h = pool.histograms!;
  // Bucket k holds waits in (bounds[k - 1], bounds[k]], bounds in 2^k µs.
  const k = h.wait.bounds.findIndex((b) => waits[1]! <= b);
  assert.ok(h.wait.bounds[k - 1]! < waits[1]!);
  assert.equal(h.wait.bounds[k], 2 ** k / 1000);
  assert.equal(h.wait.counts[k], 1);
  assert.ok(h.wait.counts[0]! >= 1, "the wait of 0");
  assert.equal(h.wait.count, 3);
});

Deno.test("events: TcpPool's events name its address and count TCP's destroy reasons", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    for await (const conn of listener) {
      conn.readable.pipeTo(conn.writable).catch(() => {});
    }
  })();
  {
    await using pool = new TcpPool({ port: listener.addr.port, max: 2 });
    const seen = count(pool);
    const pools = new Set<string>();
    pool.on("borrow", (e) => pools.add(e.pool));
    for (let i = 0; i < 20; i++) {
      const conn = await pool.borrow();
      // A write with its reply never read: released dirty, destroyed.
      if (i % 4 === 0) await conn.write(new Uint8Array([1]));
      conn.release();
    }
    const s = pool.stats;
    assert.equal(seen.counts.borrow, s.borrows);
    assert.equal(seen.destroyed.dirty, s.destroyed.dirty);
    assert.equal(s.destroyed.dirty, 5);
    assert.deepEqual([...pools], [pool.address]);
    seen.off();
  }
  listener.close();
  await served;
});

Deno.test("events: a dial given up by its borrower's timeout or abort is a dialabandon (and the timeout a timeout event)", async () => {
  const pool = new Pool<object>(
    (signal) =>
      new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason), {
          once: true,
        })
      ),
    { max: 2, connectTimeout: 5_000 },
  );
  const seen = count(pool);
  await assert.rejects(pool.borrow({ timeout: 20 }), {
    name: "PoolTimeoutError",
  });
  const ac = new AbortController();
  const aborted = pool.borrow({ signal: ac.signal });
  ac.abort();
  await assert.rejects(aborted, { name: "AbortError" });
  await pool.close();
  const s = pool.stats;
  assert.equal(seen.counts.dialstart, s.dials);
  assert.equal(seen.counts.dialabandon, s.dials, "every dial given up");
  assert.equal(seen.counts.timeout, s.timeouts);
  assert.ok(s.timeouts >= 1);
});

Deno.test("events: serveProxy reports each session once it ends (one per stats.sessions, by outcome) and each failed accept", async () => {
  using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const echo = (async () => {
    for await (const conn of upstream) {
      conn.readable.pipeTo(conn.writable).catch(() => {});
    }
  })();
  // A listener whose second accept fails (as at EMFILE), then goes on.
  const real = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepts = 0;
  const listener = {
    addr: real.addr,
    accept: () =>
      ++accepts === 2
        ? Promise.reject(new Deno.errors.ConnectionReset("in the backlog"))
        : real.accept(),
    close: () => real.close(),
  };
  const pool = new TcpPool({ port: upstream.addr.port, max: 4 });
  const server = serveProxy(listener, pool);
  const outcomes: Record<string, number> = {};
  let acceptErrors = 0;
  server.on("session", (e) => {
    outcomes[e.outcome] = (outcomes[e.outcome] ?? 0) + 1;
    assert.ok(e.time >= 0 && e.remote.hostname === "127.0.0.1");
  });
  server.on("accepterror", () => acceptErrors++);
  server.on("session", () => {
    throw new Error("a listener's bug");
  });
  // Ten sessions that echo and end, and one left open for close() to end.
  for (let i = 0; i < 10; i++) {
    const c = await Deno.connect({
      hostname: "127.0.0.1",
      port: real.addr.port,
    });
    await c.write(new Uint8Array([i]));
    await c.read(new Uint8Array(1));
    c.close();
  }
  const open = await Deno.connect({
    hostname: "127.0.0.1",
    port: real.addr.port,
  });
  await open.write(new Uint8Array([1]));
  await open.read(new Uint8Array(1));
  await server.close();
  open.close();
  await pool.close();
  const s = server.stats;
  const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
  assert.equal(total, s.sessions);
  assert.equal(outcomes.closed ?? 0, s.closed);
  assert.equal(outcomes.error ?? 0, s.errors);
  assert.equal(acceptErrors, s.acceptErrors);
  assert.equal(s.acceptErrors, 1);
  assert.equal(s.callbackErrors, s.sessions);
  assert.ok((outcomes.closed ?? 0) >= 1);
  upstream.close();
  await echo;
});
