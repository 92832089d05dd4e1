// Copyright 2026 the chanpool authors. MIT license.
// The pool's options, counters and argument checks, in one place: every
// check of a user's argument for Pool lives here (pool.ts re-exports the
// types). A check throws TypeError (wrong type) or RangeError (out of
// range), naming the option and the value received.

import { type Clock, SYSTEM_CLOCK } from "./_time.ts";
import { type Backoff, DEFAULT_BACKOFF } from "./_state.ts";
import { describe, tooLong } from "./_util.ts";

/** What a borrow does when every resource is in use. */
export type WhenExhausted = "wait" | "fail" | "overflow";

/**
 * Periodic checks of idle resources.
 *
 * @typeParam T The resource type.
 */
export interface HeartbeatOptions<T> {
  /**
   * How long a resource may sit idle before it is pinged, in milliseconds:
   * a period, not a timeout, so it must be > 0 (`Infinity`: never pinged).
   */
  interval: number;
  /**
   * Checks one idle resource; returning `false` or throwing destroys it. The
   * signal aborts after `connectTimeout` or when the pool closes.
   */
  ping: (resource: T, signal: AbortSignal) => unknown;
}

/**
 * The dial schedule while the server is unreachable (gRPC's connection
 * backoff): after a failed dial, one probe dial at a time, the n-th after
 * `initial × multiplier^n` ms (at most `max`), each ± `jitter` at random.
 */
export interface BackoffOptions {
  /**
   * The first delay, in milliseconds (> 0).
   *
   * @default {50}
   */
  initial?: number | undefined;
  /**
   * How much each delay grows over the last (≥ 1).
   *
   * @default {1.6}
   */
  multiplier?: number | undefined;
  /**
   * The random spread of each delay, as a fraction of it (0 to 1): so that
   * many clients do not dial in step.
   *
   * @default {0.2}
   */
  jitter?: number | undefined;
  /**
   * The longest delay, in milliseconds (≥ `initial`).
   *
   * @default {2_000}
   */
  max?: number | undefined;
}

/**
 * A lease that was held longer than `leakTimeout`, or garbage-collected
 * without being released.
 *
 * @typeParam T The resource type.
 */
export interface LeakReport<T> {
  /** The leased resource. */
  resource: T;
  /** How long it has been held, in milliseconds. */
  heldFor: number;
  /** Where it was borrowed (a stack trace), when `leakTimeout` is set. */
  stack: string | undefined;
  /**
   * `true` when the lease was garbage-collected without release; the pool
   * then destroyed the resource and reclaimed its slot.
   */
  collected: boolean;
}

/**
 * Options for {@linkcode Pool}. Durations are in milliseconds (finite ones
 * at most 2^31 − 1, the timers' limit); for every timeout, `0` and
 * `Infinity` both mean no limit.
 *
 * @typeParam T The resource type.
 */
export interface PoolOptions<T> {
  /**
   * Closes a resource. By default calls its `Symbol.asyncDispose`,
   * `Symbol.dispose` or `close` method, if it has one. Errors are counted in
   * `stats.closeErrors` and otherwise ignored.
   */
  close?: ((resource: T, reason?: unknown) => unknown) | undefined;
  /**
   * Checks a resource that sat idle before it is lent; returning `false` or
   * throwing destroys it and the borrow moves on. The signal aborts after
   * `connectTimeout`. {@linkcode Pool.tryBorrow} does not call it.
   */
  validate?: ((resource: T, signal: AbortSignal) => unknown) | undefined;
  /**
   * The most resources open at once (idle, in use and being dialed); an
   * integer ≥ 1, or `Infinity`.
   *
   * @default {10}
   */
  max?: number | undefined;
  /**
   * The most idle resources kept; a released resource beyond it is closed.
   *
   * @default {max}
   */
  maxIdle?: number | undefined;
  /**
   * Idle resources kept ready: dialed in the background (backing off
   * exponentially, with jitter, after failures) and not evicted for
   * idleness. A resource its `watch` evicts within a second of its dial,
   * before it was ever lent (a server that accepts, then closes), counts as
   * a failed dial.
   *
   * @default {0}
   */
  minIdle?: number | undefined;
  /**
   * The most dials in flight at once. A burst of borrowers on busy resources
   * then opens a few resources rather than one per borrower: a waiter takes
   * whichever comes first, a released resource or a fresh dial.
   *
   * @default {2}
   */
  maxDialing?: number | undefined;
  /**
   * `"lifo"` reuses the most recently released resource first, so a surplus
   * ages out under `idleTimeout`; `"fifo"` rotates through all of them.
   *
   * @default {"lifo"}
   */
  idleOrder?: "lifo" | "fifo" | undefined;
  /**
   * When all `max` resources are open and in use: `"wait"` queues the borrow
   * (first come, first served), `"fail"` rejects with
   * {@linkcode PoolExhaustedError}, `"overflow"` dials an extra resource
   * outside the count that is closed on release.
   *
   * @default {"wait"}
   */
  whenExhausted?: WhenExhausted | undefined;
  /**
   * How long a borrow waits before rejecting with
   * {@linkcode PoolTimeoutError}; a borrow's own `timeout` overrides it.
   * `0` or `Infinity`: no limit.
   *
   * @default {30_000}
   */
  acquireTimeout?: number | undefined;
  /**
   * How long a dial (and a `validate` or heartbeat ping) may take: its signal
   * aborts then, and a dial that has not resolved counts as failed. `0` or
   * `Infinity`: no limit.
   *
   * @default {10_000}
   */
  connectTimeout?: number | undefined;
  /**
   * How long a resource may sit idle before it is closed (never below
   * `minIdle`). `0` or `Infinity`: never.
   *
   * @default {60_000}
   */
  idleTimeout?: number | undefined;
  /**
   * How long a resource may live; each gets up to 2.5 % less, at random, so
   * that resources made together do not expire together. Checked when idle
   * and on release. `0` or `Infinity`: forever.
   *
   * @default {1_800_000}
   */
  maxLifetime?: number | undefined;
  /** Pings idle resources periodically (off by default). */
  heartbeat?: HeartbeatOptions<T> | undefined;
  /**
   * When dials fail (the server is down), how often to try again: one probe
   * dial at a time on this schedule, whatever the number of borrowers.
   *
   * @default {{ initial: 50, multiplier: 1.6, jitter: 0.2, max: 2_000 }}
   */
  backoff?: BackoffOptions | undefined;
  /**
   * While the server is unreachable (`state` is `"transient_failure"`), a
   * borrow that nothing idle can serve rejects at once with a
   * {@linkcode DialError} (the last dial's failure as its `cause`), after a
   * macrotask, instead of waiting for the next probe. A borrow's own
   * `failFast` overrides it.
   *
   * @default {false}
   */
  failFast?: boolean | undefined;
  /**
   * The most borrows that may wait at once; one more rejects at once with
   * {@linkcode PoolExhaustedError} (a bounded queue, as Envoy's
   * `max_pending_requests`). An integer ≥ 0, or `Infinity`.
   *
   * @default {1024}
   */
  maxWaiting?: number | undefined;
  /**
   * Reports a lease held longer than this, with the stack of its borrow.
   * `0` or `Infinity`: off. A lease that is garbage-collected without release
   * is reported (and reclaimed) whatever this is.
   *
   * @default {0}
   */
  leakTimeout?: number | undefined;
  /**
   * Keep histograms of wait, use and dial times (`pool.histograms`), and
   * time borrows and uses precisely: two clock reads per borrow, which
   * cost more than the rest of a borrow of an idle resource. Off, events
   * carry times on the pool's coarse clock (10 ms steps).
   *
   * @default {false}
   */
  histograms?: boolean | undefined;
  /**
   * Receives leak reports. By default they go to `console.warn`. A throw is
   * contained: counted in `stats.callbackErrors`, never uncaught.
   */
  onLeak?: ((report: LeakReport<T>) => void) | undefined;
  /**
   * Called once for each new resource (overflow ones aside) with `evict`, a
   * function that destroys the resource if it is idle at that moment and
   * returns whether it did. For resources that can die while idle: a socket
   * the server closed, a client that emitted "end". An evicted resource is
   * counted in `stats.destroyed.evicted`, its slot is freed at once, and its
   * stale place in the idle channel is skipped.
   */
  watch?: ((resource: T, evict: () => boolean) => void) | undefined;
  /** The clock for every timeout and timer. Defaults to the system's. */
  clock?: Clock | undefined;
  /**
   * Names the pool in error messages: `"Cannot dial db-primary: refused"`.
   * {@linkcode TcpPool} sets it to `hostname:port`.
   *
   * @default {""}
   */
  name?: string | undefined;
}

/** Options for {@linkcode Pool.borrow} and {@linkcode Pool.use}. */
export interface BorrowOptions {
  /** Cancels the wait; the borrow then rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
  /**
   * How long to wait, in milliseconds, before rejecting with
   * {@linkcode PoolTimeoutError}. `0` or `Infinity`: no limit.
   *
   * @default {acquireTimeout}
   */
  timeout?: number | undefined;
  /**
   * Skip idle resources and dial a new one (destroying the longest-idle one
   * first when the pool is at `max`); when nothing is idle at `max`, wait as
   * usual. For a retry after a reused resource turned out stale. While the
   * server is unreachable it waits like any borrow (for the probe's
   * resource, or a released one).
   *
   * @default {false}
   */
  fresh?: boolean | undefined;
  /**
   * While the server is unreachable, reject at once (after a macrotask)
   * instead of waiting for the next probe; see `PoolOptions.failFast`.
   *
   * @default {the pool's failFast}
   */
  failFast?: boolean | undefined;
}

/** Options for {@linkcode Pool.close}. */
export interface PoolCloseOptions {
  /**
   * Close resources that are in use at once, instead of waiting for their
   * leases to be released.
   *
   * @default {false}
   */
  force?: boolean | undefined;
}

/** Why resources were destroyed, with counts; part of {@linkcode PoolStats}. */
export interface DestroyedStats {
  /** By {@linkcode Lease.destroy} (or a throw inside {@linkcode Pool.use}). */
  destroyed: number;
  /** `validate` said no. */
  invalid: number;
  /** A heartbeat ping failed. */
  heartbeat: number;
  /** Idle longer than `idleTimeout`. */
  idle: number;
  /** Older than `maxLifetime`. */
  lifetime: number;
  /** Released while `maxIdle` resources were already idle. */
  surplus: number;
  /** Overflow resources closed on release. */
  overflow: number;
  /** Found dead while idle. */
  evicted: number;
  /** Lease garbage-collected without release. */
  leaked: number;
  /** Closed by {@linkcode Pool.close}. */
  closed: number;
}

/** A snapshot of a pool's counts, from {@linkcode Pool.stats}. */
export interface PoolStats {
  /** The pool's `max`. */
  max: number;
  /** Resources counted against `max`: idle + inUse + dialing + checking. */
  open: number;
  /** Resources idle in the pool. */
  idle: number;
  /** Resources lent out (overflow resources not included). */
  inUse: number;
  /** Dials in flight. */
  dialing: number;
  /** Idle resources being validated or pinged. */
  checking: number;
  /** Borrows waiting for a resource. */
  waiting: number;
  /** Overflow resources lent out (not counted in `open`). */
  overflow: number;
  /** Borrows that got a resource. */
  borrows: number;
  /** Borrows that had to wait. */
  waits: number;
  /** Total time borrows spent waiting, in milliseconds. */
  waitTime: number;
  /** Borrows that timed out. */
  timeouts: number;
  /** Dials started. */
  dials: number;
  /** Dials that failed. */
  dialErrors: number;
  /** `close` calls that threw or rejected. */
  closeErrors: number;
  /** Times `onLeak` threw: contained (counted here), never uncaught. */
  callbackErrors: number;
  /** Destroyed resources, by reason. */
  destroyed: DestroyedStats;
}

// -- Checks --

/** `whenExhausted`, as the pool keeps it. */
export const WAIT = 0;
export const FAIL = 1;
export const OVERFLOW = 2;

function checkNumber(name: string, value: unknown): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot create pool: ${name} must be a number, received ${
        describe(value)
      }`,
    );
  }
  return value;
}

/** A count: an integer ≥ `min`, or Infinity when allowed. */
function count(
  name: string,
  value: unknown,
  min: number,
  infinite: boolean,
): number {
  const n = checkNumber(name, value);
  if (
    !(n >= min) || (!Number.isInteger(n) && !(infinite && n === Infinity))
  ) {
    throw new RangeError(
      `Cannot create pool: ${name} must be an integer ≥ ${min}${
        infinite ? " or Infinity" : ""
      }, received ${n}`,
    );
  }
  return n;
}

/** A duration: a non-negative number of milliseconds or Infinity. */
function duration(name: string, value: unknown, where = "create pool"): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${where}: ${name} must be a number of milliseconds, received ${
        describe(value)
      }`,
    );
  }
  if (!(value >= 0)) {
    throw new RangeError(
      `Cannot ${where}: ${name} must be a non-negative number of milliseconds or Infinity, received ${value}`,
    );
  }
  const long = tooLong(where, name, value);
  if (long !== undefined) throw long;
  return value;
}

function defaultClose(resource: unknown): unknown {
  if (typeof resource !== "object" && typeof resource !== "function") {
    return undefined;
  }
  if (resource === null) return undefined;
  const r = resource as Partial<AsyncDisposable & Disposable> & {
    close?: unknown;
  };
  if (typeof r[Symbol.asyncDispose] === "function") {
    return r[Symbol.asyncDispose]!();
  }
  if (typeof r[Symbol.dispose] === "function") return r[Symbol.dispose]!();
  if (typeof r.close === "function") return (r.close as () => unknown)();
  return undefined;
}

function defaultOnLeak(report: LeakReport<unknown>): void {
  const how = report.collected
    ? "was garbage-collected without being released"
    : `has been held for ${Math.round(report.heldFor)} ms`;
  console.warn(
    `chanpool: a lease ${how}${
      report.stack ? `; borrowed at:\n${report.stack}` : ""
    }`,
  );
}

/** A pool's options, checked, with their defaults filled in. */
export interface Settings<T> {
  closeFn: (resource: T, reason?: unknown) => unknown;
  validate: ((resource: T, signal: AbortSignal) => unknown) | null;
  ping: ((resource: T, signal: AbortSignal) => unknown) | null;
  onLeak: (report: LeakReport<T>) => void;
  watch: ((resource: T, evict: () => boolean) => void) | null;
  clock: Clock;
  max: number;
  maxIdle: number;
  minIdle: number;
  maxDialing: number;
  whenExhausted: number;
  acquireTimeout: number;
  connectTimeout: number;
  idleTimeout: number;
  maxLifetime: number;
  heartbeat: number;
  leakTimeout: number;
  order: "lifo" | "fifo";
  /** `" " + name` for messages, or "". */
  named: string;
  backoff: Backoff;
  failFast: boolean;
  maxWaiting: number;
  histograms: boolean;
}

/** Checks `new Pool(dial, options)`'s arguments; fills in defaults. */
export function settings<T>(
  dial: unknown,
  options: PoolOptions<T>,
): Settings<T> {
  let heartbeat = Infinity;
  let ping: Settings<T>["ping"] = null;
  if (typeof dial !== "function") {
    throw new TypeError(
      `Cannot create pool: dial must be a function, received ${describe(dial)}`,
    );
  }
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot create pool: options must be an object, received ${
        describe(options)
      }`,
    );
  }
  const o = options;
  for (const name of ["close", "validate", "onLeak", "watch"] as const) {
    if (o[name] !== undefined && typeof o[name] !== "function") {
      throw new TypeError(
        `Cannot create pool: ${name} must be a function, received ${
          describe(o[name])
        }`,
      );
    }
  }
  const closeFn = o.close ?? defaultClose;
  const validate = o.validate ?? null;
  const onLeak = o.onLeak ?? defaultOnLeak;
  const watch = o.watch ?? null;
  const max = count("max", o.max ?? 10, 1, true);
  const maxIdle = count("maxIdle", o.maxIdle ?? max, 0, true);
  if (maxIdle > max) {
    throw new RangeError(
      `Cannot create pool: maxIdle must be ≤ max (${max}), received ${maxIdle}`,
    );
  }
  const minIdle = count("minIdle", o.minIdle ?? 0, 0, false);
  if (minIdle > maxIdle) {
    throw new RangeError(
      `Cannot create pool: minIdle must be ≤ maxIdle (${maxIdle}), received ${minIdle}`,
    );
  }
  const maxDialing = count("maxDialing", o.maxDialing ?? 2, 1, true);
  const order = o.idleOrder ?? "lifo";
  if (order !== "lifo" && order !== "fifo") {
    throw new RangeError(
      `Cannot create pool: idleOrder must be "lifo" or "fifo", received ${
        describe(order)
      }`,
    );
  }
  const exhausted = o.whenExhausted ?? "wait";
  const whenExhausted = exhausted === "wait"
    ? WAIT
    : exhausted === "fail"
    ? FAIL
    : exhausted === "overflow"
    ? OVERFLOW
    : -1;
  if (whenExhausted < 0) {
    throw new RangeError(
      `Cannot create pool: whenExhausted must be "wait", "fail" or "overflow", received ${
        describe(exhausted)
      }`,
    );
  }
  // Timeouts: 0 and Infinity both mean no limit (kept as Infinity).
  const acquireTimeout = duration(
    "acquireTimeout",
    o.acquireTimeout ?? 30_000,
  ) || Infinity;
  const connectTimeout = duration(
    "connectTimeout",
    o.connectTimeout ?? 10_000,
  ) || Infinity;
  const idleTimeout = duration("idleTimeout", o.idleTimeout ?? 60_000) ||
    Infinity;
  const maxLifetime = duration("maxLifetime", o.maxLifetime ?? 1_800_000) ||
    Infinity;
  const leakTimeout = duration("leakTimeout", o.leakTimeout ?? 0) ||
    Infinity;
  const hb = o.heartbeat;
  if (hb !== undefined) {
    if (typeof hb !== "object" || hb === null) {
      throw new TypeError(
        `Cannot create pool: heartbeat must be an object, received ${
          describe(hb)
        }`,
      );
    }
    if (typeof hb.ping !== "function") {
      throw new TypeError(
        `Cannot create pool: heartbeat.ping must be a function, received ${
          describe(hb.ping)
        }`,
      );
    }
    const interval = duration("heartbeat.interval", hb.interval);
    if (interval === 0) {
      throw new RangeError(
        "Cannot create pool: heartbeat.interval must be > 0, received 0",
      );
    }
    heartbeat = interval;
    ping = hb.ping;
  }
  const clock = o.clock ?? SYSTEM_CLOCK;
  if (
    typeof clock !== "object" || clock === null ||
    typeof clock.now !== "function" ||
    typeof clock.setTimeout !== "function" ||
    typeof clock.clearTimeout !== "function"
  ) {
    throw new TypeError(
      `Cannot create pool: clock must have now, setTimeout and clearTimeout methods, received ${
        describe(clock)
      }`,
    );
  }
  if (o.name !== undefined && typeof o.name !== "string") {
    throw new TypeError(
      `Cannot create pool: name must be a string, received ${describe(o.name)}`,
    );
  }
  const named = o.name ? ` ${o.name}` : "";
  const backoff = backoffSettings(o.backoff);
  if (o.failFast !== undefined && typeof o.failFast !== "boolean") {
    throw new TypeError(
      `Cannot create pool: failFast must be a boolean, received ${
        describe(o.failFast)
      }`,
    );
  }
  const maxWaiting = count("maxWaiting", o.maxWaiting ?? 1024, 0, true);
  if (o.histograms !== undefined && typeof o.histograms !== "boolean") {
    throw new TypeError(
      `Cannot create pool: histograms must be a boolean, received ${
        describe(o.histograms)
      }`,
    );
  }
  return {
    histograms: o.histograms ?? false,
    backoff,
    failFast: o.failFast ?? false,
    maxWaiting,
    closeFn,
    validate,
    ping,
    onLeak,
    watch,
    clock,
    max,
    maxIdle,
    minIdle,
    maxDialing,
    whenExhausted,
    acquireTimeout,
    connectTimeout,
    idleTimeout,
    maxLifetime,
    heartbeat,
    leakTimeout,
    order,
    named,
  };
}

/** Checks `backoff` and fills in its defaults. */
function backoffSettings(value: unknown): Backoff {
  if (value === undefined) return DEFAULT_BACKOFF;
  if (typeof value !== "object" || value === null) {
    throw new TypeError(
      `Cannot create pool: backoff must be an object, received ${
        describe(value)
      }`,
    );
  }
  const b = value as BackoffOptions;
  const field = (
    name: keyof BackoffOptions,
    ok: (n: number) => boolean,
    what: string,
  ) => {
    const v = b[name] ?? DEFAULT_BACKOFF[name];
    const n = checkNumber(`backoff.${name}`, v);
    if (!ok(n)) {
      throw new RangeError(
        `Cannot create pool: backoff.${name} must be ${what}, received ${n}`,
      );
    }
    return n;
  };
  const initial = field(
    "initial",
    (n) => n > 0 && n < Infinity,
    "a positive number of milliseconds",
  );
  const multiplier = field("multiplier", (n) => n >= 1 && n < Infinity, "≥ 1");
  const jitter = field("jitter", (n) => n >= 0 && n <= 1, "from 0 to 1");
  const max = field(
    "max",
    (n) => n >= initial && n < Infinity,
    `a number of milliseconds ≥ backoff.initial (${initial})`,
  );
  return { initial, multiplier, jitter, max };
}

/** Checks a borrow's options, on every call; returns its timeout. */
export function borrowTimeout(
  options: BorrowOptions | undefined,
  acquireTimeout: number,
): number {
  if (
    options !== undefined && (typeof options !== "object" || options === null)
  ) {
    throw new TypeError(
      `Cannot borrow: options must be an object, received ${describe(options)}`,
    );
  }
  const signal = options?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(
      `Cannot borrow: signal must be an AbortSignal, received ${
        describe(signal)
      }`,
    );
  }
  const failFast = options?.failFast;
  if (failFast !== undefined && typeof failFast !== "boolean") {
    throw new TypeError(
      `Cannot borrow: failFast must be a boolean, received ${
        describe(failFast)
      }`,
    );
  }
  const fresh = options?.fresh;
  if (fresh !== undefined && typeof fresh !== "boolean") {
    throw new TypeError(
      `Cannot borrow: fresh must be a boolean, received ${describe(fresh)}`,
    );
  }
  // 0, like Infinity, is no limit.
  return options?.timeout === undefined
    ? acquireTimeout
    : duration("timeout", options.timeout, "borrow") || Infinity;
}

/** Checks `close(options)`; returns `force`. */
export function closeForce(options: PoolCloseOptions | undefined): boolean {
  if (options === undefined) return false;
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot close pool: options must be an object, received ${
        describe(options)
      }`,
    );
  }
  const force = options.force;
  if (force !== undefined && typeof force !== "boolean") {
    throw new TypeError(
      `Cannot close pool: force must be a boolean, received ${describe(force)}`,
    );
  }
  return force === true;
}
