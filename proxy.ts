// Copyright 2026 the chanpool authors. MIT license.
/**
 * A TCP proxy whose upstream connections come from a {@linkcode TcpPool}:
 * {@linkcode proxy} pipes one accepted connection to a borrowed upstream,
 * {@linkcode serveProxy} accepts clients and proxies each. The handshake
 * (TCP, TLS) with the upstream leaves the client's critical path: the pool
 * keeps upstreams dialed ahead (`minIdle`).
 *
 * Bytes are copied both ways; a half-close is passed on (the client's EOF
 * becomes a `closeWrite` upstream, and back). When either side fails, or the
 * session sits idle past `idleTimeout`, both sides are closed at once and
 * nothing is left pending.
 *
 * Upstreams are not reused by default (`reuse: false`): each serves one
 * session and is destroyed, so no session can ever see another's bytes;
 * the pool is a warm, pre-dialed set.
 *
 * With `reuse`, an upstream may go back to the pool after a session that
 * ended cleanly: the client half-closed, every byte the upstream sent was
 * delivered to the client, and the upstream then stayed quiet for
 * `drainTime` (the clock runs only while no write to the client is in
 * flight); every byte written upstream was followed by some reply bytes,
 * nothing is buffered or in flight, and the upstream never saw EOF. Any
 * other end destroys it. A byte pipe cannot know where a protocol's reply
 * ends, so that is all `reuse: true` can check: a reply that comes after
 * `drainTime`, or state the session left on the server (a selected
 * database, an open transaction), can reach the next session. Use it only
 * for stateless request/response protocols whose replies come within
 * `drainTime`. `reuse: { reset }` adds the protocol's help, as pgbouncer's
 * `server_reset_query` does: after a clean end, `reset(conn, signal)` runs
 * an exchange that clears the server's state and verifies the answer
 * (Redis: `RESET`, expect `+RESET`). A late reply comes before that answer
 * and fails the verify; `reset` returning `false`, throwing or running past
 * its `timeout` destroys the upstream.
 *
 * @example A proxy in front of an echo server
 * ```ts
 * import { serveProxy, TcpPool } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = (async () => {
 *   for await (const conn of upstream) {
 *     conn.readable.pipeTo(conn.writable).catch(() => {});
 *   }
 * })();
 * {
 *   await using pool = new TcpPool({ port: upstream.addr.port, minIdle: 2 });
 *   await using server = serveProxy({ hostname: "127.0.0.1", port: 0 }, pool);
 *   const client = await Deno.connect({ port: server.addr.port });
 *   await client.write(new TextEncoder().encode("hello"));
 *   await client.closeWrite();
 *   assert.equal(await new Response(client.readable).text(), "hello");
 * }
 * upstream.close();
 * await served;
 * ```
 *
 * @module
 */

import { checkListen } from "./_events.ts";
import { TimeoutError } from "./_errors.ts";
import { connHooks } from "./_conn.ts";
import { type PooledConn, TcpPool } from "./tcp.ts";
import { TcpCluster } from "./cluster.ts";
import { describe, tooLong } from "./_util.ts";

/**
 * `reuse` with the protocol's help: what runs on an upstream before it goes
 * back to the pool (see the module docs).
 *
 * @example Redis (6.2 or later): `RESET`, verified
 * ```ts
 * import type { ReuseOptions } from "@chanpool/chanpool";
 *
 * const reuse: ReuseOptions = {
 *   reset: (conn, signal) =>
 *     conn.exchange(
 *       new TextEncoder().encode("*1\r\n$5\r\nRESET\r\n"),
 *       (reader) => reader.readLine(),
 *       { signal, verify: (_request, line) => line === "+RESET" },
 *     ),
 *   timeout: 500,
 * };
 * ```
 */
export interface ReuseOptions {
  /**
   * Runs after a session's clean end, on the upstream it used: brings the
   * server back to a fresh session's state and proves the connection is in
   * step, typically with {@linkcode PooledConn.exchange} and a `verify`
   * (Redis: `RESET`, expect `+RESET`). Bytes that arrived after the session
   * ended are still unread, so they come before the answer and fail the
   * verify. Pass `signal` to the calls: it aborts at `timeout` or when the
   * session's signal does. Returning (or resolving with) `false`, throwing
   * or running past `timeout` destroys the upstream; anything else gives
   * it back to the pool, if it is still clean.
   */
  reset: (conn: PooledConn, signal: AbortSignal) => unknown;
  /**
   * How long `reset` may take, in ms; `0` or `Infinity`: no limit.
   *
   * @default {1_000}
   */
  timeout?: number | undefined;
}

/** Options for {@linkcode proxy} and {@linkcode serveProxy}. */
export interface ProxyOptions {
  /**
   * Ends the session (both sides closed) when it aborts; already aborted,
   * the session rejects with its reason before borrowing an upstream.
   */
  signal?: AbortSignal | undefined;
  /**
   * End a session that moved no byte either way for this long, in ms: a
   * slowloris guard. A byte counts as moved when it is read from either
   * side and when a write of it to either side completes, so a client that
   * reads a long reply slowly keeps its session, and one that stops
   * reading is cut: after at least this long without a byte moved, and at
   * most an eighth longer (the clock ticks 8 times per idleTimeout). `0`
   * or `Infinity`: never.
   *
   * @default {60_000}
   */
  idleTimeout?: number | undefined;
  /**
   * How long to wait for an upstream, in ms (the borrow's `timeout`); `0` or
   * `Infinity`: no limit (the pool's `acquireTimeout` does not apply).
   *
   * @default {the pool's acquireTimeout}
   */
  connectTimeout?: number | undefined;
  /**
   * Give an upstream back to the pool after a session that ended cleanly
   * (see the module docs): `true` for stateless request/response protocols
   * only, or `{ reset, timeout }` to run the protocol's reset first. By
   * default every upstream serves one session.
   *
   * @default {false}
   */
  reuse?: boolean | ReuseOptions | undefined;
  /**
   * With `reuse`: after the client's half-close, how long the upstream must
   * stay quiet, in ms, counted from the last byte delivered to the client,
   * before the session ends. Not a timeout: `0` ends the session as soon as
   * the last byte the upstream sent was delivered (at the next turn of the
   * event loop); `Infinity`: the drain never ends it (the upstream's close
   * or `idleTimeout` does, and the upstream is then not reused).
   *
   * @default {100}
   */
  drainTime?: number | undefined;
}

/** What one proxied session moved. */
export interface ProxyResult {
  /** Bytes from the client to the upstream. */
  sent: number;
  /** Bytes from the upstream delivered to the client. */
  received: number;
  /** Whether the upstream went back to the pool (`reuse`). */
  reused: boolean;
  /**
   * With `reuse.reset`: why the reset failed (the upstream was destroyed):
   * what it threw, or an `Error` when it returned `false`. Absent when no
   * reset ran or it succeeded.
   */
  resetError?: unknown;
}

/** A connection the proxy accepted: what `Deno.listen` yields. */
export type Downstream = Deno.Conn;

const BUFFER = 64 * 1024;

/**
 * Copy buffers of ended sessions, for the next ones to take: a session's
 * setup then allocates (and zeroes) no 64 KiB, and leaves no garbage. At
 * most SPARES are kept (2 MiB). A buffer comes back only once its copy loop
 * has returned, when no read or write of it is pending; a session only
 * ever sends the bytes it read into it, never what an earlier one left.
 */
const spares: Uint8Array[] = [];
const SPARES = 32;

function takeBuffer(): Uint8Array {
  return spares.pop() ?? new Uint8Array(BUFFER);
}

function giveBuffer(buf: Uint8Array): void {
  if (spares.length < SPARES) spares.push(buf);
}

function noop(): void {}

/**
 * How many ticks the idle clock makes per idleTimeout: 8 (a session is cut
 * after 1 to 1.125 times idleTimeout of quiet), fewer for timeouts under
 * 40 ms, so that a tick is not shorter than 5 ms.
 */
function idleTicks(idle: number): number {
  return Math.max(1, Math.min(8, Math.floor(idle / 5)));
}

/** A duration option, checked: a number of ms ≥ 0 (finite ones ≤ 2^31 − 1). */
function milliseconds(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot proxy: ${name} must be a number of milliseconds, received ${
        describe(value)
      }`,
    );
  }
  if (!(value >= 0)) {
    throw new RangeError(
      `Cannot proxy: ${name} must be a non-negative number of milliseconds, received ${value}`,
    );
  }
  const long = tooLong("proxy", name, value);
  if (long !== undefined) throw long;
  return value;
}

/** A timeout option: 0, like Infinity, is no limit (Infinity returned). */
function duration(name: string, value: unknown, fallback: number): number {
  return milliseconds(name, value, fallback) || Infinity;
}

type Reset = (conn: PooledConn, signal: AbortSignal) => unknown;

interface Settings {
  signal: AbortSignal | undefined;
  /**
   * serveProxy's reason for ending its sessions on close(): a session
   * ended with it did not fail (undefined for proxy()).
   */
  closing: unknown;
  idle: number;
  /** The borrow's timeout (undefined: the pool's acquireTimeout). */
  connect: number | undefined;
  reuse: boolean;
  reset: Reset | undefined;
  resetTimeout: number;
  drain: number;
}

function reuseSettings(
  reuse: unknown,
): { reuse: boolean; reset: Reset | undefined; resetTimeout: number } {
  if (reuse === undefined || typeof reuse === "boolean") {
    return { reuse: reuse ?? false, reset: undefined, resetTimeout: 1_000 };
  }
  if (typeof reuse !== "object" || reuse === null) {
    throw new TypeError(
      `Cannot proxy: reuse must be a boolean or an object with a reset function, received ${
        describe(reuse)
      }`,
    );
  }
  const { reset, timeout } = reuse as ReuseOptions;
  if (typeof reset !== "function") {
    throw new TypeError(
      `Cannot proxy: reuse.reset must be a function, received ${
        describe(reset)
      }`,
    );
  }
  return {
    reuse: true,
    reset,
    resetTimeout: duration("reuse.timeout", timeout, 1_000),
  };
}

function settings(options: ProxyOptions | undefined): Settings {
  if (
    options !== undefined && (typeof options !== "object" || options === null)
  ) {
    throw new TypeError(
      `Cannot proxy: options must be an object, received ${describe(options)}`,
    );
  }
  const o = options ?? {};
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new TypeError(
      `Cannot proxy: signal must be an AbortSignal, received ${
        describe(o.signal)
      }`,
    );
  }
  return {
    signal: o.signal,
    closing: undefined,
    idle: duration("idleTimeout", o.idleTimeout, 60_000),
    connect: o.connectTimeout === undefined
      ? undefined
      : duration("connectTimeout", o.connectTimeout, 0),
    ...reuseSettings(o.reuse),
    drain: milliseconds("drainTime", o.drainTime, 100),
  };
}

/** Checks proxy()'s `downstream`: a connection (what Deno.listen yields). */
function checkDownstream(downstream: unknown): void {
  const d = downstream as Partial<Record<string, unknown>> | null;
  if (
    typeof d !== "object" || d === null ||
    typeof d.read !== "function" || typeof d.write !== "function" ||
    typeof d.closeWrite !== "function" || typeof d.close !== "function"
  ) {
    throw new TypeError(
      `Cannot proxy: downstream must be a connection (with read, write, closeWrite and close methods), received ${
        describe(downstream)
      }`,
    );
  }
}

/**
 * Checks `pool`: a TcpPool or a TcpCluster (whose borrow lends a TcpPool's
 * connection), by `instanceof` (the proxy reads its connections through
 * their internals, so an object that only looks like one would fail
 * mid-session).
 */
function checkPool(pool: unknown, where: string): void {
  if (!(pool instanceof TcpPool) && !(pool instanceof TcpCluster)) {
    throw new TypeError(
      `Cannot ${where}: pool must be a TcpPool or a TcpCluster, received ${
        describe(pool)
      }`,
    );
  }
}

/**
 * `work`, or `signal.reason` once it aborts, whichever comes first; a later
 * rejection of `work` is handled (nobody waits for it any more).
 */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(noop);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then((value) => {
      signal.removeEventListener("abort", onAbort);
      resolve(value);
    }, (error) => {
      signal.removeEventListener("abort", onAbort);
      reject(error);
    });
  });
}

/** One session: two copies, one end. */
class Session {
  readonly #down: Downstream;
  readonly #up: PooledConn;
  readonly #s: Settings;
  sent = 0;
  received = 0;
  #ended = false;
  #error: unknown = undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  #drainTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  #clientDone = false;
  #upstreamDone = false;
  /** A write to the client is in flight: the drain clock must not run. */
  #delivering = false;
  /** Bytes moved since the idle clock's last tick. */
  #moved = false;
  /** Ticks in a row that saw no byte move. */
  #quiet = 0;
  readonly #done = Promise.withResolvers<void>();
  /** Ended on the drain: the upstream's last read was left pending. */
  #parked = false;
  #reused = false;
  #resetting: Promise<void> | undefined = undefined;
  #resetFailed = false;
  #resetError: unknown = undefined;
  /** Ended by serveProxy's close() (`Settings.closing`): not a failure. */
  closed = false;

  constructor(down: Downstream, up: PooledConn, s: Settings) {
    this.#down = down;
    this.#up = up;
    this.#s = s;
  }

  async run(): Promise<ProxyResult> {
    const signal = this.#s.signal;
    const onAbort = () => this.#fail(signal!.reason);
    // Aborted while the borrow resolved: end before moving a byte.
    if (signal?.aborted) this.#fail(signal.reason);
    else signal?.addEventListener("abort", onAbort, { once: true });
    this.#armIdle();
    const toUpstream = this.#clientToUpstream();
    const toClient = this.#upstreamToClient();
    try {
      await this.#done.promise;
      await toUpstream;
      // Ended on the drain, the upstream's last read stays pending (as the
      // reader's prefetch: the reset or the idle watch takes its bytes);
      // its copy loop ends when that read does, taking nothing.
      if (!this.#parked) await toClient;
      await this.#resetting;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#stopTimers();
    }
    if (this.#error !== undefined) {
      if (this.#s.closing === undefined || this.#error !== this.#s.closing) {
        throw this.#error;
      }
      this.closed = true;
    }
    const result: ProxyResult = {
      sent: this.sent,
      received: this.received,
      reused: this.#reused,
    };
    if (this.#resetFailed) result.resetError = this.#resetError;
    return result;
  }

  /**
   * Starts the idle clock. Moving bytes costs the copy loops one field
   * write (`#moved`), no clock read and no timer: a tick every
   * idleTimeout / idleTicks(idleTimeout) looks at it, and the session is
   * cut after that many ticks in a row that saw nothing move, so after at
   * least idleTimeout of quiet and at most one tick more.
   */
  #armIdle(): void {
    const idle = this.#s.idle;
    if (idle === Infinity || this.#ended) return;
    const ticks = idleTicks(idle);
    const every = idle / ticks;
    const tick = () => {
      this.#idleTimer = undefined;
      if (this.#ended) return;
      if (this.#moved) {
        this.#moved = false;
        this.#quiet = 0;
      } else if (++this.#quiet >= ticks) {
        this.#fail(
          new TimeoutError(
            `Proxy session idle for ${Math.round(idle)} ms`,
            idle,
          ),
        );
        return;
      }
      // Re-armed from the tick itself: ticks are never closer than `every`.
      this.#idleTimer = setTimeout(tick, every);
    };
    this.#idleTimer = setTimeout(tick, every);
  }

  #stopTimers(): void {
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#drainTimer);
    this.#idleTimer = this.#drainTimer = undefined;
  }

  async #clientToUpstream(): Promise<void> {
    const buf = takeBuffer();
    const down = this.#down;
    const up = this.#up;
    try {
      while (!this.#ended) {
        const n = await down.read(buf);
        if (this.#ended) return;
        if (n === null) break;
        this.#moved = true;
        await connHooks.push(up, n === BUFFER ? buf : buf.subarray(0, n));
        this.sent += n;
        this.#moved = true;
      }
      if (this.#ended) return;
      this.#clientDone = true;
      if (!this.#s.reuse) {
        await up.closeWrite();
        this.#maybeEnd();
      } else if (this.#upstreamDone) this.#maybeEnd();
      else if (!this.#delivering) this.#armDrain();
      // (else the drain clock starts when that write completes)
    } catch (error) {
      this.#fail(error);
    } finally {
      giveBuffer(buf);
    }
  }

  async #upstreamToClient(): Promise<void> {
    // Without reuse the upstream is destroyed at the end: read straight into
    // one buffer of ours. With it, through the connection's reader, so a
    // read left pending at the end loses nothing (its bytes land in the
    // reader's buffer, for the reset or the idle watch to see).
    const reuse = this.#s.reuse;
    const buf = reuse ? null : takeBuffer();
    const down = this.#down;
    const up = this.#up;
    try {
      while (!this.#ended) {
        let chunk: Uint8Array | null;
        if (buf === null) chunk = await connHooks.pull(up);
        else {
          const n = await connHooks.pullInto(up, buf);
          chunk = n === null ? null : n === BUFFER ? buf : buf.subarray(0, n);
        }
        if (this.#ended) return;
        // The upstream spoke: it is not quiet. The drain clock starts again
        // once these bytes are delivered.
        if (this.#drainTimer !== undefined) {
          clearTimeout(this.#drainTimer);
          this.#drainTimer = undefined;
        }
        if (chunk === null) break;
        this.#moved = true;
        this.#delivering = true;
        // All of it to the client; each completed write is progress.
        const length = chunk.length;
        let off = await down.write(chunk);
        this.#moved = true;
        while (off < length) {
          off += await down.write(chunk.subarray(off));
          this.#moved = true;
        }
        this.#delivering = false;
        this.received += length;
        if (reuse && this.#clientDone && !this.#ended) this.#armDrain();
      }
      if (this.#ended) return;
      this.#upstreamDone = true;
      await down.closeWrite();
      this.#maybeEnd();
    } catch (error) {
      this.#fail(error);
    } finally {
      if (buf !== null) giveBuffer(buf);
    }
  }

  /**
   * With `reuse`, once the client half-closed and nothing is being written
   * to it: ends the session if the upstream stays quiet for `drainTime`.
   */
  #armDrain(): void {
    clearTimeout(this.#drainTimer);
    this.#drainTimer = undefined;
    if (this.#s.drain === Infinity) return;
    this.#drainTimer = setTimeout(this.#drained, this.#s.drain);
  }

  readonly #drained = (): void => {
    this.#drainTimer = undefined;
    if (!this.#delivering) this.#end(true);
  };

  #maybeEnd(): void {
    if (this.#clientDone && this.#upstreamDone) this.#end(false);
  }

  /**
   * Ends cleanly: the client is closed (it has every byte); the upstream is
   * reset and reused, reused, or destroyed.
   */
  #end(drained: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#stopTimers();
    try {
      this.#down.close();
    } catch {
      // closed already
    }
    if (drained && this.#s.reuse) {
      this.#parked = true;
      // The pull left pending stays the reader's prefetch: whatever it
      // brings lands in the buffer, where the reset's exchange (bytes
      // before its answer) or the idle watch (bytes while idle) sees it.
      if (!connHooks.stopPull(this.#up)) this.#up.destroy();
      else if (this.#s.reset === undefined) {
        this.#up.release();
        this.#reused = true;
      } else this.#resetting = this.#reset(this.#s.reset);
    } else this.#up.destroy();
    this.#done.resolve();
  }

  /** Runs `reset` on the upstream: back to the pool if it succeeds. */
  async #reset(reset: Reset): Promise<void> {
    const up = this.#up;
    const limit = this.#s.resetTimeout;
    const outer = this.#s.signal;
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(outer!.reason);
    const timer = limit === Infinity ? undefined : setTimeout(() => {
      ctl.abort(
        new TimeoutError(
          `Cannot reset upstream: timed out after ${Math.round(limit)} ms`,
          limit,
        ),
      );
    }, limit);
    if (outer?.aborted) ctl.abort(outer.reason);
    else outer?.addEventListener("abort", onAbort, { once: true });
    try {
      const work = (async () => await reset(up, ctl.signal))();
      if (await abortable(work, ctl.signal) === false) {
        this.#resetFailed = true;
        this.#resetError = new Error(
          "Cannot reset upstream: reset returned false",
        );
      } else if (!connHooks.stopPull(up)) {
        this.#resetFailed = true;
        this.#resetError = new Error(
          "Cannot reset upstream: after reset it is not clean (released, broken, a call in flight, a reply due, bytes unread or EOF)",
        );
      }
    } catch (error) {
      if (this.#s.closing !== undefined && error === this.#s.closing) {
        this.closed = true; // cut by close(): not the reset's failure
        up.destroy(error);
        return;
      }
      this.#resetFailed = true;
      this.#resetError = error;
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
    }
    if (this.#resetFailed) up.destroy(this.#resetError);
    else {
      up.release();
      this.#reused = true;
    }
  }

  /** Ends at once: both sides closed, whatever is pending rejects. */
  #fail(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#stopTimers();
    this.#up.destroy(error);
    try {
      this.#down.close();
    } catch {
      // closed already
    }
    this.#done.resolve();
  }
}

/**
 * Proxies one accepted connection: borrows an upstream from `pool`, copies
 * bytes both ways until both sides have ended (or either fails, or the
 * session idles past `idleTimeout`), then closes the client and destroys the
 * upstream (or, with `reuse` and a clean end, resets it and gives it back).
 *
 * Arguments are checked first: a wrong one throws before anything is done
 * (nothing is borrowed, and `downstream` is left open: it is still the
 * caller's).
 *
 * @param downstream The client's connection (anything with `read`, `write`,
 *   `closeWrite` and `close`, as a `Deno.Conn`); it is closed on return.
 * @param pool Where upstreams come from: a {@linkcode TcpPool}, or a
 *   {@linkcode TcpCluster} (each session borrows from a host it picks;
 *   checked with `instanceof`: the proxy reads its connections' internals).
 * @param options `signal`, `idleTimeout`, `connectTimeout`, `reuse`,
 *   `drainTime`.
 * @returns Bytes sent and received, whether the upstream was reused, and
 *   why its reset failed, if it did.
 * @throws {TypeError} If `downstream` is not a connection, `pool` neither
 *   a TcpPool nor a TcpCluster, or an option has the wrong type.
 * @throws {RangeError} If a duration is negative, NaN, or finite and above
 *   2^31 − 1.
 * @throws {DialError} If no upstream could be dialed (the client is closed).
 * @throws {TimeoutError} If the session idled past `idleTimeout`, or no
 *   upstream came within `connectTimeout`.
 * @throws {ConnectionBrokenError} If the upstream failed mid-session.
 * @throws `signal.reason` If `signal` aborted (already aborted: before
 *   anything was borrowed).
 */
export async function proxy(
  downstream: Downstream,
  pool: TcpPool | TcpCluster,
  options?: ProxyOptions,
): Promise<ProxyResult> {
  checkDownstream(downstream);
  checkPool(pool, "proxy");
  return await run(downstream, pool, settings(options));
}

/**
 * One session, its arguments checked: borrows an upstream and copies.
 * `started` gets the session once it runs (serveProxy counts its end).
 */
async function run(
  downstream: Downstream,
  pool: TcpPool | TcpCluster,
  s: Settings,
  started?: (session: Session) => void,
): Promise<ProxyResult> {
  let up: PooledConn;
  try {
    s.signal?.throwIfAborted();
    up = await pool.borrow({
      ...(s.signal === undefined ? {} : { signal: s.signal }),
      ...(s.connect === undefined ? {} : { timeout: s.connect }),
    });
  } catch (error) {
    try {
      downstream.close();
    } catch {
      // closed already
    }
    throw error;
  }
  const session = new Session(downstream, up, s);
  started?.(session);
  return await session.run();
}

const PROXY_EVENTS: readonly string[] = ["session", "accepterror"];

/** Counters of a {@linkcode serveProxy} server. */
export interface ProxyStats {
  /** Sessions in progress. */
  active: number;
  /** Sessions accepted in all. */
  sessions: number;
  /** Sessions that ended with an error (reported to `onError`). */
  errors: number;
  /**
   * Sessions ended by {@linkcode ProxyServer.close} (both sides closed, or
   * the wait for an upstream given up): not errors, never reported to
   * `onError`; their bytes count in `sent` and `received`.
   */
  closed: number;
  /**
   * Failed accepts (reported to `onError` with `null` for the address),
   * after each of which the server waited and went on accepting.
   */
  acceptErrors: number;
  /** Bytes from clients to upstreams, over ended sessions. */
  sent: number;
  /** Bytes from upstreams delivered to clients, over ended sessions. */
  received: number;
  /** Upstreams given back to the pool (`reuse`). */
  reused: number;
  /** Upstreams destroyed because `reuse.reset` failed. */
  resetFailures: number;
  /** Listeners of {@linkcode ProxyServer.on} that threw. */
  callbackErrors: number;
}

/** A session of a {@linkcode serveProxy} server ended. */
export interface ProxySessionEvent {
  /** The event: `"session"`. */
  readonly type: "session";
  /** The client's address. */
  readonly remote: Deno.NetAddr;
  /**
   * How it ended: `"ok"`, `"closed"` (by {@linkcode ProxyServer.close}) or
   * `"error"` (as counted in `stats.errors`).
   */
  readonly outcome: "ok" | "closed" | "error";
  /** The error, for `"error"`. */
  readonly error: unknown;
  /** Bytes from the client to the upstream. */
  readonly sent: number;
  /** Bytes from the upstream delivered to the client. */
  readonly received: number;
  /** Whether its upstream went back to the pool (`reuse`). */
  readonly reused: boolean;
  /** How long it lasted, in ms. */
  readonly time: number;
}

/** An accept of a {@linkcode serveProxy} server failed. */
export interface ProxyAcceptErrorEvent {
  /** The event: `"accepterror"`. */
  readonly type: "accepterror";
  /** The runtime's error (e.g. `EMFILE`). */
  readonly error: unknown;
}

/** Options for {@linkcode serveProxy}: a session's, plus `onError`. */
export interface ServeProxyOptions extends ProxyOptions {
  /**
   * Called with each session's error (the session is over, the client
   * closed) and the client's address, and with each failed accept (the
   * runtime's error, e.g. `EMFILE` when the process is out of file
   * descriptors) and `null`: the server then waits (5 ms, doubling up to
   * 1 s, until an accept succeeds) and goes on accepting. By default
   * errors are only counted in `stats`.
   */
  onError?:
    | ((error: unknown, remote: Deno.NetAddr | null) => void)
    | undefined;
}

/**
 * What {@linkcode serveProxy} accepts clients from: a `Deno.TcpListener`
 * (or `Deno.TlsListener`), or anything with its `accept`, `close` and
 * `addr`.
 */
export interface ProxyListener {
  /** The next client; rejects with `Deno.errors.BadResource` once closed. */
  accept(): Promise<Deno.Conn>;
  /** Stops accepting. */
  close(): void;
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
}

/** A running proxy; see {@linkcode serveProxy}. */
export interface ProxyServer extends AsyncDisposable {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** A snapshot of its counters. */
  readonly stats: ProxyStats;
  /**
   * Calls `listener` when a session ends (`"session"`: one per
   * `stats.sessions`, once it is over) or an accept fails
   * (`"accepterror"`: one per `stats.acceptErrors`). The upstream pool's
   * own events are the pool's (`pool.on`). A listener that throws is
   * counted in `stats.callbackErrors`.
   *
   * @param type `"session"`.
   * @param listener Called with the event.
   * @returns A function that removes the listener.
   */
  on(
    type: "session",
    listener: (event: ProxySessionEvent) => void,
  ): () => void;
  /**
   * Calls `listener` on every failed accept.
   *
   * @param type `"accepterror"`.
   * @param listener Called with the event.
   * @returns A function that removes the listener.
   */
  on(
    type: "accepterror",
    listener: (event: ProxyAcceptErrorEvent) => void,
  ): () => void;
  /**
   * Stops accepting (closes the listener), ends every session (both sides
   * closed) and waits for them. A session it ends did not fail: it is
   * counted in `stats.closed`, not in `stats.errors`, and not reported to
   * `onError`.
   */
  close(): Promise<void>;
}

/**
 * Checks serveProxy's `listen`: `true` for a listener (`accept` and
 * `close` methods), `false` for an address to listen on.
 */
function isListener(listen: unknown): boolean {
  const where = "serve proxy";
  if (typeof listen !== "object" || listen === null) {
    throw new TypeError(
      `Cannot ${where}: listen must be { hostname?, port } or a listener, received ${
        describe(listen)
      }`,
    );
  }
  const l = listen as Partial<Record<string, unknown>>;
  if ("accept" in l) {
    if (typeof l.accept !== "function" || typeof l.close !== "function") {
      throw new TypeError(
        `Cannot ${where}: listen must be a listener with accept and close methods, received ${
          describe(listen)
        }`,
      );
    }
    return true;
  }
  const { hostname = "127.0.0.1", port } = l;
  if (typeof hostname !== "string") {
    throw new TypeError(
      `Cannot ${where}: listen.hostname must be a string, received ${
        describe(hostname)
      }`,
    );
  }
  if (typeof port !== "number") {
    throw new TypeError(
      `Cannot ${where}: listen.port must be a number, received ${
        describe(port)
      }`,
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(
      `Cannot ${where}: listen.port must be an integer from 0 to 65535, received ${port}`,
    );
  }
  return false;
}

/** An accept that failed because the listener is closed. */
function listenerClosed(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

/**
 * Listens on `hostname:port` (or takes over `listener`) and proxies every
 * client to an upstream from `pool` (see {@linkcode proxy}). A failed
 * accept (other than the listener closing) does not stop it: it goes to
 * `onError`, and accepting resumes after a pause of 5 ms, doubling up to
 * 1 s while accepts keep failing.
 *
 * @example Over a listener of your own
 * ```ts
 * import { serveProxy, TcpPool } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * using upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = (async () => {
 *   for await (const conn of upstream) {
 *     conn.readable.pipeTo(conn.writable).catch(() => {});
 *   }
 * })();
 * {
 *   await using pool = new TcpPool({ port: upstream.addr.port });
 *   const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 *   await using server = serveProxy(listener, pool); // closes it on close()
 *   const client = await Deno.connect({ port: listener.addr.port });
 *   await client.write(new TextEncoder().encode("hi"));
 *   await client.closeWrite();
 *   assert.equal(await new Response(client.readable).text(), "hi");
 *   assert.equal(server.stats.acceptErrors, 0);
 * }
 * upstream.close();
 * await served;
 * ```
 *
 * Arguments are checked first: a wrong one throws before anything is
 * done (no listener is opened, a given one is left open and untouched).
 *
 * @param listen Where to listen, `{ hostname?, port }` (`hostname` default
 *   `"127.0.0.1"`; `port: 0`: a free port), or a listener (with `accept`
 *   and `close` methods) the server takes over: its `close()` closes it.
 * @param pool Where upstreams come from: a {@linkcode TcpPool}, or a
 *   {@linkcode TcpCluster}.
 * @param options A session's options, plus `onError`.
 * @returns The server: `addr`, `stats`, `close()`, `await using`.
 * @throws {TypeError} If `listen` is neither an address nor a listener,
 *   `pool` is neither a TcpPool nor a TcpCluster, or an option has the
 *   wrong type.
 * @throws {RangeError} If `listen.port` is not an integer from 0 to 65535,
 *   or a duration is out of range.
 */
export function serveProxy(
  listen: { hostname?: string; port: number } | ProxyListener,
  pool: TcpPool | TcpCluster,
  options?: ServeProxyOptions,
): ProxyServer {
  const onError = options?.onError;
  if (onError !== undefined && typeof onError !== "function") {
    throw new TypeError(
      `Cannot serve proxy: onError must be a function, received ${
        describe(onError)
      }`,
    );
  }
  const given = isListener(listen);
  checkPool(pool, "serve proxy");
  const s = settings(options); // checked now, not per session
  const listener: ProxyListener = given
    ? listen as ProxyListener
    : Deno.listen({
      hostname: (listen as { hostname?: string }).hostname ?? "127.0.0.1",
      port: (listen as { port: number }).port,
    });
  const stop = new AbortController();
  // What close() ends sessions with: such an end is not a failure.
  const closedReason = new Error("Cannot proxy: the proxy server closed");
  s.closing = closedReason;
  s.signal = options?.signal === undefined
    ? stop.signal
    : AbortSignal.any([stop.signal, options.signal]);
  const stats: ProxyStats = {
    active: 0,
    sessions: 0,
    errors: 0,
    closed: 0,
    acceptErrors: 0,
    sent: 0,
    received: 0,
    reused: 0,
    resetFailures: 0,
    callbackErrors: 0,
  };
  const listeners = {
    session: new Set<(event: ProxySessionEvent) => void>(),
    accepterror: new Set<(event: ProxyAcceptErrorEvent) => void>(),
  };
  const emit = <E>(set: Set<(event: E) => void>, event: E) => {
    for (const listener of set) {
      try {
        listener(event);
      } catch {
        stats.callbackErrors++;
      }
    }
  };
  const ended = (
    conn: Deno.Conn,
    outcome: ProxySessionEvent["outcome"],
    error: unknown,
    sent: number,
    received: number,
    reused: boolean,
    began: number,
  ) => {
    if (listeners.session.size === 0) return;
    emit(listeners.session, {
      type: "session",
      remote: conn.remoteAddr as Deno.NetAddr,
      outcome,
      error,
      sent,
      received,
      reused,
      time: performance.now() - began,
    });
  };
  const report = (error: unknown, remote: Deno.NetAddr | null) => {
    try {
      onError?.(error, remote);
    } catch {
      // a reporter's own failure is not the session's
    }
  };
  const sessions = new Set<Promise<void>>();
  const serve = async (conn: Deno.Conn) => {
    try {
      // A proxy forwards what it gets at once: Nagle would hold back the
      // tail of every burst for the peer's delayed ACK.
      (conn as Deno.TcpConn).setNoDelay(true);
    } catch {
      // closed already, or not TCP; the session will find out
    }
    stats.active++;
    stats.sessions++;
    const began = listeners.session.size === 0 ? 0 : performance.now();
    let session: Session | undefined;
    try {
      const r = await run(conn, pool, s, (started) => session = started);
      stats.sent += r.sent;
      stats.received += r.received;
      if (r.reused) stats.reused++;
      if ("resetError" in r) stats.resetFailures++;
      if (session?.closed) stats.closed++;
      stats.active--;
      ended(
        conn,
        session?.closed ? "closed" : "ok",
        undefined,
        r.sent,
        r.received,
        r.reused,
        began,
      );
    } catch (error) {
      stats.active--;
      // Given up waiting for an upstream by close(): not a failure either.
      if (error === closedReason) {
        stats.closed++;
        ended(conn, "closed", undefined, 0, 0, false, began);
      } else {
        stats.errors++;
        report(error, conn.remoteAddr as Deno.NetAddr);
        ended(conn, "error", error, 0, 0, false, began);
      }
    }
  };
  let closed = false;
  // The pause after a failed accept; close() cuts it short.
  let pause: ReturnType<typeof setTimeout> | undefined;
  let wake: (() => void) | undefined;
  const accepting = (async () => {
    let delay = 0;
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closed || listenerClosed(error)) return;
        // Out of file descriptors (EMFILE), a connection reset while it
        // waited in the backlog...: report, wait, go on (as Go's
        // http.Server does), so that the server recovers once it can.
        stats.acceptErrors++;
        report(error, null);
        emit(listeners.accepterror, { type: "accepterror", error });
        delay = delay === 0 ? 5 : Math.min(delay * 2, 1_000);
        await new Promise<void>((resolve) => {
          wake = resolve;
          pause = setTimeout(resolve, delay);
        });
        pause = wake = undefined;
        continue;
      }
      delay = 0;
      if (closed) {
        conn.close();
        return;
      }
      const session = serve(conn);
      sessions.add(session);
      session.finally(() => sessions.delete(session));
    }
  })();
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      closed = true;
      clearTimeout(pause);
      wake?.();
      try {
        listener.close();
      } catch {
        // closed already
      }
      await accepting;
      stop.abort(closedReason);
      await Promise.all(sessions);
    })();
  return {
    addr: listener.addr,
    get stats() {
      return { ...stats };
    },
    on(
      type: "session" | "accepterror",
      listener:
        | ((event: ProxySessionEvent) => void)
        | ((event: ProxyAcceptErrorEvent) => void),
    ): () => void {
      checkListen(type, listener, PROXY_EVENTS);
      const set = listeners[type] as Set<typeof listener>;
      set.add(listener);
      return () => void set.delete(listener);
    },
    close,
    [Symbol.asyncDispose]: close,
  } as ProxyServer;
}
