// Copyright 2026 the chanpool authors. MIT license.
// One parked operation in a channel's wait queue, and the protocol by which
// the channel settles it. A channel calls exactly one of `received`, `sent`,
// `failed` or `receiverClosed` on a waiter it has just taken out of its
// queue. Channel's own send/receive/select waiters (PromiseWaiter) settle a
// promise; a pool's borrower implements ChannelWaiter itself (no promise or
// node of the channel's own: a hand-over costs one promise hop).

import type { LinkedQueue } from "./_queue.ts";

/** A parked `select` that its cases report to. */
export interface SelectSink {
  finish(index: number, value: unknown, ok: boolean): void;
  fail(error: unknown): void;
}

function noop(): void {}

/**
 * A parked operation: an intrusive queue node the channel settles. (An
 * interface, not a base class: a subclass constructor costs a pool's
 * borrower twice as much.)
 */
export interface ChannelWaiter {
  prev: ChannelWaiter | null;
  next: ChannelWaiter | null;
  queue: LinkedQueue<ChannelWaiter> | null;
  /** The value a parked sender offers (receivers leave it undefined). */
  value: unknown;
  /** A receiver got `value` (`ok: false`: its channel closed, for select). */
  received(value: unknown, ok: boolean): void;
  /** A sender's value was taken. */
  sent(): void;
  /** Its channel closed under it (or its owner failed it). */
  failed(error: unknown): void;
  /** Its channel closed while it waited to receive. */
  receiverClosed(error: unknown): void;
}

/** Takes `w` out of its queue if it is in one; whether it was. */
export function leave(w: ChannelWaiter): boolean {
  const queue = w.queue;
  if (queue === null) return false;
  queue.remove(w);
  return true;
}

/** A parked send, receive or select case of the channel's own. */
export class PromiseWaiter implements ChannelWaiter {
  prev: ChannelWaiter | null = null;
  next: ChannelWaiter | null = null;
  queue: LinkedQueue<ChannelWaiter> | null = null;
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

  /** The signal aborted while parked: leave the queue, reject. */
  handleEvent(): void {
    leave(this);
    this.reject(this.signal!.reason);
  }

  received(value: unknown, ok: boolean): void {
    if (this.sel !== null) return this.sel.finish(this.index, value, ok);
    this.signal?.removeEventListener("abort", this);
    this.resolve(value);
  }

  sent(): void {
    if (this.sel !== null) return this.sel.finish(this.index, undefined, true);
    this.signal?.removeEventListener("abort", this);
    this.resolve(undefined);
  }

  failed(error: unknown): void {
    if (this.sel !== null) return this.sel.fail(error);
    this.signal?.removeEventListener("abort", this);
    this.reject(error);
  }

  receiverClosed(error: unknown): void {
    if (this.sel !== null) this.sel.finish(this.index, undefined, false);
    else this.failed(error);
  }
}
