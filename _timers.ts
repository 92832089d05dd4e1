// Copyright 2026 the chanpool authors. MIT license.
// One timer for many deadlines: a binary min-heap of nodes and a single
// clock timer armed at the earliest one. Adding a later deadline or removing
// any node never touches the timer (it may fire early, find nothing due and
// re-arm), so waiters that come and go cost a heap operation, not a
// setTimeout/clearTimeout pair.

import type { Clock } from "./pool.ts";

/** The default clock: `performance.now()` and the global timers. */
export const SYSTEM_CLOCK: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, delay) => setTimeout(callback, delay),
  clearTimeout: (handle) => clearTimeout(handle as number),
  unref: (handle) => Deno.unrefTimer(handle as number),
};

/** A deadline in a {@linkcode DeadlineHeap}; `fire` runs once it is due. */
export interface Deadline {
  at: number;
  /** Position in the heap, -1 while not in it. */
  pos: number;
  fire(): void;
}

export class DeadlineHeap {
  readonly #clock: Clock;
  readonly #unref: boolean;
  #heap: Deadline[] = [];
  #timer: unknown = undefined;
  #armedAt = Infinity;

  constructor(clock: Clock, unref: boolean) {
    this.#clock = clock;
    this.#unref = unref;
  }

  get size(): number {
    return this.#heap.length;
  }

  add(node: Deadline): void {
    const heap = this.#heap;
    node.pos = heap.length;
    heap.push(node);
    this.#up(node.pos);
    if (node.at < this.#armedAt) this.#arm(node.at);
  }

  remove(node: Deadline): void {
    const i = node.pos;
    if (i < 0) return;
    node.pos = -1;
    const heap = this.#heap;
    const last = heap.pop()!;
    if (last !== node) {
      heap[i] = last;
      last.pos = i;
      this.#down(i);
      this.#up(last.pos);
    }
    if (heap.length === 0) this.#disarm();
  }

  /** Stops the timer and forgets every deadline without firing it. */
  clear(): void {
    for (const node of this.#heap) node.pos = -1;
    this.#heap = [];
    this.#disarm();
  }

  #arm(at: number): void {
    this.#disarm();
    this.#armedAt = at;
    const delay = Math.max(0, at - this.#clock.now());
    this.#timer = this.#clock.setTimeout(() => this.#run(), delay);
    if (this.#unref) this.#clock.unref?.(this.#timer);
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Infinity;
  }

  #run(): void {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const now = this.#clock.now();
    const heap = this.#heap;
    while (heap.length > 0 && heap[0]!.at <= now) {
      const node = heap[0]!;
      this.remove(node);
      node.fire();
    }
    if (heap.length > 0 && this.#timer === undefined) this.#arm(heap[0]!.at);
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
