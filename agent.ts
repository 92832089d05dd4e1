// Copyright 2026 the chanpool authors. MIT license.
/**
 * {@linkcode TcpAgent}: a {@linkcode TcpPool} per address, made on first use
 * and dropped when it has been idle for `idleTimeout`, and one cap,
 * `maxTotal`, on the connections of all of them (Go's `http.Transport`
 * with `MaxConnsPerHost` and a global limit, for any TCP protocol).
 *
 * At the cap, a borrow for an address with nothing idle closes an idle
 * connection of another address (the address whose connections went idle
 * least recently) rather than waiting; it waits only when nothing is idle
 * anywhere, first come first served across addresses.
 *
 * @example Usage
 * ```ts
 * import { TcpAgent } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * // Two echo servers.
 * const listeners = [0, 1].map(() =>
 *   Deno.listen({ hostname: "127.0.0.1", port: 0 })
 * );
 * const served = listeners.map(async (l) => {
 *   for await (const conn of l) {
 *     conn.readable.pipeTo(conn.writable).catch(() => {});
 *   }
 * });
 * {
 *   await using agent = new TcpAgent({ maxPerHost: 2, maxTotal: 3 });
 *   for (const l of listeners) {
 *     const reply = await agent.request(
 *       `127.0.0.1:${l.addr.port}`,
 *       new Uint8Array([7]),
 *     );
 *     assert.deepEqual(reply, new Uint8Array([7]));
 *   }
 *   assert.deepEqual([agent.stats.keys, agent.stats.open], [2, 2]);
 * }
 * for (const l of listeners) l.close();
 * await Promise.all(served);
 * ```
 *
 * @module
 */

import type { FrameReader } from "./framing.ts";
import type { BorrowOptions, Pool } from "./pool.ts";
import { type Clock, CoarseClock, SYSTEM_CLOCK } from "./_time.ts";
import { GATE, type Gate, poolHooks, tcpHooks } from "./_internal.ts";
import { describe } from "./_util.ts";
import {
  type PooledConn,
  type PoolExchangeOptions,
  type PoolRequestOptions,
  TcpPool,
  type TcpPoolOptions,
  type TcpPoolStats,
} from "./tcp.ts";
import { PoolClosedError } from "./_errors.ts";
import {
  checkListen,
  EVENT_TYPES,
  type PoolEventMap,
  type PoolEventType,
} from "./_events.ts";

/**
 * Where a {@linkcode TcpAgent} connects: `"host:port"` (`"[::1]:6379"` for
 * IPv6), `{ hostname, port }` (hostname defaulting to `"127.0.0.1"`), or
 * `{ path }` for a Unix socket.
 */
export type TcpAddress =
  | string
  | { hostname?: string | undefined; port: number }
  | { path: string };

/**
 * Options for {@linkcode TcpAgent}: every address's pool gets these
 * {@linkcode TcpPoolOptions} (but where to connect, `max` and the
 * `whenExhausted: "overflow"` mode, whose connections would escape the cap).
 */
export interface TcpAgentOptions extends
  Omit<
    TcpPoolOptions,
    "hostname" | "port" | "path" | "max" | "maxIdle" | "minIdle"
  > {
  /**
   * Connections to one address at once (its pool's `max`): an integer ≥ 1
   * or `Infinity`.
   *
   * @default {10}
   */
  maxPerHost?: number | undefined;
  /**
   * Connections to all addresses at once (idle, in use and being dialed):
   * an integer ≥ 1 or `Infinity`.
   *
   * @default {Infinity}
   */
  maxTotal?: number | undefined;
  /**
   * How long a connection may sit idle before it is closed, and an address
   * with no connection and no use for this long is dropped (its pool
   * closed), in ms; `0`/`Infinity`: never.
   *
   * @default {60_000}
   */
  idleTimeout?: number | undefined;
}

/** Counts of a {@linkcode TcpAgent}, across its addresses. */
export interface TcpAgentStats {
  /** Addresses with a pool now. */
  keys: number;
  /** Connections open now (idle, in use, dialing): counted against `maxTotal`. */
  open: number;
  /** The agent's `maxTotal`. */
  maxTotal: number;
  /** Pools waiting for a place under `maxTotal` (nothing idle anywhere). */
  waitingForCap: number;
  /** Times a pool had to wait for a place under `maxTotal`. */
  capWaits: number;
  /** Idle connections closed to make room under `maxTotal` for another address. */
  capEvictions: number;
  /** Pools made (one per address, again after a drop). */
  poolsCreated: number;
  /** Pools dropped after `idleTimeout` without use, or by `drop`. */
  poolsDropped: number;
}

/** One address's pool and its place in the agent's lists. */
class Key implements Gate {
  readonly agent: TcpAgent;
  readonly name: string;
  readonly pool: TcpPool;
  readonly inner: Pool<unknown>;
  /** Connections of this pool counted against maxTotal. */
  open = 0;
  /** When it was last borrowed from (the agent's coarse clock). */
  used = 0;
  /** In the agent's idle list (most recently idled first). */
  iprev: Key | null = null;
  inext: Key | null = null;
  inIdle = false;
  /** In the queue of pools waiting for a place under maxTotal. */
  wanting = false;

  constructor(agent: TcpAgent, name: string, options: TcpPoolOptions) {
    this.agent = agent;
    this.name = name;
    this.pool = new TcpPool({ ...options, [GATE]: this } as TcpPoolOptions);
    this.inner = tcpHooks.inner(this.pool) as Pool<unknown>;
  }

  take(): boolean {
    return gateTake(this.agent, this);
  }

  give(): void {
    gateGive(this.agent, this);
  }

  idled(): void {
    gateIdled(this.agent, this);
  }

  contended(): boolean {
    return gateContended(this.agent, this);
  }
}

// Bound to TcpAgent's private methods in its static block.
let gateTake: (agent: TcpAgent, key: Key) => boolean;
let gateGive: (agent: TcpAgent, key: Key) => void;
let gateIdled: (agent: TcpAgent, key: Key) => void;
let gateContended: (agent: TcpAgent, key: Key) => boolean;

function count(
  name: string,
  value: unknown,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot create agent: ${name} must be a number, received ${
        describe(value)
      }`,
    );
  }
  if (!(value >= 1) || (!Number.isInteger(value) && value !== Infinity)) {
    throw new RangeError(
      `Cannot create agent: ${name} must be an integer ≥ 1 or Infinity, received ${value}`,
    );
  }
  return value;
}

/** The pool key of an address (TcpPool's `address` form), checked. */
export function addressKey(address: unknown, what = "use agent"): string {
  if (typeof address === "string") {
    const m = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d+)$/.exec(address);
    if (m === null) {
      throw new TypeError(
        `Cannot ${what}: address must be "host:port", { hostname, port } or { path }, received ${
          describe(address)
        }`,
      );
    }
    const port = Number(m[3]);
    if (!(port >= 1 && port <= 65535)) {
      throw new RangeError(
        `Cannot ${what}: address port must be from 1 to 65535, received ${
          describe(address)
        }`,
      );
    }
    return address;
  }
  if (typeof address === "object" && address !== null) {
    const a = address as { hostname?: unknown; port?: unknown; path?: unknown };
    if (a.path !== undefined) {
      if (typeof a.path !== "string" || a.path === "") {
        throw new TypeError(
          `Cannot ${what}: address.path must be a non-empty string, received ${
            describe(a.path)
          }`,
        );
      }
      return `unix:${a.path}`;
    }
    const host = a.hostname ?? "127.0.0.1";
    if (typeof host !== "string" || host === "") {
      throw new TypeError(
        `Cannot ${what}: address.hostname must be a non-empty string, received ${
          describe(host)
        }`,
      );
    }
    if (
      typeof a.port !== "number" || !Number.isInteger(a.port) || a.port < 1 ||
      a.port > 65535
    ) {
      throw new (typeof a.port === "number" ? RangeError : TypeError)(
        `Cannot ${what}: address.port must be an integer from 1 to 65535, received ${
          describe(a.port)
        }`,
      );
    }
    return `${host.includes(":") ? `[${host}]` : host}:${a.port}`;
  }
  throw new TypeError(
    `Cannot ${what}: address must be "host:port", { hostname, port } or { path }, received ${
      describe(address)
    }`,
  );
}

/** TcpPoolOptions for the address behind a key. */
function where(key: string): { hostname: string; port: number } | {
  path: string;
} {
  if (key.startsWith("unix:")) return { path: key.slice(5) };
  const colon = key.lastIndexOf(":");
  let host = key.slice(0, colon);
  if (host.startsWith("[")) host = host.slice(1, -1);
  return { hostname: host, port: Number(key.slice(colon + 1)) };
}

/**
 * A pool per address and one cap on all their connections; see the module
 * docs.
 *
 * @example Usage
 * ```ts
 * import { TcpAgent } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = (async () => {
 *   for await (const conn of listener) {
 *     conn.readable.pipeTo(conn.writable).catch(() => {});
 *   }
 * })();
 * {
 *   await using agent = new TcpAgent({ maxTotal: 64 });
 *   const address = { port: listener.addr.port };
 *   const line = await agent.exchange(
 *     address,
 *     new TextEncoder().encode("hello\n"),
 *     (reader) => reader.readLine(),
 *   );
 *   assert.equal(line, "hello");
 *   assert.equal(agent.statsFor(address)?.open, 1);
 * }
 * listener.close();
 * await served;
 * ```
 */
export class TcpAgent implements AsyncDisposable {
  readonly #options: TcpPoolOptions;
  readonly #maxTotal: number;
  readonly #idleTimeout: number;
  readonly #clock: Clock;
  readonly #coarse: CoarseClock;
  // Every address's pool, by its key (an address string as given is one).
  readonly #keys = new Map<string, Key>();
  /** Pool event listeners, attached to every key's pool. */
  readonly #eventListeners = new Set<{
    type: PoolEventType;
    listener: (event: never) => void;
    offs: Map<Key, () => void>;
  }>();
  // Keys of address objects already seen (an object reused for every call
  // costs a lookup, not a parse).
  readonly #named = new WeakMap<object, string>();
  // Connections open across pools (each key's `open` summed).
  #open = 0;
  // Pools that had an idle connection, most recently idled first: at the
  // cap, one is closed from the tail (the least recently idled address).
  #idleHead: Key | null = null;
  #idleTail: Key | null = null;
  // Pools waiting for a place under maxTotal, first come first served.
  #wanting: Key[] = [];
  // Closing an idle connection for another pool's place: the place it
  // frees is that pool's, not the queue's.
  #evicting = false;
  #sweep: ReturnType<typeof setTimeout> | undefined = undefined;
  #closed = false;
  #capWaits = 0;
  #capEvictions = 0;
  #poolsCreated = 0;
  #poolsDropped = 0;
  readonly #closing = new Set<Promise<void>>();

  /**
   * Makes an agent; pools are made as addresses are first used.
   *
   * @param options Every pool's options, `maxPerHost`, `maxTotal`,
   *   `idleTimeout`.
   * @throws {TypeError} If an option has the wrong type, or is one the agent
   *   sets itself (`hostname`, `port`, `path`, `max`).
   * @throws {RangeError} If an option is out of range (and
   *   `whenExhausted: "overflow"`: its connections would escape the cap).
   */
  constructor(options: TcpAgentOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `Cannot create agent: options must be an object, received ${
          describe(options)
        }`,
      );
    }
    const { maxPerHost, maxTotal, idleTimeout = 60_000, ...rest } = options;
    for (
      const name of ["hostname", "port", "path", "max", "maxIdle", "minIdle"]
    ) {
      if ((options as Record<string, unknown>)[name] !== undefined) {
        throw new TypeError(
          `Cannot create agent: ${name} is the agent's to set (per address), received ${
            describe((options as Record<string, unknown>)[name])
          }`,
        );
      }
    }
    if ((rest as TcpPoolOptions).whenExhausted === "overflow") {
      throw new RangeError(
        `Cannot create agent: whenExhausted must be "wait" or "fail" (overflow connections would escape maxTotal), received "overflow"`,
      );
    }
    this.#maxTotal = count("maxTotal", maxTotal, Infinity);
    const max = count("maxPerHost", maxPerHost, 10);
    if (typeof idleTimeout !== "number" || !(idleTimeout >= 0)) {
      throw new (typeof idleTimeout === "number" ? RangeError : TypeError)(
        `Cannot create agent: idleTimeout must be a non-negative number of milliseconds, received ${
          describe(idleTimeout)
        }`,
      );
    }
    this.#idleTimeout = idleTimeout || Infinity;
    this.#options = { ...rest, max, idleTimeout } as TcpPoolOptions;
    this.#clock = rest.clock ?? SYSTEM_CLOCK;
    this.#coarse = new CoarseClock(this.#clock, 10);
    // Checks every pool option now, with a pool that never dials.
    new TcpPool({ ...this.#options, port: 1 }).close();
  }

  /**
   * Borrows a connection to `address` from its pool (made on first use).
   *
   * @param address `"host:port"`, `{ hostname, port }` or `{ path }`.
   * @param options As for {@linkcode TcpPool.borrow}.
   * @returns The connection; release it when done.
   * @throws {TypeError} If the address or an option is malformed.
   * @throws {PoolClosedError} If the agent is closed.
   */
  borrow(address: TcpAddress, options?: BorrowOptions): Promise<PooledConn> {
    try {
      return this.#key(address).pool.borrow(options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * {@linkcode TcpPool.exchange} on `address`'s pool.
   *
   * @typeParam R The reply type.
   * @param address Where to send it.
   * @param payload The request's bytes (a function of the tag with a
   *   tagged `pipeline`).
   * @param read Reads one reply.
   * @param options As for {@linkcode TcpPool.exchange}.
   * @returns What `read` returned.
   */
  exchange<R>(
    address: TcpAddress,
    payload: Uint8Array | ((tag: number) => Uint8Array),
    read: (reader: FrameReader) => Promise<R> | R,
    options?: PoolExchangeOptions<R>,
  ): Promise<R> {
    try {
      return this.#key(address).pool.exchange(payload, read, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * {@linkcode TcpPool.request} on `address`'s pool.
   *
   * @param address Where to send it.
   * @param payload The request's payload (with a tagged `pipeline`, a
   *   function of the tag that returns it).
   * @param options As for {@linkcode TcpPool.request}.
   * @returns The reply's payload.
   */
  request(
    address: TcpAddress,
    payload: Uint8Array | ((tag: number) => Uint8Array),
    options?: PoolRequestOptions,
  ): Promise<Uint8Array> {
    try {
      return this.#key(address).pool.request(payload, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The pool of `address` (made on first use): for its `state`, `on`,
   * `stats`. Closing it is the agent's business.
   *
   * @param address The address.
   * @returns Its pool.
   */
  pool(address: TcpAddress): TcpPool {
    return this.#key(address).pool;
  }

  /**
   * Calls `listener` on every pool event of `type` of every address's pool,
   * those made later included (see {@linkcode TcpPool.on}); `pool` in each
   * event is the address.
   *
   * @typeParam K The event type.
   * @param type `"borrow"`, `"release"`, `"dialstart"`, `"dial"`,
   *   `"dialerror"`, `"dialabandon"`, `"destroy"` or `"timeout"`.
   * @param listener Called with the event (valid during the call only).
   * @returns A function that removes the listener.
   * @throws {TypeError} If `type` is not a pool event or `listener` is not
   *   a function.
   */
  on<K extends PoolEventType>(
    type: K,
    listener: (event: PoolEventMap[K]) => void,
  ): () => void {
    checkListen(type, listener, EVENT_TYPES);
    const entry = {
      type,
      listener: listener as (event: never) => void,
      offs: new Map<Key, () => void>(),
    };
    this.#eventListeners.add(entry);
    for (const key of this.#keys.values()) {
      entry.offs.set(key, key.pool.on(type, listener));
    }
    return () => {
      this.#eventListeners.delete(entry);
      for (const off of entry.offs.values()) off();
      entry.offs.clear();
    };
  }

  /**
   * `address`'s pool's counts, or `undefined` when it has no pool now.
   *
   * @param address The address.
   * @returns Its stats.
   */
  statsFor(address: TcpAddress): TcpPoolStats | undefined {
    const key = this.#keys.get(addressKey(address, "read stats"));
    return key?.pool.stats;
  }

  /** Counts across addresses; see {@linkcode TcpAgentStats}. */
  get stats(): TcpAgentStats {
    return {
      keys: this.#keys.size,
      open: this.#open,
      maxTotal: this.#maxTotal,
      waitingForCap: this.#wanting.length,
      capWaits: this.#capWaits,
      capEvictions: this.#capEvictions,
      poolsCreated: this.#poolsCreated,
      poolsDropped: this.#poolsDropped,
    };
  }

  /**
   * Closes `address`'s pool (as {@linkcode TcpPool.close}: idle connections
   * at once, those in use when released; borrows waiting for one reject
   * with {@linkcode PoolClosedError}) and forgets it: the address's next
   * use makes a new pool. Counted in `stats.poolsDropped`.
   *
   * @param address The address.
   * @returns When its pool is closed; at once if it has none.
   * @throws {TypeError} If the address is malformed.
   */
  drop(address: TcpAddress): Promise<void> {
    let name: string;
    try {
      name = addressKey(address, "drop address");
    } catch (error) {
      return Promise.reject(error);
    }
    const key = this.#keys.get(name);
    if (key === undefined) return Promise.resolve();
    this.#keys.delete(name);
    this.#unlistIdle(key);
    this.#unlisten(key);
    if (key.wanting) {
      key.wanting = false;
      this.#wanting = this.#wanting.filter((k) => k !== key);
    }
    this.#poolsDropped++;
    const closing = key.pool.close();
    this.#closing.add(closing);
    closing.finally(() => this.#closing.delete(closing));
    return closing;
  }

  /** The addresses that have a pool now. */
  keys(): string[] {
    return [...this.#keys.keys()];
  }

  /** `true` once `close` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Closes every pool (as {@linkcode TcpPool.close}) and stops the agent.
   *
   * @param options `force`: close connections in use at once.
   * @returns When every pool is closed.
   */
  async close(options?: { force?: boolean | undefined }): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearTimeout(this.#sweep);
      this.#sweep = undefined;
      this.#coarse.stop();
    }
    const pools = [...this.#keys.values()].map((k) => k.pool.close(options));
    await Promise.all([...pools, ...this.#closing]);
  }

  /**
   * Closes the agent, for `await using`.
   *
   * @returns When every pool is closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -- pools --

  /** `key`'s pool is dropped: the event listeners let go of it. */
  #unlisten(key: Key): void {
    for (const e of this.#eventListeners) e.offs.delete(key);
  }

  /** The key for `address`, its pool made on first use; marks it used. */
  #key(address: TcpAddress): Key {
    if (this.#closed) {
      throw new PoolClosedError("Cannot use agent: it is closed");
    }
    let key = typeof address === "string" ? this.#keys.get(address) : undefined;
    if (key === undefined) {
      const name = typeof address === "object" && address !== null
        ? this.#objectKey(address)
        : addressKey(address);
      key = this.#keys.get(name);
      if (key === undefined) {
        key = new Key(this, name, { ...this.#options, ...where(name) });
        this.#keys.set(name, key);
        for (const e of this.#eventListeners) {
          e.offs.set(
            key,
            key.pool.on(e.type, e.listener as (event: unknown) => void),
          );
        }
        this.#poolsCreated++;
        this.#armSweep();
      }
    }
    key.used = this.#coarse.now();
    return key;
  }

  /** The key of an address object, remembered per object. */
  #objectKey(address: object): string {
    let name = this.#named.get(address);
    if (name === undefined) {
      name = addressKey(address);
      this.#named.set(address, name);
    }
    return name;
  }

  #armSweep(): void {
    if (this.#sweep !== undefined || this.#idleTimeout === Infinity) return;
    const period = Math.max(10, Math.min(this.#idleTimeout / 2, 30_000));
    this.#sweep = setTimeout(this.#swept, period);
    Deno.unrefTimer(this.#sweep);
  }

  /** Drops pools with no connection, no waiter and no use for idleTimeout. */
  readonly #swept = (): void => {
    this.#sweep = undefined;
    if (this.#closed) return;
    const now = this.#clock.now();
    for (const [name, key] of this.#keys) {
      if (
        key.open === 0 && !key.wanting &&
        now - key.used >= this.#idleTimeout &&
        poolHooks.waitingCount(key.inner) === 0
      ) {
        this.#keys.delete(name);
        this.#unlistIdle(key);
        this.#unlisten(key);
        this.#poolsDropped++;
        const closing = key.pool.close();
        this.#closing.add(closing);
        closing.finally(() => this.#closing.delete(closing));
      }
    }
    if (this.#keys.size > 0) this.#armSweep();
  };

  // -- the cap (each pool's gate) --

  #take(key: Key): boolean {
    if (this.#open >= this.#maxTotal && !this.#evicting) {
      // At the cap: close the least recently idled connection of another
      // address rather than wait.
      this.#evicting = true;
      try {
        for (let k = this.#idleTail; k !== null;) {
          const prev: Key | null = k.iprev;
          if (k !== key) {
            if (poolHooks.idleCount(k.inner) === 0) this.#unlistIdle(k);
            else if (poolHooks.evictIdle(k.inner)) {
              this.#capEvictions++;
              break;
            }
          }
          k = prev;
        }
      } finally {
        this.#evicting = false;
      }
    }
    if (this.#open < this.#maxTotal) {
      this.#open++;
      key.open++;
      return true;
    }
    if (!key.wanting) {
      key.wanting = true;
      this.#wanting.push(key);
      this.#capWaits++;
    }
    return false;
  }

  #give(key: Key): void {
    this.#open--;
    key.open--;
    // A place freed to make room for another pool is that pool's.
    if (this.#evicting) return;
    // The first waiting pools dial (each takes its place as it does).
    while (this.#wanting.length > 0 && this.#open < this.#maxTotal) {
      const next = this.#wanting.shift()!;
      next.wanting = false;
      poolHooks.wake(next.inner);
    }
  }

  /** `key`'s pool idled a connection: most recently idled first. */
  #idled(key: Key): void {
    if (this.#wanting.length > 0 && this.#open >= this.#maxTotal) {
      // Pools wait for a place while this one is idle: close it for them.
      if (poolHooks.evictIdle(key.inner)) this.#capEvictions++;
      return;
    }
    if (this.#idleHead === key) return;
    this.#unlistIdle(key);
    key.inIdle = true;
    key.iprev = null;
    key.inext = this.#idleHead;
    if (this.#idleHead !== null) this.#idleHead.iprev = key;
    this.#idleHead = key;
    if (this.#idleTail === null) this.#idleTail = key;
  }

  /** At the cap, another pool than `key`'s waits for a place. */
  #contended(key: Key): boolean {
    const wanting = this.#wanting;
    return this.#open >= this.#maxTotal &&
      (wanting.length > 1 || (wanting.length === 1 && wanting[0] !== key));
  }

  #unlistIdle(key: Key): void {
    if (!key.inIdle) return;
    key.inIdle = false;
    const { iprev, inext } = key;
    if (iprev === null) this.#idleHead = inext;
    else iprev.inext = inext;
    if (inext === null) this.#idleTail = iprev;
    else inext.iprev = iprev;
    key.iprev = key.inext = null;
  }

  static {
    gateTake = (agent, key) => agent.#take(key);
    gateGive = (agent, key) => agent.#give(key);
    gateIdled = (agent, key) => agent.#idled(key);
    gateContended = (agent, key) => agent.#contended(key);
  }
}
