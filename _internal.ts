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

/** A receiver parked by `internals.park`; its owner cancels it. */
export interface Parked {
  /**
   * Takes the receiver out of its queue and fails its sink with `reason`,
   * if it is still waiting.
   *
   * @returns Whether it was still waiting.
   */
  cancel(reason: unknown): boolean;
}

/** Views of and hooks into private state, bound when the modules load. */
export const internals: {
  waiting: (ch: Channel<unknown>) => Waiting;
  /**
   * Parks a receiver that settles through `sink`, synchronously, without a
   * promise or a signal of its own (a pool's borrowers: cheaper under
   * contention). The caller has checked that nothing is ready.
   */
  park: (ch: Channel<unknown>, sink: Sink) => Parked;
} = {
  waiting: () => {
    throw new Error("channel.ts is not loaded");
  },
  park: () => {
    throw new Error("channel.ts is not loaded");
  },
};
