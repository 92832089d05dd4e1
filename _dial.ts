// Copyright 2026 the chanpool authors. MIT license.
// The one dial path of a pool, and the checks (validate, heartbeat pings)
// that run like dials: every dial (background, for a waiter, fresh,
// overflow) goes through Dialer.run with one deadline, and after a streak of
// failures demand dials pause. The pool decides when to dial; this file
// decides how a dial ends.

import { DialError, PoolTimeoutError, TimeoutError } from "./_errors.ts";
import type { Clock } from "./_time.ts";

/** Base and cap of the minIdle refill backoff, in milliseconds. */
const BACKOFF_BASE = 100;
const BACKOFF_CAP = 30_000;

/**
 * After PAUSE_AFTER failed dials in a row, dials for borrowers pause for a
 * step that doubles from PAUSE_BASE up to PAUSE_CAP (minus up to half, at
 * random, so pools do not retry in step): during an outage a few dials a
 * second instead of one per borrow, and a server that comes back is dialed
 * again within PAUSE_CAP.
 */
const PAUSE_AFTER = 3;
const PAUSE_BASE = 50;
const PAUSE_CAP = 800;

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as { then?: unknown }).then === "function";
}

/** Dials (and checks) resources for one pool. */
export class Dialer<T> {
  readonly #dial: (signal: AbortSignal) => T | Promise<T>;
  readonly #clock: Clock;
  readonly #connectTimeout: number;
  /** `" " + name` for messages, or "". */
  readonly #named: string;
  readonly #closeLate: (resource: T) => void;
  readonly #settled: () => void;

  /** Dials started (run). */
  started = 0;
  /** Dials that failed, timed out against connectTimeout, or were refused. */
  failures = 0;
  /** Dials that outlived the borrow's own (shorter) timeout. */
  timeouts = 0;
  /** The minIdle refill may dial again from then (0: now). */
  refillAt = 0;

  // Gives up every dial in flight; aborts every check (close).
  readonly #runs = new Set<(reason: unknown) => void>();
  readonly #checks = new Set<AbortController>();
  #streak = 0; // failed in a row; reset by a good dial
  #lastError: DialError | null = null;
  #pausedUntil = 0; // demand dials wait until then (0: not paused)
  /** A pause was set (it may have run out): a cheap first check. */
  pauseSet = false;
  #backoff = 0; // refill backoff step, ms (0 after a good dial)

  /**
   * @param closeLate Closes a resource that arrived after its dial ended.
   * @param settled Called after every dial settles (the pool checks whether
   *   close may resolve).
   */
  constructor(
    dial: (signal: AbortSignal) => T | Promise<T>,
    clock: Clock,
    connectTimeout: number,
    named: string,
    closeLate: (resource: T) => void,
    settled: () => void,
  ) {
    this.#dial = dial;
    this.#clock = clock;
    this.#connectTimeout = connectTimeout;
    this.#named = named;
    this.#closeLate = closeLate;
    this.#settled = settled;
  }

  /**
   * Runs one dial. It settles exactly once, calling `done`: with the
   * resource; with a {@linkcode DialError} when the dial failed or outlived
   * `connectTimeout`; with a {@linkcode PoolTimeoutError} when it outlived
   * the borrow's `timeout` (shorter than `connectTimeout`); with the
   * borrower's `signal.reason`; or with the reason of {@linkcode abandonAll}.
   * The dial's signal aborts in every case but the first, and a resource that
   * arrives after that is closed at once: a dial that ignores its signal
   * holds no borrower and no slot.
   */
  run(
    timeout: number,
    signal: AbortSignal | undefined,
    done: (failed: boolean, value: unknown) => void,
  ): void {
    this.started++;
    const ctl = new AbortController();
    let timer: unknown = undefined;
    let settled = false;
    const settle = (failed: boolean, value: unknown): void => {
      if (settled) {
        // Given up on already: a late resource is closed, an error dropped.
        if (!failed) this.#closeLate(value as T);
        return;
      }
      settled = true;
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      this.#runs.delete(abandon);
      if (failed) {
        if (!ctl.signal.aborted) ctl.abort(value);
        if (value instanceof DialError) this.#failed(value);
      } else {
        this.#streak = 0;
        this.#pausedUntil = 0;
        this.pauseSet = false;
      }
      done(failed, value);
      this.#settled();
    };
    const onAbort = () => settle(true, signal!.reason);
    const abandon = (reason: unknown) => settle(true, reason);
    const limit = Math.min(this.#connectTimeout, timeout);
    if (limit !== Infinity) {
      timer = this.#clock.setTimeout(() => {
        timer = undefined;
        if (timeout < this.#connectTimeout) {
          this.timeouts++;
          settle(true, new PoolTimeoutError(timeout));
        } else {
          const cause = new TimeoutError(
            `Dial timed out after ${Math.round(limit)} ms`,
            limit,
          );
          settle(true, this.error(cause));
        }
      }, limit);
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#runs.add(abandon);
    let p: Promise<T>;
    try {
      p = Promise.resolve(this.#dial(ctl.signal));
    } catch (error) {
      p = Promise.reject(error);
    }
    p.then(
      (resource) => settle(false, resource),
      (error) => settle(true, this.error(error)),
    );
  }

  /** A dial's failure as a DialError naming the pool (one is kept as is). */
  error(cause: unknown): DialError {
    if (cause instanceof DialError) return cause;
    return new DialError(`Cannot dial${this.#named}: ${errorMessage(cause)}`, {
      cause,
    });
  }

  /** Counts a failed dial; after a few in a row, pauses demand dials. */
  #failed(error: DialError): void {
    this.failures++;
    this.#lastError = error;
    const streak = ++this.#streak;
    if (streak >= PAUSE_AFTER) {
      const step = Math.min(
        PAUSE_CAP,
        PAUSE_BASE * 2 ** (streak - PAUSE_AFTER),
      );
      this.#pausedUntil = this.#clock.now() + step * (0.5 + Math.random() / 2);
      this.pauseSet = true;
    }
  }

  /** When demand dials may start again (0: they may now). */
  get pausedUntil(): number {
    if (this.#pausedUntil !== 0 && this.#pausedUntil <= this.#clock.now()) {
      return 0;
    }
    return this.#pausedUntil;
  }

  /** The error a borrow fails with while demand dials are paused. */
  pausedError(): DialError {
    const last = this.#lastError!;
    const left = this.#pausedUntil - this.#clock.now();
    return new DialError(
      `${last.message} (dialing paused for ${
        Math.ceil(left)
      } ms after ${this.#streak} failed dials in a row)`,
      { cause: last.cause },
    );
  }

  /** A minIdle refill dial failed: the next waits a growing, jittered step. */
  refillFailed(): void {
    this.#backoff = Math.min(
      BACKOFF_CAP,
      Math.max(BACKOFF_BASE, this.#backoff * 2),
    );
    this.refillAt = this.#clock.now() +
      this.#backoff * (0.5 + Math.random() / 2);
  }

  /**
   * A resource was lost `aliveFor` ms after its dial, before it was ever
   * lent (a server that accepts, then closes): a failed dial, for the
   * counts and the refill backoff, so minIdle does not redial in a loop.
   */
  lostEarly(aliveFor: number): void {
    this.failures++;
    this.#lastError = new DialError(
      `Cannot dial${this.#named}: the connection was lost ${
        Math.round(aliveFor)
      } ms after it was made`,
    );
    this.refillFailed();
  }

  /**
   * A resource proved healthy (it was lent, or outlived the early-loss
   * window): refills may go on at once.
   */
  refillOk(): void {
    this.#backoff = 0;
    this.refillAt = 0;
  }

  /**
   * Runs `validate` or `ping` on a resource, within `connectTimeout`;
   * `false` when it returned `false`, threw, rejected or ran out of time.
   */
  async check(
    resource: T,
    fn: (resource: T, signal: AbortSignal) => unknown,
  ): Promise<boolean> {
    const ctl = new AbortController();
    this.#checks.add(ctl);
    let timer: unknown;
    try {
      let result = fn(resource, ctl.signal);
      if (isThenable(result)) {
        if (this.#connectTimeout !== Infinity) {
          timer = this.#clock.setTimeout(
            () =>
              ctl.abort(
                new TimeoutError(
                  `Check timed out after ${this.#connectTimeout} ms`,
                  this.#connectTimeout,
                ),
              ),
            this.#connectTimeout,
          );
        }
        const aborted = new Promise<never>((_, reject) => {
          ctl.signal.addEventListener(
            "abort",
            () => reject(ctl.signal.reason),
            { once: true },
          );
        });
        aborted.catch(() => {});
        result = await Promise.race([result, aborted]);
      }
      return result !== false;
    } catch {
      return false;
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      this.#checks.delete(ctl);
    }
  }

  /** Gives up every dial and check in flight with `reason` (close). */
  abandonAll(reason: unknown): void {
    for (const ctl of this.#checks) ctl.abort(reason);
    for (const abandon of [...this.#runs]) abandon(reason);
  }
}
