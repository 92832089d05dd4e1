// Copyright 2026 the chanpool authors. MIT license.
// The one dial path of a pool, and the checks (validate, heartbeat pings)
// that run like dials: every dial (background, for a waiter, fresh,
// overflow) goes through Dialer.run with one deadline, and tells the pool's
// Connectivity (_state.ts) how it went. The pool decides when to dial (the
// connectivity says when it may); this file decides how a dial ends.

import {
  DialError,
  dialError,
  type PoolCounts,
  PoolTimeoutError,
  TimeoutError,
} from "./_errors.ts";
import type { Clock } from "./_time.ts";
import type { Connectivity } from "./_state.ts";

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
  readonly #state: Connectivity;
  readonly #counts: () => PoolCounts;

  /** Dials started (run). */
  started = 0;
  /** Dials that outlived the borrow's own (shorter) timeout. */
  timeouts = 0;
  /**
   * Told of every dial: `started`, then once `ended` with how it went
   * (0 ok, 1 DialError, 2 given up; 3 given up at the borrow's timeout),
   * its length in ms and the resource or the error.
   */
  report:
    | ((outcome: -1 | 0 | 1 | 2 | 3, time: number, value: unknown) => void)
    | null = null;

  // Gives up every dial in flight; aborts every check (close).
  readonly #runs = new Set<(reason: unknown) => void>();
  readonly #checks = new Set<AbortController>();

  /**
   * @param closeLate Closes a resource that arrived after its dial ended.
   * @param settled Called after every dial settles (the pool checks whether
   *   close may resolve).
   * @param state Told how every dial went.
   * @param counts The pool's counts, for the errors.
   */
  constructor(
    dial: (signal: AbortSignal) => T | Promise<T>,
    clock: Clock,
    connectTimeout: number,
    named: string,
    closeLate: (resource: T) => void,
    settled: () => void,
    state: Connectivity,
    counts: () => PoolCounts,
  ) {
    this.#dial = dial;
    this.#clock = clock;
    this.#connectTimeout = connectTimeout;
    this.#named = named;
    this.#closeLate = closeLate;
    this.#settled = settled;
    this.#state = state;
    this.#counts = counts;
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
    this.#state.started();
    const start = this.#clock.now();
    this.report?.(-1, 0, undefined);
    const ctl = new AbortController();
    let timer: unknown = undefined;
    let settled = false;
    let outlived = false;
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
        if (value instanceof DialError) this.#state.failed(value);
        else this.#state.ended();
      } else this.#state.succeeded();
      this.report?.(
        !failed
          ? 0
          : value instanceof DialError
          ? 1
          : value instanceof PoolTimeoutError && outlived
          ? 3
          : 2,
        this.#clock.now() - start,
        value,
      );
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
          outlived = true;
          settle(
            true,
            new PoolTimeoutError(timeout, {
              pool: this.#named.slice(1),
              counts: this.#counts(),
            }),
          );
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
    return dialError(this.#named.slice(1), cause, this.#counts(), cause);
  }

  /**
   * A resource was lost `aliveFor` ms after its dial, before it was ever
   * lent (a server that accepts, then closes): a failed dial, for the
   * counts and the probe schedule, so the pool does not redial in a loop.
   */
  lostEarly(aliveFor: number): void {
    this.#state.lostEarly(
      dialError(
        this.#named.slice(1),
        `the connection was lost ${Math.round(aliveFor)} ms after it was made`,
        this.#counts(),
      ),
    );
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
