// Copyright 2026 the chanpool authors. MIT license.
// The pool's errors; pool.ts re-exports them (import them from there, or
// from mod.ts).

/**
 * Raised by a borrow on a closed pool, and by borrows that were waiting when
 * the pool closed.
 *
 * @example Usage
 * ```ts
 * import { Pool, PoolClosedError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const pool = new Pool(() => ({}));
 * await pool.close();
 * await assert.rejects(pool.borrow(), PoolClosedError);
 * ```
 */
export class PoolClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param options Error options.
   */
  constructor(message = "Pool is closed", options?: ErrorOptions) {
    super(message, options);
    this.name = "PoolClosedError";
  }
}

/**
 * Raised by a borrow when every resource is in use and `whenExhausted` is
 * `"fail"` (Go's `ErrMaxConn`).
 *
 * @example Usage
 * ```ts
 * import { Pool, PoolExhaustedError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => ({}), { max: 1, whenExhausted: "fail" });
 * await using _held = await pool.borrow();
 * await assert.rejects(pool.borrow(), PoolExhaustedError);
 * ```
 */
export class PoolExhaustedError extends Error {
  /** The pool's `max`. */
  readonly max: number;
  /** Set when the wait queue was full: the pool's `maxWaiting`. */
  readonly maxWaiting: number | undefined;

  /**
   * Creates the error.
   *
   * @param max The pool's `max`.
   * @param options Error options; `maxWaiting` when the wait queue was
   *   full (rather than every resource in use with `whenExhausted: "fail"`).
   */
  constructor(
    max: number,
    options?: ErrorOptions & { maxWaiting?: number | undefined },
  ) {
    super(
      options?.maxWaiting === undefined
        ? `Cannot borrow: all ${max} resources are in use`
        : `Cannot borrow: ${options.maxWaiting} borrows are already waiting (maxWaiting)`,
      options,
    );
    this.name = "PoolExhaustedError";
    this.max = max;
    this.maxWaiting = options?.maxWaiting;
  }
}

/**
 * Something took longer than its `timeout`: a borrow, a request, an I/O call
 * on a pooled connection. `timeout` is the limit in milliseconds; `cause`,
 * when set, says which step ran out (a {@linkcode PoolTimeoutError} when the
 * time ran out while waiting for a resource). Its `name` is `"TimeoutError"`,
 * as for the web platform's `AbortSignal.timeout`.
 *
 * @example Usage
 * ```ts
 * import { Pool, TimeoutError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => ({}), { max: 1 });
 * await using _held = await pool.borrow();
 * await assert.rejects(pool.borrow({ timeout: 10 }), (e) => {
 *   assert.ok(e instanceof TimeoutError); // a PoolTimeoutError is one
 *   assert.equal(e.timeout, 10);
 *   return true;
 * });
 * ```
 */
export class TimeoutError extends Error {
  /** The limit that ran out, in whole milliseconds. */
  readonly timeout: number;

  /**
   * Creates the error.
   *
   * @param message What timed out.
   * @param timeout The limit, in milliseconds (rounded to a whole number).
   * @param options Error options; `cause` says which step ran out.
   */
  constructor(message: string, timeout: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "TimeoutError";
    this.timeout = Math.round(timeout);
  }
}

/**
 * Raised by a borrow that waited `timeout` (default `acquireTimeout`)
 * milliseconds without getting a resource. It is a {@linkcode TimeoutError}.
 *
 * @example Usage
 * ```ts
 * import { Pool, PoolTimeoutError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => ({}), { max: 1 });
 * await using _held = await pool.borrow();
 * await assert.rejects(pool.borrow({ timeout: 10 }), PoolTimeoutError);
 * ```
 */
export class PoolTimeoutError extends TimeoutError {
  /**
   * Creates the error.
   *
   * @param timeout How long the borrow waited, in milliseconds.
   * @param options Error options.
   */
  constructor(timeout: number, options?: ErrorOptions) {
    super(
      `Cannot borrow: no resource within ${Math.round(timeout)} ms`,
      timeout,
      options,
    );
    this.name = "PoolTimeoutError";
  }
}

/**
 * Raised by a borrow when the dial made for it failed (or timed out after
 * `connectTimeout`); `cause` is what the dial threw.
 *
 * @example Usage
 * ```ts
 * import { DialError, Pool } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => {
 *   throw new Error("connection refused");
 * });
 * await assert.rejects(pool.borrow(), (e) => {
 *   assert.ok(e instanceof DialError);
 *   assert.equal((e.cause as Error).message, "connection refused");
 *   return true;
 * });
 * ```
 */
export class DialError extends Error {
  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param options Error options; `cause` is the dial's own error.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DialError";
  }
}

// -- Options --
