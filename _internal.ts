// Copyright 2026 the chanpool authors. MIT license.
// Hooks into private state, for tests and sibling modules only; never
// re-exported from mod.ts. Filled in by the classes' static blocks.

import type { Channel } from "./channel.ts";

/** How many operations wait on a channel, by side. */
export interface Waiting {
  senders: number;
  receivers: number;
}

/**
 * Where a receiver parked with `internals.park` gets its outcome,
 * synchronously, from inside the sender's call (or the close).
 */
export interface Sink {
  /** A value was handed over. */
  deliver(value: unknown): void;
  /** The channel closed (or the owner cancelled): rejected with `reason`. */
  fail(reason: unknown): void;
}

/**
 * A receiver node that its owner parks and unparks itself, and which the
 * channel settles through `sink` (itself, usually): no promise, signal or
 * node of the channel's own.
 */
export interface ParkNode extends Sink {
  prev: unknown;
  next: unknown;
  queue: unknown;
  readonly sel: null;
  readonly sink: Sink;
}

/** A hook's stand-in until the module that binds it loads. */
function notLoaded(module: string): () => never {
  return () => {
    throw new Error(`${module} is not loaded`);
  };
}

/** Views of and hooks into private state, bound when the modules load. */
export const internals: {
  waiting: (ch: Channel<unknown>) => Waiting;
  /**
   * Parks a receiver that settles through `sink`, synchronously, without a
   * promise or a signal of its own (a pool's borrowers: cheaper under
   * contention). The caller has checked that nothing is ready.
   */
  park: (ch: Channel<unknown>, node: ParkNode) => void;
  /** Takes a parked node out of its queue; whether it was still parked. */
  unpark: (node: ParkNode) => boolean;
} = {
  waiting: notLoaded("channel.ts"),
  park: notLoaded("channel.ts"),
  unpark: notLoaded("channel.ts"),
};

/** Hooks into `Lease`, for `tcp.ts`; bound when pool.ts loads. */
export const poolHooks: {
  /**
   * Destroys a lease's resource, counting it in `stats.destroyed[key]`
   * rather than `stats.destroyed.destroyed`; `reason` goes to `close`.
   */
  destroyAs: (lease: object, key: string, reason: unknown) => void;
  /**
   * Releases a lease; `true` if the release lent the resource again at once
   * (to a waiting borrower), so it is not idle.
   */
  release: (lease: object) => boolean;
} = {
  destroyAs: notLoaded("pool.ts"),
  release: notLoaded("pool.ts"),
};
