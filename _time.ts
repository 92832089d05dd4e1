// Copyright 2026 the chanpool authors. MIT license.
// Time, in one place, for the pool and TCP alike (all on an injectable
// Clock, so tests drive every timeout with a fake one):
//
// - Clock and SYSTEM_CLOCK;
// - CoarseClock: a clock read at most once per few ms under load;
// - Alarm: one re-armable timer at an absolute time;
// - DeadlineHeap: one timer for many deadlines;
// - race(): a promise raced against a deadline on the heap and a signal.
//
// DeadlineHeap: one timer for many deadlines: a binary min-heap of nodes and a single
// clock timer armed at the earliest one. Adding a later deadline or removing
// any node never touches the timer (it may fire early, find nothing due and
// re-arm), so waiters that come and go cost a heap operation, not a
// setTimeout/clearTimeout pair. When the heap empties the timer stays armed
// but unref'd (it no longer keeps the program alive), so a burst of waiters
// that keeps emptying and refilling the heap re-refs it instead of paying
// for a new timer each time; `clear` stops it. Deadlines that arrive in
// order (waiters with the same timeout, the common case) go to a FIFO lane
// instead of the heap: O(1) to add and to remove from anywhere.

/**
 * Time for a pool: `now()` on a monotonic millisecond scale, and timers. Tests
 * pass a fake clock to drive timeouts without sleeping.
 */
export interface Clock {
  /**
   * The current time in milliseconds, on a monotonic scale.
   *
   * @returns The time.
   */
  now(): number;
  /**
   * Calls `callback` once, after `delay` milliseconds.
   *
   * @param callback What to call.
   * @param delay The delay in milliseconds.
   * @returns A handle for `clearTimeout`.
   */
  setTimeout(callback: () => void, delay: number): unknown;
  /**
   * Cancels a timer made by `setTimeout`.
   *
   * @param handle The timer's handle.
   */
  clearTimeout(handle: unknown): void;
  /**
   * Lets a background timer not keep the program alive (optional).
   *
   * @param handle The timer's handle.
   */
  unref?(handle: unknown): void;
  /**
   * Undoes `unref` (optional).
   *
   * @param handle The timer's handle.
   */
  ref?(handle: unknown): void;
}

/** The default clock: `performance.now()` and the global timers. */
export const SYSTEM_CLOCK: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, delay) => setTimeout(callback, delay),
  clearTimeout: (handle) => clearTimeout(handle as number),
  unref: (handle) => Deno.unrefTimer(handle as number),
  ref: (handle) => Deno.refTimer(handle as number),
};

/** A deadline in a {@linkcode DeadlineHeap}; `fire` runs once it is due. */
export interface Deadline {
  at: number;
  /** Links of the FIFO lane (their own, so a node can sit in a channel too). */
  dprev: Deadline | null;
  dnext: Deadline | null;
  /** Position in the heap; IN_FIFO in the FIFO lane; -1 while in neither. */
  pos: number;
  fire(): void;
}

const IN_FIFO = -2;

export class DeadlineHeap {
  readonly #clock: Clock;
  readonly #unref: boolean;
  #heap: Deadline[] = [];
  #head: Deadline | null = null;
  #tail: Deadline | null = null;
  #lane = 0;
  #timer: unknown = undefined;
  #armedAt = Infinity;
  #refd = false;

  constructor(clock: Clock, unref: boolean) {
    this.#clock = clock;
    this.#unref = unref;
  }

  get size(): number {
    return this.#heap.length + this.#lane;
  }

  add(node: Deadline): void {
    const tail = this.#tail;
    if (tail === null || node.at >= tail.at) {
      node.pos = IN_FIFO;
      node.dprev = tail;
      node.dnext = null;
      if (tail === null) this.#head = node;
      else tail.dnext = node;
      this.#tail = node;
      this.#lane++;
    } else {
      const heap = this.#heap;
      node.pos = heap.length;
      heap.push(node);
      this.#up(node.pos);
    }
    if (node.at < this.#armedAt) this.#arm(node.at);
    else if (!this.#refd) this.#ref();
  }

  remove(node: Deadline): void {
    const i = node.pos;
    if (i === IN_FIFO) {
      node.pos = -1;
      const { dprev, dnext } = node;
      if (dprev === null) this.#head = dnext;
      else dprev.dnext = dnext;
      if (dnext === null) this.#tail = dprev;
      else dnext.dprev = dprev;
      node.dprev = node.dnext = null;
      this.#lane--;
    } else if (i >= 0) {
      node.pos = -1;
      const heap = this.#heap;
      const last = heap.pop()!;
      if (last !== node) {
        heap[i] = last;
        last.pos = i;
        this.#down(i);
        this.#up(last.pos);
      }
    } else return;
    if (this.size === 0 && this.#refd) {
      this.#refd = false;
      this.#clock.unref?.(this.#timer);
    }
  }

  /** Stops the timer and forgets every deadline without firing it. */
  clear(): void {
    for (const node of this.#heap) node.pos = -1;
    this.#heap = [];
    for (let node = this.#head; node !== null;) {
      const next: Deadline | null = node.dnext;
      node.pos = -1;
      node.dprev = node.dnext = null;
      node = next;
    }
    this.#head = this.#tail = null;
    this.#lane = 0;
    this.#disarm();
  }

  #arm(at: number): void {
    this.#disarm();
    this.#armedAt = at;
    const delay = Math.max(0, at - this.#clock.now());
    this.#timer = this.#clock.setTimeout(() => this.#run(), delay);
    this.#refd = true;
    if (this.#unref) this.#clock.unref?.(this.#timer);
  }

  #ref(): void {
    this.#refd = true;
    if (!this.#unref) this.#clock.ref?.(this.#timer);
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Infinity;
    this.#refd = false;
  }

  #run(): void {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    this.#refd = false;
    const now = this.#clock.now();
    let node;
    while ((node = this.#earliest()) !== null && node.at <= now) {
      this.remove(node);
      node.fire();
    }
    // fire() may have added a node back (armed for it): arm for the earliest.
    if (node !== null && node.at < this.#armedAt) this.#arm(node.at);
  }

  #earliest(): Deadline | null {
    const a = this.#head;
    const b = this.#heap[0];
    if (b === undefined) return a;
    return a === null || b.at < a.at ? b : a;
  }

  #up(i: number): void {
    const heap = this.#heap;
    const node = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p]!;
      if (parent.at <= node.at) break;
      heap[i] = parent;
      parent.pos = i;
      i = p;
    }
    heap[i] = node;
    node.pos = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const node = heap[i]!;
    while (true) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && heap[r]!.at < heap[l]!.at ? r : l;
      const child = heap[c]!;
      if (child.at >= node.at) break;
      heap[i] = child;
      child.pos = i;
      i = c;
    }
    heap[i] = node;
    node.pos = i;
  }
}

/**
 * One coarse reading and when it stopped being the current one: a wait that
 * started with this reading really started somewhere in `[at, end]`.
 */
export class Tick {
  readonly at: number;
  /** When a later reading replaced it (Infinity: still current). */
  end = Infinity;

  constructor(at: number) {
    this.at = at;
  }

  /**
   * The latest a wait that started with this reading can have started,
   * given the time `now`: when the reading was replaced (or `now`, while it
   * is current). Never earlier than the real start, so a deadline counted
   * from it is never early, like Go's timers; it is late by at most the
   * reading's age when the wait began: the clock's period (plus timer
   * lateness), or after a stalled event loop held the reading, the stall.
   */
  start(now: number): number {
    return this.end < now ? this.end : now;
  }
}

/**
 * The clock, read at most once per `period` ms while calls come in: a clock
 * read costs about as much as the rest of a release, and idle and lifetime
 * limits need no better. Each reading is a {@linkcode Tick} that records
 * when it was replaced, so a deadline counted from it can be checked when it
 * fires: after a stalled event loop the reading is as old as the stall, and
 * the tick's end (read when the loop came back) bounds the real start.
 */
export class CoarseClock {
  readonly #clock: Clock;
  readonly #period: number;
  #tick = new Tick(-Infinity);
  #timer: unknown = undefined;
  #stopped = false;

  constructor(clock: Clock, period: number) {
    this.#clock = clock;
    this.#period = period;
  }

  /** The time, at most `period` ms old (unless the event loop stalled). */
  now(): number {
    if (this.#timer !== undefined) return this.#tick.at;
    return this.fresh();
  }

  /** The current reading, with its tick (see {@linkcode Tick.start}). */
  tick(): Tick {
    if (this.#timer === undefined) this.fresh();
    return this.#tick;
  }

  /** The time now; later coarse readings in this period start from it. */
  fresh(): number {
    const now = this.#clock.now();
    if (this.#tick.end > now) this.#tick.end = now;
    this.#tick = new Tick(now);
    if (this.#timer === undefined && !this.#stopped) {
      this.#timer = this.#clock.setTimeout(this.#expired, this.#period);
      this.#clock.unref?.(this.#timer);
    }
    return now;
  }

  readonly #expired = (): void => {
    this.#timer = undefined;
    this.#tick.end = this.#clock.now();
  };

  /** Stops its timer for good (readings stay correct, just not cached). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * One unref'd timer at an absolute time that can be moved earlier (never
 * later: a later `arm` is ignored, the earlier run re-arms what it needs).
 */
export class Alarm {
  readonly #clock: Clock;
  readonly #run: () => void;
  #timer: unknown = undefined;
  #at = Infinity;

  constructor(clock: Clock, run: () => void) {
    this.#clock = clock;
    this.#run = run;
  }

  /** When it rings (Infinity: not armed). */
  get at(): number {
    return this.#at;
  }

  /** Rings at `at` (absolute, on the clock), unless armed earlier already. */
  arm(at: number): void {
    if (at >= this.#at) return;
    this.disarm();
    this.#at = at;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#at = Infinity;
      this.#run();
    }, Math.max(0, at - this.#clock.now()));
    this.#clock.unref?.(this.#timer);
  }

  disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Infinity;
  }
}

/**
 * A call raced against an absolute deadline on a {@linkcode DeadlineHeap}
 * and a signal. Whichever ends first settles the returned promise: the
 * work's outcome, `expire()`'s error, or the signal's reason after
 * `aborted(reason)` ran (the owner cuts the work off there).
 */
class Race<R> implements Deadline {
  at: number;
  pos = -1;
  dprev: Deadline | null = null;
  dnext: Deadline | null = null;
  readonly #heap: DeadlineHeap;
  readonly #signal: AbortSignal | undefined;
  readonly #expire: () => unknown;
  readonly #aborted: (reason: unknown) => void;
  readonly #resolve: (value: R) => void;
  readonly #reject: (reason: unknown) => void;
  #settled = false;

  constructor(
    heap: DeadlineHeap,
    work: Promise<R>,
    at: number,
    signal: AbortSignal | undefined,
    expire: () => unknown,
    aborted: (reason: unknown) => void,
    settle: PromiseWithResolvers<R>,
  ) {
    this.#heap = heap;
    this.at = at;
    this.#signal = signal;
    this.#expire = expire;
    this.#aborted = aborted;
    this.#resolve = settle.resolve;
    this.#reject = settle.reject;
    work.then(this.#ok, this.#fail);
    if (signal?.aborted) {
      // Aborted already: it settles now, and the work is cut off.
      this.handleEvent();
      return;
    }
    if (at !== Infinity) heap.add(this);
    signal?.addEventListener("abort", this, { once: true });
  }

  #end(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    if (this.pos !== -1) this.#heap.remove(this);
    this.#signal?.removeEventListener("abort", this);
    return true;
  }

  readonly #ok = (value: R): void => {
    if (this.#end()) this.#resolve(value);
  };

  readonly #fail = (error: unknown): void => {
    if (this.#end()) this.#reject(error);
  };

  /** The deadline passed. */
  fire(): void {
    if (this.#end()) this.#reject(this.#expire());
  }

  /** The signal aborted. */
  handleEvent(): void {
    if (!this.#end()) return;
    const reason = this.#signal!.reason;
    this.#aborted(reason);
    this.#reject(reason);
  }
}

/**
 * Races `work` against the absolute deadline `at` (Infinity: none) on
 * `heap` and against `signal`; see {@linkcode Race}.
 */
export function race<R>(
  heap: DeadlineHeap,
  work: Promise<R>,
  at: number,
  signal: AbortSignal | undefined,
  expire: () => unknown,
  aborted: (reason: unknown) => void,
): Promise<R> {
  const settle = Promise.withResolvers<R>();
  new Race(heap, work, at, signal, expire, aborted, settle);
  return settle.promise;
}
