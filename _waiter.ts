// Copyright 2026 the chanpool authors. MIT license.
// One parked operation in a channel's wait queue, and the protocol by which
// the channel settles it. A channel calls exactly one of `received`, `sent`,
// `failed` or `receiverClosed` on a waiter it has just taken out of its
// queue. Channel's own send/receive/select waiters (PromiseWaiter) settle a
// promise; a pool's borrower subclasses ChannelWaiter itself (no promise or
// node of the channel's own: a hand-over costs one promise hop).

import type { LinkedQueue } from "./_queue.ts";

/** A parked `select` that its cases report to. */
export interface SelectSink {
  finish(index: number, value: unknown, ok: boolean): void;
  fail(error: unknown): void;
}

function noop(): void {}

/** A parked operation: an intrusive queue node the channel settles. */
export abstract class ChannelWaiter {
  prev: ChannelWaiter | null = null;
  next: ChannelWaiter | null = null;
  queue: LinkedQueue<ChannelWaiter> | null = null;
  /** The value a parked sender offers (receivers leave it undefined). */
  value: unknown = undefined;

  /** Leaves its queue if still in one; whether it was. */
  leave(): boolean {
    const queue = this.queue;
    if (queue === null) return false;
    queue.remove(this);
    return true;
  }

  /** A receiver got `value` (`ok: false`: its channel closed, for select). */
  abstract received(value: unknown, ok: boolean): void;

  /** Its channel closed under it (or its owner failed it). */
  abstract failed(error: unknown): void;

  /** A sender's value was taken. */
  sent(): void {
    this.received(undefined, true);
  }

  /** Its channel closed while it waited to receive. */
  receiverClosed(error: unknown): void {
    this.failed(error);
  }
}

/** A parked send, receive or select case of the channel's own. */
export class PromiseWaiter extends ChannelWaiter {
  resolve: (value: unknown) => void = noop;
  reject: (reason: unknown) => void = noop;
  signal: AbortSignal | undefined = undefined;
  /** The select this is a case of (its `index`), or `null`. */
  readonly sel: SelectSink | null;
  readonly index: number;

  constructor(value: unknown, sel: SelectSink | null, index: number) {
    super();
    this.value = value;
    this.sel = sel;
    this.index = index;
  }

  /** The signal aborted while parked: leave the queue, reject. */
  handleEvent(): void {
    this.leave();
    this.reject(this.signal!.reason);
  }

  received(value: unknown, ok: boolean): void {
    if (this.sel !== null) return this.sel.finish(this.index, value, ok);
    this.signal?.removeEventListener("abort", this);
    this.resolve(value);
  }

  override sent(): void {
    if (this.sel !== null) return this.sel.finish(this.index, undefined, true);
    this.signal?.removeEventListener("abort", this);
    this.resolve(undefined);
  }

  failed(error: unknown): void {
    if (this.sel !== null) return this.sel.fail(error);
    this.signal?.removeEventListener("abort", this);
    this.reject(error);
  }

  override receiverClosed(error: unknown): void {
    if (this.sel !== null) this.sel.finish(this.index, undefined, false);
    else this.failed(error);
  }
}
