// Copyright 2026 the chanpool authors. MIT license.
// The pool's idle set: entries (one per resource) and the channel that
// holds the idle ones, with what the pool does to them as a whole: take,
// offer, evict the oldest, mark dead, purge, and the housekeeping sweep.
//
// The channel holds IDLE entries, plus `dead` ones (already destroyed by
// the resource's watch while idle, counted in #dead and skipped when taken):
// a dead entry stays in the channel until taken or purged, since a channel
// cannot remove from its middle. Borrowers park on the channel's receiver
// queue only while it is empty.

import { Channel } from "./channel.ts";
import { FULL, internals, NONE, type Offered } from "./_internal.ts";

export const IDLE = 0;
export const BUSY = 1;
export const CHECKING = 2;
export const GONE = 3;
export type EntryState =
  | typeof IDLE
  | typeof BUSY
  | typeof CHECKING
  | typeof GONE;

/** One resource and its bookkeeping, listed in the pool's EntryList until GONE. */
export class Entry<T> {
  /** Its index in the EntryList (-1: not listed). */
  slot = -1;
  state: EntryState = IDLE;
  /** Bumped on every lend and settle: a lease is live while its gen matches. */
  gen = 0;
  uses = 0;
  /** When it last went idle, or was last pinged. */
  idleSince: number;
  borrowedAt = 0;
  /** When it was last lent (for use times: events, histograms). */
  lentAt = 0;
  stack: Error | undefined = undefined;
  leakReported = false;
  /** What Lease.destroy was given, for the close function. */
  reason: unknown = undefined;
  /** The live lease, until the tracking timer registers it for GC checks. */
  lease: object | null = null;
  /** Registered with the FinalizationRegistry (unregister on settle). */
  tracked = false;
  /** Marked dead while sitting in the idle channel (already destroyed). */
  dead = false;
  readonly resource: T;
  /** When its dial landed. */
  readonly born: number;
  readonly expiresAt: number;
  readonly overflow: boolean;

  constructor(resource: T, now: number, expiresAt: number, overflow: boolean) {
    this.resource = resource;
    this.born = now;
    this.idleSince = now;
    this.expiresAt = expiresAt;
    this.overflow = overflow;
  }
}

/**
 * Every live entry of a pool (idle, lent, being checked; overflow ones too),
 * for the rare walks over lent ones (leak scans, forced close). An array,
 * not a list of lent entries: lending and releasing touch nothing here.
 */
export class EntryList<T> {
  readonly items: Entry<T>[] = [];

  add(entry: Entry<T>): void {
    entry.slot = this.items.length;
    this.items.push(entry);
  }

  /** Unlists an entry (swap with the last); a no-op if it is not listed. */
  remove(entry: Entry<T>): void {
    const i = entry.slot;
    if (i === -1) return;
    entry.slot = -1;
    const last = this.items.pop()!;
    if (last !== entry) {
      this.items[i] = last;
      last.slot = i;
    }
  }
}

/** What a housekeeping sweep found. */
export interface Sweep<T> {
  /** Entries to destroy (no longer in the set), with why. */
  expired: [Entry<T>, "lifetime" | "idle"][];
  /** Entries due for a heartbeat ping (no longer in the set). */
  ping: Entry<T>[];
  /** When the kept entries next need attention (Infinity: never). */
  next: number;
}

/** The limits a sweep applies; Infinity for the ones that are off. */
export interface SweepLimits {
  idleTimeout: number;
  heartbeat: number;
  /** Never evict for idleness below this many live entries. */
  minIdle: number;
}

export { FULL, IDLED, LENT } from "./_internal.ts";

/** The idle entries of one pool, in LIFO or FIFO order. */
export class IdleSet<T> {
  /** Holds the idle entries; borrowers park on its receiver queue. */
  readonly channel: Channel<Entry<T>>;
  readonly #lifo: boolean;
  /** Dead entries still in the channel. */
  #dead = 0;

  constructor(capacity: number, order: "lifo" | "fifo") {
    this.channel = new Channel({ capacity, order });
    this.#lifo = order === "lifo";
  }

  /** Live idle entries. */
  get size(): number {
    return this.channel.size - this.#dead;
  }

  /** Takes the next live idle entry, skipping dead ones. */
  take(): Entry<T> | undefined {
    while (true) {
      const value = internals.poll(this.channel);
      if (value === NONE) return undefined;
      const entry = value as Entry<T>;
      if (!entry.dead) return entry;
      this.#dead--;
    }
  }

  /**
   * Hands `entry` to the first parked borrower (LENT: the channel settled
   * it synchronously), or keeps it (IDLED), or FULL at `maxIdle` even after
   * purging dead entries.
   */
  offer(entry: Entry<T>): Offered {
    const where = internals.offer(this.channel, entry);
    if (where !== FULL || !this.purgeDead()) return where;
    return internals.offer(this.channel, entry);
  }

  /** Marks an idle entry destroyed in place; false if it is not idle. */
  markDead(entry: Entry<T>): boolean {
    if (entry.state !== IDLE || entry.dead) return false;
    entry.dead = true;
    this.#dead++;
    return true;
  }

  /** Takes dead entries out of the channel; whether there were any. */
  purgeDead(): boolean {
    if (this.#dead === 0) return false;
    this.#refill(this.#drainLive());
    return true;
  }

  /** Takes out the entry idle longest, if any. */
  takeOldest(): Entry<T> | undefined {
    const live = this.#drainLive();
    // LIFO drains newest first; FIFO, oldest first.
    const oldest = this.#lifo ? live.pop() : live.shift();
    this.#refill(live);
    return oldest;
  }

  /** Closes the channel (parked borrowers get `reason`); returns the live. */
  close(reason: unknown): Entry<T>[] {
    this.channel.close(reason);
    return this.#drainLive();
  }

  /**
   * Takes out what `now` makes due, visiting from the longest idle and
   * never evicting for idleness below `minIdle`: expired lifetimes, idle
   * timeouts, pings. The rest stays, in order.
   */
  sweep(now: number, limits: SweepLimits): Sweep<T> {
    const live = this.#drainLive();
    const kept: Entry<T>[] = [];
    const out: Sweep<T> = { expired: [], ping: [], next: Infinity };
    if (this.#lifo) live.reverse();
    let evictable = live.length - limits.minIdle;
    for (const entry of live) {
      if (entry.expiresAt <= now) {
        out.expired.push([entry, "lifetime"]);
        evictable--;
      } else if (
        evictable > 0 && entry.idleSince + limits.idleTimeout <= now
      ) {
        out.expired.push([entry, "idle"]);
        evictable--;
      } else if (entry.idleSince + limits.heartbeat <= now) {
        out.ping.push(entry);
      } else {
        kept.push(entry);
        // One kept for minIdle while past its idle timeout is due for
        // nothing but expiry or a ping; it is reconsidered when the idle set
        // changes.
        const idleDue = entry.idleSince + limits.idleTimeout;
        out.next = Math.min(
          out.next,
          entry.expiresAt,
          entry.idleSince + limits.heartbeat,
          idleDue > now ? idleDue : Infinity,
        );
      }
    }
    if (this.#lifo) kept.reverse();
    this.#refill(kept);
    return out;
  }

  /** Every live entry, taken out in the order they would be taken. */
  #drainLive(): Entry<T>[] {
    const out: Entry<T>[] = [];
    let r;
    while ((r = this.channel.tryReceive()).state === "ok") {
      if (!r.value.dead) out.push(r.value);
    }
    this.#dead = 0;
    return out;
  }

  /** Puts back entries taken by #drainLive, restoring their order. */
  #refill(entries: Entry<T>[]): void {
    // LIFO takes the newest first, so the newest must go in last.
    if (this.#lifo) {
      for (let i = entries.length - 1; i >= 0; i--) {
        this.channel.trySend(entries[i]!);
      }
    } else for (const e of entries) this.channel.trySend(e);
  }
}
