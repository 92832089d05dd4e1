// Copyright 2026 the chanpool authors. MIT license.
// Hooks into private state, for tests and sibling modules only; never
// re-exported from mod.ts. Filled in by the classes' static blocks.

import type { ChannelWaiter } from "./_waiter.ts";

/** How many operations wait on a channel, by side. */
export interface Waiting {
  senders: number;
  receivers: number;
}

/** A hook's stand-in until the module that binds it loads. */
function notLoaded(module: string): () => never {
  return () => {
    throw new Error(`${module} is not loaded`);
  };
}

/** Views of and hooks into private state, bound when the modules load. */
export const internals: {
  // Method syntax: the binding takes a Channel; callers pass the pool's.
  /** Waiting senders and receivers of a channel. */
  waiting(ch: object): Waiting;
  /**
   * Parks `node` in a channel's receiver queue; the channel settles it
   * through its `received`/`failed` methods, synchronously, inside the
   * sender's call (or the close). The caller has checked nothing is ready;
   * `node.leave()` unparks it.
   */
  park(ch: object, node: ChannelWaiter): void;
  /**
   * Fails the first parked receiver with `error` (a pool's dial error goes
   * to its first borrower, never into the channel); whether there was one.
   */
  failReceiver(ch: object, error: unknown): boolean;
  /**
   * `tryReceive` without a result object: the value, or {@linkcode NONE}
   * when nothing is ready (a pool's borrow takes this path every time).
   */
  poll(ch: object): unknown;
  /** The first parked receiver of a channel (walk on with `next`), or null. */
  firstReceiver(ch: object): ChannelWaiter | null;
  /**
   * `trySend` that says where the value went: to a parked receiver (LENT),
   * into the buffer (IDLED), or nowhere (FULL: full or closed).
   */
  offer(ch: object, value: unknown): Offered;
} = {
  waiting: notLoaded("channel.ts"),
  park: notLoaded("channel.ts"),
  failReceiver: notLoaded("channel.ts"),
  poll: notLoaded("channel.ts"),
  firstReceiver: notLoaded("channel.ts"),
  offer: notLoaded("channel.ts"),
};

/** Where {@linkcode internals.offer} put a value. */
export const LENT = 0;
export const IDLED = 1;
export const FULL = 2;
export type Offered = typeof LENT | typeof IDLED | typeof FULL;

/** What {@linkcode internals.poll} returns when nothing is ready. */
export const NONE: unique symbol = Symbol("none");

/**
 * A capacity shared by several pools (a TcpAgent's `maxTotal`): a pool asks
 * it for a place before it dials a counted resource and gives the place back
 * when that resource is gone. Passed to a Pool in its options under the
 * symbol {@linkcode GATE} (not public API).
 */
export interface Gate {
  /**
   * A place for one more resource of `pool`, or `false`: then `pool` is
   * woken ({@linkcode poolHooks.wake}) when one may be free.
   */
  take(pool: object): boolean;
  /** A resource of `pool` is gone: its place is free. */
  give(pool: object): void;
  /** `pool` put a resource in its idle set (it may be given up for another). */
  idled(pool: object): void;
  /**
   * Another pool waits for a place: a resource `pool` keeps busy without
   * ever idling it (a pipeline's connection) should be given up.
   */
  contended(pool: object): boolean;
}

/** The option key under which a Pool takes a {@linkcode Gate}. */
export const GATE: unique symbol = Symbol("chanpool.gate");

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
  /**
   * The holder of a lease is using it (a pipeline's connection, busy for
   * as long as calls come): its leak clock starts again at `now`.
   */
  renew: (lease: object, now: number) => void;
  /** Idle resources of a pool, for a gate choosing one to close. */
  idleCount: (pool: object) => number;
  /** Borrows waiting in a pool. */
  waitingCount: (pool: object) => number;
  /** Another pool waits for a place at this pool's gate (see `Gate`). */
  contended: (pool: object) => boolean;
  /** Closes a pool's longest-idle resource (for its gate); whether it did. */
  evictIdle: (pool: object) => boolean;
  /** A place may be free at the pool's gate: dial for its waiters. */
  wake: (pool: object) => void;
} = {
  destroyAs: notLoaded("pool.ts"),
  release: notLoaded("pool.ts"),
  renew: notLoaded("pool.ts"),
  idleCount: notLoaded("pool.ts"),
  waitingCount: notLoaded("pool.ts"),
  contended: notLoaded("pool.ts"),
  evictIdle: notLoaded("pool.ts"),
  wake: notLoaded("pool.ts"),
};

/** Hooks into `TcpPool`, for the agent; bound when tcp.ts loads. */
export const tcpHooks: {
  /** The `Pool` a TcpPool keeps its connections in. */
  inner: (pool: object) => object;
} = {
  inner: notLoaded("tcp.ts"),
};
