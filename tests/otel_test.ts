// Copyright 2026 the chanpool authors. MIT license.
// examples/otel.ts: what the OpenTelemetry SDK exports for a TcpPool,
// checked against the pool's `stats`, its histograms, its events and the
// server's accept count, collected with an in-memory exporter.
// The OpenTelemetry packages download from npm on the first run; they ask
// for no permission beyond the suite's.

// deno-lint-ignore-file no-import-prefix
import assert from "node:assert/strict";
import {
  DataPointType,
  type Histogram as OtelHistogram,
  type MetricData,
} from "npm:@opentelemetry/sdk-metrics@3.1.1";
import {
  type Histogram,
  Pool,
  type PooledConn,
  PoolTimeoutError,
  TcpPool,
  type TcpPoolStats,
} from "../mod.ts";
import {
  instrumentPool,
  memoryMeter,
  SECONDS_BOUNDARIES,
} from "../examples/otel.ts";
import { acceptAll, type Served } from "./_servers.ts";

/** An echo server that counts its accepts. */
function startEcho(): Served {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  return acceptAll(listener, conns, async (conn) => {
    try {
      await conn.readable.pipeTo(conn.writable);
    } catch {
      // closed under us
    }
    conns.delete(conn);
  });
}

/** An SDK with an in-memory exporter that exports on `collect()`. */
function sdk() {
  const { meter, exporter, reader, provider } = memoryMeter("chanpool-test");
  return {
    meter,
    /** Exports now; returns the metrics of this export, by name. */
    async collect(): Promise<Map<string, MetricData>> {
      exporter.reset();
      await reader.forceFlush();
      const exports = exporter.getMetrics();
      assert.equal(exports.length, 1);
      const byName = new Map<string, MetricData>();
      for (const scope of exports[0]!.scopeMetrics) {
        for (const metric of scope.metrics) {
          byName.set(metric.descriptor.name, metric);
        }
      }
      return byName;
    },
    shutdown: () => provider.shutdown(),
  };
}

const NAME = "db.client.connection.pool.name";
const STATE = "db.client.connection.state";

/** The single value of a sum metric (by state, if given). */
function sum(
  metrics: Map<string, MetricData>,
  name: string,
  poolName: string,
  state?: string,
): number | undefined {
  const metric = metrics.get(`db.client.connection.${name}`);
  if (metric === undefined) return undefined;
  assert.equal(metric.dataPointType, DataPointType.SUM, name);
  const points = metric.dataPoints.filter((p) =>
    state === undefined || p.attributes[STATE] === state
  );
  if (points.length === 0) return undefined;
  assert.equal(points.length, 1, `${name} ${state}: one point`);
  assert.equal(points[0]!.attributes[NAME], poolName, `${name}: pool.name`);
  return points[0]!.value as number;
}

/** The single point of a histogram metric. */
function histogram(
  metrics: Map<string, MetricData>,
  name: string,
  poolName: string,
): OtelHistogram {
  const metric = metrics.get(`db.client.connection.${name}`);
  assert.ok(metric !== undefined, `${name} exported`);
  assert.equal(metric.dataPointType, DataPointType.HISTOGRAM, name);
  assert.equal(metric.descriptor.unit, "s", `${name}: unit`);
  assert.equal(metric.dataPoints.length, 1, `${name}: one point`);
  const point = metric.dataPoints[0]!;
  assert.equal(point.attributes[NAME], poolName, `${name}: pool.name`);
  return point.value as OtelHistogram;
}

/** The OTel histogram holds the pool's samples: same buckets, sum in s. */
function assertSameHistogram(
  otel: OtelHistogram,
  mine: Histogram,
  name: string,
): void {
  assert.equal(otel.count, mine.count, `${name}: count`);
  assert.deepEqual(otel.buckets.boundaries, SECONDS_BOUNDARIES, name);
  assert.deepEqual(otel.buckets.counts, [...mine.counts], `${name}: buckets`);
  const sum = otel.sum ?? NaN;
  assert.ok(
    Math.abs(sum - mine.sum / 1000) <= 1e-9 * Math.max(1, mine.sum),
    `${name}: sum ${sum} s, the pool's ${mine.sum} ms`,
  );
}

/** Every exported value against the pool's state at the collection. */
function check(
  metrics: Map<string, MetricData>,
  pool: TcpPool,
  s: TcpPoolStats,
  extra: { releases: number; accepted: number },
): void {
  const name = pool.address;
  const units: Record<string, string> = {
    count: "{connection}",
    max: "{connection}",
    "idle.max": "{connection}",
    "idle.min": "{connection}",
    pending_requests: "{request}",
    timeouts: "{timeout}",
  };
  for (const [metric, unit] of Object.entries(units)) {
    assert.equal(
      metrics.get(`db.client.connection.${metric}`)?.descriptor.unit,
      unit,
      `${metric}: unit`,
    );
  }
  assert.equal(sum(metrics, "count", name, "idle"), s.idle);
  assert.equal(sum(metrics, "count", name, "used"), s.inUse);
  assert.equal(sum(metrics, "max", name), s.max);
  assert.equal(sum(metrics, "idle.max", name), s.max); // maxIdle: max
  assert.equal(sum(metrics, "idle.min", name), 0);
  assert.equal(sum(metrics, "pending_requests", name), s.waiting);
  assert.equal(sum(metrics, "timeouts", name), s.timeouts);
  // a counter; the levels go up and down
  const monotonic = (name: string) => {
    const m = metrics.get(`db.client.connection.${name}`);
    return m?.dataPointType === DataPointType.SUM ? m.isMonotonic : undefined;
  };
  assert.equal(monotonic("timeouts"), true);
  assert.equal(monotonic("count"), false);
  assert.equal(monotonic("pending_requests"), false);

  const h = pool.histograms!;
  const wait = histogram(metrics, "wait_time", name);
  assert.equal(wait.count, s.borrows);
  assertSameHistogram(wait, h.wait, "wait_time");
  const create = histogram(metrics, "create_time", name);
  assert.equal(create.count, s.dials - s.dialErrors);
  assert.equal(create.count, extra.accepted);
  assertSameHistogram(create, h.dial, "create_time");
  const use = histogram(metrics, "use_time", name);
  assert.equal(use.count, extra.releases);
  assert.equal(use.count, s.borrows - s.inUse);
  assertSameHistogram(use, h.use, "use_time");
}

Deno.test("instrumentPool() exports a TcpPool's levels, timeouts and wait, use and create times as its stats and histograms count them", async () => {
  await using server = startEcho();
  const otel = sdk();
  const pool = new TcpPool({
    port: server.port,
    max: 3,
    histograms: true,
  });
  const stop = instrumentPool(pool, otel.meter);
  let releases = 0;
  const offRelease = pool.on("release", () => releases++);
  const encoder = new TextEncoder();
  const held: PooledConn[] = [];
  let waiters: Promise<PooledConn>[] = [];
  try {
    // 12 clients on 3 connections: most wait.
    await Promise.all(Array.from({ length: 12 }, async (_, i) => {
      await using conn = await pool.borrow({ timeout: 5_000 });
      const bytes = encoder.encode(`hello #${i}`);
      assert.deepEqual(await conn.request(bytes, { timeout: 5_000 }), bytes);
    }));
    assert.ok(pool.stats.waits > 0, "some borrows waited");

    // All three held: two borrows time out, two more wait.
    for (let i = 0; i < 3; i++) held.push(await pool.borrow());
    for (let i = 0; i < 2; i++) {
      await assert.rejects(pool.borrow({ timeout: 10 }), PoolTimeoutError);
    }
    waiters = [pool.borrow({ timeout: 5_000 }), pool.borrow()];
    await Promise.resolve();
    const before = pool.stats;
    assert.deepEqual(
      [before.inUse, before.idle, before.waiting, before.timeouts],
      [3, 0, 2, 2],
    );
    let metrics = await otel.collect();
    assert.deepEqual(pool.stats, before, "nothing moved during the collection");
    check(metrics, pool, before, { releases, accepted: server.accepted });

    // The waiters get two of the three; then one connection stays in use.
    held.pop()!.release();
    held.pop()!.release();
    for (const conn of await Promise.all(waiters)) conn.release();
    const after = pool.stats;
    assert.deepEqual(
      [after.inUse, after.idle, after.waiting],
      [1, 2, 0],
    );
    metrics = await otel.collect();
    assert.deepEqual(pool.stats, after, "nothing moved during the collection");
    check(metrics, pool, after, { releases, accepted: server.accepted });

    // Stopped: no more samples, and the levels are no longer read (the SDK
    // repeats the last cumulative value it has).
    stop();
    (await pool.borrow()).release();
    held.push(await pool.borrow());
    assert.equal(pool.stats.inUse, 2);
    metrics = await otel.collect();
    assert.equal(sum(metrics, "count", pool.address, "used"), 1);
    assert.equal(
      histogram(metrics, "wait_time", pool.address).count,
      after.borrows,
    );
    assert.equal(pool.stats.borrows, after.borrows + 2);
  } finally {
    offRelease();
    // (on a failure, too: leases still held and borrows still waiting)
    await pool.close({ force: true });
    await Promise.allSettled(waiters);
    await otel.shutdown();
  }
  await server.drained(1_000);
});

Deno.test("instrumentPool() names a Pool by poolName, reports the maxIdle and minIdle given, and skips an infinite max", async () => {
  const otel = sdk();
  await using pool = new Pool(() => ({}), { max: Infinity });
  const stop = instrumentPool(pool, otel.meter, {
    poolName: "things",
    minIdle: 1,
  });
  const a = await pool.borrow();
  try {
    (await pool.borrow()).release();
    const metrics = await otel.collect();
    assert.equal(sum(metrics, "count", "things", "used"), 1);
    assert.equal(sum(metrics, "count", "things", "idle"), 1);
    assert.equal(sum(metrics, "max", "things"), undefined);
    assert.equal(sum(metrics, "idle.max", "things"), undefined); // maxIdle: max
    assert.equal(sum(metrics, "idle.min", "things"), 1);
    assert.equal(histogram(metrics, "wait_time", "things").count, 2);
    assert.equal(histogram(metrics, "create_time", "things").count, 2);
    assert.equal(histogram(metrics, "use_time", "things").count, 1);
  } finally {
    stop();
    a.release();
    await otel.shutdown();
  }
});

Deno.test("instrumentPool() rejects a missing or empty poolName and a bad maxIdle or minIdle, naming the value", async () => {
  const otel = sdk();
  await using pool = new Pool(() => ({}));
  assert.throws(
    () => instrumentPool(pool, otel.meter),
    new TypeError(
      "Cannot instrument pool: poolName must be a non-empty string for a Pool, received undefined",
    ),
  );
  assert.throws(
    () => instrumentPool(pool, otel.meter, { poolName: "" }),
    new TypeError(
      'Cannot instrument pool: poolName must be a non-empty string for a Pool, received ""',
    ),
  );
  assert.throws(
    () => instrumentPool(pool, otel.meter, { poolName: "p", maxIdle: -1 }),
    new RangeError(
      "Cannot instrument pool: maxIdle must be a non-negative integer or Infinity, received -1",
    ),
  );
  assert.throws(
    () => instrumentPool(pool, otel.meter, { poolName: "p", minIdle: 0.5 }),
    new RangeError(
      "Cannot instrument pool: minIdle must be a non-negative integer, received 0.5",
    ),
  );
  await otel.shutdown();
});
