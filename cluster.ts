// Copyright 2026 the chanpool authors. MIT license.
/**
 * {@linkcode TcpCluster}: equivalent servers behind one client, each call
 * balanced to one of them, hosts that fail ejected for a while, and a call
 * that failed before it could have done anything retried once on another
 * host.
 *
 * It is built on a {@linkcode TcpAgent} (a {@linkcode TcpPool} per host and
 * one cap, `maxTotal`, on all their connections) and adds the host table:
 * weights, calls in flight, health, ejections, and a picker (`balance`):
 *
 * - `"p2c"` (default): the power of two choices: two hosts drawn at random
 *   by weight; the second takes the call only if, with it, its calls in
 *   flight per unit of weight would still be no more than the first's (for
 *   equal weights: if it has fewer calls in flight).
 * - `"round-robin"`: smooth weighted round-robin (nginx's).
 * - `{ hash: (call) => string }`: rendezvous (highest random weight)
 *   hashing of the string `hash` makes of the call's options: a key always
 *   goes to the same host while it is healthy, and a host that leaves (or
 *   fails) moves only its own keys.
 *
 * A host is healthy when it is not ejected and its pool's last dial did not
 * fail; calls go to healthy hosts only, unless none is: then to every host
 * (Envoy's panic mode), rather than to none.
 *
 * @example Usage
 * ```ts
 * import { TcpCluster } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * // Three echo servers.
 * const listeners = [0, 1, 2].map(() =>
 *   Deno.listen({ hostname: "127.0.0.1", port: 0 })
 * );
 * const served = listeners.map(async (l) => {
 *   for await (const conn of l) {
 *     conn.readable.pipeTo(conn.writable).catch(() => {});
 *   }
 * });
 * {
 *   await using cluster = new TcpCluster({
 *     hosts: listeners.map((l) => ({ port: l.addr.port })),
 *   });
 *   const reply = await cluster.request(new Uint8Array([1, 2, 3]), {
 *     timeout: 1_000,
 *   });
 *   assert.deepEqual(reply, new Uint8Array([1, 2, 3]));
 *   assert.equal(cluster.hosts.length, 3);
 * }
 * for (const l of listeners) l.close();
 * await Promise.all(served);
 * ```
 *
 * @module
 */

import type { FrameReader } from "./framing.ts";
import { format } from "./_frame_format.ts";
import {
  type BackoffOptions,
  type BorrowOptions,
  type ConnectivityState,
  DialError,
  PoolClosedError,
  type PoolCloseOptions,
  PoolExhaustedError,
  PoolTimeoutError,
  TimeoutError,
} from "./pool.ts";
import {
  ConnectionBrokenError,
  type PooledConn,
  type PoolExchangeOptions,
  type TcpPool,
} from "./tcp.ts";
import {
  addressKey,
  type TcpAddress,
  TcpAgent,
  type TcpAgentOptions,
  type TcpAgentStats,
} from "./agent.ts";
import { type Clock, SYSTEM_CLOCK } from "./_time.ts";
import { borrowTimeout, closeForce } from "./_options.ts";
import { bytes, limits, type ReadReply } from "./_conn.ts";
import { describe, MAX_DELAY } from "./_util.ts";
import {
  checkListen,
  EVENT_TYPES,
  type PoolEventMap,
  type PoolEventType,
} from "./_events.ts";
import {
  type Candidate,
  cumulative,
  hashString,
  p2c,
  rendezvous,
  roundRobin,
} from "./_balance.ts";

// -- Options --

/**
 * One host of a {@linkcode TcpCluster}: an address (`"host:port"`,
 * `{ hostname, port }`, `{ path }`), with an optional `weight` (> 0,
 * default 1), or `{ address, weight }`.
 */
export type TcpClusterHost =
  | string
  | {
    hostname?: string | undefined;
    port: number;
    weight?: number | undefined;
  }
  | { path: string; weight?: number | undefined }
  | { address: TcpAddress; weight?: number | undefined };

/**
 * Where a {@linkcode TcpCluster}'s hosts come from: a list, or a function
 * (service discovery, DNS) run at start, every `refreshInterval`, and when
 * no host is healthy; `signal` aborts when the cluster closes.
 */
export type TcpClusterHosts =
  | readonly TcpClusterHost[]
  | ((
    options: { signal: AbortSignal },
  ) => Promise<readonly TcpClusterHost[]> | readonly TcpClusterHost[]);

/** What a call's options may carry for {@linkcode TcpClusterBalance}'s `hash`. */
export interface TcpClusterCallOptions {
  /**
   * A routing key, for a `balance.hash` that reads it (`(call) =>
   * call.key`); the cluster itself does nothing else with it.
   */
  key?: string | undefined;
}

/**
 * How a {@linkcode TcpCluster} picks a host for a call: `"p2c"` (power of
 * two choices by calls in flight per unit of weight), `"round-robin"`
 * (smooth weighted), or `{ hash }`: rendezvous hashing of the string
 * `hash(call)` returns, `call` being the call's options.
 */
export type TcpClusterBalance =
  | "p2c"
  | "round-robin"
  | { hash: (call: TcpClusterCallOptions) => string };

/**
 * When a {@linkcode TcpCluster} ejects a host (Envoy's outlier detection):
 * at its `consecutiveFailures`-th connect or request failure in a row, or
 * at once when a dial to it is refused.
 */
export interface TcpClusterOutlierOptions {
  /**
   * Failures in a row (a failed dial, a connection broken under a call)
   * that eject a host; a success resets the count. An integer ≥ 1 or
   * `Infinity` (then only a refused dial ejects).
   *
   * @default {5}
   */
  consecutiveFailures?: number | undefined;
  /**
   * How long an ejection lasts, in ms, times the host's ejections so far
   * (a count that drops by one per `baseEjectionTime` the host stays in).
   *
   * @default {30_000}
   */
  baseEjectionTime?: number | undefined;
  /**
   * The longest ejection, in ms.
   *
   * @default {300_000 (or baseEjectionTime if that is longer)}
   */
  maxEjectionTime?: number | undefined;
  /**
   * The most hosts ejected at once, as a percentage of the hosts (at least
   * one, never all of them); `0`: never eject.
   *
   * @default {50}
   */
  maxEjectionPercent?: number | undefined;
}

/**
 * Options for {@linkcode TcpCluster}: its hosts and how to use them, and
 * the {@linkcode TcpAgentOptions} of the agent that holds their pools.
 */
export interface TcpClusterOptions extends TcpAgentOptions {
  /** The hosts: a list, or a function that returns one (see {@linkcode TcpClusterHosts}). */
  hosts: TcpClusterHosts;
  /**
   * How a host is picked for each call; see {@linkcode TcpClusterBalance}.
   *
   * @default {"p2c"}
   */
  balance?: TcpClusterBalance | undefined;
  /** When a host is ejected; see {@linkcode TcpClusterOutlierOptions}. */
  outlier?: TcpClusterOutlierOptions | undefined;
  /**
   * How often a `hosts` function runs again, in ms; `0`/`Infinity`: only
   * at start and when no host is healthy (at most once a second).
   *
   * @default {30_000}
   */
  refreshInterval?: number | undefined;
  /**
   * Every host's probe schedule while it cannot be reached (see
   * `PoolOptions.backoff`): shorter at its longest than a pool's, so that a
   * host that comes back is seen within about a second.
   *
   * @default {{ initial: 50, multiplier: 1.6, jitter: 0.2, max: 1_000 }}
   */
  backoff?: BackoffOptions | undefined;
}

/** Options for {@linkcode TcpCluster.exchange}. */
export interface TcpClusterExchangeOptions<R>
  extends PoolExchangeOptions<R>, TcpClusterCallOptions {}

/** Options for {@linkcode TcpCluster.request}. */
export type TcpClusterRequestOptions = TcpClusterExchangeOptions<Uint8Array>;

/** Options for {@linkcode TcpCluster.borrow}. */
export interface TcpClusterBorrowOptions
  extends BorrowOptions, TcpClusterCallOptions {}

/** One host of a {@linkcode TcpCluster}, as {@linkcode TcpCluster.hosts} lists it. */
export interface TcpClusterHostInfo {
  /** `host:port` (`[host]:port` for IPv6), or `unix:path`. */
  address: string;
  /** Its weight. */
  weight: number;
  /** Its pool's connectivity state (`"idle"` before first use). */
  state: ConnectivityState;
  /** Whether calls may go to it: not ejected, its last dial did not fail. */
  healthy: boolean;
  /** Calls on it now, and connections borrowed from it not yet released. */
  inFlight: number;
  /** Calls sent to it (tries: a call retried elsewhere counts on both). */
  calls: number;
  /** Connect or request failures in a row. */
  failures: number;
  /** Whether it is ejected now. */
  ejected: boolean;
  /** Times it was ejected. */
  ejections: number;
  /**
   * While ejected: when its ejection ends, on the cluster's clock
   * (`performance.now()` unless `clock` is set); a probe then decides.
   */
  ejectedUntil: number | undefined;
}

/** What {@linkcode TcpCluster.on}'s `"statechange"` listeners get. */
export interface TcpClusterEvent {
  /** The host's address, as in {@linkcode TcpClusterHostInfo}. */
  address: string;
  /**
   * What happened: `"state"` (its pool's state changed), `"ejected"`,
   * `"returned"` (no longer ejected), `"added"` or `"removed"` (by a
   * `hosts` function).
   */
  change: "state" | "ejected" | "returned" | "added" | "removed";
  /** Its pool's state now. */
  state: ConnectivityState;
  /** Its pool's state before (for `"state"`; else the same as `state`). */
  previous: ConnectivityState;
  /** Whether it is ejected now. */
  ejected: boolean;
  /**
   * For `"ejected"`: the failure that ejected it; for `"state"` to
   * `"transient_failure"`: the dial's error.
   */
  error: unknown;
}

/** Counts of a {@linkcode TcpCluster}. */
export interface TcpClusterStats {
  /** Hosts now. */
  hosts: number;
  /** Hosts that may take calls now (not ejected, not failing). */
  healthy: number;
  /** Hosts ejected now. */
  ejected: number;
  /** Calls made (`exchange`, `request`, `borrow`). */
  calls: number;
  /** Calls retried on another host. */
  retries: number;
  /** Connect and request failures counted against hosts. */
  failures: number;
  /** Times a host was ejected. */
  ejections: number;
  /** Times an ejected host came back. */
  returns: number;
  /** Calls (and retries) that found no healthy host and went to any. */
  panics: number;
  /** Runs of a `hosts` function that succeeded. */
  refreshes: number;
  /** Runs of a `hosts` function that failed (the list was kept). */
  refreshErrors: number;
  /** Listeners that threw (contained, never uncaught). */
  callbackErrors: number;
  /** The agent's counts: connections across hosts. */
  agent: TcpAgentStats;
}

// -- Internals --

/** The cluster's default probe schedule (a pool's is max 2_000). */
const CLUSTER_BACKOFF: BackoffOptions = Object.freeze({
  initial: 50,
  multiplier: 1.6,
  jitter: 0.2,
  max: 1_000,
});

/** A `hosts` function runs no more often than this when no host is healthy. */
const REFRESH_FLOOR = 1_000;

/** The pause after a probe failed other than by a dial. */
const PROBE_PAUSE = 100;

const P2C = 0;
const ROUND_ROBIN = 1;
const HASH = 2;

const EMPTY: TcpClusterCallOptions = Object.freeze({});

function noop(): void {}

/** One host and what the cluster knows of it. */
class Host implements Candidate {
  readonly key: string;
  weight: number;
  readonly seedA: number;
  readonly seedB: number;
  credit = 0;
  inFlight = 0;
  calls = 0;
  failures = 0;
  /** Its pool, once used (the agent may drop it when it idles). */
  pool: TcpPool | undefined = undefined;
  off: (() => void) | undefined = undefined;
  state: ConnectivityState = "idle";
  /** Its pool's last dial failed and none succeeded since. */
  down = false;
  ejected = false;
  ejectedUntil = 0;
  ejections = 0;
  /** The ejection count the next ejection's time is based on (decays). */
  level = 0;
  returnedAt = 0;
  timer: unknown = undefined;
  probe: AbortController | undefined = undefined;
  removed = false;

  constructor(key: string, weight: number) {
    this.key = key;
    this.weight = weight;
    [this.seedA, this.seedB] = hashString(key);
  }

  get healthy(): boolean {
    return !this.ejected && !this.down;
  }
}

/** A checked call: what retries and picks need. */
interface Call {
  what: string;
  /** The whole call's limit in ms (Infinity: none given, or no limit). */
  timeout: number;
  signal: AbortSignal | undefined;
  idempotent: boolean;
  /** The hash of `balance.hash(call)`, for rendezvous. */
  keyA: number;
  keyB: number;
}

/** The parsed hosts list: each host's key and weight. */
type HostList = { key: string; weight: number }[];

/** Checks a hosts list; `where` names the step in messages. */
function parseHosts(list: unknown, where: string): HostList {
  if (!Array.isArray(list)) {
    throw new TypeError(
      `Cannot ${where}: hosts must be a list of addresses or a function, received ${
        describe(list)
      }`,
    );
  }
  if (list.length === 0) {
    throw new RangeError(`Cannot ${where}: hosts is an empty list`);
  }
  const out: HostList = [];
  const seen = new Map<string, number>();
  list.forEach((entry: unknown, i) => {
    let address: unknown = entry;
    let weight: unknown = undefined;
    if (typeof entry === "object" && entry !== null) {
      const e = entry as { address?: unknown; weight?: unknown };
      weight = e.weight;
      if (e.address !== undefined) address = e.address;
    }
    const key = addressKey(address, `${where} (hosts[${i}])`);
    if (weight === undefined) weight = 1;
    if (typeof weight !== "number") {
      throw new TypeError(
        `Cannot ${where}: hosts[${i}].weight must be a number, received ${
          describe(weight)
        }`,
      );
    }
    if (!(weight > 0) || weight === Infinity) {
      throw new RangeError(
        `Cannot ${where}: hosts[${i}].weight must be a positive finite number, received ${weight}`,
      );
    }
    const before = seen.get(key);
    if (before !== undefined) {
      throw new RangeError(
        `Cannot ${where}: hosts lists ${key} twice (hosts[${before}] and hosts[${i}])`,
      );
    }
    seen.set(key, i);
    out.push({ key, weight });
  });
  return out;
}

/** A duration option: a number ≥ `min` ms, finite (or `Infinity` if `infinite`). */
const CLUSTER_EVENTS: readonly string[] = [
  "statechange",
  "refresherror",
  ...EVENT_TYPES,
];

function duration(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  infinite: boolean,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot create cluster: ${name} must be a number of milliseconds, received ${
        describe(value)
      }`,
    );
  }
  const ok = value === Infinity
    ? infinite
    : value >= min && value <= MAX_DELAY && (min > 0 || value >= 0);
  if (!ok) {
    throw new RangeError(
      `Cannot create cluster: ${name} must be ${
        min > 0 ? `at least ${min}` : "a non-negative number of"
      } ms${
        infinite ? " or Infinity" : ""
      } (at most ${MAX_DELAY}), received ${value}`,
    );
  }
  return value;
}

/** Whether a dial failure was a refused connection (nothing listens there). */
function refused(error: unknown): boolean {
  // failFast's DialError has the last dial's DialError as its cause.
  let e: unknown = error;
  for (let i = 0; i < 3 && e instanceof DialError; i++) e = e.cause;
  return e instanceof Deno.errors.ConnectionRefused ||
    (e as { code?: unknown } | undefined)?.code === "ECONNREFUSED";
}

/**
 * A cluster of equivalent servers; see the module docs.
 *
 * @example Key affinity: rendezvous hashing
 * ```ts
 * import { TcpCluster } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * // Three servers that answer a line with their own port.
 * const listeners = [0, 1, 2].map(() =>
 *   Deno.listen({ hostname: "127.0.0.1", port: 0 })
 * );
 * const served = listeners.map(async (l) => {
 *   for await (const conn of l) {
 *     conn.readable.pipeThrough(new TextDecoderStream()).pipeThrough(
 *       new TransformStream<string, Uint8Array>({
 *         transform: (_chunk, out) =>
 *           out.enqueue(new TextEncoder().encode(`${l.addr.port}\n`)),
 *       }),
 *     ).pipeTo(conn.writable).catch(() => {});
 *   }
 * });
 * {
 *   await using cluster = new TcpCluster({
 *     hosts: listeners.map((l) => `127.0.0.1:${l.addr.port}`),
 *     balance: { hash: (call) => call.key ?? "" },
 *   });
 *   const ask = (key: string) =>
 *     cluster.exchange(
 *       new TextEncoder().encode("which?\n"),
 *       (reader) => reader.readLine(),
 *       { key, timeout: 1_000 },
 *     );
 *   const first = await ask("user:42");
 *   for (let i = 0; i < 5; i++) assert.equal(await ask("user:42"), first);
 * }
 * for (const l of listeners) l.close();
 * await Promise.all(served);
 * ```
 */
export class TcpCluster implements AsyncDisposable {
  readonly #agent: TcpAgent;
  readonly #clock: Clock;
  readonly #source:
    | ((options: { signal: AbortSignal }) => unknown)
    | null;
  readonly #balance: number;
  readonly #hash: ((call: TcpClusterCallOptions) => string) | null;
  readonly #consecutive: number;
  readonly #base: number;
  readonly #maxEjection: number;
  readonly #maxPercent: number;
  readonly #refreshInterval: number;
  readonly #maxFrame: number;
  #hosts: Host[] = [];
  readonly #byKey = new Map<string, Host>();
  // The healthy hosts and their running weights, rebuilt when #version moves.
  #version = 0;
  #built = -1;
  #healthy: Host[] = [];
  #sums: Float64Array = new Float64Array(0);
  #ejected = 0;
  // hosts() runs.
  readonly #stop = new AbortController();
  #refreshing: Promise<void> | null = null;
  #refreshTimer: unknown = undefined;
  #refreshedAt = -Infinity;
  #refreshError: unknown = undefined;
  readonly #listeners = new Set<(event: TcpClusterEvent) => void>();
  readonly #refreshListeners = new Set<(error: unknown) => void>();
  /** Probes and host drops in progress (close waits for them). */
  readonly #tasks = new Set<Promise<void>>();
  /** Pools of removed hosts not closed yet (close({ force }) forces them). */
  readonly #draining = new Set<TcpPool>();
  #closed = false;
  #calls = 0;
  #retries = 0;
  #failures = 0;
  #ejections = 0;
  #returns = 0;
  #panics = 0;
  #refreshes = 0;
  #refreshErrors = 0;
  #callbackErrors = 0;

  /**
   * Makes a cluster. With a `hosts` list it is ready at once; with a
   * function, calls wait for its first run.
   *
   * @param options `hosts`, `balance`, `outlier`, `refreshInterval`, and
   *   the agent's options (`maxPerHost`, `maxTotal`, `idleTimeout`, every
   *   pool option).
   * @throws {TypeError} If an option has the wrong type, or is one the
   *   agent sets itself (`hostname`, `port`, `path`, `max`).
   * @throws {RangeError} If an option is out of range: an empty `hosts`
   *   list, a host listed twice, a weight ≤ 0.
   */
  constructor(options: TcpClusterOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `Cannot create cluster: options must be an object, received ${
          describe(options)
        }`,
      );
    }
    const {
      hosts,
      balance = "p2c",
      outlier,
      refreshInterval,
      backoff,
      ...agentOptions
    } = options;
    let list: HostList | null = null;
    if (typeof hosts === "function") {
      this.#source = hosts as (options: { signal: AbortSignal }) => unknown;
    } else {
      this.#source = null;
      list = parseHosts(hosts, "create cluster");
    }
    if (balance === "p2c") this.#balance = P2C;
    else if (balance === "round-robin") this.#balance = ROUND_ROBIN;
    else if (
      typeof balance === "object" && balance !== null &&
      typeof (balance as { hash?: unknown }).hash === "function"
    ) {
      this.#balance = HASH;
    } else {
      throw new TypeError(
        `Cannot create cluster: balance must be "p2c", "round-robin" or { hash }, received ${
          describe(balance)
        }`,
      );
    }
    this.#hash = this.#balance === HASH
      ? (balance as { hash: (call: TcpClusterCallOptions) => string }).hash
      : null;
    if (
      outlier !== undefined &&
      (typeof outlier !== "object" || outlier === null)
    ) {
      throw new TypeError(
        `Cannot create cluster: outlier must be an object, received ${
          describe(outlier)
        }`,
      );
    }
    const consecutive = outlier?.consecutiveFailures ?? 5;
    if (typeof consecutive !== "number") {
      throw new TypeError(
        `Cannot create cluster: outlier.consecutiveFailures must be a number, received ${
          describe(consecutive)
        }`,
      );
    }
    if (
      !(consecutive >= 1) ||
      (!Number.isInteger(consecutive) && consecutive !== Infinity)
    ) {
      throw new RangeError(
        `Cannot create cluster: outlier.consecutiveFailures must be an integer ≥ 1 or Infinity, received ${consecutive}`,
      );
    }
    this.#consecutive = consecutive;
    this.#base = duration(
      "outlier.baseEjectionTime",
      outlier?.baseEjectionTime,
      30_000,
      1,
      false,
    );
    this.#maxEjection = duration(
      "outlier.maxEjectionTime",
      outlier?.maxEjectionTime,
      Math.max(300_000, this.#base),
      this.#base,
      false,
    );
    const percent = outlier?.maxEjectionPercent ?? 50;
    if (typeof percent !== "number") {
      throw new TypeError(
        `Cannot create cluster: outlier.maxEjectionPercent must be a number, received ${
          describe(percent)
        }`,
      );
    }
    if (!(percent >= 0 && percent <= 100)) {
      throw new RangeError(
        `Cannot create cluster: outlier.maxEjectionPercent must be from 0 to 100, received ${percent}`,
      );
    }
    this.#maxPercent = percent;
    this.#refreshInterval = duration(
      "refreshInterval",
      refreshInterval,
      30_000,
      0,
      true,
    ) || Infinity;
    // The agent checks the rest (and every pool option) before anything.
    this.#agent = new TcpAgent({
      ...agentOptions,
      backoff: backoff ?? CLUSTER_BACKOFF,
    });
    this.#maxFrame = format(agentOptions.frame, "create cluster", "frame.").max;
    this.#clock = agentOptions.clock ?? SYSTEM_CLOCK;
    if (list !== null) this.#apply(list);
    else this.#refresh().catch(noop);
  }

  // -- calls --

  /**
   * {@linkcode TcpPool.exchange} on a host picked by `balance`: any
   * protocol, one request and its reply. If it fails before it could have
   * done anything (the dial failed, or the host's pool was unreachable) or,
   * unless `idempotent` is `false`, its connection broke, it is retried
   * once on another host, within `timeout` (the whole call's).
   *
   * @typeParam R The reply type.
   * @param payload The request's bytes, written as they are (a function of
   *   the tag with a tagged `pipeline`).
   * @param read Reads one reply from the connection's reader.
   * @param options `timeout`, `signal`, `idempotent`, `verify`, `key`.
   * @returns What `read` returned.
   * @throws {TypeError} If an argument or option has the wrong type, or
   *   `balance.hash` returned no string (nothing is sent).
   * @throws {RangeError} If `timeout` is out of range.
   * @throws {PoolClosedError} If the cluster is closed.
   * @throws The error of the last try: {@linkcode DialError},
   *   {@linkcode ConnectionBrokenError}, a `TimeoutError`, a
   *   `ProtocolError`, `signal.reason`...
   */
  exchange<R>(
    payload: Uint8Array | ((tag: number) => Uint8Array),
    read: (reader: FrameReader) => Promise<R> | R,
    options?: TcpClusterExchangeOptions<R>,
  ): Promise<R> {
    let call: Call;
    try {
      call = this.#check("exchange", payload, read, options, false);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#call(call, payload, read, options);
  }

  /**
   * {@linkcode TcpPool.request} (one length-prefixed frame each way) on a
   * host picked by `balance`, retried as {@linkcode TcpCluster.exchange}
   * is.
   *
   * @param payload The request's payload (a function of the tag with a
   *   tagged `pipeline`).
   * @param options `timeout`, `signal`, `idempotent`, `verify`, `key`.
   * @returns The reply's payload.
   * @throws {TypeError} If an argument or option has the wrong type.
   * @throws {RangeError} If the payload exceeds `maxFrameSize`, or
   *   `timeout` is out of range.
   * @throws {PoolClosedError} If the cluster is closed.
   * @throws The error of the last try, as for {@linkcode TcpCluster.exchange}.
   */
  request(
    payload: Uint8Array | ((tag: number) => Uint8Array),
    options?: TcpClusterRequestOptions,
  ): Promise<Uint8Array> {
    let call: Call;
    try {
      call = this.#check("request", payload, null, options, true);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#call(call, payload, null, options);
  }

  /**
   * Borrows a connection from a host picked by `balance` (a failed dial is
   * retried once on another host). It counts in its host's `inFlight`
   * until it is released or destroyed; what is done on it is not seen by
   * the cluster.
   *
   * @param options `signal`, `timeout` (the whole borrow's; unset: each
   *   host's `acquireTimeout`), `fresh`, `failFast`, `key`.
   * @returns The connection; release it when done.
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If `timeout` is out of range.
   * @throws {PoolClosedError} If the cluster is closed.
   * @throws The error of the last try, as for {@linkcode TcpPool.borrow}.
   */
  borrow(options?: TcpClusterBorrowOptions): Promise<PooledConn> {
    let call: Call;
    try {
      borrowTimeout(options, Infinity);
      call = this.#check("borrow", undefined, undefined, options, false);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#borrow(call, options);
  }

  /** Checks a call's arguments before anything is done. */
  #check(
    what: string,
    payload: unknown,
    read: unknown,
    options:
      | TcpClusterExchangeOptions<never>
      | TcpClusterBorrowOptions
      | undefined,
    frame: boolean,
  ): Call {
    // borrow: no payload, no read; request: no read (null).
    // A function of the tag is checked by the pool (tagged pipelines only).
    if (what !== "borrow" && typeof payload !== "function") {
      bytes(what, "payload", payload);
    }
    if (what === "exchange" && typeof read !== "function") {
      throw new TypeError(
        `Cannot ${what}: read must be a function, received ${describe(read)}`,
      );
    }
    const { signal, timeout } = limits(what, options);
    const o = what === "borrow"
      ? undefined
      : options as TcpClusterExchangeOptions<never> | undefined;
    const verify = o?.verify;
    if (verify !== undefined && typeof verify !== "function") {
      throw new TypeError(
        `Cannot ${what}: verify must be a function, received ${
          describe(verify)
        }`,
      );
    }
    const idempotent = o?.idempotent;
    if (idempotent !== undefined && typeof idempotent !== "boolean") {
      throw new TypeError(
        `Cannot ${what}: idempotent must be a boolean, received ${
          describe(idempotent)
        }`,
      );
    }
    const key = options?.key;
    if (key !== undefined && typeof key !== "string") {
      throw new TypeError(
        `Cannot ${what}: key must be a string, received ${describe(key)}`,
      );
    }
    if (
      frame && typeof payload !== "function" &&
      (payload as Uint8Array).length > this.#maxFrame
    ) {
      throw new RangeError(
        `Cannot ${what}: payload length ${
          (payload as Uint8Array).length
        } exceeds maxFrameSize ${this.#maxFrame}`,
      );
    }
    let keyA = 0;
    let keyB = 0;
    if (this.#hash !== null) {
      const hashed = this.#hash(options ?? EMPTY);
      if (typeof hashed !== "string") {
        throw new TypeError(
          `Cannot ${what}: balance.hash must return a string, received ${
            describe(hashed)
          }`,
        );
      }
      [keyA, keyB] = hashString(hashed);
    }
    return {
      what,
      // A borrow without a timeout waits each pool's acquireTimeout.
      timeout: options?.timeout === undefined ? Infinity : timeout,
      signal,
      idempotent: idempotent !== false,
      keyA,
      keyB,
    };
  }

  async #call<R>(
    call: Call,
    payload: Uint8Array | ((tag: number) => Uint8Array),
    read: ReadReply<R> | null,
    options: TcpClusterExchangeOptions<R> | undefined,
  ): Promise<R> {
    const at = call.timeout === Infinity
      ? Infinity
      : this.#clock.now() + call.timeout;
    let first = options;
    if (this.#closed || this.#hosts.length === 0) {
      await this.#ready(call, at);
      first = this.#left(call, at, options);
    }
    call.signal?.throwIfAborted();
    this.#calls++;
    const host = this.#pick(call, undefined)!;
    try {
      return await this.#try(host, payload, read, first);
    } catch (error) {
      const next = this.#retryOn(call, host, error);
      if (next === undefined) throw error;
      const left = at === Infinity ? Infinity : at - this.#clock.now();
      if (left <= 0) throw error;
      this.#retries++;
      return await this.#try(
        next,
        payload,
        read,
        left === Infinity ? options : { ...options, timeout: left },
      );
    }
  }

  /** One try of a call on `host`. */
  async #try<R>(
    host: Host,
    payload: Uint8Array | ((tag: number) => Uint8Array),
    read: ReadReply<R> | null,
    options: TcpClusterExchangeOptions<R> | undefined,
  ): Promise<R> {
    const pool = this.#poolOf(host);
    host.inFlight++;
    host.calls++;
    try {
      const reply = read === null
        ? await pool.request(payload, options as TcpClusterRequestOptions)
        : await pool.exchange(payload, read, options);
      this.#succeeded(host);
      return reply as R;
    } catch (error) {
      this.#failed(host, error);
      throw error;
    } finally {
      host.inFlight--;
    }
  }

  async #borrow(
    call: Call,
    options: TcpClusterBorrowOptions | undefined,
  ): Promise<PooledConn> {
    const at = call.timeout === Infinity
      ? Infinity
      : this.#clock.now() + call.timeout;
    let first = options;
    if (this.#closed || this.#hosts.length === 0) {
      await this.#ready(call, at);
      first = this.#left(call, at, options);
    }
    call.signal?.throwIfAborted();
    this.#calls++;
    const host = this.#pick(call, undefined)!;
    try {
      return await this.#borrowOn(host, first);
    } catch (error) {
      const next = this.#retryOn(call, host, error);
      if (next === undefined) throw error;
      const left = at === Infinity ? Infinity : at - this.#clock.now();
      if (left <= 0) throw error;
      this.#retries++;
      return await this.#borrowOn(
        next,
        left === Infinity ? options : { ...options, timeout: left },
      );
    }
  }

  async #borrowOn(
    host: Host,
    options: TcpClusterBorrowOptions | undefined,
  ): Promise<PooledConn> {
    const pool = this.#poolOf(host);
    host.inFlight++;
    host.calls++;
    let conn: PooledConn;
    try {
      conn = await pool.borrow(options);
    } catch (error) {
      host.inFlight--;
      this.#failed(host, error);
      throw error;
    }
    this.#succeeded(host);
    // In flight until given back: its release and destroy say when.
    let held = true;
    const done = () => {
      if (held) {
        held = false;
        host.inFlight--;
      }
    };
    const { release, destroy } = conn;
    conn.release = () => {
      done();
      release.call(conn);
    };
    conn.destroy = (reason?: unknown) => {
      done();
      destroy.call(conn, reason);
    };
    return conn;
  }

  /**
   * `options` with what is left of the call's `timeout` after it waited
   * for the hosts; a TimeoutError if nothing is.
   */
  #left<O extends { timeout?: number | undefined }>(
    call: Call,
    at: number,
    options: O | undefined,
  ): O | undefined {
    if (at === Infinity) return options;
    const left = at - this.#clock.now();
    if (left <= 0) {
      throw new TimeoutError(
        `Cannot ${call.what}: timed out after ${
          Math.round(call.timeout)
        } ms (waiting for the hosts)`,
        call.timeout,
      );
    }
    return { ...options, timeout: left } as O;
  }

  /** Before a call's first pick: open, with hosts (a hosts function ran). */
  async #ready(call: Call, at: number): Promise<void> {
    if (this.#closed) {
      throw new PoolClosedError(`Cannot ${call.what}: the cluster is closed`);
    }
    if (this.#hosts.length === 0) {
      // A hosts function that has not delivered a list yet.
      if (this.#refreshing === null) this.#refreshSoon();
      if (this.#refreshing !== null) {
        await this.#within(this.#refreshing, call, at);
      }
      if (this.#closed) {
        throw new PoolClosedError(`Cannot ${call.what}: the cluster is closed`);
      }
      if (this.#hosts.length === 0) {
        const error = this.#refreshError;
        throw new DialError(
          `Cannot ${call.what}: the cluster has no hosts${
            error === undefined
              ? ""
              : ` (hosts() failed: ${
                error instanceof Error ? error.message : String(error)
              })`
          }`,
          { cause: error },
        );
      }
    }
  }

  /**
   * Waits for `work` to settle (its outcome is not the caller's), within
   * the call's deadline and signal; the cluster's close ends the wait too.
   */
  #within(work: Promise<unknown>, call: Call, at: number): Promise<void> {
    const signal = call.signal;
    const stop = this.#stop.signal;
    return new Promise<void>((resolve, reject) => {
      let timer: unknown = undefined;
      const end = (error?: unknown) => {
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        stop.removeEventListener("abort", onStop);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onAbort = () => end(signal!.reason);
      const onStop = () => end();
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      stop.addEventListener("abort", onStop, { once: true });
      if (at !== Infinity) {
        timer = this.#clock.setTimeout(
          () =>
            end(
              new TimeoutError(
                `Cannot ${call.what}: timed out after ${
                  Math.round(call.timeout)
                } ms (waiting for the hosts)`,
                call.timeout,
              ),
            ),
          Math.max(0, at - this.#clock.now()),
        );
      }
      work.then(() => end(), () => end());
    });
  }

  /**
   * Where a failed try goes next: another host if the call may be retried
   * (nothing was sent: a dial failed, the pool was unreachable, exhausted
   * or removed; or the connection broke and the call is idempotent), else
   * undefined.
   */
  #retryOn(call: Call, host: Host, error: unknown): Host | undefined {
    if (this.#closed || call.signal?.aborted) return undefined;
    let again: boolean;
    if (error instanceof DialError || error instanceof PoolExhaustedError) {
      again = true;
    } else if (error instanceof PoolTimeoutError) {
      // The pool's acquireTimeout (not the call's own) while it was down.
      again = host.down;
    } else if (error instanceof PoolClosedError) {
      again = host.removed;
    } else if (error instanceof ConnectionBrokenError) {
      again = call.idempotent;
    } else again = false;
    return again ? this.#pick(call, host) : undefined;
  }

  // -- picking --

  /**
   * A host for a call: among the healthy ones, or, when none is (but
   * `except`), among all of them. Undefined only when `except` is the only
   * host.
   */
  #pick(call: Call, except: Host | undefined): Host | undefined {
    let list = this.#healthyHosts();
    let sums = this.#sums;
    if (except !== undefined && except.healthy) {
      list = list.filter((h) => h !== except);
      sums = cumulative(list);
    }
    if (list.length === 0) {
      // No healthy host: every host (Envoy's panic mode), and maybe a new
      // list from the hosts function.
      this.#panics++;
      this.#refreshSoon();
      list = except === undefined
        ? this.#hosts
        : this.#hosts.filter((h) => h !== except);
      if (list.length === 0) return undefined;
      sums = cumulative(list);
    }
    switch (this.#balance) {
      case P2C:
        return p2c(list, sums);
      case ROUND_ROBIN:
        return roundRobin(list);
      default:
        return rendezvous(list, call.keyA, call.keyB);
    }
  }

  /** The healthy hosts (and #sums, their running weights), kept current. */
  #healthyHosts(): Host[] {
    if (this.#built !== this.#version) {
      this.#healthy = this.#hosts.filter((h) => h.healthy);
      this.#sums = cumulative(this.#healthy);
      this.#built = this.#version;
    }
    return this.#healthy;
  }

  /** `host`'s pool (made on first use), watched for its state. */
  #poolOf(host: Host): TcpPool {
    const pool = this.#agent.pool(host.key);
    if (pool !== host.pool) {
      host.off?.();
      host.pool = pool;
      host.state = pool.state;
      this.#setDown(host, pool.state === "transient_failure");
      host.off = pool.on("statechange", (e) => this.#changed(host, pool, e));
    }
    return pool;
  }

  #setDown(host: Host, down: boolean): void {
    if (host.down === down) return;
    host.down = down;
    this.#version++;
  }

  // -- health --

  #succeeded(host: Host): void {
    host.failures = 0;
    // In panic mode an ejected host may take calls: one that answers is back.
    if (host.ejected) this.#mayReturn(host);
  }

  /** Counts a connect or request failure against `host`; may eject it. */
  #failed(host: Host, error: unknown): void {
    let dial = false;
    if (error instanceof DialError) dial = true;
    else if (
      !(error instanceof ConnectionBrokenError) &&
      !(error instanceof PoolTimeoutError && host.down)
    ) {
      return;
    }
    this.#failures++;
    host.failures++;
    if (
      (dial && refused(error)) || host.failures >= this.#consecutive
    ) {
      this.#eject(host, error);
    }
  }

  /** A statechange of `host`'s pool. */
  #changed(
    host: Host,
    pool: TcpPool,
    e: {
      state: ConnectivityState;
      previous: ConnectivityState;
      error: unknown;
    },
  ): void {
    if (host.pool !== pool || host.removed || this.#closed) return;
    const previous = host.state;
    if (e.state === "closed") {
      // The agent dropped the pool (idle): a new one comes with the next use.
      host.off?.();
      host.off = host.pool = undefined;
      host.state = "idle";
      this.#setDown(host, false);
      this.#emit(host, "state", previous, undefined);
      return;
    }
    host.state = e.state;
    if (e.state === "transient_failure") {
      this.#setDown(host, true);
      this.#emit(host, "state", previous, e.error);
      if (refused(e.error)) this.#eject(host, e.error);
      // Watch for its return: one borrow waits on its pool's probes.
      this.#probe(host);
    } else {
      if (e.state === "ready") this.#setDown(host, false);
      this.#emit(host, "state", previous, undefined);
      if (e.state === "ready" && host.ejected) this.#mayReturn(host);
    }
  }

  /** How many hosts may be ejected at once. */
  #ejectable(): number {
    const n = this.#hosts.length;
    if (this.#maxPercent === 0 || n <= 1) return 0;
    return Math.min(
      n - 1,
      Math.max(1, Math.floor(n * this.#maxPercent / 100)),
    );
  }

  #eject(host: Host, error: unknown): void {
    if (host.ejected || host.removed || this.#closed) return;
    if (this.#ejected >= this.#ejectable()) return;
    const now = this.#clock.now();
    // The count decays by one per baseEjectionTime since it came back.
    host.level = Math.max(
      0,
      host.level - Math.floor((now - host.returnedAt) / this.#base),
    ) + 1;
    const time = Math.min(this.#base * host.level, this.#maxEjection);
    host.ejected = true;
    host.ejectedUntil = now + time;
    host.ejections++;
    this.#ejected++;
    this.#ejections++;
    this.#version++;
    const timer = host.timer = this.#clock.setTimeout(() => {
      host.timer = undefined;
      if (host.removed || this.#closed || !host.ejected) return;
      // Its time is up: a probe decides (at once if its pool is fine).
      if (host.probe === undefined) this.#probe(host);
      else if (!host.down) this.#mayReturn(host);
    }, time);
    this.#clock.unref?.(timer);
    this.#emit(host, "ejected", host.state, error);
  }

  /**
   * An ejected host that just answered (a probe, a call in panic mode, its
   * pool back): back if its time is up, or if no other host is healthy.
   */
  #mayReturn(host: Host): void {
    if (!host.ejected || host.removed || host.down) return;
    if (
      this.#clock.now() < host.ejectedUntil && this.#healthyHosts().length > 0
    ) {
      return;
    }
    host.ejected = false;
    host.ejectedUntil = 0;
    host.returnedAt = this.#clock.now();
    host.failures = 0;
    if (host.timer !== undefined) {
      this.#clock.clearTimeout(host.timer);
      host.timer = undefined;
    }
    this.#ejected--;
    this.#returns++;
    this.#version++;
    this.#emit(host, "returned", host.state, undefined);
  }

  /**
   * Keeps one borrow waiting on `host`'s pool until it gets a connection:
   * the pool dials for it on its backoff schedule (its probes), and the
   * first success brings the host back (see #mayReturn).
   */
  #probe(host: Host): void {
    if (host.probe !== undefined || host.removed || this.#closed) return;
    const ctl = host.probe = new AbortController();
    const task = (async () => {
      try {
        while (!ctl.signal.aborted) {
          try {
            const conn = await this.#poolOf(host).borrow({
              signal: ctl.signal,
              timeout: Infinity,
              failFast: false,
            });
            conn.release();
            host.failures = 0;
            host.probe = undefined;
            this.#mayReturn(host);
            return;
          } catch (error) {
            if (ctl.signal.aborted || this.#closed || host.removed) return;
            if (error instanceof DialError) {
              // The pool holds the next dial to its schedule.
              if (refused(error)) this.#eject(host, error);
              continue;
            }
            await this.#pause(ctl.signal, PROBE_PAUSE);
          }
        }
      } finally {
        if (host.probe === ctl) host.probe = undefined;
      }
    })();
    this.#track(task);
  }

  #pause(signal: AbortSignal, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#clock.clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = this.#clock.setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  #track(task: Promise<void>): void {
    const settled: Promise<void> = task.catch(noop).finally(() =>
      this.#tasks.delete(settled)
    );
    this.#tasks.add(settled);
  }

  // -- the host list --

  /** Makes the host table match `list` (added, removed, reweighted). */
  #apply(list: HostList): void {
    const keep = new Set<string>();
    for (const { key, weight } of list) {
      keep.add(key);
      const known = this.#byKey.get(key);
      if (known !== undefined) {
        if (known.weight !== weight) {
          known.weight = weight;
          this.#version++;
        }
        continue;
      }
      const host = new Host(key, weight);
      this.#hosts.push(host);
      this.#byKey.set(key, host);
      this.#version++;
      this.#emit(host, "added", "idle", undefined);
    }
    for (const host of [...this.#hosts]) {
      if (!keep.has(host.key)) this.#remove(host);
    }
  }

  /** Drops a host: no more calls; its pool drains and closes. */
  #remove(host: Host): void {
    host.removed = true;
    this.#hosts = this.#hosts.filter((h) => h !== host);
    this.#byKey.delete(host.key);
    if (host.ejected) this.#ejected--;
    if (host.timer !== undefined) this.#clock.clearTimeout(host.timer);
    host.timer = undefined;
    host.probe?.abort(
      new PoolClosedError("Cannot probe: the host was removed"),
    );
    host.off?.();
    host.off = undefined;
    this.#version++;
    this.#emit(host, "removed", host.state, undefined);
    const pool = host.pool;
    host.pool = undefined;
    if (pool !== undefined) {
      this.#draining.add(pool);
      this.#track(
        this.#agent.drop(host.key).finally(() => this.#draining.delete(pool)),
      );
    }
  }

  /**
   * Runs the `hosts` function now (or joins the run in flight) and applies
   * its list; a static list: nothing to do.
   *
   * @returns When the run is over.
   * @throws What the function threw, or a `TypeError`/`RangeError` for a
   *   list that is not one (the hosts are then unchanged; the error is also
   *   in {@linkcode TcpCluster.refreshError}).
   */
  refresh(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new PoolClosedError("Cannot refresh hosts: the cluster is closed"),
      );
    }
    return this.#refresh();
  }

  #refresh(): Promise<void> {
    if (this.#refreshing !== null) return this.#refreshing;
    const source = this.#source;
    if (source === null) return Promise.resolve();
    if (this.#refreshTimer !== undefined) {
      this.#clock.clearTimeout(this.#refreshTimer);
      this.#refreshTimer = undefined;
    }
    this.#refreshedAt = this.#clock.now();
    const run = (async () => {
      let list: HostList;
      try {
        list = parseHosts(
          await source({ signal: this.#stop.signal }),
          "refresh hosts",
        );
      } catch (error) {
        if (this.#closed) return;
        this.#refreshError = error;
        this.#refreshErrors++;
        for (const listener of [...this.#refreshListeners]) {
          try {
            listener(error);
          } catch {
            this.#callbackErrors++;
          }
        }
        throw error;
      }
      if (this.#closed) return;
      this.#refreshError = undefined;
      this.#refreshes++;
      this.#apply(list);
    })();
    this.#refreshing = run;
    run.catch(noop).finally(() => {
      this.#refreshing = null;
      this.#armRefresh();
    });
    return run;
  }

  /** A run when no host is healthy: at most one a second. */
  #refreshSoon(): void {
    if (
      this.#source === null || this.#refreshing !== null || this.#closed ||
      this.#clock.now() - this.#refreshedAt < REFRESH_FLOOR
    ) {
      return;
    }
    this.#refresh().catch(noop);
  }

  #armRefresh(): void {
    if (this.#closed || this.#refreshInterval === Infinity) return;
    if (this.#refreshTimer !== undefined) return;
    const timer = this.#refreshTimer = this.#clock.setTimeout(() => {
      this.#refreshTimer = undefined;
      this.#refresh().catch(noop);
    }, this.#refreshInterval);
    this.#clock.unref?.(timer);
  }

  /**
   * The last error of the `hosts` function, until a run succeeds.
   *
   * @returns The error, or `undefined`.
   */
  get refreshError(): unknown {
    return this.#refreshError;
  }

  // -- what it tells --

  /** Every host: its address, weight, state, calls in flight, ejections. */
  get hosts(): TcpClusterHostInfo[] {
    return this.#hosts.map((h) => ({
      address: h.key,
      weight: h.weight,
      state: h.state,
      healthy: h.healthy,
      inFlight: h.inFlight,
      calls: h.calls,
      failures: h.failures,
      ejected: h.ejected,
      ejections: h.ejections,
      ejectedUntil: h.ejected ? h.ejectedUntil : undefined,
    }));
  }

  /** Counts; see {@linkcode TcpClusterStats}. */
  get stats(): TcpClusterStats {
    let healthy = 0;
    for (const h of this.#hosts) if (h.healthy) healthy++;
    return {
      hosts: this.#hosts.length,
      healthy,
      ejected: this.#ejected,
      calls: this.#calls,
      retries: this.#retries,
      failures: this.#failures,
      ejections: this.#ejections,
      returns: this.#returns,
      panics: this.#panics,
      refreshes: this.#refreshes,
      refreshErrors: this.#refreshErrors,
      callbackErrors: this.#callbackErrors,
      agent: this.#agent.stats,
    };
  }

  /**
   * Calls `listener` on every host event (`"statechange"`: see
   * {@linkcode TcpClusterEvent}), or on every failed run of the `hosts`
   * function (`"refresherror"`: the error). A listener that throws is
   * counted in `stats.callbackErrors`.
   *
   * @param type `"statechange"` or `"refresherror"`.
   * @param listener The listener.
   * @returns A function that removes the listener.
   * @throws {TypeError} If `type` is neither, or `listener` is not a
   *   function.
   */
  on(
    type: "statechange",
    listener: (event: TcpClusterEvent) => void,
  ): () => void;
  /**
   * Calls `listener` with the error of every failed run of the `hosts`
   * function (the host list is then kept as it was).
   *
   * @param type `"refresherror"`.
   * @param listener The listener.
   * @returns A function that removes the listener.
   * @throws {TypeError} If `listener` is not a function.
   */
  on(type: "refresherror", listener: (error: unknown) => void): () => void;
  /**
   * Calls `listener` on every pool event of `type` of every host's pool
   * (see {@linkcode TcpAgent.on}); `pool` in each event is the host's
   * address.
   *
   * @typeParam K The event type.
   * @param type `"borrow"`, `"release"`, `"dialstart"`, `"dial"`,
   *   `"dialerror"`, `"dialabandon"`, `"destroy"` or `"timeout"`.
   * @param listener Called with the event (valid during the call only).
   * @returns A function that removes the listener.
   */
  on<K extends PoolEventType>(
    type: K,
    listener: (event: PoolEventMap[K]) => void,
  ): () => void;
  on(
    type: "statechange" | "refresherror" | PoolEventType,
    listener: ((event: TcpClusterEvent) => void) | ((error: unknown) => void),
  ): () => void {
    if (EVENT_TYPES.includes(type as PoolEventType)) {
      return this.#agent.on(
        type as PoolEventType,
        listener as (event: unknown) => void,
      );
    }
    checkListen(type, listener, CLUSTER_EVENTS);
    const set =
      (type === "statechange"
        ? this.#listeners
        : this.#refreshListeners) as Set<typeof listener>;
    set.add(listener);
    return () => void set.delete(listener);
  }

  #emit(
    host: Host,
    change: TcpClusterEvent["change"],
    previous: ConnectivityState,
    error: unknown,
  ): void {
    if (this.#listeners.size === 0) return;
    const event: TcpClusterEvent = {
      address: host.key,
      change,
      state: host.state,
      previous,
      ejected: host.ejected,
      error,
    };
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch {
        this.#callbackErrors++;
      }
    }
  }

  /** `true` once `close` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stops the cluster: its timers and probes, a `hosts` function's run
   * (its signal aborts; its list is ignored), then every pool (as
   * {@linkcode TcpAgent.close}).
   *
   * @param options `force`: close connections in use at once.
   * @returns When every pool is closed.
   * @throws {TypeError} If `options` or `force` has the wrong type.
   */
  async close(options?: PoolCloseOptions): Promise<void> {
    closeForce(options);
    if (!this.#closed) {
      this.#closed = true;
      const reason = new PoolClosedError("Cannot probe: the cluster closed");
      this.#stop.abort(reason);
      if (this.#refreshTimer !== undefined) {
        this.#clock.clearTimeout(this.#refreshTimer);
        this.#refreshTimer = undefined;
      }
      for (const host of this.#hosts) {
        if (host.timer !== undefined) this.#clock.clearTimeout(host.timer);
        host.timer = undefined;
        host.probe?.abort(reason);
        host.off?.();
        host.off = undefined;
      }
    }
    const closing = this.#agent.close(options);
    for (const pool of this.#draining) this.#track(pool.close(options));
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
    await closing;
  }

  /**
   * Closes the cluster, for `await using`.
   *
   * @returns When every pool is closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
