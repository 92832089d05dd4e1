// Copyright 2026 the chanpool authors. MIT license.
// Errors that explain themselves: a borrow that timed out reads differently
// for a leak (every resource held, none released while it waited), a
// saturated pool (every resource in use, but handed over to others) and a
// server that is down (dials failing: the last DialError as cause), and a
// DialError names the address and the pool's counts.

import assert from "node:assert/strict";
import {
  DialError,
  Pool,
  type PoolCounts,
  PoolTimeoutError,
  TcpPool,
  TimeoutError,
} from "../mod.ts";

const NONE = { permissions: "none" } as const;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A port nothing listens on (refused at once on 127.0.0.1). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test(
  "PoolTimeoutError after a leak: names the pool, every resource in use, none released while it waited, no cause",
  NONE,
  async () => {
    await using pool = new Pool(() => ({}), { max: 2, name: "leaky" });
    // Two leases never released while the third borrow waits.
    await using _a = await pool.borrow();
    await using _b = await pool.borrow();
    const e = await pool.borrow({ timeout: 20 }).then(
      () => assert.fail("the borrow got a resource"),
      (e: unknown) => e,
    );
    assert.ok(e instanceof PoolTimeoutError);
    assert.match(
      e.message,
      /^Cannot borrow leaky: no resource within 20 ms; all 2 resources in use, 1 waiting, none released while this borrow waited \(open=2, idle=0, inUse=2, waiting=1, dialing=0, max=2\)$/,
    );
    assert.deepEqual(
      e.counts,
      {
        max: 2,
        open: 2,
        idle: 0,
        inUse: 2,
        waiting: 1,
        dialing: 0,
      } satisfies PoolCounts,
    );
    assert.equal(e.pool, "leaky");
    assert.equal(e.lent, 0);
    assert.equal(e.cause, undefined);
    assert.equal(pool.stats.dialErrors, 0);
  },
);

Deno.test(
  "PoolTimeoutError in a saturated pool: every resource in use, others waiting, resources lent to other borrows while it waited",
  NONE,
  async () => {
    await using pool = new Pool(() => ({}), {
      max: 2,
      name: "busy",
      acquireTimeout: 25,
    });
    // 40 borrowers, each holding its resource 2 ms: 2 resources serve
    // about one borrow per ms, so the tail of the queue times out while
    // the head is being served.
    const timeouts: PoolTimeoutError[] = [];
    let served = 0;
    await Promise.all(
      Array.from({ length: 40 }, async () => {
        try {
          const lease = await pool.borrow();
          served++;
          await sleep(2);
          lease.release();
        } catch (e) {
          if (!(e instanceof PoolTimeoutError)) throw e;
          timeouts.push(e);
        }
      }),
    );
    assert.ok(served > 0 && timeouts.length > 0, `${served} served`);
    const e = timeouts[0]!;
    const m = e.message.match(
      /^Cannot borrow busy: no resource within 25 ms; all 2 resources in use, (\d+) waiting, (\d+) lent to other borrows while this one waited \(open=2, idle=0, inUse=2, waiting=(\d+), dialing=0, max=2\)$/,
    );
    assert.ok(m, e.message);
    assert.equal(m[1], m[3]);
    assert.ok(Number(m[1]) > 1, "others wait too");
    assert.equal(Number(m[2]), e.lent);
    assert.ok(e.lent! > 0);
    assert.equal(e.counts?.inUse, 2);
    assert.equal(e.counts?.waiting, Number(m[1]));
    assert.equal(e.cause, undefined);
  },
);

Deno.test(
  "PoolTimeoutError while the server is down: its cause is the last DialError with the address, transient_failure in the message",
  { permissions: { net: ["127.0.0.1"] } },
  async () => {
    const port = closedPort();
    const address = `127.0.0.1:${port}`;
    await using pool = new TcpPool({ port, max: 4 });
    // The first call dials, and fails with the DialError itself.
    const first = await pool.request(new Uint8Array(4)).then(
      () => assert.fail("a closed port answered"),
      (e: unknown) => e,
    );
    assert.ok(first instanceof DialError);
    const dialMessage =
      /^Cannot dial 127\.0\.0\.1:\d+: (.+) \(open=1, idle=0, inUse=0, waiting=\d+, dialing=1, max=4\)$/;
    assert.match(first.message, dialMessage);
    assert.ok(first.message.startsWith(`Cannot dial ${address}: `));
    assert.equal(first.pool, address);
    assert.equal(first.counts?.dialing, 1);
    assert.equal(pool.state, "transient_failure");
    // The next call waits for the probe (~50 ms away) and runs out first.
    const e = await pool.request(new Uint8Array(4), { timeout: 20 }).then(
      () => assert.fail("a closed port answered"),
      (e: unknown) => e,
    );
    assert.ok(e instanceof TimeoutError);
    const timeout = e.cause;
    // What a log line of the call's error alone shows: the pool's words.
    assert.equal(
      e.message,
      `Cannot request: timed out after 20 ms waiting for a connection (${
        (timeout as Error).message
      })`,
    );
    assert.ok(timeout instanceof PoolTimeoutError, String(timeout));
    const reason = (first.cause as Error).message;
    assert.equal(
      timeout.message,
      `Cannot borrow ${address}: no resource within 20 ms; no resource could be dialed (transient_failure): ${reason} (open=0, idle=0, inUse=0, waiting=1, dialing=0, max=4)`,
    );
    assert.deepEqual(timeout.counts, {
      max: 4,
      open: 0,
      idle: 0,
      inUse: 0,
      waiting: 1,
      dialing: 0,
    });
    const dial = timeout.cause;
    assert.ok(dial instanceof DialError);
    assert.equal(dial, first, "the last dial's error");
    assert.ok(dial.message.startsWith(`Cannot dial ${address}: `));
  },
);

Deno.test(
  "DialError from a pool names it and its counts as the dial failed",
  NONE,
  async () => {
    await using pool = new Pool(() => {
      throw new Error("connection refused");
    }, { max: 3, name: "db:5432" });
    const e = await pool.borrow().then(
      () => assert.fail("the dial succeeded"),
      (e: unknown) => e,
    );
    assert.ok(e instanceof DialError);
    assert.equal(
      e.message,
      "Cannot dial db:5432: connection refused (open=1, idle=0, inUse=0, waiting=1, dialing=1, max=3)",
    );
    assert.deepEqual(e.counts, {
      max: 3,
      open: 1,
      idle: 0,
      inUse: 0,
      waiting: 1,
      dialing: 1,
    });
    assert.equal(e.pool, "db:5432");
  },
);

Deno.test(
  "PoolTimeoutError while dials fail but a resource is in use: the last dial failed, with its reason (not the DialError's whole message)",
  NONE,
  async () => {
    let fail = false;
    await using pool = new Pool(() => {
      if (fail) throw new Error("connection refused");
      return {};
    }, { max: 3, name: "db:5432" });
    await using _held = await pool.borrow();
    fail = true;
    // Its dial fails; a lease in use may still serve it, so it waits.
    const t = await pool.borrow({ timeout: 10 }).then(
      () => assert.fail("the borrow got a resource"),
      (e: unknown) => e,
    );
    assert.ok(t instanceof PoolTimeoutError);
    assert.equal(
      t.message,
      "Cannot borrow db:5432: no resource within 10 ms; the last dial failed (transient_failure): connection refused (open=1, idle=0, inUse=1, waiting=1, dialing=0, max=3)",
    );
    assert.ok(t.cause instanceof DialError);
    assert.equal(
      t.cause.message,
      "Cannot dial db:5432: connection refused (open=2, idle=0, inUse=1, waiting=1, dialing=1, max=3)",
    );
    assert.equal(pool.stats.dialErrors, 1);
  },
);

Deno.test(
  "PoolTimeoutError and DialError built by hand keep their messages (no counts, no pool)",
  NONE,
  () => {
    const t = new PoolTimeoutError(20);
    assert.equal(t.message, "Cannot borrow: no resource within 20 ms");
    assert.equal(t.counts, undefined);
    assert.equal(t.pool, undefined);
    const d = new DialError("Cannot dial x: no", { cause: 1 });
    assert.equal(d.message, "Cannot dial x: no");
    assert.equal(d.counts, undefined);
  },
);
