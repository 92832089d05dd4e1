// Copyright 2026 the chanpool authors. MIT license.
// A pool's connectivity: whether it can make resources (the server is up),
// as gRPC's subchannels report it, and the schedule of its dials while it
// cannot. One per pool; the pool tells it what its dials did and asks it
// whether a dial may start.
//
//   idle ──dial──▶ connecting ──ok──▶ ready ──every resource gone──▶ idle
//                     │  ▲                 │
//                 failed │ probe            │ a dial failed (or a resource
//                     ▼  │                 ▼  was lost just after its dial)
//               transient_failure ◀────────┘
//
// While failing (the last dial failed, no success since) one dial at a time
// may run, the probe, and not before its time on a backoff schedule:
// initial × multiplier^n, capped at max, ±jitter. The step grows with every
// failure and is reset only when a resource proves healthy (lent, or alive
// past the early-loss window), not when a dial merely succeeds: a server
// that accepts and closes at once is probed on the schedule, not in a loop.

import type { DialError } from "./_errors.ts";
import type { Clock } from "./_time.ts";

/** A pool's connectivity state (gRPC's names). */
export type ConnectivityState =
  | "idle"
  | "connecting"
  | "ready"
  | "transient_failure"
  | "closed";

/** What a `statechange` listener gets. */
export interface StateChangeEvent {
  /** The new state. */
  state: ConnectivityState;
  /** The state before. */
  previous: ConnectivityState;
  /** In `transient_failure`: the dial failure that put it there. */
  error: DialError | undefined;
}

/** The dial schedule while the server is unreachable, in milliseconds. */
export interface Backoff {
  initial: number;
  multiplier: number;
  jitter: number;
  max: number;
}

export const DEFAULT_BACKOFF: Readonly<Backoff> = Object.freeze({
  initial: 50,
  multiplier: 1.6,
  jitter: 0.2,
  max: 2_000,
});

/** A pool's connectivity state and probe schedule. */
export class Connectivity {
  readonly #clock: Clock;
  readonly #backoff: Backoff;
  readonly #changed: (event: StateChangeEvent) => void;
  #state: ConnectivityState = "idle";
  /** The last dial failed and none succeeded since. */
  #failing = false;
  /** Failures since a resource last proved healthy: the backoff exponent. */
  #step = 0;
  /** While failing, no dial starts before then. */
  #probeAt = 0;
  /** Dials in flight. */
  #dials = 0;
  /** The last dial failure, for errors that explain themselves. */
  lastError: DialError | null = null;
  /** When `lastError` happened (on the clock). */
  lastErrorAt = 0;
  /** Dials that failed (or whose resource was lost just after). */
  failures = 0;

  /**
   * @param changed Called on every change of state (the pool's event).
   */
  constructor(
    clock: Clock,
    backoff: Backoff,
    changed: (event: StateChangeEvent) => void,
  ) {
    this.#clock = clock;
    this.#backoff = backoff;
    this.#changed = changed;
  }

  get state(): ConnectivityState {
    return this.#state;
  }

  /** The last dial failed and none succeeded since. */
  get failing(): boolean {
    return this.#failing;
  }

  /**
   * When a dial may start, while failing: one at a time (`dialing` is the
   * pool's count in flight), from the scheduled time on. Infinity: not
   * before one in flight ends. 0 when dials are not held back.
   */
  dialFrom(dialing: number): number {
    if (!this.#failing) return 0;
    return dialing > 0 ? Infinity : this.#probeAt;
  }

  /** A dial started. */
  started(): void {
    this.#dials++;
    if (this.#state === "idle" || this.#state === "transient_failure") {
      this.#set("connecting", undefined);
    }
  }

  /** A dial delivered a resource. */
  succeeded(): void {
    this.#dials--;
    this.#failing = false;
    if (this.#state !== "ready") this.#set("ready", undefined);
  }

  /** A dial failed (or its resource was lost just after it: `lost`). */
  failed(error: DialError): void {
    this.#dials--;
    this.#fail(error);
  }

  /** A dial ended with neither (abandoned, or past a borrow's own timeout). */
  ended(): void {
    this.#dials--;
    if (this.#dials === 0 && this.#state === "connecting") {
      this.#set(this.#failing ? "transient_failure" : "idle", undefined);
    }
  }

  /**
   * A resource was lost `aliveFor` ms after its dial, before it was ever
   * lent (a server that accepts, then closes): a failed dial.
   */
  lostEarly(error: DialError): void {
    this.#fail(error);
  }

  /** A resource proved healthy: the next failure backs off from the start. */
  healthy(): void {
    this.#step = 0;
  }

  /** Every resource is gone and no dial is in flight: `ready` → `idle`. */
  empty(): void {
    if (this.#state === "ready" && this.#dials === 0) {
      this.#set("idle", undefined);
    }
  }

  close(): void {
    if (this.#state !== "closed") this.#set("closed", undefined);
  }

  #fail(error: DialError): void {
    this.failures++;
    this.lastError = error;
    const now = this.#clock.now();
    this.lastErrorAt = now;
    this.#failing = true;
    const b = this.#backoff;
    const step = Math.min(b.max, b.initial * b.multiplier ** this.#step++);
    this.#probeAt = now + step * (1 + b.jitter * (2 * Math.random() - 1));
    if (this.#state === "closed") return;
    if (this.#state !== "transient_failure" && this.#dials === 0) {
      this.#set("transient_failure", error);
    } else if (this.#state === "ready") {
      this.#set("transient_failure", error);
    }
  }

  #set(state: ConnectivityState, error: DialError | undefined): void {
    const previous = this.#state;
    this.#state = state;
    this.#changed({ state, previous, error });
  }
}
