// Copyright 2026 the chanpool authors. MIT license.
// TcpPool while its server is down and when it comes back, on the real
// clock and real sockets: a fault server stopped and restarted on the same
// port. What a caller sees: typed failures from real dials made during the
// call, one probe at a time, no starved event loop, and service back within
// one backoff step of the restart.

import assert from "node:assert/strict";
import { DialError, type PoolTimeoutError } from "../pool.ts";
import { type ConnectivityState, TcpPool } from "../mod.ts";
import { startFaultServer } from "./_fault_server.ts";

// The default backoff's longest step, with its jitter: one backoff step.
const STEP = 2_000 * 1.2;

function payload(id: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, id);
  return out;
}

function idOf(reply: Uint8Array): number {
  return new DataView(reply.buffer, reply.byteOffset).getUint32(0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  const end = performance.now() + 5_000;
  while (!predicate()) {
    if (performance.now() > end) throw new Error(`Timed out waiting: ${what}`);
    await sleep(5);
  }
}

Deno.test("TcpPool: a 10 s outage and a restart on the same port: 100 waiting calls fail typed within one backoff step + connectTimeout, one probe at a time, and no call made after the restart fails", async () => {
  await using server = startFaultServer();
  const connectTimeout = 1_000;
  await using pool = new TcpPool({ port: server.port, max: 8, connectTimeout });
  const states: ConnectivityState[] = [];
  pool.on("statechange", (e) => states.push(e.state));
  assert.equal(idOf(await pool.request(payload(0))), 0);
  await server.stop({ closeConnections: true });
  await until(() => pool.stats.open === 0, "the idle connections evicted");

  const dialsBefore = pool.stats.dials;
  const downAt = performance.now();
  let restartedAt = Infinity;
  let stop = false;
  let slowestFailure = 0;
  let failures = 0;
  let firstAfter = Infinity;
  let afterOk = 0;
  const afterErrors: unknown[] = [];
  const untyped: unknown[] = [];
  const callers = Array.from({ length: 100 }, async (_, c) => {
    for (let i = 0; !stop; i++) {
      const start = performance.now();
      const id = c * 100_000 + i;
      try {
        const reply = await pool.request(payload(id), { timeout: 30_000 });
        assert.equal(idOf(reply), id);
        if (start >= restartedAt) {
          afterOk++;
          firstAfter = Math.min(firstAfter, performance.now() - restartedAt);
        }
      } catch (error) {
        if (start >= restartedAt) afterErrors.push(error);
        else if (!(error instanceof DialError)) untyped.push(error);
        else {
          failures++;
          slowestFailure = Math.max(slowestFailure, performance.now() - start);
        }
        await sleep(1); // as a caller would, before it tries again
      }
    }
  });
  await sleep(10_000);
  const dials = pool.stats.dials - dialsBefore;
  server.restart();
  restartedAt = performance.now();
  // Until every caller has had a success after the restart.
  await until(() => afterOk >= 100, "calls after the restart");
  stop = true;
  await Promise.all(callers);
  console.log(
    `outage 10 s: ${failures} failed calls (slowest ${
      Math.round(slowestFailure)
    } ms), ${dials} dials; after the restart: first success ${
      Math.round(firstAfter)
    } ms, ${afterOk} ok, ${afterErrors.length} failed`,
  );
  assert.deepEqual(untyped, [], "every failure a DialError");
  assert.ok(failures >= 100, `${failures} failures`);
  assert.ok(
    slowestFailure <= STEP + connectTimeout,
    `a call failed after ${slowestFailure} ms`,
  );
  // 50, 80, 128 ms... capped at 2 s (± 20 %): 12 or so in 10 s.
  assert.ok(dials <= 16, `${dials} dials in a 10 s outage`);
  assert.deepEqual(afterErrors, [], "no call made after the restart failed");
  assert.ok(firstAfter <= STEP + 100, `first success ${firstAfter} ms after`);
  assert.equal(pool.state, "ready");
  assert.ok(states.includes("transient_failure"));
  assert.ok(performance.now() - downAt > 10_000);
});

for (const failFast of [true, false]) {
  Deno.test(
    `TcpPool({ failFast: ${failFast} }): a retry loop during an outage leaves the event loop free (a 10 ms interval keeps ≥ 90 % of its ticks)${
      failFast ? "; each call fails after one macrotask" : ""
    }`,
    async () => {
      await using server = startFaultServer();
      await using pool = new TcpPool({
        port: server.port,
        max: 4,
        failFast,
        connectTimeout: 1_000,
      });
      assert.equal(idOf(await pool.request(payload(0))), 0);
      await server.stop({ closeConnections: true });
      await until(() => pool.stats.open === 0, "the idle connection evicted");
      // Ticks within the second the loop runs (its last call may end later).
      let ticks = 0, counting = true;
      const interval = setInterval(() => counting && ticks++, 10);
      const window = setTimeout(() => counting = false, 1_000);
      const end = performance.now() + 1_000;
      let calls = 0, slowest = 0;
      const errors = new Set<string>();
      try {
        // A caller's retry loop with no pause of its own.
        while (performance.now() < end) {
          const start = performance.now();
          try {
            await pool.request(payload(1), { timeout: 5_000 });
          } catch (error) {
            errors.add((error as Error).name);
          }
          calls++;
          slowest = Math.max(slowest, performance.now() - start);
        }
      } finally {
        clearInterval(interval);
        clearTimeout(window);
      }
      console.log(
        `failFast ${failFast}: ${calls} calls in 1 s, ${ticks} ticks of 100, slowest call ${
          Math.round(slowest)
        } ms`,
      );
      assert.ok(ticks >= 90, `${ticks} ticks of 100`);
      assert.deepEqual([...errors], ["DialError"]);
      if (failFast) {
        assert.ok(calls >= 100, `${calls} calls`);
        // Each failure waits at most for a probe in flight (a refused connect).
        assert.ok(slowest < 100, `slowest ${slowest} ms`);
      }
      server.restart();
      // The next probe finds it back: a call made now succeeds, failFast too.
      await sleep(2_500);
      assert.equal(idOf(await pool.request(payload(2))), 2);
    },
  );
}

Deno.test("TcpPool: a call made while the server is down waits for the probe; its timeout's cause is the last DialError", async () => {
  await using server = startFaultServer();
  await using pool = new TcpPool({ port: server.port, max: 2 });
  assert.equal(idOf(await pool.request(payload(0))), 0);
  await server.stop({ closeConnections: true });
  await until(() => pool.stats.open === 0, "the idle connection evicted");
  await assert.rejects(pool.request(payload(1)), DialError); // the dial fails
  assert.equal(pool.state, "transient_failure");
  // Made now, with a deadline shorter than the probe's delay: it times out.
  await assert.rejects(
    pool.request(payload(2), { timeout: 10 }),
    (e) => {
      assert.equal((e as Error).name, "TimeoutError");
      const cause = (e as Error).cause as PoolTimeoutError;
      assert.equal(cause.name, "PoolTimeoutError");
      assert.ok(cause.cause instanceof DialError, String(cause.cause));
      return true;
    },
  );
});
