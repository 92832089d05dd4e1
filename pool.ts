// Copyright 2026 the chanpool authors. MIT license.
/**
 * {@linkcode Pool}: a bounded, fair, cancellable pool of any resource, built
 * on channels. Borrowing takes from the idle channel or dials; releasing puts
 * back or closes.
 *
 * @example Usage
 * ```ts
 * import { Pool } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * let made = 0;
 * await using pool = new Pool(() => ({ id: ++made }), { max: 2 });
 * {
 *   await using lease = await pool.borrow();
 *   assert.equal(lease.resource.id, 1);
 * }
 * assert.equal(await pool.use((r) => r.id), 1); // the same resource, reused
 * ```
 *
 * @module
 */

import { Channel } from "./channel.ts";
import { internals, poolHooks } from "./_internal.ts";
import { ChannelWaiter } from "./_waiter.ts";
import { LinkedQueue } from "./_queue.ts";
import {
  Alarm,
  type Clock,
  CoarseClock,
  type Deadline,
  DeadlineHeap,
  SYSTEM_CLOCK,
} from "./_time.ts";
import { describe } from "./_util.ts";

export type { Clock } from "./_time.ts";

// -- Errors --

/**
 * Raised by a borrow on a closed pool, and by borrows that were waiting when
 * the pool closed.
 *
 * @example Usage
 * ```ts
 * import { Pool, PoolClosedError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const pool = new Pool(() => ({}));
 * await pool.close();
 * await assert.rejects(pool.borrow(), PoolClosedError);
 * ```
 */
export class PoolClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param options Error options.
   */
  constructor(message = "Pool is closed", options?: ErrorOptions) {
    super(message, options);
    this.name = "PoolClosedError";
  }
}

/**
 * Raised by a borrow when every resource is in use and `whenExhausted` is
 * `"fail"` (Go's `ErrMaxConn`).
 *
 * @example Usage
 * ```ts
 * import { Pool, PoolExhaustedError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => ({}), { max: 1, whenExhausted: "fail" });
 * await using _held = await pool.borrow();
 * await assert.rejects(pool.borrow(), PoolExhaustedError);
 * ```
 */
export class PoolExhaustedError extends Error {
  /** The pool's `max`. */
  readonly max: number;

  /**
   * Creates the error.
   *
   * @param max The pool's `max`.
   * @param options Error options.
   */
  constructor(max: number, options?: ErrorOptions) {
    super(`Cannot borrow: all ${max} resources are in use`, options);
    this.name = "PoolExhaustedError";
    this.max = max;
  }
}

/**
 * Something took longer than its `timeout`: a borrow, a request, an I/O call
 * on a pooled connection. `timeout` is the limit in milliseconds; `cause`,
 * when set, says which step ran out (a {@linkcode PoolTimeoutError} when the
 * time ran out while waiting for a resource). Its `name` is `"TimeoutError"`,
 * as for the web platform's `AbortSignal.timeout`.
 *
 * @example Usage
 * ```ts
 * import { Pool, TimeoutError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => ({}), { max: 1 });
 * await using _held = await pool.borrow();
 * await assert.rejects(pool.borrow({ timeout: 10 }), (e) => {
 *   assert.ok(e instanceof TimeoutError); // a PoolTimeoutError is one
 *   assert.equal(e.timeout, 10);
 *   return true;
 * });
 * ```
 */
export class TimeoutError extends Error {
  /** The limit that ran out, in whole milliseconds. */
  readonly timeout: number;

  /**
   * Creates the error.
   *
   * @param message What timed out.
   * @param timeout The limit, in milliseconds (rounded to a whole number).
   * @param options Error options; `cause` says which step ran out.
   */
  constructor(message: string, timeout: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "TimeoutError";
    this.timeout = Math.round(timeout);
  }
}

/**
 * Raised by a borrow that waited `timeout` (default `acquireTimeout`)
 * milliseconds without getting a resource. It is a {@linkcode TimeoutError}.
 *
 * @example Usage
 * ```ts
 * import { Pool, PoolTimeoutError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => ({}), { max: 1 });
 * await using _held = await pool.borrow();
 * await assert.rejects(pool.borrow({ timeout: 10 }), PoolTimeoutError);
 * ```
 */
export class PoolTimeoutError extends TimeoutError {
  /**
   * Creates the error.
   *
   * @param timeout How long the borrow waited, in milliseconds.
   * @param options Error options.
   */
  constructor(timeout: number, options?: ErrorOptions) {
    super(
      `Cannot borrow: no resource within ${Math.round(timeout)} ms`,
      timeout,
      options,
    );
    this.name = "PoolTimeoutError";
  }
}

/**
 * Raised by a borrow when the dial made for it failed (or timed out after
 * `connectTimeout`); `cause` is what the dial threw.
 *
 * @example Usage
 * ```ts
 * import { DialError, Pool } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => {
 *   throw new Error("connection refused");
 * });
 * await assert.rejects(pool.borrow(), (e) => {
 *   assert.ok(e instanceof DialError);
 *   assert.equal((e.cause as Error).message, "connection refused");
 *   return true;
 * });
 * ```
 */
export class DialError extends Error {
  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param options Error options; `cause` is the dial's own error.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DialError";
  }
}

// -- Options --

/** What a borrow does when every resource is in use. */
export type WhenExhausted = "wait" | "fail" | "overflow";

/**
 * Periodic checks of idle resources.
 *
 * @typeParam T The resource type.
 */
export interface HeartbeatOptions<T> {
  /**
   * How long a resource may sit idle before it is pinged, in milliseconds.
   */
  interval: number;
  /**
   * Checks one idle resource; returning `false` or throwing destroys it. The
   * signal aborts after `connectTimeout` or when the pool closes.
   */
  ping: (resource: T, signal: AbortSignal) => unknown;
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
 * Options for {@linkcode Pool}. Durations are in milliseconds; `Infinity`
 * means "never".
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
   * idleness.
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
   *
   * @default {30_000}
   */
  acquireTimeout?: number | undefined;
  /**
   * How long a dial (and a `validate` or heartbeat ping) may take: its signal
   * aborts then, and a dial that has not resolved counts as failed.
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
   * Reports a lease held longer than this, with the stack of its borrow.
   * `0` or `Infinity`: off. A lease that is garbage-collected without release
   * is reported (and reclaimed) whatever this is.
   *
   * @default {0}
   */
  leakTimeout?: number | undefined;
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
   * {@linkcode PoolTimeoutError}.
   *
   * @default {acquireTimeout}
   */
  timeout?: number | undefined;
  /**
   * Skip idle resources and dial a new one (destroying the longest-idle one
   * first when the pool is at `max`); when nothing is idle at `max`, wait as
   * usual. For a retry after a reused resource turned out stale.
   *
   * @default {false}
   */
  fresh?: boolean | undefined;
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

// -- Internals --

const IDLE = 0;
const BUSY = 1;
const CHECKING = 2;
const GONE = 3;
type EntryState = typeof IDLE | typeof BUSY | typeof CHECKING | typeof GONE;

const WAIT = 0;
const FAIL = 1;
const OVERFLOW = 2;

/** How stale the release path's clock reading may be, in milliseconds. */
const COARSE = 10;

/** How long a lease is held before it is registered for GC checks. */
const TRACK_DELAY = 1_000;

/** What the FinalizationRegistry holds for a lease. */
interface Tracked<T> {
  entry: Entry<T>;
  gen: number;
}

/**
 * A parked borrower: its deadline node, its signal's listener, and the sink
 * the idle channel settles synchronously when it hands over an entry or a
 * dial error, so a hand-over costs one promise hop.
 */
class Waiter<T> extends ChannelWaiter implements Deadline {
  // In the deadline lane or heap.
  at: number;
  pos = -1;
  dprev: Deadline | null = null;
  dnext: Deadline | null = null;
  readonly pool: Pool<T>;
  readonly timeout: number;
  readonly start: number;
  readonly promise: Promise<Lease<T>>;

  constructor(
    pool: Pool<T>,
    signal: AbortSignal | undefined,
    timeout: number,
    start: number,
  ) {
    super(undefined, null, 0);
    this.pool = pool;
    this.signal = signal;
    this.timeout = timeout;
    this.start = start;
    this.at = start + timeout;
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve as (value: unknown) => void;
      this.reject = reject;
    });
  }

  /** The idle channel handed over an entry. */
  override received(value: unknown): void {
    waiterSettled(this.pool, this, value, false);
  }

  /** The channel closed, a dial failed for it, or it gave up. */
  override failed(reason: unknown): void {
    waiterSettled(this.pool, this, reason, true);
  }

  /** The deadline passed. */
  fire(): void {
    if (this.leave()) {
      waiterTimedOut(this.pool);
      this.failed(new PoolTimeoutError(this.timeout));
    }
  }

  /** The signal aborted. */
  override handleEvent(): void {
    if (this.leave()) this.failed(this.signal!.reason);
  }
}

// Bound to Pool's private methods in its static block.
let waiterSettled: <T>(
  pool: Pool<T>,
  waiter: Waiter<T>,
  value: unknown,
  failed: boolean,
) => void;
let waiterTimedOut: <T>(pool: Pool<T>) => void;

/** Base and cap of the minIdle refill backoff, in milliseconds. */
const BACKOFF_BASE = 100;
const BACKOFF_CAP = 30_000;

/**
 * After this many failed dials in a row, dials for borrowers pause for a
 * step that doubles from PAUSE_BASE up to PAUSE_CAP (minus up to half, at
 * random), and borrows that only a dial could serve fail at once meanwhile:
 * a server that is down gets a few dials a second, not one per borrow, and
 * one that comes back is dialed again within PAUSE_CAP.
 */
const PAUSE_AFTER = 3;
const PAUSE_BASE = 50;
const PAUSE_CAP = 800;

/** A key of `stats.destroyed`: the pool's own, or one a sibling module adds. */
type DestroyReason = string;

/** One resource and its bookkeeping. Sits in the busy list while lent. */
class Entry<T> {
  prev: Entry<T> | null = null;
  next: Entry<T> | null = null;
  queue: LinkedQueue<Entry<T>> | null = null;
  state: EntryState = IDLE;
  /** Bumped on every lend and settle: a lease is live while its gen matches. */
  gen = 0;
  uses = 0;
  /** When it last went idle, or was last pinged. */
  idleSince: number;
  borrowedAt = 0;
  stack: Error | undefined = undefined;
  leakReported = false;
  /** What Lease.destroy was given, for the close function. */
  reason: unknown = undefined;
  /** The live lease, until the tracking timer registers it for GC checks. */
  lease: Lease<T> | null = null;
  /** Registered with the FinalizationRegistry (unregister on settle). */
  tracked = false;
  /** Marked dead while sitting in the idle channel (already destroyed). */
  dead = false;
  readonly resource: T;
  readonly expiresAt: number;
  readonly overflow: boolean;

  constructor(resource: T, now: number, expiresAt: number, overflow: boolean) {
    this.resource = resource;
    this.idleSince = now;
    this.expiresAt = expiresAt;
    this.overflow = overflow;
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

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

// Bound to Pool's private methods in its static block.
let settle: <T>(
  pool: Pool<T>,
  entry: Entry<T>,
  gen: number,
  destroy: boolean,
  key?: DestroyReason,
) => void;

/**
 * A borrowed resource. Release it (or dispose of it with `await using`) to
 * give it back; {@linkcode Lease.destroy} it if it is broken. Settling a lease
 * twice does nothing: a resource is never held by two leases.
 *
 * @example Usage
 * ```ts
 * import { Pool } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => new Map<string, number>());
 * const lease = await pool.borrow();
 * lease.resource.set("hits", 1);
 * assert.equal(lease.reused, false);
 * lease.release();
 * lease.release(); // a no-op
 * assert.throws(() => lease.resource, TypeError);
 * ```
 *
 * @typeParam T The resource type.
 */
export class Lease<T> implements Disposable, AsyncDisposable {
  readonly #pool: Pool<T>;
  #entry: Entry<T> | null;
  readonly #gen: number;

  /**
   * Leases are made by {@linkcode Pool.borrow}; this constructor is not
   * public API.
   *
   * @param pool The pool.
   * @param entry The pool's record of the resource.
   * @param gen The record's generation.
   */
  constructor(pool: Pool<T>, entry: Entry<T>, gen: number) {
    this.#pool = pool;
    this.#entry = entry;
    this.#gen = gen;
  }

  /**
   * The borrowed resource.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => "resource");
   * await using lease = await pool.borrow();
   * assert.equal(lease.resource, "resource");
   * ```
   *
   * @returns The resource.
   * @throws {TypeError} If the lease was released or destroyed.
   */
  get resource(): T {
    const entry = this.#entry;
    if (entry === null || entry.gen !== this.#gen) {
      throw new TypeError("Cannot use lease: it was released");
    }
    return entry.resource;
  }

  /**
   * Whether the resource was lent before (it came from the idle pool, not a
   * fresh dial).
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}));
   * (await pool.borrow()).release();
   * await using lease = await pool.borrow();
   * assert.equal(lease.reused, true);
   * ```
   *
   * @returns `true` if the resource was lent before.
   * @throws {TypeError} If the lease was released or destroyed.
   */
  get reused(): boolean {
    const entry = this.#entry;
    if (entry === null || entry.gen !== this.#gen) {
      throw new TypeError("Cannot use lease: it was released");
    }
    return entry.uses > 1;
  }

  /**
   * Whether the lease is still held (not released, destroyed, or reclaimed
   * by a forced {@linkcode Pool.close}).
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}));
   * const lease = await pool.borrow();
   * assert.equal(lease.held, true);
   * lease.release();
   * assert.equal(lease.held, false);
   * ```
   *
   * @returns `true` while held.
   */
  get held(): boolean {
    const entry = this.#entry;
    return entry !== null && entry.gen === this.#gen;
  }

  /**
   * Gives the resource back to the pool, which keeps it idle (or hands it to
   * the first waiting borrower) unless it expired, the pool is full of idle
   * resources, or the pool is closed; then it is closed. A no-op once the
   * lease is settled.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}));
   * const lease = await pool.borrow();
   * lease.release();
   * assert.equal(pool.stats.idle, 1);
   * ```
   */
  release(): void {
    const entry = this.#entry;
    if (entry === null) return;
    this.#entry = null;
    settle(this.#pool, entry, this.#gen, false);
  }

  /**
   * Closes the resource instead of giving it back (it is broken, or in an
   * unknown state); its slot is freed for a fresh one. A no-op once the
   * lease is settled.
   *
   * @param reason Why (optional): passed to the pool's `close` as its second
   * argument, for logs.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const closed: number[] = [];
   * await using pool = new Pool(() => 1, { close: (r) => void closed.push(r) });
   * const lease = await pool.borrow();
   * lease.destroy();
   * assert.deepEqual(closed, [1]);
   * assert.equal(pool.stats.open, 0);
   * ```
   */
  destroy(reason?: unknown): void {
    this.#destroyAs("destroyed", reason);
  }

  #destroyAs(key: DestroyReason, reason: unknown): void {
    const entry = this.#entry;
    if (entry === null) return;
    this.#entry = null;
    if (entry.gen === this.#gen) entry.reason = reason;
    settle(this.#pool, entry, this.#gen, true, key);
  }

  static {
    poolHooks.destroyAs = (lease, key, reason) =>
      (lease as Lease<unknown>).#destroyAs(key, reason);
    poolHooks.release = (lease) => {
      const entry = (lease as Lease<unknown>).#entry;
      (lease as Lease<unknown>).release();
      return entry !== null && entry.state === BUSY;
    };
  }

  /**
   * Releases the lease, for `using`.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}));
   * {
   *   using _lease = await pool.borrow();
   *   assert.equal(pool.stats.inUse, 1);
   * }
   * assert.equal(pool.stats.inUse, 0);
   * ```
   */
  [Symbol.dispose](): void {
    this.release();
  }

  /**
   * Releases the lease, for `await using`.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}));
   * {
   *   await using _lease = await pool.borrow();
   * }
   * assert.equal(pool.stats.idle, 1);
   * ```
   *
   * @returns A resolved promise.
   */
  [Symbol.asyncDispose](): Promise<void> {
    this.release();
    return Promise.resolve();
  }
}

/**
 * A bounded, fair, cancellable pool of resources, built on three channels:
 *
 * - `idle`: the idle resources (LIFO by default), capacity `maxIdle`;
 * - `slots`: Go's counting-semaphore idiom, one buffered value per resource
 *   counted against `max` (open or being dialed);
 * - a failed dial's error goes to the first parked borrower through the idle
 *   channel too, and only to a parked one: it is never buffered.
 *
 * A borrow takes an idle resource at once when there is one (no timer, no
 * promise but its own). Otherwise it parks on the idle channel, first come
 * first served, and a dial is started for it while fewer than `maxDialing` are in
 * flight and a slot is free; it takes whichever comes first, a released
 * resource or the fresh one. A released resource goes straight to the first
 * waiter. Every slot that comes back while borrowers wait starts a dial for
 * them, so the pool never shrinks for good.
 *
 * @example Usage
 * ```ts
 * import { Pool } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * let dials = 0;
 * await using pool = new Pool(async () => ({ id: ++dials }), {
 *   max: 2,
 *   close: () => {},
 * });
 * const a = await pool.borrow();
 * const b = await pool.borrow();
 * const c = pool.borrow(); // waits: both resources are in use
 * a.release(); // handed straight to the waiter
 * assert.equal((await c).resource.id, 1);
 * assert.equal(pool.stats.open, 2);
 * b.release();
 * (await c).release();
 * ```
 *
 * @typeParam T The resource type.
 */
export class Pool<T> implements AsyncDisposable {
  readonly #dial: (signal: AbortSignal) => T | Promise<T>;
  readonly #closeFn: (resource: T, reason?: unknown) => unknown;
  readonly #validate: ((resource: T, signal: AbortSignal) => unknown) | null;
  readonly #ping: ((resource: T, signal: AbortSignal) => unknown) | null;
  readonly #onLeak: (report: LeakReport<T>) => void;
  readonly #watch: ((resource: T, evict: () => boolean) => void) | null;
  readonly #clock: Clock;
  readonly #max: number;
  readonly #maxIdle: number;
  readonly #minIdle: number;
  readonly #maxDialing: number;
  readonly #whenExhausted: number;
  readonly #acquireTimeout: number;
  readonly #connectTimeout: number;
  readonly #idleTimeout: number;
  readonly #maxLifetime: number;
  readonly #heartbeat: number;
  readonly #leakTimeout: number;
  readonly #lifo: boolean;
  /** `" " + name` for messages, or "". */
  readonly #named: string;

  // idle holds IDLE entries (and `dead` ones, counted in #deadIdle, already
  // destroyed); a borrower waits only while it is empty.
  readonly #idle: Channel<Entry<T>>;
  // slots.size = resources counted against max = idle + inUse + dialing +
  // checking (overflow resources excluded).
  readonly #slots: Channel<undefined>;
  // Entries lent out (BUSY), for leak checks and forced close. Holds entries,
  // never leases, so a dropped lease can be garbage-collected.
  readonly #busy: LinkedQueue<Entry<T>> = new LinkedQueue();
  readonly #deadlines: DeadlineHeap;
  // Aborts validate and heartbeat checks in flight when the pool closes.
  readonly #checkControllers = new Set<AbortController>();
  // Gives up every dial in flight (#runDial) when the pool closes.
  readonly #dialRuns = new Set<(reason: unknown) => void>();
  readonly #registry: FinalizationRegistry<Tracked<T>>;
  #trackTimer: unknown = undefined;
  readonly #coarse: CoarseClock;

  #inUse = 0; // BUSY entries, including ones handed to a waiter not yet resumed
  #dialing = 0; // dials counted in slots, not yet settled
  #pendingDials = 0; // dial promises not yet settled (even abandoned ones)
  #checking = 0;
  #waiting = 0;
  #overflow = 0;
  #deadIdle = 0;
  #closing = 0; // resource closes in progress
  #closed = false;
  #drained: PromiseWithResolvers<void> | null = null;
  readonly #hk: Alarm;
  #backoff = 0; // minIdle refill backoff step, ms (0 after a good dial)
  #failStreak = 0; // dials failed in a row (reset by a good one)
  #lastDialError: DialError | null = null;
  #pausedUntil = 0; // demand dials wait until then after PAUSE_AFTER failures
  #sweeping = false;
  #refillAt = 0;

  #borrows = 0;
  #waits = 0;
  #waitTime = 0;
  #timeouts = 0;
  #dials = 0;
  #dialErrors = 0;
  #closeErrors = 0;
  #callbackErrors = 0;
  readonly #destroyed: DestroyedStats & Record<string, number> = {
    destroyed: 0,
    invalid: 0,
    heartbeat: 0,
    idle: 0,
    lifetime: 0,
    surplus: 0,
    overflow: 0,
    evicted: 0,
    leaked: 0,
    closed: 0,
  };

  /**
   * Creates a pool. If `minIdle` is set, dialing starts at once.
   *
   * @param dial Makes a resource; receives a signal that aborts after
   *   `connectTimeout` or when the pool closes. May return the resource or a
   *   promise of it.
   * @param options Limits, timeouts and hooks; see {@linkcode PoolOptions}.
   * @throws {TypeError} If `dial` is not a function, or an option has the
   *   wrong type.
   * @throws {RangeError} If an option is out of range: `max` < 1,
   *   `maxIdle` > `max`, `minIdle` > `maxIdle`, a negative or NaN duration, an
   *   unknown `whenExhausted` or `idleOrder`.
   */
  constructor(
    dial: (signal: AbortSignal) => T | Promise<T>,
    options: PoolOptions<T> = {},
  ) {
    if (typeof dial !== "function") {
      throw new TypeError(
        `Cannot create pool: dial must be a function, received ${
          describe(dial)
        }`,
      );
    }
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `Cannot create pool: options must be an object, received ${
          describe(options)
        }`,
      );
    }
    this.#dial = dial;
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
    this.#closeFn = o.close ?? defaultClose;
    this.#validate = o.validate ?? null;
    this.#onLeak = o.onLeak ?? defaultOnLeak;
    this.#watch = o.watch ?? null;
    this.#max = count("max", o.max ?? 10, 1, true);
    this.#maxIdle = count("maxIdle", o.maxIdle ?? this.#max, 0, true);
    if (this.#maxIdle > this.#max) {
      throw new RangeError(
        `Cannot create pool: maxIdle must be ≤ max (${this.#max}), received ${this.#maxIdle}`,
      );
    }
    this.#minIdle = count("minIdle", o.minIdle ?? 0, 0, false);
    if (this.#minIdle > this.#maxIdle) {
      throw new RangeError(
        `Cannot create pool: minIdle must be ≤ maxIdle (${this.#maxIdle}), received ${this.#minIdle}`,
      );
    }
    this.#maxDialing = count("maxDialing", o.maxDialing ?? 2, 1, true);
    const order = o.idleOrder ?? "lifo";
    if (order !== "lifo" && order !== "fifo") {
      throw new RangeError(
        `Cannot create pool: idleOrder must be "lifo" or "fifo", received ${
          describe(order)
        }`,
      );
    }
    const exhausted = o.whenExhausted ?? "wait";
    this.#whenExhausted = exhausted === "wait"
      ? WAIT
      : exhausted === "fail"
      ? FAIL
      : exhausted === "overflow"
      ? OVERFLOW
      : -1;
    if (this.#whenExhausted < 0) {
      throw new RangeError(
        `Cannot create pool: whenExhausted must be "wait", "fail" or "overflow", received ${
          describe(exhausted)
        }`,
      );
    }
    this.#acquireTimeout = duration(
      "acquireTimeout",
      o.acquireTimeout ?? 30_000,
    );
    this.#connectTimeout = duration(
      "connectTimeout",
      o.connectTimeout ?? 10_000,
    );
    this.#idleTimeout = duration("idleTimeout", o.idleTimeout ?? 60_000) ||
      Infinity;
    this.#maxLifetime = duration("maxLifetime", o.maxLifetime ?? 1_800_000) ||
      Infinity;
    this.#leakTimeout = duration("leakTimeout", o.leakTimeout ?? 0) ||
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
      this.#heartbeat = interval;
      this.#ping = hb.ping;
    } else {
      this.#heartbeat = Infinity;
      this.#ping = null;
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
    this.#clock = clock;
    if (o.name !== undefined && typeof o.name !== "string") {
      throw new TypeError(
        `Cannot create pool: name must be a string, received ${
          describe(o.name)
        }`,
      );
    }
    this.#named = o.name ? ` ${o.name}` : "";
    this.#lifo = order === "lifo";
    this.#idle = new Channel({ capacity: this.#maxIdle, order });
    this.#slots = new Channel({ capacity: this.#max });
    this.#deadlines = new DeadlineHeap(clock, false);
    this.#coarse = new CoarseClock(clock, COARSE);
    this.#hk = new Alarm(clock, () => this.#housekeep());
    this.#registry = new FinalizationRegistry((held) => this.#collected(held));
    this.#fill();
  }

  /**
   * Borrows a resource: an idle one at once if there is one (checked with
   * `validate` if set); otherwise waits, first come first served, for a
   * released or freshly dialed one.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({ ok: true }), { max: 1 });
   * await using lease = await pool.borrow({ signal: AbortSignal.timeout(1_000) });
   * assert.equal(lease.resource.ok, true);
   * ```
   *
   * @param options A signal that cancels the wait, and a `timeout` in
   *   milliseconds (default `acquireTimeout`).
   * @returns A lease on the resource.
   * @throws {PoolClosedError} If the pool is or becomes closed.
   * @throws {PoolTimeoutError} If no resource came within the timeout.
   * @throws {PoolExhaustedError} If all are in use and `whenExhausted` is
   *   `"fail"`.
   * @throws {DialError} If the dial made for this borrow failed.
   */
  borrow(options?: BorrowOptions): Promise<Lease<T>> {
    if (options !== undefined) {
      // Checked on every call, not only when it has to wait.
      try {
        this.#borrowOptions(options);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (this.#validate === null && options?.fresh !== true) {
      const entry = this.#takeIdle();
      if (entry !== undefined) return Promise.resolve(this.#lend(entry));
      // Straight to the wait, without an async frame in between: every
      // promise hop shows under contention.
      try {
        return this.#afterIdle(options);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.#borrowSlow(options);
  }

  /**
   * Borrows an idle resource if there is one; never waits and never dials.
   * Does not call `validate`.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}));
   * assert.equal(pool.tryBorrow(), undefined); // nothing idle yet
   * (await pool.borrow()).release();
   * using lease = pool.tryBorrow();
   * assert.ok(lease);
   * ```
   *
   * @returns A lease, or `undefined` when nothing is idle.
   */
  tryBorrow(): Lease<T> | undefined {
    const entry = this.#takeIdle();
    return entry === undefined ? undefined : this.#lend(entry);
  }

  /**
   * Borrows a resource, calls `fn` with it, and releases it when `fn`
   * resolves, or destroys it when `fn` throws.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => [1, 2, 3]);
   * assert.equal(await pool.use((xs) => xs.length), 3);
   * ```
   *
   * @typeParam R The result type.
   * @param fn Uses the resource.
   * @param options As for {@linkcode Pool.borrow}.
   * @returns What `fn` returned.
   * @throws {PoolClosedError} See {@linkcode Pool.borrow}, and what `fn`
   *   throws.
   */
  async use<R>(
    fn: (resource: T) => R | Promise<R>,
    options?: BorrowOptions,
  ): Promise<R> {
    const lease = await this.borrow(options);
    let result: R;
    try {
      result = await fn(lease.resource);
    } catch (error) {
      lease.destroy();
      throw error;
    }
    lease.release();
    return result;
  }

  /**
   * A snapshot of the pool's counts.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}), { max: 4 });
   * await using _lease = await pool.borrow();
   * const { open, idle, inUse, max } = pool.stats;
   * assert.deepEqual({ open, idle, inUse, max }, { open: 1, idle: 0, inUse: 1, max: 4 });
   * ```
   *
   * @returns The counts.
   */
  get stats(): PoolStats {
    return {
      max: this.#max,
      open: this.#slots.size,
      idle: this.#idle.size - this.#deadIdle,
      inUse: this.#inUse,
      dialing: this.#dialing,
      checking: this.#checking,
      waiting: this.#waiting,
      overflow: this.#overflow,
      borrows: this.#borrows,
      waits: this.#waits,
      waitTime: this.#waitTime,
      timeouts: this.#timeouts,
      dials: this.#dials,
      dialErrors: this.#dialErrors,
      closeErrors: this.#closeErrors,
      callbackErrors: this.#callbackErrors,
      destroyed: { ...this.#destroyed },
    };
  }

  /**
   * Whether {@linkcode Pool.close} was called.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const pool = new Pool(() => ({}));
   * await pool.close();
   * assert.equal(pool.closed, true);
   * ```
   *
   * @returns `true` once closing has begun.
   */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Closes the pool: waiting borrows reject with {@linkcode PoolClosedError},
   * idle resources are closed, dials in flight are aborted (a resource that
   * arrives anyway is closed), every timer stops. Resources in use are closed
   * when their leases are settled, or at once with `force`. Resolves when
   * every resource is closed. Idempotent; calling again with `force`
   * escalates.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const closed: string[] = [];
   * const pool = new Pool(() => "r", { close: (r) => void closed.push(r) });
   * const lease = await pool.borrow();
   * const done = pool.close(); // waits for the lease
   * lease.release();
   * await done;
   * assert.deepEqual(closed, ["r"]);
   * ```
   *
   * @param options `force: true` closes resources in use at once.
   * @returns A promise that resolves when every resource is closed.
   */
  close(options?: PoolCloseOptions): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#drained = Promise.withResolvers();
      this.#hk.disarm();
      this.#coarse.stop();
      this.#idle.close(new PoolClosedError("Cannot borrow: the pool closed"));
      if (this.#trackTimer !== undefined) {
        this.#clock.clearTimeout(this.#trackTimer);
      }
      this.#trackTimer = undefined;
      this.#deadlines.clear();
      let r;
      while ((r = this.#idle.tryReceive()).state === "ok") {
        this.#discardIdle(r.value, "closed");
      }
      const reason = new PoolClosedError("Cannot dial: the pool is closed");
      for (const ctl of this.#checkControllers) ctl.abort(reason);
      for (const abandon of [...this.#dialRuns]) abandon(reason);
    }
    if (options?.force) {
      let entry;
      while ((entry = this.#busy.head) !== null) {
        this.#settle(entry, entry.gen, true, "closed");
      }
    }
    this.#checkDrained();
    return this.#drained!.promise;
  }

  /**
   * Closes the pool, waiting for leases in use; for `await using`.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * let ref: Pool<object>;
   * {
   *   await using pool = new Pool(() => ({}));
   *   ref = pool;
   * }
   * assert.equal(ref.closed, true);
   * ```
   *
   * @returns A promise that resolves when every resource is closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -- borrowing --

  /** Takes the next usable idle entry, discarding dead and expired ones. */
  // Expired idle entries are evicted by the housekeeping timer, armed at the
  // earliest due time; a clock read here would cost as much as the rest of
  // the borrow.
  #takeIdle(): Entry<T> | undefined {
    while (true) {
      const r = this.#idle.tryReceive();
      if (r.state !== "ok") return undefined;
      const entry = r.value;
      if (entry.dead) {
        this.#deadIdle--;
        continue;
      }
      return entry;
    }
  }

  /** Borrows with `validate` or `fresh`: may await checks of idle entries. */
  async #borrowSlow(options: BorrowOptions | undefined): Promise<Lease<T>> {
    this.#borrowOptions(options);
    let entry;
    while (!options?.fresh && (entry = this.#takeIdle()) !== undefined) {
      if (this.#validate === null) return this.#lend(entry);
      if (await this.#check(entry, this.#validate, "invalid")) {
        this.#checking--;
        if (!this.#closed) return this.#lend(entry);
        this.#destroy(entry, "closed");
      }
    }
    return await this.#afterIdle(options);
  }

  /** Checks a borrow's options; returns its timeout. */
  #borrowOptions(options: BorrowOptions | undefined): number {
    if (
      options !== undefined && (typeof options !== "object" || options === null)
    ) {
      throw new TypeError(
        `Cannot borrow: options must be an object, received ${
          describe(options)
        }`,
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
    return options?.timeout === undefined
      ? this.#acquireTimeout
      : duration("timeout", options.timeout, "borrow");
  }

  /** Nothing idle (or a fresh one wanted): dial, fail, overflow or wait. */
  #afterIdle(options: BorrowOptions | undefined): Promise<Lease<T>> {
    const timeout = this.#borrowOptions(options);
    const signal = options?.signal;
    if (this.#closed) {
      throw new PoolClosedError("Cannot borrow: the pool is closed");
    }
    if (signal?.aborted) throw signal.reason;
    if (options?.fresh) {
      if (this.#slots.size >= this.#max) this.#evictOldestIdle();
      if (this.#slots.size < this.#max) {
        this.#checkPaused(true);
        this.#slots.trySend(undefined);
        return this.#lendFresh(signal, timeout);
      }
    }
    if (this.#slots.size >= this.#max) {
      if (this.#whenExhausted === FAIL) throw new PoolExhaustedError(this.#max);
      if (this.#whenExhausted === OVERFLOW) {
        this.#checkPaused(true);
        return this.#lendOverflow(signal, timeout);
      }
    } else this.#checkPaused(false);
    return this.#wait(signal, timeout);
  }

  #wait(
    signal: AbortSignal | undefined,
    timeout: number,
  ): Promise<Lease<T>> {
    this.#waits++;
    this.#waiting++;
    // A fresh reading: after a stalled event loop the coarse one is old,
    // and a deadline from it would have passed already. Later coarse
    // readings in this window start from it.
    const start = this.#coarse.fresh();
    const waiter = new Waiter(this, signal, timeout, start);
    internals.park(this.#idle, waiter);
    if (timeout !== Infinity) this.#deadlines.add(waiter);
    signal?.addEventListener("abort", waiter, { once: true });
    if (this.#slots.size < this.#max) this.#fill();
    return waiter.promise;
  }

  /**
   * A waiter got an entry or a dial error from the idle channel, or failed
   * (timeout, abort, close): synchronously, inside the sender's call.
   */
  #waiterSettled(waiter: Waiter<T>, value: unknown, failed: boolean): void {
    this.#waiting--;
    if (waiter.pos !== -1) this.#deadlines.remove(waiter);
    waiter.signal?.removeEventListener("abort", waiter);
    this.#waitTime += Math.max(0, this.#coarse.now() - waiter.start);
    if (failed) return waiter.reject(value);
    waiter.resolve(this.#lend(value as Entry<T>));
  }

  #evictOldestIdle(): void {
    const idle = this.#drainIdle().filter((e) => !e.dead);
    this.#deadIdle = 0;
    // LIFO drains newest first; FIFO, oldest first.
    const oldest = this.#lifo ? idle.pop() : idle.shift();
    this.#refillIdle(idle);
    if (oldest !== undefined) this.#destroy(oldest, "evicted");
  }

  /**
   * Dials a counted resource for one borrower (its slot is taken), within
   * the borrow's timeout as well as `connectTimeout`.
   */
  #lendFresh(
    signal: AbortSignal | undefined,
    timeout: number,
  ): Promise<Lease<T>> {
    this.#dialing++;
    const { promise, resolve, reject } = Promise.withResolvers<Lease<T>>();
    this.#runDial(timeout, signal, (failed, value) => {
      this.#dialing--;
      if (failed) {
        this.#slots.tryReceive();
        this.#fill();
        this.#checkDrained();
        return reject(value);
      }
      const entry = this.#newEntry(value as T);
      if (entry === null) {
        return reject(
          new DialError(`Cannot dial${this.#named}: watch threw`),
        );
      }
      if (this.#closed) {
        this.#destroy(entry, "closed");
        return reject(new PoolClosedError("Cannot borrow: the pool closed"));
      }
      resolve(this.#lend(entry));
    });
    return promise;
  }

  /** Dials an uncounted resource for one borrower at `max`. */
  #lendOverflow(
    signal: AbortSignal | undefined,
    timeout: number,
  ): Promise<Lease<T>> {
    // Counted in #overflow while dialing, so close() waits for it.
    this.#overflow++;
    const { promise, resolve, reject } = Promise.withResolvers<Lease<T>>();
    this.#runDial(timeout, signal, (failed, value) => {
      this.#overflow--;
      if (failed) {
        this.#checkDrained();
        return reject(value);
      }
      const entry = new Entry(value as T, this.#clock.now(), Infinity, true);
      if (this.#closed) {
        this.#closeResource(entry.resource);
        this.#checkDrained();
        return reject(new PoolClosedError("Cannot borrow: the pool closed"));
      }
      resolve(this.#lend(entry));
    });
    return promise;
  }

  #lend(entry: Entry<T>): Lease<T> {
    entry.state = BUSY;
    entry.uses++;
    const gen = ++entry.gen;
    if (entry.overflow) this.#overflow++;
    else this.#inUse++;
    this.#borrows++;
    this.#busy.push(entry);
    if (this.#leakTimeout !== Infinity) {
      entry.borrowedAt = this.#clock.now();
      entry.leakReported = false;
      entry.stack = new Error("Lease borrowed here");
      this.#armHousekeeping(entry.borrowedAt + this.#leakTimeout);
    }
    const lease = new Lease(this, entry, gen);
    // Leases are registered for garbage-collection checks only if still held
    // when the tracking timer fires: most are released long before, and a
    // registration costs more than the rest of a borrow.
    entry.lease = lease;
    if (this.#trackTimer === undefined) this.#armTracking();
    return lease;
  }

  // -- releasing --

  /** Ends a lease: released, destroyed, force-closed or collected. */
  #settle(
    entry: Entry<T>,
    gen: number,
    destroy: boolean,
    reason: DestroyReason = "destroyed",
  ): void {
    if (entry.gen !== gen || entry.state !== BUSY) return;
    entry.lease = null;
    if (entry.tracked) {
      entry.tracked = false;
      this.#registry.unregister(entry);
    }
    entry.gen++;
    entry.stack = undefined;
    this.#busy.remove(entry);
    if (entry.overflow) {
      this.#overflow--;
      entry.state = GONE;
      this.#destroyed.overflow++;
      this.#closeResource(entry.resource);
      this.#checkDrained();
      return;
    }
    this.#inUse--;
    if (destroy) return this.#destroy(entry, reason);
    if (this.#closed) return this.#destroy(entry, "closed");
    const now = this.#coarse.now();
    if (entry.expiresAt <= now) return this.#destroy(entry, "lifetime");
    this.#putIdle(entry, now);
  }

  /** Offers an entry (not counted anywhere) to the first waiter, or idles it. */
  #putIdle(entry: Entry<T>, now: number): void {
    entry.state = IDLE;
    entry.idleSince = now;
    if (!this.#offer(entry) && !(this.#purgeDead() && this.#offer(entry))) {
      this.#destroy(entry, "surplus");
    }
  }

  /** Hands an entry to the first waiter, or buffers it in idle. */
  #offer(entry: Entry<T>): boolean {
    const before = this.#idle.size;
    if (!this.#idle.trySend(entry)) return false;
    if (this.#idle.size === before) {
      // Handed to a parked waiter, which lent it already.
    } else if (this.#needsHousekeeping) {
      this.#armHousekeeping(this.#dueAt(entry));
    }
    return true;
  }

  /** Destroys an entry that is counted nowhere (its slot is still taken). */
  #destroy(entry: Entry<T>, reason: DestroyReason): void {
    if (entry.state === GONE) return;
    entry.state = GONE;
    this.#destroyed[reason] = (this.#destroyed[reason] ?? 0) + 1;
    this.#closeResource(entry.resource, entry.reason);
    this.#slots.tryReceive();
    this.#fill();
    this.#checkDrained();
  }

  /** Destroys an entry just taken out of the idle channel. */
  #discardIdle(entry: Entry<T>, reason: DestroyReason): void {
    if (entry.dead) {
      this.#deadIdle--;
      return;
    }
    this.#destroy(entry, reason);
  }

  #closeResource(resource: T, reason?: unknown): void {
    let result: unknown;
    try {
      result = reason === undefined
        ? this.#closeFn(resource)
        : this.#closeFn(resource, reason);
    } catch {
      this.#closeErrors++;
      return;
    }
    if (!isThenable(result)) return;
    this.#closing++;
    Promise.resolve(result).then(undefined, () => {
      this.#closeErrors++;
    }).finally(() => {
      this.#closing--;
      this.#checkDrained();
    });
  }

  /** Takes dead entries out of the idle channel; returns whether any went. */
  #purgeDead(): boolean {
    if (this.#deadIdle === 0) return false;
    const kept = this.#drainIdle();
    this.#refillIdle(kept.filter((e) => !e.dead));
    this.#deadIdle = 0;
    return true;
  }

  /** Every entry in the idle channel, in the order they would be taken. */
  #drainIdle(): Entry<T>[] {
    const out: Entry<T>[] = [];
    let r;
    while ((r = this.#idle.tryReceive()).state === "ok") {
      out.push(r.value);
    }
    return out;
  }

  /** Puts back entries taken by #drainIdle, restoring their order. */
  #refillIdle(entries: Entry<T>[]): void {
    // LIFO takes the newest first, so the newest must go in last.
    if (this.#lifo) {
      for (let i = entries.length - 1; i >= 0; i--) {
        this.#idle.trySend(entries[i]!);
      }
    } else for (const e of entries) this.#idle.trySend(e);
  }

  // -- dialing --

  /** Starts the dials that waiters and minIdle call for, within limits. */
  #fill(): void {
    // While housekeeping holds the idle entries aside, the idle channel looks
    // empty; it calls #fill itself once they are back.
    if (this.#closed || this.#sweeping) return;
    while (this.#dialing < this.#maxDialing) {
      const forWaiters = this.#waiting > this.#dialing;
      if (forWaiters) {
        if (this.#pausedUntil !== 0 && this.#pausedUntil > this.#clock.now()) {
          this.#shedWaiters();
          break;
        }
      } else {
        if (!this.#idleDeficit()) break;
        if (this.#refillAt > this.#clock.now()) {
          this.#armHousekeeping(this.#refillAt);
          break;
        }
      }
      if (!this.#slots.trySend(undefined)) break;
      this.#startDial();
    }
  }

  /**
   * Demand dials are paused: waiters that nothing but a dial can serve get
   * the last dial error now; others wait for a release or the pause's end.
   */
  #shedWaiters(): void {
    const left = this.#pausedUntil - this.#clock.now();
    if (this.#inUse + this.#dialing + this.#checking === 0) {
      const error = this.#pausedError(left);
      while (internals.failReceiver(this.#idle, error)) { /* every one */ }
    } else {
      this.#armHousekeeping(this.#pausedUntil);
    }
  }

  #idleDeficit(): boolean {
    return this.#minIdle > 0 &&
      this.#idle.size - this.#deadIdle + this.#dialing < this.#minIdle;
  }

  /** Starts a background dial whose resource goes idle (or to a waiter). */
  #startDial(): void {
    this.#dialing++;
    this.#runDial(Infinity, undefined, (failed, value) => {
      if (failed) this.#dialFailed(value);
      else this.#dialed(value as T);
    });
  }

  /**
   * Every dial goes through here. It settles exactly once, calling `done`:
   * with the resource; with a {@linkcode DialError} when the dial failed or
   * outlived `connectTimeout`; with a {@linkcode PoolTimeoutError} when it
   * outlived the borrow's `timeout` (shorter than `connectTimeout`); with
   * the borrower's `signal.reason`; or with a {@linkcode PoolClosedError}
   * when the pool closes. The dial's signal aborts in every case but the
   * first, and a resource that arrives after that is closed at once: a dial
   * that ignores its signal holds no borrower and no slot (`close()` still
   * waits for it to return).
   */
  #runDial(
    timeout: number,
    signal: AbortSignal | undefined,
    done: (failed: boolean, value: unknown) => void,
  ): void {
    this.#dials++;
    this.#pendingDials++;
    const ctl = new AbortController();
    let timer: unknown = undefined;
    let settled = false;
    const settle = (failed: boolean, value: unknown): void => {
      if (settled) {
        // Given up on already: a late resource is closed, an error dropped.
        if (!failed) this.#closeResource(value as T);
        return;
      }
      settled = true;
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      this.#dialRuns.delete(abandon);
      if (failed) {
        if (!ctl.signal.aborted) ctl.abort(value);
        if (value instanceof DialError) this.#noteDialFailure(value);
      } else {
        this.#failStreak = 0;
        this.#pausedUntil = 0;
      }
      done(failed, value);
      this.#checkDrained();
    };
    const onAbort = () => settle(true, signal!.reason);
    const abandon = (reason: unknown) => settle(true, reason);
    const limit = Math.min(this.#connectTimeout, timeout);
    if (limit !== Infinity) {
      timer = this.#clock.setTimeout(() => {
        timer = undefined;
        if (timeout < this.#connectTimeout) {
          this.#timeouts++;
          settle(true, new PoolTimeoutError(timeout));
        } else {
          const cause = new TimeoutError(
            `Dial timed out after ${Math.round(limit)} ms`,
            limit,
          );
          settle(true, this.#dialError(cause));
        }
      }, limit);
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#dialRuns.add(abandon);
    let p: Promise<T>;
    try {
      p = Promise.resolve(this.#dial(ctl.signal));
    } catch (error) {
      p = Promise.reject(error);
    }
    p.then(
      (resource) => settle(false, resource),
      (error) => settle(true, this.#dialError(error)),
    ).finally(() => {
      // close() waits for this: an aborted dial's socket is closed by then.
      this.#pendingDials--;
      this.#checkDrained();
    });
  }

  /** A dial's failure as a DialError naming the pool (one is kept as is). */
  #dialError(cause: unknown): DialError {
    if (cause instanceof DialError) return cause;
    return new DialError(`Cannot dial${this.#named}: ${errorMessage(cause)}`, {
      cause,
    });
  }

  /** Counts a failed dial; after a few in a row, pauses demand dials. */
  #noteDialFailure(error: DialError): void {
    this.#dialErrors++;
    this.#lastDialError = error;
    const streak = ++this.#failStreak;
    if (streak >= PAUSE_AFTER) {
      const step = Math.min(
        PAUSE_CAP,
        PAUSE_BASE * 2 ** (streak - PAUSE_AFTER),
      );
      this.#pausedUntil = this.#clock.now() +
        step * (0.5 + Math.random() / 2);
    }
  }

  /**
   * Throws at once while demand dials are paused and nothing but a dial
   * could serve this borrow (or it needs a dial of its own: `fresh`,
   * overflow): failing fast beats queueing for a dial that will not start.
   */
  #checkPaused(ownDial: boolean): void {
    if (this.#pausedUntil === 0) return;
    if (!ownDial && this.#inUse + this.#dialing + this.#checking > 0) return;
    const left = this.#pausedUntil - this.#clock.now();
    if (left > 0) throw this.#pausedError(left);
  }

  #pausedError(left: number): DialError {
    const last = this.#lastDialError!;
    return new DialError(
      `${last.message} (dialing paused for ${
        Math.ceil(left)
      } ms after ${this.#failStreak} failed dials in a row)`,
      { cause: last.cause },
    );
  }

  #dialed(resource: T): void {
    this.#dialing--;
    this.#backoff = 0;
    this.#refillAt = 0;
    const entry = this.#newEntry(resource);
    if (entry === null) return this.#fill();
    if (this.#closed) return this.#destroy(entry, "closed");
    this.#putIdle(entry, entry.idleSince);
    this.#fill();
  }

  /** Wraps a counted resource fresh from a dial, or destroys it if `watch` throws. */
  #newEntry(resource: T): Entry<T> | null {
    const now = this.#clock.now();
    let lifetime = this.#maxLifetime;
    if (lifetime !== Infinity) lifetime -= lifetime * 0.025 * Math.random();
    const entry = new Entry(resource, now, now + lifetime, false);
    if (this.#watch !== null) {
      try {
        this.#watch(resource, () => this.#evict(entry));
      } catch {
        entry.state = BUSY;
        this.#destroy(entry, "invalid");
        return null;
      }
    }
    return entry;
  }

  /** `watch`'s evict: destroys an idle entry, leaving a dead mark in the channel. */
  #evict(entry: Entry<T>): boolean {
    if (entry.state !== IDLE || entry.dead) return false;
    entry.dead = true;
    this.#deadIdle++;
    this.#destroy(entry, "evicted");
    return true;
  }

  /** A background dial failed, timed out, or was abandoned by close(). */
  #dialFailed(error: unknown): void {
    this.#dialing--;
    this.#slots.tryReceive();
    if (!this.#closed) {
      // To the first parked borrower, if any: never into the channel.
      internals.failReceiver(this.#idle, error);
      this.#backoff = Math.min(
        BACKOFF_CAP,
        Math.max(BACKOFF_BASE, this.#backoff * 2),
      );
      this.#refillAt = this.#clock.now() +
        this.#backoff * (0.5 + Math.random() / 2);
      this.#fill();
    }
    this.#checkDrained();
  }

  // -- checks, housekeeping, leaks --

  get #needsHousekeeping(): boolean {
    return this.#idleTimeout !== Infinity || this.#maxLifetime !== Infinity ||
      this.#heartbeat !== Infinity;
  }

  /** When an idle entry next needs attention. */
  #dueAt(entry: Entry<T>): number {
    return Math.min(
      entry.expiresAt,
      entry.idleSince + this.#idleTimeout,
      entry.idleSince + this.#heartbeat,
    );
  }

  #armHousekeeping(at: number): void {
    if (!this.#closed) this.#hk.arm(at);
  }

  /** Evicts expired idle entries, pings stale ones, reports leaks, refills. */
  #housekeep(): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    let next = Infinity;
    this.#sweeping = true;
    const idle = this.#drainIdle();
    this.#deadIdle = 0;
    const live = idle.filter((e) => !e.dead);
    const kept: Entry<T>[] = [];
    const ping: Entry<T>[] = [];
    // Visit from the longest idle (the end in LIFO order, the start in FIFO)
    // and evict from there, never below minIdle.
    if (this.#lifo) live.reverse();
    let evictable = live.length - this.#minIdle;
    for (const entry of live) {
      if (entry.expiresAt <= now) {
        this.#destroy(entry, "lifetime");
        evictable--;
      } else if (
        evictable > 0 && entry.idleSince + this.#idleTimeout <= now
      ) {
        this.#destroy(entry, "idle");
        evictable--;
      } else if (entry.idleSince + this.#heartbeat <= now) {
        ping.push(entry);
      } else {
        kept.push(entry);
        // One kept for minIdle while past its idle timeout is due for nothing
        // but expiry or a ping; it is reconsidered when the idle set changes.
        const idleDue = entry.idleSince + this.#idleTimeout;
        next = Math.min(
          next,
          entry.expiresAt,
          entry.idleSince + this.#heartbeat,
          idleDue > now ? idleDue : Infinity,
        );
      }
    }
    if (this.#lifo) kept.reverse();
    this.#refillIdle(kept);
    this.#sweeping = false;
    for (const entry of ping) this.#pingIdle(entry);
    if (this.#leakTimeout !== Infinity) {
      for (let e = this.#busy.head; e !== null; e = e.next) {
        if (e.leakReported) continue;
        const due = e.borrowedAt + this.#leakTimeout;
        if (due <= now) {
          e.leakReported = true;
          this.#reportLeak({
            resource: e.resource,
            heldFor: now - e.borrowedAt,
            stack: e.stack?.stack,
            collected: false,
          });
        } else next = Math.min(next, due);
      }
    }
    if (next !== Infinity) this.#armHousekeeping(next);
    this.#fill();
  }

  async #pingIdle(entry: Entry<T>): Promise<void> {
    if (await this.#check(entry, this.#ping!, "heartbeat")) {
      this.#checking--;
      if (this.#closed) return this.#destroy(entry, "closed");
      this.#putIdle(entry, this.#clock.now());
    }
  }

  /**
   * Runs `validate` or `ping` on an entry taken from idle; on failure
   * destroys it. On success the caller lends or re-idles it at once.
   */
  async #check(
    entry: Entry<T>,
    fn: (resource: T, signal: AbortSignal) => unknown,
    reason: DestroyReason,
  ): Promise<boolean> {
    entry.state = CHECKING;
    this.#checking++;
    const ctl = new AbortController();
    this.#checkControllers.add(ctl);
    let timer: unknown;
    let ok: boolean;
    try {
      let result = fn(entry.resource, ctl.signal);
      if (isThenable(result)) {
        if (this.#connectTimeout !== Infinity) {
          timer = this.#clock.setTimeout(
            () =>
              ctl.abort(
                new TimeoutError(
                  `Check timed out after ${this.#connectTimeout} ms`,
                  this.#connectTimeout,
                ),
              ),
            this.#connectTimeout,
          );
        }
        const aborted = new Promise<never>((_, reject) => {
          ctl.signal.addEventListener(
            "abort",
            () => reject(ctl.signal.reason),
            { once: true },
          );
        });
        aborted.catch(() => {});
        result = await Promise.race([result, aborted]);
      }
      ok = result !== false;
    } catch {
      ok = false;
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      this.#checkControllers.delete(ctl);
    }
    // On success the caller uncounts it when it lends or re-idles the entry,
    // so that no step in between sees it in no count at all.
    if (!ok) {
      this.#checking--;
      this.#destroy(entry, reason);
    }
    return ok;
  }

  #armTracking(): void {
    if (this.#closed) return;
    this.#trackTimer = this.#clock.setTimeout(() => {
      this.#trackTimer = undefined;
      for (let e = this.#busy.head; e !== null; e = e.next) {
        const lease = e.lease;
        if (lease === null) continue;
        e.lease = null;
        e.tracked = true;
        this.#registry.register(lease, { entry: e, gen: e.gen }, e);
      }
    }, TRACK_DELAY);
    this.#clock.unref?.(this.#trackTimer);
  }

  /** Calls `onLeak`; a throw is counted, never left uncaught. */
  #reportLeak(report: LeakReport<T>): void {
    try {
      this.#onLeak(report);
    } catch {
      this.#callbackErrors++;
    }
  }

  #collected({ entry, gen }: Tracked<T>): void {
    if (entry.state !== BUSY || entry.gen !== gen) return;
    entry.tracked = false;
    this.#reportLeak({
      resource: entry.resource,
      heldFor: this.#clock.now() - entry.borrowedAt,
      stack: entry.stack?.stack,
      collected: true,
    });
    this.#settle(entry, entry.gen, true, "leaked");
  }

  #checkDrained(): void {
    if (
      this.#drained !== null && this.#slots.size === 0 &&
      this.#overflow === 0 && this.#closing === 0 && this.#pendingDials === 0
    ) {
      this.#drained.resolve();
    }
  }

  static {
    settle = (pool, entry, gen, destroy, key) =>
      pool.#settle(entry, gen, destroy, key);
    waiterSettled = (pool, waiter, value, failed) =>
      pool.#waiterSettled(waiter, value, failed);
    waiterTimedOut = (pool) => pool.#timeouts++;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
