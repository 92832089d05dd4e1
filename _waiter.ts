// Copyright 2026 the chanpool authors. MIT license.
// One parked operation in a channel's wait queue, and the protocol by which
// the channel settles it. A channel calls exactly one of `received`, `sent`
// or `failed` on a waiter it has just taken out of its queue. Channel's own
// send/receive/select waiters settle a promise; a pool's borrower subclasses
// ChannelWaiter and overrides them (no promise or node of the channel's own:
// a hand-over costs one promise hop).

import type { LinkedQueue } from "./_queue.ts";

/** A parked `select` that its cases report to. */
export interface SelectSink {
  finish(index: number, value: unknown, ok: boolean): void;
  fail(error: unknown): void;
}

function noop(): void {}

/** A parked send, receive or select case; an intrusive queue node. */
export class ChannelWaiter {
  prev: ChannelWaiter | null = null;
  next: ChannelWaiter | null = null;
  queue: LinkedQueue<ChannelWaiter> | null = null;
  /** The value a parked sender offers. */
  value: unknown;
  resolve: (value: unknown) => void = noop;
  reject: (reason: unknown) => void = noop;
  signal: AbortSignal | undefined = undefined;
  /** The select this is a case of (its `index`), or `null`. */
  readonly sel: SelectSink | null;
  readonly index: number;

  constructor(value: unknown, sel: SelectSink | null, index: number) {
    this.value = value;
    this.sel = sel;
    this.index = index;
  }

  /** Leaves its queue if still in one; whether it was. */
  leave(): boolean {
    const queue = this.queue;
    if (queue === null) return false;
    queue.remove(this);
    return true;
  }

  /** The signal aborted while parked: leave the queue, reject. */
  handleEvent(): void {
    this.leave();
    this.reject(this.signal!.reason);
  }

  /** A receiver got `value` (`ok: false`: its channel closed, for select). */
  received(value: unknown, ok: boolean): void {
    if (this.sel !== null) return this.sel.finish(this.index, value, ok);
    this.signal?.removeEventListener("abort", this);
    this.resolve(value);
  }

  /** A sender's value was taken. */
  sent(): void {
    if (this.sel !== null) return this.sel.finish(this.index, undefined, true);
    this.signal?.removeEventListener("abort", this);
    this.resolve(undefined);
  }

  /** Its channel closed under it (or its owner failed it). */
  failed(error: unknown): void {
    if (this.sel !== null) return this.sel.fail(error);
    this.signal?.removeEventListener("abort", this);
    this.reject(error);
  }
}
