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
 * A pool's counts when one of its errors was raised: the numbers behind
 * {@linkcode PoolTimeoutError} and {@linkcode DialError} messages, as
 * `error.counts`.
 */
export interface PoolCounts {
  /** The pool's `max`. */
  readonly max: number;
  /** Resources counted against `max` (idle, in use, dialing, checking). */
  readonly open: number;
  /** Resources idle in the pool. */
  readonly idle: number;
  /** Resources lent out. */
  readonly inUse: number;
  /** Borrows waiting for a resource (a borrow that timed out included). */
  readonly waiting: number;
  /** Dials in flight (a dial that failed included). */
  readonly dialing: number;
}

/** The counts as a message shows them. */
function countsText(c: PoolCounts): string {
  return `open=${c.open}, idle=${c.idle}, inUse=${c.inUse}, waiting=${c.waiting}, dialing=${c.dialing}, max=${c.max}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * What a borrow that timed out saw, in plain words, when the numbers are
 * clear-cut: the dials failing, every resource in use (and whether any was
 * handed over while it waited), dials still in flight.
 */
function explain(
  c: PoolCounts,
  lastDial: DialError | undefined,
  lent: number | undefined,
): string {
  if (lastDial !== undefined) {
    const why = dialReason(lastDial);
    return c.inUse === 0 && c.idle === 0
      ? `; no resource could be dialed (transient_failure): ${why}`
      : `; the last dial failed (transient_failure): ${why}`;
  }
  if (c.inUse >= c.max) {
    const all = c.max === 1 ? "the only resource" : `all ${c.max} resources`;
    const waiting = `; ${all} in use, ${c.waiting} waiting`;
    if (lent === undefined) return waiting;
    return lent === 0
      ? `${waiting}, none released while this borrow waited`
      : `${waiting}, ${lent} lent to other borrows while this one waited`;
  }
  if (c.dialing > 0) {
    return `; ${c.dialing} dial${c.dialing === 1 ? "" : "s"} still in flight`;
  }
  return "";
}

/** A DialError's reason, without its pool name and counts (see dialError). */
const DIAL_REASONS = new WeakMap<DialError, string>();

/** What a dial error says went wrong, without its pool name and counts. */
export function dialReason(error: DialError): string {
  return DIAL_REASONS.get(error) ?? error.message;
}

/**
 * Raised by a borrow that waited `timeout` (default `acquireTimeout`)
 * milliseconds without getting a resource. It is a {@linkcode TimeoutError}.
 *
 * When the pool raises it, the message names the pool (its `name` option;
 * a `TcpPool`'s address) and its {@linkcode PoolCounts}, which are also
 * `error.counts`, and says in words what the numbers show:
 *
 * - every resource in use and nothing released during the wait (a lease
 *   held for long, perhaps never released):
 *   `Cannot borrow db: no resource within 50 ms; all 2 resources in use, 1 waiting, none released while this borrow waited (open=2, idle=0, inUse=2, waiting=1, dialing=0, max=2)`;
 * - every resource in use but handed over to others (the pool is too small
 *   for the load, or `acquireTimeout` too short):
 *   `...; all 2 resources in use, 6 waiting, 14 lent to other borrows while this one waited (...)`;
 * - the pool's dials failing (the server is down): `cause` is the last
 *   {@linkcode DialError}, and
 *   `...; no resource could be dialed (transient_failure): Connection refused (os error 111) (...)`.
 *
 * @example Usage
 * ```ts
 * import { Pool, PoolTimeoutError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => ({}), { max: 1, name: "db" });
 * await using _held = await pool.borrow();
 * await assert.rejects(pool.borrow({ timeout: 10 }), (e) => {
 *   assert.ok(e instanceof PoolTimeoutError);
 *   assert.match(e.message, /^Cannot borrow db: no resource within 10 ms; the only resource in use/);
 *   assert.equal(e.counts?.inUse, 1);
 *   assert.equal(e.cause, undefined); // no dial failed
 *   return true;
 * });
 * ```
 */
export class PoolTimeoutError extends TimeoutError {
  /** The pool's name (its `name` option), when it has one. */
  readonly pool: string | undefined;
  /** The pool's counts when the borrow timed out (set by the pool). */
  readonly counts: PoolCounts | undefined;
  /**
   * Resources lent to other borrows while this one waited (set by the
   * pool): 0 with every resource in use means none was released.
   */
  readonly lent: number | undefined;

  /**
   * Creates the error.
   *
   * @param timeout How long the borrow waited, in milliseconds.
   * @param options Error options; `cause` is the pool's last
   *   {@linkcode DialError} while its dials fail; `pool`, `counts` and
   *   `lent` go into the message and onto the error.
   */
  constructor(
    timeout: number,
    options?: ErrorOptions & {
      pool?: string | undefined;
      counts?: PoolCounts | undefined;
      lent?: number | undefined;
    },
  ) {
    const c = options?.counts;
    const named = options?.pool ? ` ${options.pool}` : "";
    const cause = options?.cause;
    super(
      `Cannot borrow${named}: no resource within ${Math.round(timeout)} ms${
        c === undefined ? "" : `${
          explain(
            c,
            cause instanceof DialError ? cause : undefined,
            options?.lent,
          )
        } (${countsText(c)})`
      }`,
      timeout,
      options,
    );
    this.name = "PoolTimeoutError";
    this.pool = options?.pool || undefined;
    this.counts = c;
    this.lent = options?.lent;
  }
}

/**
 * Raised by a borrow when the dial made for it failed (or timed out after
 * `connectTimeout`); `cause` is what the dial threw. When the pool raises
 * it, the message names the pool (a `TcpPool`'s address) and its
 * {@linkcode PoolCounts} as the dial failed, which are also `error.counts`:
 * `Cannot dial 127.0.0.1:6379: Connection refused (os error 111) (open=1, idle=0, inUse=0, waiting=1, dialing=1, max=10)`.
 *
 * @example Usage
 * ```ts
 * import { DialError, Pool } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(() => {
 *   throw new Error("connection refused");
 * }, { name: "db" });
 * await assert.rejects(pool.borrow(), (e) => {
 *   assert.ok(e instanceof DialError);
 *   assert.match(e.message, /^Cannot dial db: connection refused \(open=1, /);
 *   assert.equal(e.counts?.dialing, 1);
 *   assert.equal((e.cause as Error).message, "connection refused");
 *   return true;
 * });
 * ```
 */
export class DialError extends Error {
  /** The pool's name (its `name` option), when it has one. */
  readonly pool: string | undefined;
  /** The pool's counts as the dial failed (set by the pool). */
  readonly counts: PoolCounts | undefined;

  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param options Error options; `cause` is the dial's own error; `pool`
   *   and `counts` go onto the error, and `counts` into the message.
   */
  constructor(
    message: string,
    options?: ErrorOptions & {
      pool?: string | undefined;
      counts?: PoolCounts | undefined;
    },
  ) {
    const c = options?.counts;
    super(c === undefined ? message : `${message} (${countsText(c)})`, options);
    this.name = "DialError";
    this.pool = options?.pool || undefined;
    this.counts = c;
  }
}

/**
 * A pool's DialError: `Cannot dial <name>: <reason> (<counts>)`, its reason
 * kept for the timeouts it explains.
 */
export function dialError(
  name: string,
  reason: unknown,
  counts: PoolCounts,
  cause?: unknown,
): DialError {
  const why = typeof reason === "string" ? reason : errorMessage(reason);
  const error = new DialError(`Cannot dial${name ? ` ${name}` : ""}: ${why}`, {
    pool: name,
    counts,
    ...(cause === undefined ? {} : { cause }),
  });
  DIAL_REASONS.set(error, why);
  return error;
}

// -- Options --
