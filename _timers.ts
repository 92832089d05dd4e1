// Copyright 2026 the chanpool authors. MIT license.
// One timer for many deadlines: a binary min-heap of nodes and a single
// clock timer armed at the earliest one. Adding a later deadline or removing
// any node never touches the timer (it may fire early, find nothing due and
// re-arm), so waiters that come and go cost a heap operation, not a
// setTimeout/clearTimeout pair. When the heap empties the timer stays armed
// but unref'd (it no longer keeps the program alive), so a burst of waiters
// that keeps emptying and refilling the heap re-refs it instead of paying
// for a new timer each time; `clear` stops it. Deadlines that arrive in
// order (waiters with the same timeout, the common case) go to a FIFO lane
// instead of the heap: O(1) to add and to remove from anywhere.

import type { Clock } from "./pool.ts";

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
    if (node !== null && this.#timer === undefined) this.#arm(node.at);
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
