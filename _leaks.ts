// Copyright 2026 the chanpool authors. MIT license.
// Leak tracking for a pool: leases held past `leakTimeout` are reported
// (once each), and leases garbage-collected without release are reported
// and their resources reclaimed. Registration with the FinalizationRegistry
// is deferred: a lease still held when the tracking timer fires (TRACK_DELAY
// after a borrow) is registered; most are released long before, and a
// registration costs more than the rest of a borrow.

import { BUSY, type Entry, type EntryList } from "./_idle.ts";
import type { LeakReport } from "./_options.ts";
import type { Clock } from "./_time.ts";

/** How long a lease is held before it is registered for GC checks. */
const TRACK_DELAY = 1_000;

/** What the FinalizationRegistry holds for a lease. */
interface Tracked<T> {
  entry: Entry<T>;
  gen: number;
}

/** Watches a pool's lent entries for leaks. */
export class Leaks<T> {
  /** Times `onLeak` threw (contained: never uncaught). */
  callbackErrors = 0;
  readonly #clock: Clock;
  readonly #onLeak: (report: LeakReport<T>) => void;
  /** Report a lease held this long, in ms (Infinity: never). */
  readonly timeout: number;
  readonly #entries: EntryList<T>;
  readonly #registry: FinalizationRegistry<Tracked<T>>;
  #timer: unknown = undefined;
  #stopped = false;

  /**
   * @param entries The pool's live entries.
   * @param collected Reclaims an entry whose lease was garbage-collected
   *   (after it was reported).
   */
  constructor(
    clock: Clock,
    onLeak: (report: LeakReport<T>) => void,
    timeout: number,
    entries: EntryList<T>,
    collected: (entry: Entry<T>) => void,
  ) {
    this.#clock = clock;
    this.#onLeak = onLeak;
    this.timeout = timeout;
    this.#entries = entries;
    this.#registry = new FinalizationRegistry(({ entry, gen }) => {
      if (entry.state !== BUSY || entry.gen !== gen) return;
      entry.tracked = false;
      this.#report({
        resource: entry.resource,
        heldFor: this.#clock.now() - entry.borrowedAt,
        stack: entry.stack?.stack,
        collected: true,
      });
      collected(entry);
    });
  }

  /** An entry was lent with `lease`; returns when it is overdue (or Infinity). */
  lent(entry: Entry<T>, lease: object): number {
    entry.lease = lease;
    if (this.#timer === undefined && !this.#stopped) this.#arm();
    return this.timeout === Infinity ? Infinity : this.#stamp(entry);
  }

  /** Records when and where an entry was lent; returns when it is overdue. */
  #stamp(entry: Entry<T>): number {
    entry.borrowedAt = this.#clock.now();
    entry.leakReported = false;
    entry.stack = new Error("Lease borrowed here");
    return entry.borrowedAt + this.timeout;
  }

  /** An entry's lease was settled. */
  settled(entry: Entry<T>): void {
    entry.lease = null;
    if (entry.tracked) {
      entry.tracked = false;
      this.#registry.unregister(entry);
    }
    if (entry.stack !== undefined) entry.stack = undefined;
  }

  /** Reports leases held past the timeout; returns the next due time. */
  scan(now: number): number {
    let next = Infinity;
    if (this.timeout === Infinity) return next;
    for (const e of this.#entries.items) {
      if (e.state !== BUSY || e.leakReported) continue;
      const due = e.borrowedAt + this.timeout;
      if (due <= now) {
        e.leakReported = true;
        this.#report({
          resource: e.resource,
          heldFor: now - e.borrowedAt,
          stack: e.stack?.stack,
          collected: false,
        });
      } else next = Math.min(next, due);
    }
    return next;
  }

  /** Stops the tracking timer for good (the pool closed). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      for (const e of this.#entries.items) {
        const lease = e.lease;
        if (lease === null) continue;
        e.lease = null;
        e.tracked = true;
        this.#registry.register(lease, { entry: e, gen: e.gen }, e);
      }
    }, TRACK_DELAY);
    this.#clock.unref?.(this.#timer);
  }

  /** Calls `onLeak`; a throw is counted, never left uncaught. */
  #report(report: LeakReport<T>): void {
    try {
      this.#onLeak(report);
    } catch {
      this.callbackErrors++;
    }
  }
}
