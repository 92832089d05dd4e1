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

// How the pool works, for whoever changes it.
//
// Files: pool.ts holds the public face (Lease, Pool; errors and options are
// re-exported from _errors.ts and _options.ts) and the orchestration below.
// Mechanisms live elsewhere: _idle.ts the idle set and its sweep, _dial.ts
// the one bounded dial path, checks and backoff, _leaks.ts leak tracking,
// _time.ts clocks and deadlines, _waiter.ts the park protocol with Channel.
//
// Invariants (checked by tests/pool_test.ts, the randomized one included):
//
// 1. Every resource is in exactly one place: an IDLE entry in the idle set,
//    a BUSY entry (lent), a CHECKING entry (validate/ping in flight), a dial
//    in flight, or GONE (closed exactly once). #entries lists every entry
//    that is not GONE.
// 2. slots.size = idle + inUse + dialing + checking ≤ max, at every step;
//    overflow resources are counted apart (#overflow) and never idle.
// 3. A borrower parks on the idle channel only while it is empty, first
//    come first served; a release or a dial hands an entry to the first
//    parked borrower synchronously (the channel calls the waiter), and a
//    failed dial fails the first parked borrower. The idle channel holds
//    idle entries only. Parked borrowers with the pool's acquireTimeout are
//    in deadline order in its receiver queue (the lane timer relies on it).
// 4. A lease is live while its gen matches its entry's; settling bumps gen,
//    so a second release, destroy or GC report of the same lease is a no-op.
// 5. Every dial runs under one deadline (min of connectTimeout and the
//    borrow's timeout) and settles once; a resource that arrives later is
//    closed at once. close() resolves when no slot is held, no overflow
//    resource is open and no close is in progress: a dial it abandoned
//    holds no slot, and is not waited for (it may never settle).
// 6. After close, nothing dials, no timer stays armed (housekeeping, coarse
//    clock, leak tracking, waiter deadlines are all stopped) and every
//    borrow rejects with PoolClosedError.

import { setImmediate } from "node:timers";
import { Channel } from "./channel.ts";
import { GATE, type Gate, internals, poolHooks } from "./_internal.ts";
import { type ChannelWaiter, leave } from "./_waiter.ts";
import type { LinkedQueue } from "./_queue.ts";
import {
  Alarm,
  type Clock,
  CoarseClock,
  type Deadline,
  DeadlineHeap,
  type Tick,
} from "./_time.ts";
import { Dialer } from "./_dial.ts";
import { describe } from "./_util.ts";
import {
  Connectivity,
  type ConnectivityState,
  type StateChangeEvent,
} from "./_state.ts";
import { Leaks } from "./_leaks.ts";
import {
  checkListen,
  Emitter,
  EVENT_TYPES,
  Histogram,
  type PoolEventMap,
  type PoolEventType,
  type PoolHistograms,
} from "./_events.ts";
import {
  BUSY,
  CHECKING,
  Entry,
  EntryList,
  FULL,
  GONE,
  IDLE,
  IDLED,
  IdleSet,
} from "./_idle.ts";

export type { Clock } from "./_time.ts";
export type { ConnectivityState, StateChangeEvent } from "./_state.ts";
export type {
  BorrowEvent,
  DestroyEvent,
  DialAbandonEvent,
  DialErrorEvent,
  DialEvent,
  DialStartEvent,
  PoolEventMap,
  PoolEventType,
  PoolHistograms,
  ReleaseEvent,
  TimeoutEvent,
} from "./_events.ts";
export {
  EVENT_TYPES as POOL_EVENT_TYPES,
  Histogram,
  HISTOGRAM_BOUNDS,
} from "./_events.ts";
export type {
  BackoffOptions,
  BorrowOptions,
  DestroyedStats,
  HeartbeatOptions,
  LeakReport,
  PoolCloseOptions,
  PoolOptions,
  PoolStats,
  WhenExhausted,
} from "./_options.ts";
import {
  type BorrowOptions,
  borrowTimeout,
  closeForce,
  type DestroyedStats,
  FAIL,
  OVERFLOW,
  type PoolCloseOptions,
  type PoolOptions,
  type PoolStats,
  settings,
} from "./_options.ts";

export {
  DialError,
  PoolClosedError,
  type PoolCounts,
  PoolExhaustedError,
  PoolTimeoutError,
  TimeoutError,
} from "./_errors.ts";
import {
  DialError,
  dialError,
  dialReason,
  PoolClosedError,
  type PoolCounts,
  PoolExhaustedError,
  PoolTimeoutError,
} from "./_errors.ts";

// -- Internals --

/**
 * A resource lost (evicted by its watch) this soon after its dial, never
 * lent, counts as a failed dial, in milliseconds.
 */
const EARLY_LOSS = 1_000;

/** How stale the release path's clock reading may be, in milliseconds. */
const COARSE = 10;

/**
 * A parked borrower: its deadline node, its signal's listener, and the sink
 * the idle channel settles synchronously when it hands over an entry or a
 * dial error, so a hand-over costs one promise hop.
 */
class Waiter<T> implements ChannelWaiter {
  // In the idle channel's receiver queue (the waiter is its own node).
  prev: ChannelWaiter | null = null;
  next: ChannelWaiter | null = null;
  queue: LinkedQueue<ChannelWaiter> | null = null;
  value: unknown = undefined;
  /** In the deadline heap: a timeout other than acquireTimeout. */
  deadline: OwnDeadline<T> | null = null;
  readonly pool: Pool<T>;
  readonly signal: AbortSignal | undefined;
  readonly timeout: number;
  /** Its place in line: every waiter parked later has a larger one. */
  readonly seq: number;
  /** The coarse reading it started with (see Tick.start). */
  readonly tick: Tick;
  /** The pool's `borrows` when it started (for PoolTimeoutError). */
  borrows = 0;
  readonly promise: Promise<Lease<T>>;
  /** When it began, on the precise clock (with `histograms` only). */
  began = 0;
  resolve!: (lease: Lease<T>) => void;
  reject!: (reason: unknown) => void;

  constructor(
    pool: Pool<T>,
    signal: AbortSignal | undefined,
    timeout: number,
    tick: Tick,
    seq: number,
  ) {
    this.pool = pool;
    this.signal = signal;
    this.timeout = timeout;
    this.tick = tick;
    this.seq = seq;
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** The idle channel handed over an entry. */
  received(value: unknown): void {
    waiterSettled(this.pool, this, value, false);
  }

  /** The channel closed, a dial failed for it, or it gave up. */
  failed(reason: unknown): void {
    waiterSettled(this.pool, this, reason, true);
  }

  /** Borrowers never send. */
  sent(): void {
    this.received(undefined);
  }

  receiverClosed(error: unknown): void {
    this.failed(error);
  }

  /** Times out: leaves the queue, rejects. */
  timeOut(): void {
    if (leave(this)) {
      // While the server is unreachable, the last dial failure is why.
      this.failed(
        new PoolTimeoutError(this.timeout, waiterTimedOut(this.pool, this)),
      );
    }
  }

  /** The signal aborted. */
  handleEvent(): void {
    if (leave(this)) this.failed(this.signal!.reason);
  }
}

/** A waiter's own deadline, in the pool's heap. */
class OwnDeadline<T> implements Deadline {
  at: number;
  pos = -1;
  dprev: Deadline | null = null;
  dnext: Deadline | null = null;
  readonly waiter: Waiter<T>;

  constructor(waiter: Waiter<T>, at: number) {
    this.waiter = waiter;
    this.at = at;
  }

  /** It passed: checked against the waiter's tick first. */
  fire(): void {
    const waiter = this.waiter;
    if (waiter.queue !== null) waiterDue(waiter.pool, waiter);
  }
}

// Bound to Pool's private methods in its static block.
let waiterSettled: <T>(
  pool: Pool<T>,
  waiter: Waiter<T>,
  value: unknown,
  failed: boolean,
) => void;
let waiterTimedOut: <T>(
  pool: Pool<T>,
  waiter: Waiter<T>,
) => ConstructorParameters<typeof PoolTimeoutError>[1];
const STATE_AND_EVENTS: readonly string[] = ["statechange", ...EVENT_TYPES];

let waiterDue: <T>(pool: Pool<T>, waiter: Waiter<T>) => void;

/** A key of `stats.destroyed`: the pool's own, or one a sibling module adds. */
type DestroyReason = string;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function";
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
  static {
    // Resolving a promise with an object looks up its `then`; found here
    // (undefined: not a thenable) instead of on Object.prototype, that
    // lookup costs half as much, on every borrow.
    Object.defineProperty(this.prototype, "then", { value: undefined });
  }

  readonly #pool: Pool<T>;
  #entry: Entry<T> | null;
  readonly #gen: number;

  /**
   * Leases are made by {@linkcode Pool.borrow}; this constructor is not
   * public API.
   *
   * @ignore
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
    poolHooks.renew = (lease, now) => {
      const l = lease as Lease<unknown>;
      const entry = l.#entry;
      if (entry === null || entry.gen !== l.#gen || entry.state !== BUSY) {
        return;
      }
      entry.borrowedAt = now;
      entry.leakReported = false;
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
  readonly #dialer: Dialer<T>;
  readonly #closeFn: (resource: T, reason?: unknown) => unknown;
  readonly #validate: ((resource: T, signal: AbortSignal) => unknown) | null;
  readonly #ping: ((resource: T, signal: AbortSignal) => unknown) | null;
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
  // An idle entry needs attention this long after it went idle, at the
  // latest (Infinity: idle entries need no housekeeping, unless they expire).
  readonly #idleCheck: number;
  /** `" " + name` for messages, or "". */
  readonly #named: string;
  readonly #failFast: boolean;
  readonly #maxWaiting: number;
  // A capacity shared with other pools (a TcpAgent's maxTotal), or null: a
  // place there is taken with every slot here, and given back with it.
  readonly #gate: Gate | null;
  // Whether the pool can make resources, and when it may dial while it
  // cannot (_state.ts); `statechange` listeners hear of every change.
  readonly #state: Connectivity;
  #listeners: ((event: StateChangeEvent) => void)[] = [];
  // Listeners of the other events (null until the first one is added), and
  // the histograms (with `histograms: true`).
  #ev: Emitter | null = null;
  readonly #hist: PoolHistograms | null;
  /** Listeners or histograms: a borrow reports to them. */
  #observed = false;
  /** Histograms or `release` listeners: a lease's use is timed. */
  #timed = false;
  readonly #name: string;
  // Every waiter gets the next number: a dial records the last one given
  // out when it starts, and its failure fails only waiters up to it.
  #waiterSeq = 0;

  // The idle entries, and the channel borrowers park on (see _idle.ts).
  readonly #idle: IdleSet<T>;
  // One token per counted resource: slots.size = idle + inUse + dialing +
  // checking ≤ max (overflow resources are not counted). A token is taken
  // before a dial starts (#fill, fresh borrows) and given back when a
  // counted resource is destroyed (#destroy) or its dial fails.
  readonly #slots: Channel<undefined>;
  // Every live entry (until GONE), for leak checks and forced close. Holds
  // entries, never leases, so a dropped lease can be garbage-collected.
  readonly #entries: EntryList<T> = new EntryList();
  // Deadlines of waiters with their own timeout (not acquireTimeout): one
  // timer for all of them.
  readonly #deadlines: DeadlineHeap;
  // Waiters with the pool's acquireTimeout sit in the idle channel's FIFO
  // receiver queue in deadline order already: one timer, armed at the
  // first one's deadline, walks the queue from its head (#laneDue). Its
  // ref keeps the program alive while anyone waits (#laneRefd).
  #laneTimer: unknown = undefined;
  #laneRefd = false;
  #laneWaiting = 0; // waiters with the pool's acquireTimeout
  readonly #leaks: Leaks<T>;
  readonly #coarse: CoarseClock;
  // Housekeeping: idle expiry, pings, leak reports, the next probe.
  readonly #hk: Alarm;

  // Gauges (what `stats` reports as the pool's state):
  // +1 #lend of a counted entry; -1 #settle of one.
  #inUse = 0;
  // +1 #startDial, #lendFresh; -1 when that dial settles.
  #dialing = 0;
  // +1 #check (validate, ping); -1 when it fails, or by the caller when
  // it lends or re-idles the entry.
  #checking = 0;
  // +1 #wait; -1 #waiterSettled (got an entry, timed out, aborted, closed).
  #waiting = 0;
  // +1 #lendOverflow (while dialing) and #lend of an overflow entry; -1 when
  // the dial settles and when its lease is settled.
  #overflow = 0;
  // +1 when #closeResource gets a promise; -1 when it settles.
  #closing = 0;
  #closed = false;
  #drained: PromiseWithResolvers<void> | null = null;

  // Counters (monotonic, for `stats`):
  #borrows = 0; // +1 every #lend
  #waits = 0; // +1 every #wait
  #waitTime = 0; // += wait length, in #waiterSettled
  #timeouts = 0; // +1 when a waiter's deadline passes (Waiter.fire)
  #closeErrors = 0; // +1 when close throws or rejects (#closeResource)
  #callbackErrors = 0; // +1 when a statechange listener throws
  // +1 per destroy, by reason (#destroy; overflow ones in #settle).
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
   *   `maxIdle` > `max`, `minIdle` > `maxIdle`, a negative or NaN duration or
   *   a finite one above 2^31 − 1 ms, `heartbeat.interval` 0, an unknown
   *   `whenExhausted` or `idleOrder`.
   */
  constructor(
    dial: (signal: AbortSignal) => T | Promise<T>,
    options: PoolOptions<T> = {},
  ) {
    const o = settings(dial, options);
    const clock = o.clock;
    this.#closeFn = o.closeFn;
    this.#validate = o.validate;
    this.#ping = o.ping;
    this.#watch = o.watch;
    this.#clock = clock;
    this.#max = o.max;
    this.#maxIdle = o.maxIdle;
    this.#minIdle = o.minIdle;
    this.#maxDialing = o.maxDialing;
    this.#whenExhausted = o.whenExhausted;
    this.#acquireTimeout = o.acquireTimeout;
    this.#connectTimeout = o.connectTimeout;
    this.#idleTimeout = o.idleTimeout;
    this.#maxLifetime = o.maxLifetime;
    this.#heartbeat = o.heartbeat;
    this.#idleCheck = o.maxLifetime !== Infinity
      ? Math.min(o.idleTimeout, o.heartbeat, o.maxLifetime)
      : Math.min(o.idleTimeout, o.heartbeat);
    this.#named = o.named;
    this.#failFast = o.failFast;
    this.#maxWaiting = o.maxWaiting;
    this.#gate = (options as { [GATE]?: Gate })[GATE] ?? null;
    this.#state = new Connectivity(clock, o.backoff, (event) => {
      for (const listener of this.#listeners) {
        try {
          listener(event);
        } catch {
          this.#callbackErrors++;
        }
      }
    });
    this.#dialer = new Dialer(
      dial,
      clock,
      this.#connectTimeout,
      this.#named,
      (resource) => this.#closeResource(resource),
      () => this.#checkDrained(),
      this.#state,
      () => this.#counts(),
    );
    this.#name = o.named.slice(1);
    this.#hist = o.histograms
      ? { wait: new Histogram(), use: new Histogram(), dial: new Histogram() }
      : null;
    if (this.#hist !== null) {
      this.#dialer.report = this.#dialReport;
      this.#observed = this.#timed = true;
    }
    this.#idle = new IdleSet(this.#maxIdle, o.order);
    this.#slots = new Channel({ capacity: this.#max });
    this.#deadlines = new DeadlineHeap(clock, false);
    this.#coarse = new CoarseClock(clock, COARSE);
    this.#hk = new Alarm(clock, () => this.#housekeep());
    this.#leaks = new Leaks(
      clock,
      o.onLeak,
      o.leakTimeout,
      this.#entries,
      (entry) => this.#settle(entry, entry.gen, true, "leaked"),
    );
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
   * @param options A signal that cancels the wait, a `timeout` in
   *   milliseconds (default `acquireTimeout`; `0` or `Infinity`: no limit),
   *   `fresh`.
   * @returns A lease on the resource.
   * @throws {TypeError} If `options`, `signal`, `timeout` or `fresh` has the
   *   wrong type (nothing is borrowed).
   * @throws {RangeError} If `timeout` is negative, NaN, or finite and above
   *   2^31 − 1.
   * @throws {PoolClosedError} If the pool is or becomes closed.
   * @throws {PoolTimeoutError} If no resource came within the timeout.
   * @throws {PoolExhaustedError} If all are in use and `whenExhausted` is
   *   `"fail"`.
   * @throws {DialError} If the dial made for this borrow failed.
   */
  borrow(options?: BorrowOptions): Promise<Lease<T>> {
    // The common case first, kept small so that callers inline it.
    if (options === undefined && this.#validate === null) {
      const entry = this.#idle.take();
      if (entry !== undefined) return Promise.resolve(this.#lend(entry));
      return this.#nothingIdle(undefined);
    }
    return this.#borrowWith(options);
  }

  /** borrow() with options, `validate`, or nothing idle. */
  #borrowWith(options: BorrowOptions | undefined): Promise<Lease<T>> {
    if (options !== undefined) {
      // Checked on every call, not only when it has to wait.
      try {
        borrowTimeout(options, this.#acquireTimeout);
      } catch (error) {
        return Promise.reject(error);
      }
      // An aborted signal wins over an idle resource.
      if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    }
    if (this.#validate === null && options?.fresh !== true) {
      const entry = this.#idle.take();
      if (entry !== undefined) return Promise.resolve(this.#lend(entry));
      return this.#nothingIdle(options);
    }
    return this.#borrowSlow(options);
  }

  /**
   * Straight to the wait (or dial), without an async frame in between:
   * every promise hop shows under contention.
   */
  #nothingIdle(options: BorrowOptions | undefined): Promise<Lease<T>> {
    try {
      return this.#afterIdle(options);
    } catch (error) {
      return Promise.reject(error);
    }
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
    const entry = this.#idle.take();
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
   * @throws {TypeError} If `fn` is not a function (nothing is borrowed), or
   *   an option has the wrong type.
   * @throws {PoolClosedError} See {@linkcode Pool.borrow}, and what `fn`
   *   throws.
   */
  async use<R>(
    fn: (resource: T) => R | Promise<R>,
    options?: BorrowOptions,
  ): Promise<R> {
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot use pool: fn must be a function, received ${describe(fn)}`,
      );
    }
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
      idle: this.#idle.size,
      inUse: this.#inUse,
      dialing: this.#dialing,
      checking: this.#checking,
      waiting: this.#waiting,
      overflow: this.#overflow,
      borrows: this.#borrows,
      waits: this.#waits,
      waitTime: this.#waitTime,
      timeouts: this.#timeouts + this.#dialer.timeouts,
      dials: this.#dialer.started,
      dialErrors: this.#state.failures,
      closeErrors: this.#closeErrors,
      callbackErrors: this.#leaks.callbackErrors + this.#callbackErrors +
        (this.#ev?.errors ?? 0),
      destroyed: { ...this.#destroyed },
    };
  }

  /** The counts its errors carry (PoolTimeoutError, DialError). */
  #counts(): PoolCounts {
    return {
      max: this.#max,
      open: this.#slots.size,
      idle: this.#idle.size,
      inUse: this.#inUse,
      waiting: this.#waiting,
      dialing: this.#dialing,
    };
  }

  /**
   * Whether the pool can make resources, as gRPC reports a connection's
   * state: `"idle"` (nothing open, nothing dialing), `"connecting"` (a dial
   * in flight, none succeeded yet), `"ready"` (the last dial succeeded),
   * `"transient_failure"` (the last dial failed: borrows that nothing idle
   * can serve wait for the next probe, dialed on the `backoff` schedule),
   * `"closed"`.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}));
   * assert.equal(pool.state, "idle");
   * (await pool.borrow()).release();
   * assert.equal(pool.state, "ready");
   * ```
   *
   * @returns The state.
   */
  get state(): ConnectivityState {
    return this.#state.state;
  }

  /**
   * Calls `listener` on every change of {@linkcode Pool.state}, with the new
   * state, the previous one and, on `"transient_failure"`, the dial error.
   * A listener that throws is counted in `stats.callbackErrors`; the pool
   * goes on.
   *
   * @example Usage
   * ```ts
   * import { Pool, type StateChangeEvent } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}));
   * const seen: string[] = [];
   * const off = pool.on("statechange", (e: StateChangeEvent) => {
   *   seen.push(`${e.previous} -> ${e.state}`);
   * });
   * (await pool.borrow()).release();
   * off();
   * assert.deepEqual(seen, ["idle -> connecting", "connecting -> ready"]);
   * ```
   *
   * The other events, each counted by `stats` exactly: `"borrow"` (`wait`;
   * one per `stats.borrows`), `"release"` (`use`: every lease that ends,
   * released or destroyed), `"dialstart"` (one per `stats.dials`), then
   * one of `"dial"` (`time`), `"dialerror"` (`time`, `error`; one per
   * `stats.dialErrors`) or `"dialabandon"` (`time`, `reason`: its borrower
   * gave up, or the pool closed), `"destroy"` (`reason`, a key of
   * `stats.destroyed`), `"timeout"` (`wait`; one per `stats.timeouts`).
   * Every event names its `pool`. An event object is reused: it is valid
   * during the call only (copy what you keep). Nobody listening costs one
   * check per borrow; a listener that throws is counted in
   * `stats.callbackErrors`, and the pool goes on.
   *
   * @example Counting events
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}), { name: "things" });
   * const seen: string[] = [];
   * pool.on("dialstart", (e) => seen.push(`${e.type} ${e.pool}`));
   * pool.on("borrow", (e) => seen.push(`${e.type} waited ${e.wait}`));
   * pool.on("release", (e) => seen.push(e.type));
   * (await pool.borrow()).release();
   * assert.deepEqual(seen, ["dialstart things", "borrow waited 0", "release"]);
   * ```
   *
   * @param type `"statechange"`, or one of the events above.
   * @param listener Called with the event.
   * @returns A function that removes the listener.
   * @throws {TypeError} If `type` is not an event of the pool or `listener`
   *   is not a function.
   */
  on(
    type: "statechange",
    listener: (event: StateChangeEvent) => void,
  ): () => void;
  /**
   * Calls `listener` on every event of `type` (see the other signature).
   *
   * @typeParam K The event type.
   * @param type `"borrow"`, `"release"`, `"dialstart"`, `"dial"`,
   *   `"dialerror"`, `"dialabandon"`, `"destroy"` or `"timeout"`.
   * @param listener Called with the event (valid during the call only).
   * @returns A function that removes the listener.
   */
  on<K extends PoolEventType>(
    type: K,
    listener: (event: PoolEventMap[K]) => void,
  ): () => void;
  on(
    type: "statechange" | PoolEventType,
    listener: (event: never) => void,
  ): () => void {
    checkListen(type, listener, STATE_AND_EVENTS);
    if (type === "statechange") {
      const l = listener as (event: StateChangeEvent) => void;
      this.#listeners = [...this.#listeners, l];
      return () => {
        this.#listeners = this.#listeners.filter((x) => x !== l);
      };
    }
    let ev = this.#ev;
    if (ev === null) {
      ev = this.#ev = new Emitter(this.#name);
      this.#dialer.report = this.#dialReport;
      this.#observed = true;
    }
    if (type === "release" && ev.release.length === 0 && this.#hist === null) {
      // Leases lent while nobody timed them: their use counts from now.
      const now = this.#coarse.now();
      for (const e of this.#entries.items) {
        if (e.state === BUSY) e.lentAt = now;
      }
    }
    const off = ev.add(
      type,
      listener as (event: PoolEventMap[PoolEventType]) => void,
    );
    if (type === "release") this.#timed = true;
    return () => {
      off();
      if (this.#ev === ev && this.#hist === null && ev.release.length === 0) {
        this.#timed = false;
      }
      if (this.#ev === ev && ev.empty) {
        this.#callbackErrors += ev.errors;
        this.#ev = null;
        if (this.#hist === null) {
          this.#dialer.report = null;
          this.#observed = false;
        }
      }
    };
  }

  /**
   * Histograms of wait, use and dial times, in ms (fixed exponential
   * buckets from 1 µs to 67 s), with `histograms: true`; else `null`.
   *
   * @example Usage
   * ```ts
   * import { Pool } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool(() => ({}), { histograms: true });
   * (await pool.borrow()).release();
   * const h = pool.histograms!;
   * assert.equal(h.wait.count, 1);
   * assert.equal(h.use.count, 1);
   * assert.equal(h.dial.count, 1);
   * assert.equal(h.use.counts.reduce((a, b) => a + b, 0), 1);
   * ```
   *
   * @returns The histograms, or `null`.
   */
  get histograms(): PoolHistograms | null {
    return this.#hist;
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
   * idle resources are closed, dials in flight are aborted and not waited
   * for (a resource that arrives anyway is closed at once), every timer
   * stops. Resources in use are closed when their leases are settled, or at
   * once with `force`. Resolves when every resource the pool holds is
   * closed. Idempotent; calling again with `force` escalates.
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
   * @throws {TypeError} If `options` or `force` has the wrong type (the
   *   pool is left as it was).
   */
  close(options?: PoolCloseOptions): Promise<void> {
    let force: boolean;
    try {
      force = closeForce(options);
    } catch (error) {
      return Promise.reject(error);
    }
    if (!this.#closed) {
      this.#closed = true;
      this.#drained = Promise.withResolvers();
      this.#state.close();
      this.#hk.disarm();
      this.#coarse.stop();
      if (this.#laneTimer !== undefined) {
        this.#clock.clearTimeout(this.#laneTimer);
      }
      this.#laneTimer = undefined;
      const idle = this.#idle.close(
        new PoolClosedError("Cannot borrow: the pool closed"),
      );
      this.#leaks.stop();
      this.#deadlines.clear();
      for (const entry of idle) this.#destroy(entry, "closed");
      const reason = new PoolClosedError("Cannot dial: the pool is closed");
      this.#dialer.abandonAll(reason);
    }
    if (force) {
      for (const entry of this.#entries.items.slice()) {
        if (entry.state === BUSY) {
          this.#settle(entry, entry.gen, true, "closed");
        }
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

  /** Borrows with `validate` or `fresh`: may await checks of idle entries. */
  async #borrowSlow(options: BorrowOptions | undefined): Promise<Lease<T>> {
    borrowTimeout(options, this.#acquireTimeout);
    let entry;
    while (!options?.fresh && (entry = this.#idle.take()) !== undefined) {
      if (this.#validate === null) return this.#lend(entry);
      if (await this.#check(entry, this.#validate, "invalid")) {
        this.#checking--;
        if (!this.#closed) return this.#lend(entry);
        this.#destroy(entry, "closed");
      }
    }
    return await this.#afterIdle(options);
  }

  /** Nothing idle (or a fresh one wanted): dial, fail, overflow or wait. */
  #afterIdle(options: BorrowOptions | undefined): Promise<Lease<T>> {
    const timeout = options === undefined
      ? this.#acquireTimeout
      : borrowTimeout(options, this.#acquireTimeout);
    const signal = options?.signal;
    if (this.#closed) {
      throw new PoolClosedError("Cannot borrow: the pool is closed");
    }
    if (signal?.aborted) throw signal.reason;
    // While the server is unreachable, no dial of its own: a borrow waits
    // for the probe (or a release). With failFast it fails instead, unless
    // a probe is in flight or due (then it waits for that: gRPC's rule).
    const failing = this.#state.failing;
    if (failing && (options?.failFast ?? this.#failFast)) {
      const from = this.#state.dialFrom(this.#dialing);
      if (from !== Infinity && from > this.#clock.now()) {
        return this.#failFastly();
      }
    }
    if (options?.fresh && !failing) {
      if (this.#slots.size >= this.#max) this.#evictOldestIdle();
      if (this.#takeSlot()) return this.#lendFresh(signal, timeout);
    }
    if (this.#slots.size >= this.#max) {
      if (this.#whenExhausted === FAIL) throw new PoolExhaustedError(this.#max);
      if (this.#whenExhausted === OVERFLOW && !failing) {
        return this.#lendOverflow(signal, timeout);
      }
    }
    if (this.#waiting >= this.#maxWaiting) {
      throw new PoolExhaustedError(this.#max, { maxWaiting: this.#maxWaiting });
    }
    return this.#wait(signal, timeout);
  }

  /**
   * failFast while the server is unreachable: rejects with the last dial
   * failure, after a macrotask (`setImmediate`: after the event loop's I/O
   * and timers, ~4 µs; a `setTimeout(0)` costs ~2 ms in Deno and delays a
   * user's intervals), so that a retry loop cannot starve the event loop
   * while it spins on failures.
   */
  #failFastly(): Promise<Lease<T>> {
    const state = this.#state;
    const last = state.lastError!;
    const ago = Math.round(this.#clock.now() - state.lastErrorAt);
    const error = new DialError(
      `Cannot borrow${this.#named}: the server is unreachable (failFast; the last dial, ${ago} ms ago, failed: ${
        dialReason(last)
      })`,
      { cause: last, pool: this.#named.slice(1), counts: this.#counts() },
    );
    return new Promise((_, reject) => setImmediate(() => reject(error)));
  }

  #wait(
    signal: AbortSignal | undefined,
    timeout: number,
  ): Promise<Lease<T>> {
    this.#waits++;
    // A coarse reading, checked when the deadline fires (Tick.start): a
    // fresh reading per wait would cost as much as the rest of the wait.
    const tick = this.#coarse.tick();
    const waiter = new Waiter(this, signal, timeout, tick, ++this.#waiterSeq);
    if (this.#hist !== null) waiter.began = this.#clock.now();
    waiter.borrows = this.#borrows;
    internals.park(this.#idle.channel, waiter);
    this.#waiting++;
    if (timeout === this.#acquireTimeout) {
      if (this.#laneWaiting++ === 0 && timeout !== Infinity) {
        if (this.#laneTimer === undefined) this.#armLane(timeout);
        else {
          this.#laneRefd = true;
          this.#clock.ref?.(this.#laneTimer);
        }
      }
    } else if (timeout !== Infinity) {
      const deadline = new OwnDeadline(waiter, tick.at + timeout);
      waiter.deadline = deadline;
      this.#deadlines.add(deadline);
    }
    signal?.addEventListener("abort", waiter, { once: true });
    if (this.#slots.size < this.#max) this.#fill();
    return waiter.promise;
  }

  #armLane(delay: number): void {
    this.#laneTimer = this.#clock.setTimeout(this.#laneDue, delay);
    this.#laneRefd = this.#laneWaiting > 0;
    if (!this.#laneRefd) this.#clock.unref?.(this.#laneTimer);
  }

  /**
   * The lane timer rang: times out the waiters with the pool's
   * acquireTimeout whose deadline passed, from the head of the receiver
   * queue (their deadlines are in queue order), and re-arms for the first
   * one still due later.
   */
  readonly #laneDue = (): void => {
    this.#laneTimer = undefined;
    if (this.#closed) return;
    const timeout = this.#acquireTimeout;
    let now = -1;
    let w = internals.firstReceiver(this.#idle.channel) as Waiter<T> | null;
    while (w !== null) {
      const next = w.next as Waiter<T> | null;
      if (w.timeout === timeout) {
        if (now < 0) now = this.#clock.now();
        const at = w.tick.start(now) + timeout;
        if (at > now) return this.#armLane(at - now);
        w.timeOut();
      }
      w = next;
    }
  };

  /** A heap deadline passed: times out, or re-adds when the tick was stale. */
  #waiterDue(waiter: Waiter<T>): void {
    const now = this.#clock.now();
    const at = waiter.tick.start(now) + waiter.timeout;
    if (at > now) {
      waiter.deadline!.at = at;
      this.#deadlines.add(waiter.deadline!);
    } else waiter.timeOut();
  }

  /**
   * A waiter got an entry or a dial error from the idle channel, or failed
   * (timeout, abort, close): synchronously, inside the sender's call.
   */
  #waiterSettled(waiter: Waiter<T>, value: unknown, failed: boolean): void {
    this.#waiting--;
    if (waiter.timeout === this.#acquireTimeout) {
      if (--this.#laneWaiting === 0 && this.#laneRefd) {
        this.#laneRefd = false;
        this.#clock.unref?.(this.#laneTimer);
      }
    } else if (waiter.deadline !== null) {
      this.#deadlines.remove(waiter.deadline);
    }
    waiter.signal?.removeEventListener("abort", waiter);
    const now = this.#coarse.now();
    const waited = Math.max(0, now - waiter.tick.start(now));
    this.#waitTime += waited;
    if (failed) return waiter.reject(value);
    waiter.resolve(
      this.#lend(
        value as Entry<T>,
        this.#hist === null ? waited : this.#clock.now() - waiter.began,
      ),
    );
  }

  #evictOldestIdle(): void {
    const oldest = this.#idle.takeOldest();
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
    this.#dialer.run(timeout, signal, (failed, value) => {
      this.#dialing--;
      if (failed) {
        this.#giveSlot();
        this.#fill();
        this.#checkDrained();
        return reject(value);
      }
      const entry = this.#newEntry(value as T);
      if (entry === null) {
        return reject(
          dialError(this.#named.slice(1), "watch threw", this.#counts()),
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
    this.#dialer.run(timeout, signal, (failed, value) => {
      this.#overflow--;
      if (failed) {
        this.#checkDrained();
        return reject(value);
      }
      if (this.#closed) {
        this.#closeResource(value as T);
        this.#checkDrained();
        return reject(new PoolClosedError("Cannot borrow: the pool closed"));
      }
      const entry = new Entry(value as T, this.#clock.now(), Infinity, true);
      this.#entries.add(entry);
      resolve(this.#lend(entry));
    });
    return promise;
  }

  #lend(entry: Entry<T>, wait?: number): Lease<T> {
    entry.state = BUSY;
    // One check when nobody listens and histograms are off.
    if (this.#observed) {
      const ev = this.#ev;
      if (ev !== null && !this.#timed) ev.onBorrow(wait ?? 0);
      else this.#lent(entry, wait ?? 0);
    }
    // Lent for the first time: it works (the dial backoff starts over).
    if (entry.uses++ === 0) this.#state.healthy();
    const gen = ++entry.gen;
    if (entry.overflow) this.#overflow++;
    else this.#inUse++;
    this.#borrows++;
    const lease = new Lease(this, entry, gen);
    const due = this.#leaks.lent(entry, lease);
    if (due !== Infinity) this.#armHousekeeping(due);
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
    if (this.#timed) this.#used(entry);
    this.#leaks.settled(entry);
    entry.gen++;
    if (entry.overflow) return this.#settleOverflow(entry);
    this.#inUse--;
    if (destroy) return this.#destroy(entry, reason);
    if (this.#closed) return this.#destroy(entry, "closed");
    const now = this.#coarse.now();
    if (entry.expiresAt <= now) return this.#destroy(entry, "lifetime");
    this.#putIdle(entry, now);
  }

  /** A lease begins: its wait to the histogram and the listeners. */
  #lent(entry: Entry<T>, wait: number): void {
    const hist = this.#hist;
    if (hist !== null) {
      hist.wait.record(wait);
      entry.lentAt = this.#clock.now();
    } else if (this.#timed) entry.lentAt = this.#coarse.now();
    this.#ev?.onBorrow(wait);
  }

  /** A lease ends: its use time goes to the histogram and the listeners. */
  #used(entry: Entry<T>): void {
    const hist = this.#hist;
    if (hist !== null) {
      const use = this.#clock.now() - entry.lentAt;
      hist.use.record(use);
      this.#ev?.onRelease(use);
    } else this.#ev!.onRelease(this.#coarse.now() - entry.lentAt);
  }

  /** A dial started or ended (the dialer's report). */
  readonly #dialReport = (
    outcome: -1 | 0 | 1 | 2 | 3,
    time: number,
    value: unknown,
  ): void => {
    const ev = this.#ev;
    if (outcome === -1) return ev?.onDialStart();
    if (outcome === 0) {
      this.#hist?.dial.record(time);
      return ev?.onDial(time);
    }
    if (outcome === 1) return ev?.onDialError(time, value as Error);
    ev?.onDialAbandon(time, value);
    if (outcome === 3) ev?.onTimeout(time);
  };

  #settleOverflow(entry: Entry<T>): void {
    this.#overflow--;
    entry.state = GONE;
    this.#entries.remove(entry);
    this.#destroyed.overflow++;
    this.#ev?.onDestroy("overflow");
    this.#closeResource(entry.resource);
    this.#checkDrained();
  }

  /** Offers an entry (not counted anywhere) to the first waiter, or idles it. */
  #putIdle(entry: Entry<T>, now: number): void {
    entry.state = IDLE;
    entry.idleSince = now;
    const where = this.#idle.offer(entry);
    if (where === FULL) this.#destroy(entry, "surplus");
    else if (where === IDLED) {
      if (this.#idleCheck !== Infinity) {
        // When it next needs attention; the alarm is usually armed earlier.
        const due = Math.min(entry.expiresAt, now + this.#idleCheck);
        if (due < this.#hk.at) this.#armHousekeeping(due);
      }
      this.#gate?.idled(this);
    }
  }

  /** Destroys an entry that is counted nowhere (its slot is still taken). */
  #destroy(entry: Entry<T>, reason: DestroyReason): void {
    if (entry.state === GONE) return;
    entry.state = GONE;
    this.#entries.remove(entry);
    this.#destroyed[reason] = (this.#destroyed[reason] ?? 0) + 1;
    this.#ev?.onDestroy(reason);
    this.#closeResource(entry.resource, entry.reason);
    this.#giveSlot();
    if (this.#slots.size === 0) this.#state.empty();
    this.#fill();
    this.#checkDrained();
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

  // -- dialing --

  /** Starts the dials that waiters and minIdle call for, within limits. */
  #fill(): void {
    if (this.#closed) return;
    while (this.#dialing < this.#maxDialing) {
      if (this.#waiting <= this.#dialing && !this.#idleDeficit()) break;
      // While the server is unreachable: one dial at a time, the probe, on
      // the backoff schedule (housekeeping starts it when it is due).
      const from = this.#state.dialFrom(this.#dialing);
      if (from !== 0 && from > this.#clock.now()) {
        if (from !== Infinity) this.#armHousekeeping(from);
        break;
      }
      if (!this.#takeSlot()) break;
      this.#startDial();
    }
  }

  /**
   * Takes a slot for a resource about to be dialed: one of this pool's
   * (max) and, with a gate, one of the shared capacity's.
   */
  #takeSlot(): boolean {
    if (this.#slots.size >= this.#max) return false;
    if (this.#gate !== null && !this.#gate.take(this)) return false;
    this.#slots.trySend(undefined);
    return true;
  }

  /** Gives a slot back (its resource is gone, or its dial failed). */
  #giveSlot(): void {
    this.#slots.tryReceive();
    this.#gate?.give(this);
  }

  #idleDeficit(): boolean {
    return this.#minIdle > 0 &&
      this.#idle.size + this.#dialing < this.#minIdle;
  }

  /**
   * Starts a background dial whose resource goes idle (or to a waiter).
   * If it fails, it fails the waiters parked before it started (see
   * #dialFailed).
   */
  #startDial(): void {
    this.#dialing++;
    const seq = this.#waiterSeq;
    this.#dialer.run(Infinity, undefined, (failed, value) => {
      if (failed) this.#dialFailed(value, seq);
      else this.#dialed(value as T);
    });
  }

  #dialed(resource: T): void {
    this.#dialing--;
    // The refill backoff is reset when the resource proves healthy (#lend,
    // #evict), not here: a server that accepts and closes at once must not
    // be redialed in a loop.
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
    this.#entries.add(entry);
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

  /**
   * `watch`'s evict: destroys an idle entry, leaving a dead mark in the
   * channel. One lost before it was ever lent, within EARLY_LOSS of its
   * dial, counts as a failed dial (the refill backs off).
   */
  #evict(entry: Entry<T>): boolean {
    if (!this.#idle.markDead(entry)) return false;
    if (entry.uses === 0) {
      const aliveFor = this.#clock.now() - entry.born;
      if (aliveFor < EARLY_LOSS) this.#dialer.lostEarly(aliveFor);
      else this.#state.healthy();
    }
    this.#destroy(entry, "evicted");
    return true;
  }

  /**
   * A background dial failed, timed out, or was abandoned by close(). The
   * waiters parked before it started (`seq` and below) saw a real dial fail
   * during their wait: they get its error, unless something else may still
   * serve them (a resource in use, a check or another dial in flight). The
   * ones parked after wait for the next dial, the probe.
   */
  #dialFailed(error: unknown, seq: number): void {
    this.#dialing--;
    this.#giveSlot();
    if (!this.#closed) {
      if (this.#inUse + this.#checking + this.#dialing === 0) {
        const channel = this.#idle.channel;
        let w;
        while (
          (w = internals.firstReceiver(channel) as Waiter<T> | null) !== null &&
          w.seq <= seq
        ) {
          internals.failReceiver(channel, error);
        }
      }
      this.#fill();
    }
    this.#checkDrained();
  }

  // -- checks, housekeeping, leaks --

  #armHousekeeping(at: number): void {
    if (!this.#closed) this.#hk.arm(at);
  }

  /** Evicts expired idle entries, pings stale ones, reports leaks, refills. */
  #housekeep(): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    const { expired, ping, next: due } = this.#idle.sweep(now, {
      idleTimeout: this.#idleTimeout,
      heartbeat: this.#heartbeat,
      minIdle: this.#minIdle,
    });
    let next = due;
    for (const [entry, reason] of expired) this.#destroy(entry, reason);
    for (const entry of ping) this.#pingIdle(entry);
    next = Math.min(next, this.#leaks.scan(now));
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
    const ok = await this.#dialer.check(entry.resource, fn);
    // On success the caller uncounts it when it lends or re-idles the entry,
    // so that no step in between sees it in no count at all.
    if (!ok) {
      this.#checking--;
      this.#destroy(entry, reason);
    }
    return ok;
  }

  #checkDrained(): void {
    if (
      this.#drained !== null && this.#slots.size === 0 &&
      this.#overflow === 0 && this.#closing === 0
    ) {
      this.#drained.resolve();
    }
  }

  static {
    settle = (pool, entry, gen, destroy, key) =>
      pool.#settle(entry, gen, destroy, key);
    waiterSettled = (pool, waiter, value, failed) =>
      pool.#waiterSettled(waiter, value, failed);
    waiterTimedOut = (pool, waiter) => {
      pool.#timeouts++;
      pool.#ev?.onTimeout(waiter.timeout);
      const state = pool.#state;
      return {
        pool: pool.#named.slice(1),
        counts: pool.#counts(),
        lent: pool.#borrows - waiter.borrows,
        ...(state.failing ? { cause: state.lastError } : {}),
      };
    };
    waiterDue = (pool, waiter) => pool.#waiterDue(waiter);
    poolHooks.idleCount = (pool) => (pool as Pool<unknown>).#idle.size;
    poolHooks.waitingCount = (pool) => (pool as Pool<unknown>).#waiting;
    poolHooks.contended = (pool) => {
      const gate = (pool as Pool<unknown>).#gate;
      return gate !== null && gate.contended(pool);
    };
    poolHooks.evictIdle = (pool) => {
      const p = pool as Pool<unknown>;
      const before = p.#slots.size;
      p.#evictOldestIdle();
      return p.#slots.size < before;
    };
    poolHooks.wake = (pool) => (pool as Pool<unknown>).#fill();
  }
}
