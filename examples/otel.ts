// Copyright 2026 the chanpool authors. MIT license.
// OpenTelemetry metrics for a pool: `instrumentPool` emits the semantic
// conventions' connection-pool instruments (`db.client.connection.*`, units
// and attributes as the database metrics spec names them), and the demo
// below runs a small workload against an echo server and prints what an
// in-memory exporter collected.
//
// The module itself has no dependencies; this example brings its own
// (`npm:@opentelemetry/api`, and `npm:@opentelemetry/sdk-metrics` for the
// demo). Copy `instrumentPool` into your project, or import it from here.
//
// Two kinds of instrument, fed two ways:
//
// - Levels (`count` by `db.client.connection.state`, `max`, `idle.max`,
//   `idle.min`, `pending_requests`) are observable up-down counters, read
//   from `pool.stats` once per collection: nothing runs between collections,
//   and one `stats` read serves them all, so they agree with each other.
// - Happenings (`timeouts`, `create_time`, `wait_time`, `use_time`) are
//   recorded from the pool's events, one sample as each happens. The OTel
//   API has no observable histogram, so `pool.histograms` could only be fed
//   in by replaying its buckets; the events give each sample exactly, in the
//   SDK's buckets. (The event objects are reused: only their numbers are
//   read, during the call.)
//
// chanpool times are milliseconds; OTel's are seconds (`unit: "s"`), so
// every sample is divided by 1000. The wait and use times in the events are
// on the pool's coarse clock (10 ms steps) unless the pool has
// `histograms: true`, which makes them exact (a clock read per borrow and
// per release); dial times are always exact. The histograms' buckets are
// chanpool's own (2^k µs, 1 µs to 67 s), given as the instruments' advice,
// so they line up with `pool.histograms`.
//
// Run: deno run --allow-net=127.0.0.1 examples/otel.ts (the npm packages
// download on the first run; neither asks for env or file access).

// The OpenTelemetry packages come inline with pinned `npm:` specifiers, so
// the module's deno.json keeps no dependency.
// deno-lint-ignore-file no-import-prefix

import type { Attributes, Meter } from "npm:@opentelemetry/api@1.10.0";
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "npm:@opentelemetry/sdk-metrics@3.1.1";
import {
  HISTOGRAM_BOUNDS,
  type Pool,
  PoolTimeoutError,
  TcpPool,
} from "../mod.ts";

/** The histograms' bucket boundaries, in seconds: chanpool's, 2^k µs. */
export const SECONDS_BOUNDARIES: readonly number[] = HISTOGRAM_BOUNDS.map(
  (ms) => ms / 1000,
);

/** Options for {@linkcode instrumentPool}. */
/**
 * A meter whose metrics stay in memory, exported on `reader.forceFlush()`
 * into `exporter` (a service would export every minute or so, to a
 * collector).
 */
export function memoryMeter(name: string) {
  const exporter = new InMemoryMetricExporter(
    AggregationTemporality.CUMULATIVE,
  );
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: 3_600_000,
  });
  const provider = new MeterProvider({ readers: [reader] });
  return { meter: provider.getMeter(name), exporter, reader, provider };
}

export interface InstrumentPoolOptions {
  /**
   * The `db.client.connection.pool.name` attribute: unique within the
   * application.
   *
   * @default {a TcpPool's `address` (`hostname:port`); required for a Pool}
   */
  poolName?: string;
  /**
   * The pool's `maxIdle`, for `db.client.connection.idle.max` (a pool does
   * not report its options: pass what you gave it).
   *
   * @default {the pool's `max`, as for the pool}
   */
  maxIdle?: number;
  /**
   * The pool's `minIdle`, for `db.client.connection.idle.min`.
   *
   * @default {0}
   */
  minIdle?: number;
}

/**
 * Emits the OpenTelemetry connection-pool instruments for `pool` on
 * `meter`, each with `db.client.connection.pool.name`:
 *
 * - `db.client.connection.count` (`{connection}`), by
 *   `db.client.connection.state`: `idle` is `stats.idle`, `used` is
 *   `stats.inUse + stats.overflow`;
 * - `db.client.connection.max`, `.idle.max`, `.idle.min` (`{connection}`;
 *   an infinite `max` or `maxIdle` is not reported);
 * - `db.client.connection.pending_requests` (`{request}`): `stats.waiting`;
 * - `db.client.connection.timeouts` (`{timeout}`): one per `"timeout"` event;
 * - `db.client.connection.create_time`, `.wait_time`, `.use_time` (`s`): one
 *   sample per `"dial"`, `"borrow"` and `"release"` event.
 *
 * Counters and histograms count from this call on; the levels are read at
 * each collection.
 *
 * @param pool The pool to watch.
 * @param meter Where the instruments are made.
 * @param options The pool name, and the pool's `maxIdle` and `minIdle`.
 * @returns A function that stops: removes the listeners and the callback.
 * @throws {TypeError} If `poolName` is not a non-empty string, or is missing
 *   for a `Pool`.
 * @throws {RangeError} If `maxIdle` or `minIdle` is not a non-negative
 *   integer (`maxIdle` may be `Infinity`).
 */
export function instrumentPool<T>(
  pool: TcpPool | Pool<T>,
  meter: Meter,
  options: InstrumentPoolOptions = {},
): () => void {
  const poolName = options.poolName ??
    (pool instanceof TcpPool ? pool.address : undefined);
  if (typeof poolName !== "string" || poolName === "") {
    throw new TypeError(
      `Cannot instrument pool: poolName must be a non-empty string${
        pool instanceof TcpPool ? "" : " for a Pool"
      }, received ${
        typeof poolName === "string" ? '""' : String(options.poolName)
      }`,
    );
  }
  const maxIdle = options.maxIdle ?? pool.stats.max;
  const minIdle = options.minIdle ?? 0;
  for (const [name, value] of [["maxIdle", maxIdle], ["minIdle", minIdle]]) {
    const ok = typeof value === "number" &&
      (Number.isSafeInteger(value) && value >= 0 ||
        name === "maxIdle" && value === Infinity);
    if (!ok) {
      throw new RangeError(
        `Cannot instrument pool: ${name} must be a non-negative integer${
          name === "maxIdle" ? " or Infinity" : ""
        }, received ${String(value)}`,
      );
    }
  }

  const attrs: Attributes = { "db.client.connection.pool.name": poolName };
  const idleAttrs: Attributes = {
    ...attrs,
    "db.client.connection.state": "idle",
  };
  const usedAttrs: Attributes = {
    ...attrs,
    "db.client.connection.state": "used",
  };

  const gauge = (name: string, unit: string, description: string) =>
    meter.createObservableUpDownCounter(`db.client.connection.${name}`, {
      unit,
      description,
    });
  const count = gauge(
    "count",
    "{connection}",
    "The number of connections that are currently in state described by the state attribute",
  );
  const max = gauge(
    "max",
    "{connection}",
    "The maximum number of open connections allowed",
  );
  const idleMax = gauge(
    "idle.max",
    "{connection}",
    "The maximum number of idle open connections allowed",
  );
  const idleMin = gauge(
    "idle.min",
    "{connection}",
    "The minimum number of idle open connections allowed",
  );
  const pending = gauge(
    "pending_requests",
    "{request}",
    "The number of current pending requests for an open connection",
  );
  const timeouts = meter.createCounter("db.client.connection.timeouts", {
    unit: "{timeout}",
    description:
      "The number of connection timeouts that have occurred trying to obtain a connection from the pool",
  });
  const advice = { explicitBucketBoundaries: [...SECONDS_BOUNDARIES] };
  const createTime = meter.createHistogram(
    "db.client.connection.create_time",
    {
      unit: "s",
      description: "The time it took to create a new connection",
      advice,
    },
  );
  const waitTime = meter.createHistogram("db.client.connection.wait_time", {
    unit: "s",
    description: "The time it took to obtain an open connection from the pool",
    advice,
  });
  const useTime = meter.createHistogram("db.client.connection.use_time", {
    unit: "s",
    description:
      "The time between borrowing a connection and returning it to the pool",
    advice,
  });

  const observables = [count, max, idleMax, idleMin, pending];
  const observe = (
    result: Parameters<Parameters<Meter["addBatchObservableCallback"]>[0]>[0],
  ) => {
    const s = pool.stats; // one read, so the levels agree
    result.observe(count, s.idle, idleAttrs);
    result.observe(count, s.inUse + s.overflow, usedAttrs);
    result.observe(pending, s.waiting, attrs);
    if (Number.isFinite(s.max)) result.observe(max, s.max, attrs);
    if (Number.isFinite(maxIdle)) result.observe(idleMax, maxIdle, attrs);
    result.observe(idleMin, minIdle, attrs);
  };
  meter.addBatchObservableCallback(observe, observables);

  const offs = [
    pool.on("borrow", (e) => waitTime.record(e.wait / 1000, attrs)),
    pool.on("release", (e) => useTime.record(e.use / 1000, attrs)),
    pool.on("dial", (e) => createTime.record(e.time / 1000, attrs)),
    pool.on("timeout", () => timeouts.add(1, attrs)),
  ];
  return () => {
    meter.removeBatchObservableCallback(observe, observables);
    for (const off of offs.splice(0)) off();
  };
}

// -- The demo: an echo server, a busy pool, the collected metrics --

if (import.meta.main) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    for await (const conn of listener) {
      conn.readable.pipeTo(conn.writable).catch(() => {});
    }
  })();

  const { meter, exporter, reader, provider } = memoryMeter(
    "chanpool-example",
  );

  {
    await using pool = new TcpPool({
      port: listener.addr.port,
      max: 2,
      maxIdle: 2,
      histograms: true, // exact wait and use times
    });
    const stop = instrumentPool(pool, meter, { maxIdle: 2 });

    // Eight clients on two connections: most wait their turn.
    const encoder = new TextEncoder();
    await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      await using conn = await pool.borrow({ timeout: 1_000 });
      await conn.request(encoder.encode(`hello #${i}`), { timeout: 1_000 });
    }));
    // Both connections held: a borrow with 20 ms to spare times out.
    const a = await pool.borrow();
    const b = await pool.borrow();
    try {
      await pool.borrow({ timeout: 20 });
    } catch (error) {
      if (!(error instanceof PoolTimeoutError)) throw error;
    }
    b.release();

    // Collect with one connection still in use.
    await reader.forceFlush();
    a.release();
    stop();

    const s = pool.stats;
    console.log(
      `pool ${pool.address}: borrows ${s.borrows}, dials ${s.dials}, timeouts ${s.timeouts}`,
    );
    const exported = exporter.getMetrics().at(-1)!;
    for (const { metrics } of exported.scopeMetrics) {
      for (const metric of metrics) {
        const { name, unit } = metric.descriptor;
        for (const point of metric.dataPoints) {
          const state = point.attributes["db.client.connection.state"];
          const label = `${name}${state === undefined ? "" : `{${state}}`}`;
          if (metric.dataPointType === DataPointType.HISTOGRAM) {
            const h = point.value as { count: number; sum?: number };
            const mean = h.count > 0 ? (h.sum ?? 0) / h.count : 0;
            console.log(
              `${label}: ${h.count} samples, mean ${
                mean.toPrecision(3)
              } ${unit}`,
            );
          } else {
            console.log(`${label}: ${point.value} ${unit}`);
          }
        }
      }
    }
  }
  await provider.shutdown();
  listener.close();
  await server;
}
