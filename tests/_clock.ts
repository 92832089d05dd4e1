// Copyright 2026 the chanpool authors. MIT license.
// A fake clock for pool tests: time moves only when the test says so.

import type { Clock } from "../pool.ts";

interface Timer {
  id: number;
  at: number;
  callback: () => void;
  unref: boolean;
}

/** A {@linkcode Clock} driven by {@linkcode FakeClock.advance}. */
export class FakeClock implements Clock {
  #now = 0;
  #nextId = 1;
  #timers = new Map<number, Timer>();

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delay: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, {
      id,
      at: this.#now + Math.max(0, delay),
      callback,
      unref: false,
    });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  unref(handle: unknown): void {
    const timer = this.#timers.get(handle as number);
    if (timer !== undefined) timer.unref = true;
  }

  ref(handle: unknown): void {
    const timer = this.#timers.get(handle as number);
    if (timer !== undefined) timer.unref = false;
  }

  /** Timers still armed that keep a program alive (not unref'd). */
  get pending(): number {
    let n = 0;
    for (const t of this.#timers.values()) if (!t.unref) n++;
    return n;
  }

  /** Every timer still armed, unref'd ones included. */
  get pendingAll(): number {
    return this.#timers.size;
  }

  /** The time the next timer fires, or Infinity. */
  get nextAt(): number {
    let at = Infinity;
    for (const t of this.#timers.values()) at = Math.min(at, t.at);
    return at;
  }

  /**
   * Moves time forward by `ms` without firing any timer: a stalled event
   * loop (CPU-bound work); the timers due meanwhile fire at the next
   * {@linkcode FakeClock.advance}.
   */
  stall(ms: number): void {
    this.#now += ms;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order; lets promise
   * callbacks run after each one (and before returning).
   */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    while (true) {
      await settle();
      let next: Timer | undefined;
      for (const t of this.#timers.values()) {
        if (t.at <= end && (next === undefined || t.at < next.at)) next = t;
      }
      if (next === undefined) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
    }
    this.#now = end;
    await settle();
  }
}

/** Lets pending promise callbacks (and those they schedule) run. */
export async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await Promise.resolve();
}
