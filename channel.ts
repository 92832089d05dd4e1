// Copyright 2026 the chanpool authors. MIT license.
/**
 * A Go-like buffered {@linkcode Channel} with {@linkcode select}: a superset
 * of the Deno standard library's `Channel` (`@std/async`) that adds Go's
 * `select`, `trySelect` and a LIFO buffer order for pools.
 *
 * @example Usage
 * ```ts
 * import { Channel, select } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const jobs = new Channel<number>({ capacity: 2 });
 * const quit = new Channel<void>();
 * await jobs.send(1);
 * const r = await select([{ receive: jobs }, { receive: quit }]);
 * assert.deepEqual(r, { index: 0, value: 1, ok: true });
 * jobs.close();
 * quit.close();
 * ```
 *
 * @module
 */

import { LinkedQueue } from "./_queue.ts";
import { FULL, IDLED, internals, LENT, NONE } from "./_internal.ts";
import { type ChannelWaiter as Waiter, PromiseWaiter } from "./_waiter.ts";
import { describe } from "./_util.ts";

/**
 * Error raised when a channel operation meets a closed channel. When it comes
 * from a send, {@linkcode ChannelClosedError.value} carries the value that was
 * not delivered, so the caller can recover it.
 *
 * @example Usage
 * ```ts
 * import { Channel, ChannelClosedError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const ch = new Channel<number>();
 * ch.close();
 * await assert.rejects(ch.send(42), (e) => {
 *   assert.ok(e instanceof ChannelClosedError);
 *   assert.equal(e.value, 42);
 *   return true;
 * });
 * ```
 */
export class ChannelClosedError extends Error {
  /**
   * The value that was not sent; present only when the error comes from a
   * send (`"value" in error` tells the two apart, as `undefined` may be a
   * real value).
   *
   * @example Usage
   * ```ts
   * import { ChannelClosedError } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new ChannelClosedError("Closed", 7).value, 7);
   * assert.ok(!("value" in new ChannelClosedError("Closed")));
   * ```
   */
  declare readonly value?: unknown;

  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param rest The unsent value, if any, then error options (`cause`: the
   *   reason the channel was closed with).
   */
  constructor(
    message = "Channel is closed",
    ...rest: [value: unknown, options?: ErrorOptions | undefined] | []
  ) {
    super(message, rest[1]);
    this.name = "ChannelClosedError";
    if (rest.length > 0) {
      Object.defineProperty(this, "value", {
        value: rest[0],
        enumerable: true,
        writable: false,
        configurable: false,
      });
    }
  }
}

/** The order in which a channel's buffer hands out values. */
export type ChannelOrder = "fifo" | "lifo";

/** Options for the {@linkcode Channel} constructor. */
export interface ChannelOptions {
  /**
   * How many values the buffer holds before {@linkcode Channel.send} waits: a
   * non-negative integer, or `Infinity` for an unbounded buffer. `0` makes an
   * unbuffered (rendezvous) channel: every send waits for a receiver.
   *
   * @default {0}
   */
  capacity?: number | undefined;
  /**
   * `"fifo"` hands out the oldest buffered value first (a queue); `"lifo"`
   * the newest (a stack: what pools want, so that the most recently used
   * resource is reused and a surplus ages out). Waiting senders and receivers
   * are served first come, first served in both orders.
   *
   * @default {"fifo"}
   */
  order?: ChannelOrder | undefined;
}

/** Options for {@linkcode Channel.send}. */
export interface ChannelSendOptions {
  /**
   * Cancels the send while it waits; it then rejects with `signal.reason` and
   * the value is never delivered. Ignored when the send completes at once.
   */
  signal?: AbortSignal | undefined;
}

/** Options for {@linkcode Channel.receive}. */
export interface ChannelReceiveOptions {
  /**
   * Cancels the receive while it waits; it then rejects with `signal.reason`
   * and consumes nothing. Ignored when a value is ready at once.
   */
  signal?: AbortSignal | undefined;
}

/**
 * Result of {@linkcode Channel.tryReceive}: `"ok"` with the value, `"empty"`
 * (open, nothing ready) or `"closed"` (closed and drained).
 *
 * @typeParam T The channel's value type.
 */
export type ChannelReceiveResult<T> =
  | { readonly state: "ok"; readonly value: T }
  | { readonly state: "empty" }
  | { readonly state: "closed" };

const RESOLVED: Promise<void> = Promise.resolve();
const EMPTY: { readonly state: "empty" } = Object.freeze({ state: "empty" });
const CLOSED: { readonly state: "closed" } = Object.freeze({
  state: "closed",
});
const SEND_CLOSED = "Cannot send: the channel is closed";

function noop(): void {}

/**
 * A parked `select`: one {@linkcode Waiter} per case sits in its channel's
 * queue; the first to be taken finishes the select and unlinks the others,
 * synchronously, so exactly one case commits.
 */
class SelectWaiter {
  readonly nodes: Waiter[] = [];
  resolve: (value: SelectResult<readonly SelectCase[]>) => void = noop;
  reject: (reason: unknown) => void = noop;
  signal: AbortSignal | undefined = undefined;

  #unlink(): void {
    for (const node of this.nodes) node.queue?.remove(node);
    this.signal?.removeEventListener("abort", this);
  }

  finish(index: number, value: unknown, ok: boolean): void {
    this.#unlink();
    this.resolve({ index, value, ok } as SelectResult<readonly SelectCase[]>);
  }

  fail(error: unknown): void {
    this.#unlink();
    this.reject(error);
  }

  handleEvent(): void {
    this.#unlink();
    this.reject(this.signal!.reason);
  }
}

/**
 * A TypeError if `options` (given) is not an object or its `signal` is
 * neither undefined nor an AbortSignal: checked on every call, also when
 * the call completes at once.
 */
function badOptions(options: unknown, where: string): TypeError | undefined {
  if (typeof options !== "object" || options === null) {
    return new TypeError(
      `Cannot ${where}: options must be an object, received ${
        describe(options)
      }`,
    );
  }
  return badSignal((options as { signal?: unknown }).signal, where);
}

/** A TypeError if `signal` is neither undefined nor an AbortSignal. */
function badSignal(signal: unknown, where: string): TypeError | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return undefined;
  return new TypeError(
    `Cannot ${where}: signal must be an AbortSignal, received ${
      describe(signal)
    }`,
  );
}

// Entry points for select(), bound to the private state in a static block.
let recvReady: (ch: Channel<unknown>) => boolean;
let sendReady: (ch: Channel<unknown>) => boolean;
let recvCommit: (ch: Channel<unknown>, index: number) => SelectResultAny;
let sendCommit: (
  ch: Channel<unknown>,
  index: number,
  value: unknown,
) => SelectResultAny;
let park: (ch: Channel<unknown>, w: Waiter, send: boolean) => void;

type SelectResultAny = SelectResult<readonly SelectCase[]>;

/**
 * A Go-like channel: a FIFO (or LIFO) buffer of `capacity` values with
 * first-come, first-served queues of waiting senders and receivers.
 *
 * - {@linkcode Channel.send} completes at once while the buffer has room or
 *   a receiver waits, and otherwise waits; {@linkcode Channel.receive}
 *   completes at once while a value is buffered or a sender waits.
 * - {@linkcode Channel.close} is idempotent. Buffered values stay receivable;
 *   then receivers reject with the close reason (or a
 *   {@linkcode ChannelClosedError} when none was given). Waiting and later
 *   senders reject with a {@linkcode ChannelClosedError} carrying the value.
 * - An aborted operation is taken out of its queue at once: an aborted send
 *   never delivers, an aborted receive never consumes.
 * - `undefined` and `null` are ordinary values.
 *
 * The surface is that of `@std/async`'s `Channel`, so code moves between the
 * two unchanged; {@linkcode select}, {@linkcode trySelect} and the `order`
 * option are additions.
 *
 * @example Usage
 * ```ts
 * import { Channel } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using ch = new Channel<number>({ capacity: 4 });
 * await ch.send(1);
 * await ch.send(2);
 * ch.close();
 * assert.deepEqual(await Array.fromAsync(ch), [1, 2]);
 * ```
 *
 * @example A stack for pools
 * ```ts
 * import { Channel } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * using idle = new Channel<string>({ capacity: 8, order: "lifo" });
 * idle.trySend("a");
 * idle.trySend("b");
 * assert.deepEqual(idle.tryReceive(), { state: "ok", value: "b" });
 * ```
 *
 * @typeParam T The type of the values the channel carries.
 */
export class Channel<T>
  implements AsyncIterable<T>, Disposable, AsyncDisposable {
  // Ring buffer: #count values from #head, #mask = #buf.length - 1 (a power of
  // two, grown on demand up to #capacity).
  #buf: (T | undefined)[];
  #mask: number;
  #head = 0;
  #count = 0;
  readonly #capacity: number;
  readonly #lifo: boolean;
  // A receiver waits only while the buffer is empty and no sender waits; a
  // sender waits only while the buffer is full and no receiver waits. (The
  // one exception: a parked select may wait on both sides of one channel.)
  readonly #senders: LinkedQueue<Waiter> = new LinkedQueue();
  readonly #receivers: LinkedQueue<Waiter> = new LinkedQueue();
  #closed = false;
  #hasReason = false;
  #reason: unknown = undefined;
  #closedError: ChannelClosedError | undefined = undefined;

  /**
   * Creates an unbuffered channel: a send completes only as a receiver
   * takes its value.
   */
  constructor();
  /**
   * Creates a channel.
   *
   * @param options The buffer's capacity (default `0`, unbuffered) and order
   *   (default `"fifo"`).
   * @throws {TypeError} If `options` is not an object, or `capacity` is not a
   *   number.
   * @throws {RangeError} If `capacity` is negative, fractional or NaN, or
   *   `order` is neither `"fifo"` nor `"lifo"`.
   */
  constructor(options: ChannelOptions);
  constructor(options: ChannelOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `Cannot create channel: options must be an object, received ${
          describe(options)
        }`,
      );
    }
    const { capacity = 0, order = "fifo" } = options;
    if (typeof capacity !== "number") {
      throw new TypeError(
        `Cannot create channel: capacity must be a number, received ${
          describe(capacity)
        }`,
      );
    }
    if (
      !(capacity >= 0) ||
      (!Number.isInteger(capacity) && capacity !== Infinity)
    ) {
      throw new RangeError(
        `Cannot create channel: capacity must be a non-negative integer or Infinity, received ${capacity}`,
      );
    }
    if (order !== "fifo" && order !== "lifo") {
      throw new RangeError(
        `Cannot create channel: order must be "fifo" or "lifo", received ${
          describe(order)
        }`,
      );
    }
    this.#capacity = capacity;
    this.#lifo = order === "lifo";
    let size = capacity === 0 ? 0 : 1;
    while (size < capacity && size < 1024) size *= 2;
    this.#buf = new Array(size);
    this.#mask = size - 1;
  }

  /**
   * Sends a value. Completes at once when a receiver is waiting or the buffer
   * has room; otherwise waits, first come first served, until one of those
   * holds.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const ch = new Channel<number>({ capacity: 1 });
   * await ch.send(1);
   * const second = ch.send(2, { signal: AbortSignal.timeout(1_000) }); // waits: full
   * assert.equal(await ch.receive(), 1);
   * await second;
   * assert.equal(ch.size, 1);
   * ```
   *
   * @param value The value to send; any value, `undefined` included.
   * @param options An `AbortSignal` that cancels the wait.
   * @returns A promise that resolves once the value is buffered or received.
   * @throws {TypeError} If `options` is not an object or `signal` not an
   *   `AbortSignal` (nothing is sent, even when the send could complete).
   * @throws {ChannelClosedError} If the channel is or becomes closed before
   *   the value is taken; `error.value` is the value.
   */
  send(value: T, options?: ChannelSendOptions): Promise<void> {
    if (options !== undefined) {
      const bad = badOptions(options, "send");
      if (bad !== undefined) return Promise.reject(bad);
    }
    if (this.#closed) return Promise.reject(this.#sendError(value));
    const r = this.#receivers.shift();
    if (r !== null) {
      r.received(value, true);
      return RESOLVED;
    }
    if (this.#count < this.#capacity) {
      this.#put(value);
      return RESOLVED;
    }
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const w = new PromiseWaiter(value, null, 0);
    const p = new Promise<void>((resolve, reject) => {
      w.resolve = resolve as (value: unknown) => void;
      w.reject = reject;
    });
    this.#senders.push(w);
    if (signal !== undefined) {
      w.signal = signal;
      signal.addEventListener("abort", w, { once: true });
    }
    return p;
  }

  /**
   * Receives a value. Completes at once when a value is buffered or a sender
   * is waiting; otherwise waits, first come first served.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const ch = new Channel<string>();
   * const got = ch.receive();
   * await ch.send("hi"); // unbuffered: completes as the receiver takes it
   * assert.equal(await got, "hi");
   * ```
   *
   * @param options An `AbortSignal` that cancels the wait.
   * @returns A promise of the next value.
   * @throws {TypeError} If `options` is not an object or `signal` not an
   *   `AbortSignal` (nothing is received, even when a value is ready).
   * @throws {ChannelClosedError} If the channel is closed and drained (or the
   *   reason given to {@linkcode Channel.close}, if one was).
   */
  receive(options?: ChannelReceiveOptions): Promise<T> {
    if (options !== undefined) {
      const bad = badOptions(options, "receive");
      if (bad !== undefined) return Promise.reject(bad);
    }
    if (this.#count > 0) return Promise.resolve(this.#take());
    const s = this.#senders.shift();
    if (s !== null) {
      const value = s.value as T;
      s.sent();
      return Promise.resolve(value);
    }
    if (this.#closed) return Promise.reject(this.#receiveError());
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const w = new PromiseWaiter(undefined, null, 0);
    const p = new Promise<T>((resolve, reject) => {
      w.resolve = resolve as (value: unknown) => void;
      w.reject = reject;
    });
    this.#receivers.push(w);
    if (signal !== undefined) {
      w.signal = signal;
      signal.addEventListener("abort", w, { once: true });
    }
    return p;
  }

  /**
   * Sends a value only if that can be done without waiting: to a waiting
   * receiver, or into the buffer. Never throws.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const ch = new Channel<number>({ capacity: 1 });
   * assert.equal(ch.trySend(1), true);
   * assert.equal(ch.trySend(2), false); // full
   * ```
   *
   * @param value The value to send.
   * @returns `true` if the value was delivered or buffered; `false` if the
   *   channel is full, unbuffered with no receiver waiting, or closed.
   */
  trySend(value: T): boolean {
    if (this.#closed) return false;
    const r = this.#receivers.shift();
    if (r !== null) {
      r.received(value, true);
      return true;
    }
    if (this.#count < this.#capacity) {
      this.#put(value);
      return true;
    }
    return false;
  }

  /**
   * Receives a value only if one is ready without waiting. Never throws.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const ch = new Channel<number | undefined>({ capacity: 1 });
   * ch.trySend(undefined);
   * assert.deepEqual(ch.tryReceive(), { state: "ok", value: undefined });
   * assert.deepEqual(ch.tryReceive(), { state: "empty" });
   * ch.close();
   * assert.deepEqual(ch.tryReceive(), { state: "closed" });
   * ```
   *
   * @returns `{ state: "ok", value }`, or `{ state: "empty" }` while open with
   *   nothing ready, or `{ state: "closed" }` once closed and drained.
   */
  tryReceive(): ChannelReceiveResult<T> {
    if (this.#count > 0) return { state: "ok", value: this.#take() };
    const s = this.#senders.shift();
    if (s !== null) {
      const value = s.value as T;
      s.sent();
      return { state: "ok", value };
    }
    return this.#closed ? CLOSED : EMPTY;
  }

  /**
   * Closes the channel: later sends reject, receivers drain the buffer and
   * then reject with a {@linkcode ChannelClosedError}. Idempotent.
   */
  close(): void;
  /**
   * Closes the channel; later calls do nothing. Waiting senders reject with a
   * {@linkcode ChannelClosedError} carrying their value (its `cause` is the
   * reason, if given). Buffered values stay receivable; after them, waiting
   * and later receivers reject with `reason`, or with a
   * {@linkcode ChannelClosedError} when no reason was given.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const ch = new Channel<number>({ capacity: 2 });
   * await ch.send(1);
   * ch.close(new Error("producer failed"));
   * assert.equal(await ch.receive(), 1);
   * await assert.rejects(ch.receive(), { message: "producer failed" });
   * ```
   *
   * @param reason The reason later receivers reject with (a reason of
   *   `undefined` is a reason).
   */
  close(reason: unknown): void;
  close(...args: [reason?: unknown]): void {
    if (this.#closed) return;
    this.#closed = true;
    if (args.length > 0) {
      this.#hasReason = true;
      this.#reason = args[0];
    }
    // Receivers first, as Go's closechan: a select parked on both sides of
    // this channel wakes on its receive case (ok: false).
    let w: Waiter | null;
    while ((w = this.#receivers.shift()) !== null) {
      w.receiverClosed(this.#receiveError());
    }
    while ((w = this.#senders.shift()) !== null) {
      w.failed(this.#sendError(w.value));
    }
  }

  /**
   * Whether {@linkcode Channel.close} was called.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const ch = new Channel();
   * ch.close();
   * assert.equal(ch.closed, true);
   * ```
   *
   * @returns `true` once closed.
   */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * How many values are buffered. Waiting senders are not counted.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const ch = new Channel<number>({ capacity: 4 });
   * ch.trySend(1);
   * assert.equal(ch.size, 1);
   * ```
   *
   * @returns The number of buffered values.
   */
  get size(): number {
    return this.#count;
  }

  /**
   * The buffer's capacity: `0` for an unbuffered channel, `Infinity` for an
   * unbounded one.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new Channel({ capacity: 8 }).capacity, 8);
   * ```
   *
   * @returns The capacity given to the constructor.
   */
  get capacity(): number {
    return this.#capacity;
  }

  /**
   * Receives until the channel is closed and drained. A reason given to
   * {@linkcode Channel.close} is thrown from the loop; a plain close ends it.
   * Breaking out of the loop leaves the channel open.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const ch = new Channel<number>({ capacity: 3 });
   * for (const n of [1, 2, 3]) ch.trySend(n);
   * ch.close();
   * const seen: number[] = [];
   * for await (const n of ch) seen.push(n);
   * assert.deepEqual(seen, [1, 2, 3]);
   * ```
   *
   * @returns An async iterator over received values.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    while (true) {
      try {
        yield await this.receive();
      } catch (error) {
        if (error === this.#closedError && !this.#hasReason) return;
        throw error;
      }
    }
  }

  /**
   * A `ReadableStream` of the values received from this channel. It closes
   * once the channel is closed and drained, and errors with the close reason
   * if one was given. Each call makes an independent consumer that competes
   * with other receivers. Cancelling the stream closes the channel (with the
   * cancel reason, if any).
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const ch = new Channel<string>({ capacity: 2 });
   * ch.trySend("a");
   * ch.trySend("b");
   * ch.close();
   * assert.deepEqual(await Array.fromAsync(ch.toReadableStream()), ["a", "b"]);
   * ```
   *
   * @returns A stream that pulls from the channel.
   */
  toReadableStream(): ReadableStream<T> {
    const cancelled = new AbortController();
    return new ReadableStream<T>({
      pull: async (controller) => {
        try {
          controller.enqueue(
            await this.receive({ signal: cancelled.signal }),
          );
        } catch (error) {
          if (cancelled.signal.aborted) return;
          if (error === this.#closedError && !this.#hasReason) {
            controller.close();
          } else controller.error(error);
        }
      },
      cancel: (reason) => {
        cancelled.abort();
        if (reason === undefined) this.close();
        else this.close(reason);
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Closes the channel, for `using`.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * let ch: Channel<number>;
   * {
   *   using inner = new Channel<number>();
   *   ch = inner;
   * }
   * assert.equal(ch.closed, true);
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Closes the channel, for `await using`.
   *
   * @example Usage
   * ```ts
   * import { Channel } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const ch = new Channel<number>();
   * await ch[Symbol.asyncDispose]();
   * assert.equal(ch.closed, true);
   * ```
   *
   * @returns A resolved promise.
   */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return RESOLVED;
  }

  #put(value: T): void {
    if (this.#count === this.#buf.length) this.#grow();
    this.#buf[(this.#head + this.#count) & this.#mask] = value;
    this.#count++;
  }

  /** Takes one buffered value (oldest, or newest when LIFO); a waiting sender's value refills the slot. */
  #take(): T {
    let value: T;
    if (this.#lifo) {
      const i = (this.#head + this.#count - 1) & this.#mask;
      value = this.#buf[i] as T;
      this.#buf[i] = undefined;
    } else {
      value = this.#buf[this.#head] as T;
      this.#buf[this.#head] = undefined;
      this.#head = (this.#head + 1) & this.#mask;
    }
    this.#count--;
    const s = this.#senders.shift();
    if (s !== null) {
      this.#put(s.value as T);
      s.sent();
    }
    return value;
  }

  #grow(): void {
    const old = this.#buf;
    const size = old.length === 0 ? 1 : old.length * 2;
    const buf: (T | undefined)[] = new Array(size);
    for (let i = 0; i < this.#count; i++) {
      buf[i] = old[(this.#head + i) & this.#mask];
    }
    this.#buf = buf;
    this.#mask = size - 1;
    this.#head = 0;
  }

  #sendError(value: unknown): ChannelClosedError {
    return new ChannelClosedError(
      SEND_CLOSED,
      value,
      this.#hasReason ? { cause: this.#reason } : undefined,
    );
  }

  #receiveError(): unknown {
    if (this.#hasReason) return this.#reason;
    return this.#closedError ??= new ChannelClosedError(
      "Cannot receive: the channel is closed and drained",
    );
  }

  static {
    internals.park = (ch: Channel<unknown>, node: Waiter) => {
      ch.#receivers.push(node);
    };
    internals.poll = (ch: Channel<unknown>) => {
      if (ch.#count > 0) return ch.#take();
      const s = ch.#senders.shift();
      if (s === null) return NONE;
      const value = s.value;
      s.sent();
      return value;
    };
    internals.firstReceiver = (ch: Channel<unknown>) => ch.#receivers.head;
    internals.offer = (ch: Channel<unknown>, value: unknown) => {
      if (ch.#closed) return FULL;
      const r = ch.#receivers.shift();
      if (r !== null) {
        r.received(value, true);
        return LENT;
      }
      if (ch.#count === ch.#capacity) return FULL;
      ch.#put(value);
      return IDLED;
    };
    internals.failReceiver = (ch: Channel<unknown>, error: unknown) => {
      const r = ch.#receivers.shift();
      if (r === null) return false;
      r.failed(error);
      return true;
    };
    recvReady = (ch) =>
      ch.#count > 0 || ch.#senders.head !== null || ch.#closed;
    sendReady = (ch) =>
      ch.#closed || ch.#receivers.head !== null || ch.#count < ch.#capacity;
    recvCommit = (ch, index) => {
      if (ch.#count > 0) return { index, value: ch.#take(), ok: true };
      const s = ch.#senders.shift();
      if (s !== null) {
        const value = s.value;
        s.sent();
        return { index, value, ok: true };
      }
      return { index, value: undefined, ok: false }; // closed and drained
    };
    sendCommit = (ch, index, value) => {
      if (ch.#closed) throw ch.#sendError(value);
      const r = ch.#receivers.shift();
      if (r !== null) r.received(value, true);
      else ch.#put(value);
      return { index, value: undefined, ok: true } as SelectResultAny;
    };
    park = (ch, w, send) => (send ? ch.#senders : ch.#receivers).push(w);
    internals.waiting = (ch: Channel<unknown>) => ({
      senders: ch.#senders.length,
      receivers: ch.#receivers.length,
    });
  }
}

/**
 * A `select` case that receives from a channel; Go's `case v, ok := <-ch`.
 *
 * @typeParam T The channel's value type.
 */
export interface ReceiveCase<T> {
  /** The channel to receive from. */
  readonly receive: Channel<T>;
}

/**
 * A `select` case that sends `value` to a channel; Go's `case ch <- v`.
 *
 * @typeParam T The channel's value type.
 */
export interface SendCase<T> {
  /** The channel to send to. */
  readonly send: Channel<T>;
  /** The value to send. */
  readonly value: T;
}

/**
 * One case of {@linkcode select}: a receive, a send, or `null`/`undefined` for
 * a case that is never ready (Go's nil channel), handy for switching a case
 * off without reshaping the array.
 *
 * @typeParam T The channel's value type.
 */
// deno-lint-ignore no-explicit-any
export type SelectCase<T = any> =
  | ReceiveCase<T>
  | SendCase<T>
  | null
  | undefined;

/**
 * The outcome of one case of a select: `index` is its position in the cases.
 * A receive case has `ok: true` and the value, or `ok: false` and `undefined`
 * when its channel is closed and drained; a send case has `ok: true`.
 *
 * @typeParam C The case.
 * @typeParam I Its index.
 */
export type CaseResult<C, I extends number> = C extends ReceiveCase<infer T> ?
    | { readonly index: I; readonly value: T; readonly ok: true }
    | { readonly index: I; readonly value: undefined; readonly ok: false }
  : C extends SendCase<unknown>
    ? { readonly index: I; readonly value: undefined; readonly ok: true }
  : never;

/**
 * The result of {@linkcode select} over `cases`: a union with one member per
 * case, so that checking `index` narrows `value`.
 *
 * @typeParam C The tuple of cases.
 */
export type SelectResult<C extends readonly SelectCase[]> = number extends
  C["length"] ? CaseResult<C[number], number>
  : {
    [K in keyof C]: K extends `${infer I extends number}` ? CaseResult<C[K], I>
      : never;
  }[number];

/** The result of a select whose default clause was taken. */
export interface SelectDefault {
  /** Always `-1`. */
  readonly index: -1;
  /** Always `undefined`. */
  readonly value: undefined;
  /** Always `false`. */
  readonly ok: false;
}

/** Options for {@linkcode select}. */
export interface SelectOptions {
  /**
   * Cancels the select while it waits; it then rejects with `signal.reason`
   * and no case commits. Ignored when a case is ready at once.
   */
  signal?: AbortSignal | undefined;
  /**
   * Go's `default` clause: when no case is ready, resolve at once with
   * `{ index: -1, value: undefined, ok: false }` instead of waiting.
   *
   * @default {false}
   */
  default?: boolean | undefined;
}

const DEFAULT: SelectDefault = Object.freeze({
  index: -1,
  value: undefined,
  ok: false,
});

/** Checks the cases; returns how many are ready now. */
function countReady(cases: readonly SelectCase[], where: string): number {
  if (!Array.isArray(cases)) {
    throw new TypeError(
      `Cannot ${where}: cases must be an array, received ${describe(cases)}`,
    );
  }
  let ready = 0;
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    if (c === null || c === undefined) continue;
    if (typeof c === "object") {
      const recv = (c as ReceiveCase<unknown>).receive;
      const send = (c as SendCase<unknown>).send;
      if (recv instanceof Channel && send === undefined) {
        if (recvReady(recv)) ready++;
        continue;
      }
      if (send instanceof Channel && recv === undefined && "value" in c) {
        if (sendReady(send)) ready++;
        continue;
      }
    }
    throw new TypeError(
      `Cannot ${where}: cases[${i}] must be { receive: Channel }, { send: Channel, value }, null or undefined, received ${
        describe(c)
      }`,
    );
  }
  return ready;
}

/** Commits the `k`-th ready case (cases already checked). */
function commitReady(
  cases: readonly SelectCase[],
  k: number,
): SelectResultAny {
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    if (c === null || c === undefined) continue;
    const recv = (c as ReceiveCase<unknown>).receive;
    if (recv !== undefined) {
      if (recvReady(recv) && k-- === 0) return recvCommit(recv, i);
    } else {
      const { send, value } = c as SendCase<unknown>;
      if (sendReady(send) && k-- === 0) return sendCommit(send, i, value);
    }
  }
  throw new Error("unreachable: a ready case vanished");
}

/**
 * Go's `select`: waits until one of the cases can proceed, commits exactly
 * that one, and resolves with its index and outcome.
 *
 * - When several cases are ready, one is chosen uniformly at random.
 * - Exactly one case commits: a losing receive consumes nothing, a losing or
 *   aborted send delivers nothing.
 * - A receive case on a closed, drained channel is ready with `ok: false`.
 * - A send case on a closed channel is ready too, and rejects the select with
 *   {@linkcode ChannelClosedError} if it is chosen.
 * - `null`/`undefined` cases are never ready. With no case that can ever be
 *   ready and no signal, the select waits forever, as in Go.
 * - While it waits, the select queues on every channel, first come first
 *   served with other senders, receivers and selects.
 *
 * @example A worker's loop
 * ```ts
 * import { Channel, select } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const jobs = new Channel<number>({ capacity: 8 });
 * const quit = new Channel<void>();
 * for (const n of [1, 2, 3]) jobs.trySend(n);
 * quit.close();
 * let sum = 0;
 * while (true) {
 *   const r = await select([{ receive: jobs }, { receive: quit }]);
 *   if (r.index === 1 && jobs.size === 0) break; // quit, and nothing left
 *   if (r.index === 0 && r.ok) sum += r.value;
 * }
 * assert.equal(sum, 6);
 * ```
 *
 * @example Go's default clause
 * ```ts
 * import { Channel, select } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const ch = new Channel<number>();
 * const r = await select([{ receive: ch }], { default: true });
 * assert.equal(r.index, -1);
 * ```
 *
 * @typeParam C The tuple of cases.
 * @param cases Receive cases, send cases and `null`s.
 * @param options An `AbortSignal` that cancels the wait, and `default`.
 * @returns The chosen case's `{ index, value, ok }`; `index` is `-1` when
 *   `default` is set and no case was ready.
 * @throws {TypeError} If `cases` is not an array of cases, or an option
 *   has the wrong type (no case commits).
 * @throws {ChannelClosedError} If a send case on a closed channel is chosen.
 */
export function select<const C extends readonly SelectCase[]>(
  cases: C,
  options: SelectOptions & { default: true },
): Promise<SelectResult<C> | SelectDefault>;
/**
 * Go's `select` without a default clause: waits until one case can proceed.
 *
 * @example Usage
 * ```ts
 * import { Channel, select } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const a = new Channel<string>({ capacity: 1 });
 * const b = new Channel<number>({ capacity: 1 });
 * setTimeout(() => b.trySend(7), 1);
 * const r = await select([{ receive: a }, { receive: b }]);
 * assert.deepEqual(r, { index: 1, value: 7, ok: true });
 * ```
 *
 * @typeParam C The tuple of cases.
 * @param cases Receive cases, send cases and `null`s.
 * @param options An `AbortSignal` that cancels the wait.
 * @returns The chosen case's `{ index, value, ok }`.
 * @throws {TypeError} If `cases` is not an array of cases, or an option
 *   has the wrong type (no case commits).
 * @throws {ChannelClosedError} If a send case on a closed channel is chosen.
 */
export function select<const C extends readonly SelectCase[]>(
  cases: C,
  options?: SelectOptions & { default?: false | undefined },
): Promise<SelectResult<C>>;
/**
 * Go's `select`, with `default` decided at run time.
 *
 * @example Usage
 * ```ts
 * import { Channel, select } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const ch = new Channel<number>({ capacity: 1 });
 * ch.trySend(1);
 * const poll: boolean = true;
 * const r = await select([{ receive: ch }], { default: poll });
 * assert.equal(r.index, 0);
 * ```
 *
 * @typeParam C The tuple of cases.
 * @param cases Receive cases, send cases and `null`s.
 * @param options An `AbortSignal` that cancels the wait, and `default`.
 * @returns The chosen case's `{ index, value, ok }`, or the default's.
 * @throws {TypeError} If `cases` is not an array of cases, or an option
 *   has the wrong type (no case commits).
 * @throws {ChannelClosedError} If a send case on a closed channel is chosen.
 */
export function select<const C extends readonly SelectCase[]>(
  cases: C,
  options?: SelectOptions,
): Promise<SelectResult<C> | SelectDefault>;
export function select(
  cases: readonly SelectCase[],
  options?: SelectOptions,
): Promise<SelectResultAny | SelectDefault> {
  let ready: number;
  try {
    ready = countReady(cases, "select");
    if (options !== undefined) {
      const bad = badOptions(options, "select");
      if (bad !== undefined) throw bad;
      const dflt = options.default;
      if (dflt !== undefined && typeof dflt !== "boolean") {
        throw new TypeError(
          `Cannot select: default must be a boolean, received ${
            describe(dflt)
          }`,
        );
      }
    }
    if (ready > 0) {
      const k = ready === 1 ? 0 : Math.floor(Math.random() * ready);
      return Promise.resolve(commitReady(cases, k));
    }
  } catch (error) {
    return Promise.reject(error);
  }
  if (options?.default) return Promise.resolve(DEFAULT);
  const signal = options?.signal;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const sel = new SelectWaiter();
  const p = new Promise<SelectResultAny>((resolve, reject) => {
    sel.resolve = resolve;
    sel.reject = reject;
  });
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    if (c === null || c === undefined) continue;
    // countReady checked: exactly one of receive and send is a channel
    const recv = (c as ReceiveCase<unknown>).receive;
    if (recv !== undefined) {
      const w = new PromiseWaiter(undefined, sel, i);
      sel.nodes.push(w);
      park(recv, w, false);
    } else {
      const { send, value } = c as SendCase<unknown>;
      const w = new PromiseWaiter(value, sel, i);
      sel.nodes.push(w);
      park(send, w, true);
    }
  }
  if (signal !== undefined) {
    sel.signal = signal;
    signal.addEventListener("abort", sel, { once: true });
  }
  return p;
}

/**
 * {@linkcode select} that never waits: commits a ready case (chosen uniformly
 * at random) and returns its result, or returns `undefined` when none is
 * ready. Synchronous.
 *
 * @example Usage
 * ```ts
 * import { Channel, trySelect } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const ch = new Channel<number>({ capacity: 1 });
 * assert.equal(trySelect([{ receive: ch }]), undefined);
 * assert.deepEqual(trySelect([{ send: ch, value: 5 }]), {
 *   index: 0,
 *   value: undefined,
 *   ok: true,
 * });
 * assert.deepEqual(trySelect([{ receive: ch }]), { index: 0, value: 5, ok: true });
 * ```
 *
 * @typeParam C The tuple of cases.
 * @param cases Receive cases, send cases and `null`s.
 * @returns The chosen case's `{ index, value, ok }`, or `undefined`.
 * @throws {TypeError} If `cases` is not an array of cases.
 * @throws {ChannelClosedError} If a send case on a closed channel is chosen.
 */
export function trySelect<const C extends readonly SelectCase[]>(
  cases: C,
): SelectResult<C> | undefined {
  const ready = countReady(cases, "trySelect");
  if (ready === 0) return undefined;
  const k = ready === 1 ? 0 : Math.floor(Math.random() * ready);
  return commitReady(cases, k) as SelectResult<C>;
}
