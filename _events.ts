// Copyright 2026 the chanpool authors. MIT license.
// Pool events and histograms: what `Pool.on` delivers and what
// `Pool.histograms` holds. pool.ts re-exports the public types.

import { describe } from "./_util.ts";

/** Why a resource was destroyed (a key of `stats.destroyed`). */
export type DestroyReasonName = string;

/** A resource was lent. */
export interface BorrowEvent {
  /** The event: "borrow". */
  readonly type: "borrow";
  /** The pool's `name` (a TcpPool's address), or `""`. */
  readonly pool: string;
  /**
   * How long the borrow waited, in ms: `0` when a resource was idle; the
   * pool's coarse clock (10 ms steps) unless `histograms` is on.
   */
  readonly wait: number;
}

/** A lease ended: released, destroyed, reclaimed or force-closed. */
export interface ReleaseEvent {
  /** The event: "release". */
  readonly type: "release";
  /** The pool's `name` (a TcpPool's address), or `""`. */
  readonly pool: string;
  /** How long it was lent, in ms (coarse, 10 ms steps, unless `histograms`). */
  readonly use: number;
}

/** A dial started. */
export interface DialStartEvent {
  /** The event: "dialstart". */
  readonly type: "dialstart";
  /** The pool's `name` (a TcpPool's address), or `""`. */
  readonly pool: string;
}

/** A dial succeeded. */
export interface DialEvent {
  /** The event: "dial". */
  readonly type: "dial";
  /** The pool's `name` (a TcpPool's address), or `""`. */
  readonly pool: string;
  /** How long it took, in ms. */
  readonly time: number;
}

/** A dial failed with a `DialError` (counted in `stats.dialErrors`). */
export interface DialErrorEvent {
  /** The event: "dialerror". */
  readonly type: "dialerror";
  /** The pool's `name` (a TcpPool's address), or `""`. */
  readonly pool: string;
  /** How long it took, in ms. */
  readonly time: number;
  /** Why it failed. */
  readonly error: Error;
}

/**
 * A dial was given up before it settled: its borrower timed out or was
 * aborted, or the pool closed.
 */
export interface DialAbandonEvent {
  /** The event: "dialabandon". */
  readonly type: "dialabandon";
  /** The pool's `name` (a TcpPool's address), or `""`. */
  readonly pool: string;
  /** How long it ran, in ms. */
  readonly time: number;
  /** Why it was given up (a timeout, the signal's reason, the close). */
  readonly reason: unknown;
}

/** A resource was destroyed (counted in `stats.destroyed[reason]`). */
export interface DestroyEvent {
  /** The event: "destroy". */
  readonly type: "destroy";
  /** The pool's `name` (a TcpPool's address), or `""`. */
  readonly pool: string;
  /** The key of `stats.destroyed` it was counted under. */
  readonly reason: string;
}

/** A borrow timed out (counted in `stats.timeouts`). */
export interface TimeoutEvent {
  /** The event: "timeout". */
  readonly type: "timeout";
  /** The pool's `name` (a TcpPool's address), or `""`. */
  readonly pool: string;
  /** How long it waited, in ms (coarse unless `histograms`). */
  readonly wait: number;
}

/** The events of a pool, by type (`statechange` is separate). */
export interface PoolEventMap {
  /** See {@linkcode BorrowEvent}. */
  borrow: BorrowEvent;
  /** See {@linkcode ReleaseEvent}. */
  release: ReleaseEvent;
  /** See {@linkcode DialStartEvent}. */
  dialstart: DialStartEvent;
  /** See {@linkcode DialEvent}. */
  dial: DialEvent;
  /** See {@linkcode DialErrorEvent}. */
  dialerror: DialErrorEvent;
  /** See {@linkcode DialAbandonEvent}. */
  dialabandon: DialAbandonEvent;
  /** See {@linkcode DestroyEvent}. */
  destroy: DestroyEvent;
  /** See {@linkcode TimeoutEvent}. */
  timeout: TimeoutEvent;
}

/** A pool event type other than `statechange`. */
export type PoolEventType = keyof PoolEventMap;

/**
 * Every pool event type `on` takes besides `"statechange"`: to listen to
 * all of them.
 *
 * @example Usage
 * ```ts
 * import { Pool, POOL_EVENT_TYPES } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => ({}));
 * const seen = new Set<string>();
 * for (const type of POOL_EVENT_TYPES) pool.on(type, (e) => seen.add(e.type));
 * (await pool.borrow()).release();
 * assert.deepEqual([...seen], ["dialstart", "dial", "borrow", "release"]);
 * ```
 */
export const EVENT_TYPES: readonly PoolEventType[] = [
  "borrow",
  "release",
  "dialstart",
  "dial",
  "dialerror",
  "dialabandon",
  "destroy",
  "timeout",
];

type Listener<E> = (event: E) => void;

/**
 * Checks the arguments of an `on(type, listener)`: `type` one of
 * `allowed`, `listener` a function; else a TypeError naming the value.
 */
export function checkListen(
  type: unknown,
  listener: unknown,
  allowed: readonly string[],
): void {
  if (!allowed.includes(type as string)) {
    throw new TypeError(
      `Cannot listen: type must be one of ${
        allowed.map((t) => `"${t}"`).join(", ")
      }, received ${describe(type)}`,
    );
  }
  if (typeof listener !== "function") {
    throw new TypeError(
      `Cannot listen: listener must be a function, received ${
        describe(listener)
      }`,
    );
  }
}

/**
 * Listeners by type, and one event object per type, reused: an event is
 * valid during the listener's call only (copy what you keep). A listener
 * that throws is counted, never propagated.
 */
export class Emitter {
  /** The pool's `name` (a TcpPool's address), or `""`. */
  readonly pool: string;
  errors = 0;
  borrow: Listener<BorrowEvent>[] = [];
  release: Listener<ReleaseEvent>[] = [];
  dialstart: Listener<DialStartEvent>[] = [];
  dial: Listener<DialEvent>[] = [];
  dialerror: Listener<DialErrorEvent>[] = [];
  dialabandon: Listener<DialAbandonEvent>[] = [];
  destroy: Listener<DestroyEvent>[] = [];
  timeout: Listener<TimeoutEvent>[] = [];
  readonly #borrow: { type: "borrow"; pool: string; wait: number };
  readonly #release: { type: "release"; pool: string; use: number };
  readonly #timeout: { type: "timeout"; pool: string; wait: number };
  readonly #destroy: { type: "destroy"; pool: string; reason: string };

  constructor(pool: string) {
    this.pool = pool;
    this.#borrow = { type: "borrow", pool, wait: 0 };
    this.#release = { type: "release", pool, use: 0 };
    this.#timeout = { type: "timeout", pool, wait: 0 };
    this.#destroy = { type: "destroy", pool, reason: "" };
  }

  /** Whether anyone listens to anything. */
  get empty(): boolean {
    for (const type of EVENT_TYPES) if (this[type].length > 0) return false;
    return true;
  }

  add<K extends PoolEventType>(
    type: K,
    listener: Listener<PoolEventMap[K]>,
  ): () => void {
    (this as unknown as Record<K, Listener<PoolEventMap[K]>[]>)[type] = [
      ...this[type] as Listener<PoolEventMap[K]>[],
      listener,
    ];
    return () => {
      (this as unknown as Record<K, Listener<PoolEventMap[K]>[]>)[type] =
        (this[type] as Listener<PoolEventMap[K]>[]).filter((l) =>
          l !== listener
        );
    };
  }

  #call<E>(list: Listener<E>[], event: E): void {
    if (list.length === 1) {
      // The usual case, without the loop.
      try {
        list[0]!(event);
      } catch {
        this.errors++;
      }
      return;
    }
    for (let i = 0; i < list.length; i++) {
      try {
        list[i]!(event);
      } catch {
        this.errors++;
      }
    }
  }

  onBorrow(wait: number): void {
    if (this.borrow.length === 0) return;
    this.#borrow.wait = wait;
    this.#call(this.borrow, this.#borrow);
  }

  onRelease(use: number): void {
    if (this.release.length === 0) return;
    this.#release.use = use;
    this.#call(this.release, this.#release);
  }

  onTimeout(wait: number): void {
    if (this.timeout.length === 0) return;
    this.#timeout.wait = wait;
    this.#call(this.timeout, this.#timeout);
  }

  onDestroy(reason: string): void {
    if (this.destroy.length === 0) return;
    this.#destroy.reason = reason;
    this.#call(this.destroy, this.#destroy);
  }

  onDialStart(): void {
    if (this.dialstart.length === 0) return;
    this.#call(this.dialstart, { type: "dialstart", pool: this.pool });
  }

  onDial(time: number): void {
    if (this.dial.length === 0) return;
    this.#call(this.dial, { type: "dial", pool: this.pool, time });
  }

  onDialError(time: number, error: Error): void {
    if (this.dialerror.length === 0) return;
    this.#call(this.dialerror, {
      type: "dialerror",
      pool: this.pool,
      time,
      error,
    });
  }

  onDialAbandon(time: number, reason: unknown): void {
    if (this.dialabandon.length === 0) return;
    this.#call(this.dialabandon, {
      type: "dialabandon",
      pool: this.pool,
      time,
      reason,
    });
  }
}

/**
 * Upper bounds of the histogram buckets, in ms: 2^k µs for k = 0..26
 * (1 µs to about 67 s); the last bucket counts everything above.
 */
export const HISTOGRAM_BOUNDS: readonly number[] = Object.freeze(
  Array.from({ length: 27 }, (_, k) => 2 ** k / 1000),
);

/**
 * A histogram of durations with fixed exponential buckets
 * ({@linkcode HISTOGRAM_BOUNDS}); recording allocates nothing.
 */
export class Histogram {
  /** Upper bounds of the buckets, in ms (shared, frozen). */
  readonly bounds: readonly number[] = HISTOGRAM_BOUNDS;
  /** Samples per bucket: `counts[i]` ≤ `bounds[i]`; the last: above all. */
  readonly counts: Uint32Array = new Uint32Array(HISTOGRAM_BOUNDS.length + 1);
  /** Samples recorded. */
  count = 0;
  /** Their sum, in ms. */
  sum = 0;

  /** Records a duration in ms. */
  record(ms: number): void {
    const us = ms > 0 ? Math.ceil(ms * 1000) : 0;
    // The smallest k with us ≤ 2^k: 32 - clz32(us - 1) for us ≥ 1.
    const k = us <= 1 ? 0 : 32 - Math.clz32(Math.min(us, 2 ** 31) - 1);
    this.counts[k < this.counts.length ? k : this.counts.length - 1]!++;
    this.count++;
    this.sum += ms > 0 ? ms : 0;
  }
}

/** The histograms of a pool (with `histograms: true`). */
export interface PoolHistograms {
  /** How long borrows waited (0 when a resource was idle). */
  readonly wait: Histogram;
  /** How long leases were held. */
  readonly use: Histogram;
  /** How long successful dials took. */
  readonly dial: Histogram;
}
