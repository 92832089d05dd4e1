// Copyright 2026 the chanpool authors. MIT license.
/**
 * Pooled TCP (and TLS) connections that are never handed out dead or dirty.
 *
 * {@linkcode TcpPool} keeps `Deno.connect` (or `Deno.connectTls`)
 * connections in a {@linkcode Pool}. While a connection is idle a read stays
 * pending on it (the idle watch): if the server closes it, resets it or sends
 * anything at all, it is closed and evicted at once, so the next borrower
 * never gets it. A request that fails, times out or is aborted after its
 * first byte was written poisons its connection, and a connection released
 * with unread bytes is dirty: both are destroyed, never pooled, so a late
 * response can never reach the next borrower.
 *
 * @example Usage
 * ```ts
 * import { TcpPool } from "./tcp.ts";
 * import assert from "node:assert/strict";
 *
 * // An echo server for 4-byte length-prefixed frames.
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = (async () => {
 *   for await (const conn of listener) {
 *     conn.readable.pipeTo(conn.writable).catch(() => {});
 *   }
 * })();
 *
 * {
 *   await using pool = new TcpPool({ port: listener.addr.port, max: 2 });
 *   const reply = await pool.request(new TextEncoder().encode("ping"));
 *   assert.equal(new TextDecoder().decode(reply), "ping");
 *
 *   await using conn = await pool.borrow();
 *   assert.equal(conn.reused, true);
 *   await conn.writeFrame(new TextEncoder().encode("pong"));
 *   assert.equal(new TextDecoder().decode((await conn.readFrame())!), "pong");
 * }
 * listener.close();
 * await served;
 * ```
 *
 * @module
 */

import {
  type FrameOptions,
  FrameReader,
  type FrameReaderOptions,
  FrameTooLargeError,
  FrameWriter,
  UnexpectedEofError,
} from "./framing.ts";
import {
  type BorrowOptions,
  type Lease,
  Pool,
  type PoolCloseOptions,
  type PoolOptions,
  type PoolStats,
} from "./pool.ts";
import { describe } from "./_util.ts";

// -- Errors --

/**
 * A connection failed in the middle of its work: the server closed or reset
 * it, or a request on it timed out or was aborted after it started. The
 * connection is destroyed; `beforeResponse` says whether any byte of a
 * response had arrived (if not, a retry on another connection is safe for an
 * idempotent request).
 *
 * @example Usage
 * ```ts
 * import { ConnectionBrokenError } from "./tcp.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new ConnectionBrokenError("Cannot read response: EOF", {
 *   beforeResponse: true,
 * });
 * assert.equal(error.name, "ConnectionBrokenError");
 * assert.equal(error.beforeResponse, true);
 * ```
 */
export class ConnectionBrokenError extends Error {
  /** `true` when the connection failed before any byte of the response. */
  readonly beforeResponse: boolean;

  /**
   * Makes the error.
   *
   * @param message What failed.
   * @param options `cause`, and whether no response byte had arrived.
   */
  constructor(
    message: string,
    options?: ErrorOptions & { beforeResponse?: boolean },
  ) {
    super(message, options);
    this.name = "ConnectionBrokenError";
    this.beforeResponse = options?.beforeResponse ?? false;
  }
}

// -- Options --

/** The {@linkcode Pool} options a {@linkcode TcpPool} takes as they are. */
export type TcpPoolPoolOptions = Pick<
  PoolOptions<unknown>,
  | "max"
  | "maxIdle"
  | "minIdle"
  | "maxDialing"
  | "idleOrder"
  | "whenExhausted"
  | "acquireTimeout"
  | "connectTimeout"
  | "idleTimeout"
  | "maxLifetime"
  | "leakTimeout"
>;

/**
 * Options for {@linkcode TcpPool}: where to connect, how, and the pool's
 * sizes and timeouts (see {@linkcode PoolOptions} for their defaults).
 */
export interface TcpPoolOptions extends TcpPoolPoolOptions {
  /**
   * The server's host name or address.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string | undefined;
  /** The server's port. */
  port: number;
  /**
   * Connect with TLS: `true`, or options for `Deno.connectTls` (`caCerts`,
   * `alpnProtocols`...). Certificates are verified by default.
   *
   * @default {false}
   */
  tls?: boolean | Omit<Deno.ConnectTlsOptions, "port" | "hostname"> | undefined;
  /**
   * Sets `TCP_NODELAY` on each connection (plain TCP only).
   *
   * @default {true}
   */
  noDelay?: boolean | undefined;
  /**
   * Sets `SO_KEEPALIVE` on each connection (plain TCP only).
   *
   * @default {true}
   */
  keepAlive?: boolean | undefined;
  /**
   * The initial size of each connection's read buffer, in bytes; it grows
   * for larger frames up to `frame.maxFrameSize`.
   *
   * @default {8192}
   */
  readBufferSize?: number | undefined;
  /**
   * Length-prefixed framing for `readFrame`, `writeFrame` and `request`:
   * `headerSize` (1, 2, 4 or 8), `littleEndian`, `maxFrameSize`.
   *
   * @default {{ headerSize: 4, littleEndian: false, maxFrameSize: 4 MiB }}
   */
  frame?: FrameOptions | undefined;
}

/** Options for a request: {@linkcode PooledConn.request}. */
export interface RequestOptions {
  /**
   * How long the request may take, in milliseconds; the connection is
   * destroyed if it runs out after the request started.
   *
   * @default {Infinity}
   */
  timeout?: number | undefined;
  /** Cancels the request; it then rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
}

/** Options for {@linkcode TcpPool.request}. */
export interface PoolRequestOptions extends RequestOptions {
  /**
   * Retry once, on a freshly dialed connection, when a *reused* connection
   * fails before any byte of the response arrived (the server had closed it
   * just then). Turn it off for requests that must not run twice.
   *
   * @default {true}
   */
  retry?: boolean | undefined;
}

/** Counts of a {@linkcode TcpPool}: the pool's, plus retries. */
export interface TcpPoolStats extends PoolStats {
  /** Requests retried on a fresh connection after a stale one failed. */
  retries: number;
  /**
   * Connections found dead or dirty at borrow time, after the pool handed
   * them over but before the idle watch could evict them (also counted in
   * `destroyed.destroyed`).
   */
  stale: number;
}

// -- Connection: the pooled resource --

/**
 * One socket and its read side, as the pool holds it. Users get it wrapped
 * in a {@linkcode PooledConn}.
 */
class Connection {
  readonly conn: Deno.TcpConn | Deno.TlsConn;
  readonly reader: FrameReader;
  readonly writer: FrameWriter;
  evict: (() => boolean) | null = null;
  #closed = false;
  /** The watch's read while pending, to silence its rejection on close. */
  #watch: Promise<number | null> | null = null;
  /** Lent to a user (not idle, not in a hand-over). */
  borrowed = false;
  /** Saw EOF, an error or stray bytes while not borrowed. */
  stale = false;
  /** A request failed midway: must not be reused. */
  broken = false;
  /** The first use of this connection is over. */
  used = false;

  /**
   * @param conn The socket.
   * @param frame Frame options, one object shared by the pool's connections
   *   (so their parsed form is shared too).
   * @param readerOptions The same plus the buffer size, shared likewise.
   */
  constructor(
    conn: Deno.TcpConn | Deno.TlsConn,
    frame: FrameOptions | undefined,
    readerOptions: FrameReaderOptions,
  ) {
    this.conn = conn;
    this.writer = new FrameWriter(conn, frame);
    this.reader = new FrameReader(conn, readerOptions);
  }

  /** Bytes received and not consumed yet. */
  get buffered(): number {
    return this.reader.buffered;
  }

  /**
   * Leaves a read pending while idle (the reader's prefetch, so the next
   * borrower's first read takes its bytes: nothing lost or read twice). If
   * it completes while the connection is idle, the connection is dead or
   * dirty: closed and evicted at once.
   */
  watch(): void {
    this.borrowed = false;
    if (this.#closed) return;
    try {
      this.#watch = this.reader.prefetch(this.#watched);
    } catch {
      this.stale = true;
    }
  }

  /**
   * The watch's read settled. If the connection is still idle, that was EOF,
   * a reset or bytes nobody asked for: it is dead or dirty. (A borrower that
   * took it over meanwhile lent it first, and reads the result itself.)
   */
  readonly #watched = (failed: boolean): void => {
    // A failed read nobody may await (idle, or lent but not read from).
    if (failed) this.#watch?.catch(noop);
    this.#watch = null;
    if (this.borrowed || this.#closed) return;
    this.stale = true;
    this.close();
    this.evict?.();
  };

  /** Marks it lent; a watch completing from now on is the borrower's. */
  lend(): void {
    this.borrowed = true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
    // The watch's read rejects now; a borrower may not be there to see it.
    this.#watch?.catch(noop);
  }
}

function noop(): void {}

/** Ends a borrow: back to the pool, or destroyed if broken or dirty. */
function giveBack(c: Connection, lease: Lease<Connection>): void {
  if (c.broken || c.stale || c.buffered > 0) {
    lease.destroy(c.broken ? "broken" : "dirty");
    return;
  }
  c.watch();
  if (c.stale) lease.destroy("stale");
  else lease.release();
}

// -- PooledConn: a borrowed connection --

function released(): TypeError {
  return new TypeError("Cannot use connection: it was released");
}

const STALE_CODES = new Set([
  "ConnectionReset",
  "BrokenPipe",
  "ConnectionAborted",
  "UnexpectedEof",
  "NotConnected",
]);

/** A socket error that means the peer went away (not a framing error). */
function isConnectionLoss(error: unknown): boolean {
  return error instanceof Error && !(error instanceof UnexpectedEofError) &&
    STALE_CODES.has(error.name);
}

/**
 * A connection lent by a {@linkcode TcpPool}. Release it (or let
 * `await using` do it) when done; destroy it if it is in an unknown state.
 * Every method throws a `TypeError` once it is released.
 *
 * @example Usage
 * ```ts
 * import { TcpPool } from "./tcp.ts";
 * import assert from "node:assert/strict";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = (async () => {
 *   for await (const conn of listener) {
 *     conn.readable.pipeTo(conn.writable).catch(() => {});
 *   }
 * })();
 * {
 *   await using pool = new TcpPool({ port: listener.addr.port });
 *   await using conn = await pool.borrow();
 *   await conn.write(new TextEncoder().encode("hello\n"));
 *   assert.equal(await conn.readLine(), "hello");
 *   const reply = await conn.request(new Uint8Array([1, 2, 3]), {
 *     timeout: 5_000,
 *   });
 *   assert.deepEqual(reply, new Uint8Array([1, 2, 3]));
 * }
 * listener.close();
 * await served;
 * ```
 */
export class PooledConn implements AsyncDisposable, Disposable {
  readonly #lease: Lease<Connection>;
  #c: Connection | null;
  readonly #reused: boolean;

  /**
   * Wraps a lease; made by {@linkcode TcpPool.borrow}.
   *
   * @param lease The pool's lease on the connection.
   */
  constructor(lease: Lease<Connection>) {
    this.#lease = lease;
    const c = lease.resource;
    this.#c = c;
    this.#reused = c.used;
    c.used = true;
  }

  #conn(): Connection {
    const c = this.#c;
    if (c === null) throw released();
    return c;
  }

  /** `true` if an earlier borrower used this connection. */
  get reused(): boolean {
    this.#conn();
    return this.#reused;
  }

  /**
   * `true` once a request on it failed midway: it will be destroyed on
   * release.
   */
  get broken(): boolean {
    return this.#conn().broken;
  }

  /** The local address (its port identifies the connection). */
  get localAddr(): Deno.NetAddr {
    return this.#conn().conn.localAddr;
  }

  /** The server's address. */
  get remoteAddr(): Deno.NetAddr {
    return this.#conn().conn.remoteAddr;
  }

  /** Unread bytes already received (a connection released so is dirty). */
  get buffered(): number {
    return this.#conn().buffered;
  }

  /**
   * Writes all of `p` (looping over short writes).
   *
   * @param p The bytes.
   * @returns `p.length`.
   */
  async write(p: Uint8Array): Promise<number> {
    const c = this.#conn();
    try {
      let off = 0;
      while (off < p.length) off += await c.conn.write(p.subarray(off));
      return p.length;
    } catch (error) {
      c.broken = true;
      throw error;
    }
  }

  /**
   * Reads into `p`: buffered bytes first, then from the socket.
   *
   * @param p Where to read to.
   * @returns The number of bytes read, or `null` at EOF.
   */
  read(p: Uint8Array): Promise<number | null> {
    const c = this.#conn();
    return this.#guard(c, c.reader.read(p));
  }

  /**
   * Reads exactly `n` bytes (Go `gtcp`'s `Recv(n)`).
   *
   * @param n How many.
   * @returns The bytes, or `null` at EOF before any.
   */
  readExact(n: number): Promise<Uint8Array | null> {
    const c = this.#conn();
    return this.#guard(c, c.reader.readExact(n));
  }

  /**
   * Reads a line ending in `\n` or `\r\n`, without it (`gtcp`'s `RecvLine`).
   *
   * @returns The line, or `null` at EOF.
   */
  readLine(): Promise<string | null> {
    const c = this.#conn();
    return this.#guard(c, c.reader.readLine());
  }

  /**
   * Reads one length-prefixed frame (`gtcp`'s `RecvPkg`).
   *
   * @returns Its payload, or `null` at EOF between frames.
   */
  readFrame(): Promise<Uint8Array | null> {
    const c = this.#conn();
    return this.#guard(c, c.reader.readFrame());
  }

  /**
   * Writes one length-prefixed frame in a single write (`gtcp`'s `SendPkg`).
   *
   * @param payload The frame's payload.
   */
  async writeFrame(payload: Uint8Array): Promise<void> {
    const c = this.#conn();
    try {
      await c.writer.write(payload);
    } catch (error) {
      if (!(error instanceof RangeError)) c.broken = true;
      throw error;
    }
  }

  async #guard<R>(c: Connection, p: Promise<R>): Promise<R> {
    try {
      return await p;
    } catch (error) {
      c.broken = true;
      throw error;
    }
  }

  /**
   * Writes a frame and reads the response frame (`gtcp`'s `SendRecvPkg`).
   * A timeout, abort or failure after the request started destroys the
   * connection on release, so its late response reaches nobody.
   *
   * @param payload The request's payload.
   * @param options `timeout` and `signal`.
   * @returns The response's payload.
   */
  request(payload: Uint8Array, options?: RequestOptions): Promise<Uint8Array> {
    const c = this.#conn();
    return request(c, payload, options);
  }

  /** Gives the connection back (destroyed instead if broken or dirty). */
  release(): void {
    const c = this.#c;
    if (c === null) return;
    this.#c = null;
    giveBack(c, this.#lease);
  }

  /**
   * Closes the connection instead of giving it back.
   *
   * @param reason Why, for the pool's records.
   */
  destroy(reason?: unknown): void {
    const c = this.#c;
    if (c === null) return;
    this.#c = null;
    this.#lease.destroy(reason);
  }

  /** Releases the connection, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }

  /**
   * Releases the connection, for `await using`.
   *
   * @returns A resolved promise.
   */
  [Symbol.asyncDispose](): Promise<void> {
    this.release();
    return Promise.resolve();
  }
}

async function request(
  c: Connection,
  payload: Uint8Array,
  options: RequestOptions | undefined,
): Promise<Uint8Array> {
  const signal = options?.signal;
  const timeout = options?.timeout ?? Infinity;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(
      `Cannot send request: signal must be an AbortSignal, received ${
        describe(signal)
      }`,
    );
  }
  if (typeof timeout !== "number" || !(timeout >= 0)) {
    throw new RangeError(
      `Cannot send request: timeout must be a non-negative number of milliseconds, received ${
        describe(timeout)
      }`,
    );
  }
  if (c.broken) {
    throw new ConnectionBrokenError(
      "Cannot send request: the connection is broken",
    );
  }
  signal?.throwIfAborted();
  const received = c.reader.received;
  let response: Uint8Array | null;
  if (signal === undefined && timeout === Infinity) {
    try {
      await c.writer.write(payload);
      response = await c.reader.readFrame();
    } catch (error) {
      throw fail(c, error, received);
    }
  } else {
    const work = (async () => {
      await c.writer.write(payload);
      return await c.reader.readFrame();
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal!.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout !== Infinity) {
        timer = setTimeout(() => {
          reject(
            new DOMException(
              `Request timed out after ${timeout} ms`,
              "TimeoutError",
            ),
          );
        }, timeout);
      }
    });
    try {
      response = await Promise.race([work, stop]);
    } catch (error) {
      // Timed out or aborted: the response may still come, so the
      // connection must go. Closing it settles `work`.
      c.broken = true;
      c.close();
      work.catch(() => {});
      if (error === signal?.reason || error instanceof DOMException) {
        throw error;
      }
      throw fail(c, error, received);
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
    }
  }
  if (response === null) throw closedEarly(c, received);
  return response;
}

/** EOF where a response should have been: the connection is done. */
function closedEarly(c: Connection, received: number): ConnectionBrokenError {
  c.broken = true;
  return new ConnectionBrokenError(
    "Cannot read response: the server closed the connection",
    { beforeResponse: c.reader.received === received },
  );
}

function fail(c: Connection, error: unknown, received: number): unknown {
  c.broken = true;
  if (
    error instanceof FrameTooLargeError || error instanceof RangeError ||
    error instanceof TypeError
  ) return error;
  if (isConnectionLoss(error)) {
    return new ConnectionBrokenError(
      `Cannot complete request: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error, beforeResponse: c.reader.received === received },
    );
  }
  return error;
}

// -- TcpPool --

function port(value: unknown): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot create pool: port must be a number, received ${describe(value)}`,
    );
  }
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new RangeError(
      `Cannot create pool: port must be an integer from 1 to 65535, received ${value}`,
    );
  }
  return value;
}

/**
 * A pool of TCP (or TLS) connections to one server.
 *
 * @example Usage
 * ```ts
 * import { TcpPool } from "./tcp.ts";
 * import assert from "node:assert/strict";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = (async () => {
 *   for await (const conn of listener) {
 *     conn.readable.pipeTo(conn.writable).catch(() => {});
 *   }
 * })();
 * {
 *   await using pool = new TcpPool({
 *     hostname: "127.0.0.1",
 *     port: listener.addr.port,
 *     max: 4,
 *     idleTimeout: 30_000,
 *   });
 *   const ports = new Set<number>();
 *   for (let i = 0; i < 3; i++) {
 *     await using conn = await pool.borrow();
 *     ports.add(conn.localAddr.port);
 *     await conn.request(new Uint8Array([i]));
 *   }
 *   assert.equal(ports.size, 1); // one connection, reused
 * }
 * listener.close();
 * await served;
 * ```
 */
export class TcpPool implements AsyncDisposable {
  readonly #pool: Pool<Connection>;
  readonly #hostname: string;
  readonly #port: number;
  #retries = 0;
  #stale = 0;

  /**
   * Makes a pool; it dials lazily (or in the background for `minIdle`).
   *
   * @param options Where to connect, and pool options.
   */
  constructor(options: TcpPoolOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `Cannot create pool: options must be an object, received ${
          describe(options)
        }`,
      );
    }
    const {
      hostname = "127.0.0.1",
      port: rawPort,
      tls = false,
      noDelay = true,
      keepAlive = true,
      readBufferSize = 8192,
      frame,
      ...poolOptions
    } = options;
    if (typeof hostname !== "string" || hostname === "") {
      throw new TypeError(
        `Cannot create pool: hostname must be a non-empty string, received ${
          describe(hostname)
        }`,
      );
    }
    const p = port(rawPort);
    if (
      typeof readBufferSize !== "number" || !Number.isInteger(readBufferSize) ||
      readBufferSize < 1
    ) {
      throw new RangeError(
        `Cannot create pool: readBufferSize must be a positive integer, received ${
          describe(readBufferSize)
        }`,
      );
    }
    if (
      tls !== true && tls !== false && (typeof tls !== "object" || tls === null)
    ) {
      throw new TypeError(
        `Cannot create pool: tls must be a boolean or Deno.ConnectTlsOptions, received ${
          describe(tls)
        }`,
      );
    }
    // Validates frame options now rather than at the first dial.
    new FrameReader({ read: () => Promise.resolve(null) }, {
      ...frame,
      bufferSize: 1,
    });
    this.#hostname = hostname;
    this.#port = p;
    const tlsOptions = tls === true ? {} : tls === false ? null : tls;
    const readerOptions: FrameReaderOptions = {
      ...frame,
      bufferSize: readBufferSize,
    };
    const dial = async (signal: AbortSignal): Promise<Connection> => {
      let conn: Deno.TcpConn | Deno.TlsConn;
      if (tlsOptions === null) {
        const tcp = await Deno.connect({ hostname, port: p, signal });
        if (noDelay) tcp.setNoDelay(true);
        if (keepAlive) tcp.setKeepAlive(true);
        conn = tcp;
      } else {
        const tlsConn = await Deno.connectTls({
          ...tlsOptions,
          hostname,
          port: p,
        });
        try {
          // Verify the certificate now, so a bad one is a DialError.
          await tlsConn.handshake();
          signal.throwIfAborted();
        } catch (error) {
          tlsConn.close();
          throw error;
        }
        conn = tlsConn;
      }
      return new Connection(conn, frame, readerOptions);
    };
    this.#pool = new Pool(dial, {
      ...poolOptions,
      close: (c) => c.close(),
      watch: (c, evict) => {
        c.evict = evict;
      },
    });
  }

  /** `hostname:port` of the server. */
  get address(): string {
    return `${this.#hostname}:${this.#port}`;
  }

  /**
   * Borrows a connection: an idle one that is still alive, or a new one.
   *
   * @param options `signal`, `timeout` (default `acquireTimeout`), `fresh`.
   * @returns The connection; release it when done.
   */
  async borrow(options?: BorrowOptions): Promise<PooledConn> {
    while (true) {
      const lease = await this.#pool.borrow(options);
      if (this.#take(lease)) return new PooledConn(lease);
    }
  }

  /**
   * Lends a borrowed connection, or destroys it if it died during the
   * hand-over, before its idle watch could evict it.
   */
  #take(lease: Lease<Connection>): boolean {
    const c = lease.resource;
    if (c.stale) {
      this.#stale++;
      lease.destroy("stale");
      return false;
    }
    c.lend();
    return true;
  }

  /**
   * Borrows an idle connection if there is one; never waits or dials.
   *
   * @returns The connection, or `undefined`.
   */
  tryBorrow(): PooledConn | undefined {
    while (true) {
      const lease = this.#pool.tryBorrow();
      if (lease === undefined) return undefined;
      if (this.#take(lease)) return new PooledConn(lease);
    }
  }

  /**
   * Borrows a connection, sends one frame, reads one frame back, releases.
   * A reused connection that fails before any response byte (the server
   * closed it just then) is retried once on a fresh one, unless `retry` is
   * `false`.
   *
   * @param payload The request's payload.
   * @param options `timeout` (for the whole call), `signal`, `retry`.
   * @returns The response's payload.
   */
  async request(
    payload: Uint8Array,
    options?: PoolRequestOptions,
  ): Promise<Uint8Array> {
    const timeout = options?.timeout;
    const signal = options?.signal;
    const deadline = timeout === undefined
      ? Infinity
      : performance.now() + timeout;
    let fresh = false;
    while (true) {
      const left = deadline === Infinity
        ? undefined
        : Math.max(0, deadline - performance.now());
      // An idle connection without a promise hop; else borrow and wait.
      const lease = (fresh ? undefined : this.#pool.tryBorrow()) ??
        await this.#pool.borrow({ signal, timeout: left, fresh });
      if (!this.#take(lease)) continue;
      const c = lease.resource;
      const reused = c.used;
      c.used = true;
      try {
        let response: Uint8Array | null;
        if (left === undefined && signal === undefined) {
          // Inline: no timer, no listener, no extra async frame.
          const received = c.reader.received;
          try {
            await c.writer.write(payload);
            response = await c.reader.readFrame();
          } catch (error) {
            throw fail(c, error, received);
          }
          if (response === null) throw closedEarly(c, received);
        } else {
          response = await request(c, payload, { signal, timeout: left });
        }
        giveBack(c, lease);
        return response;
      } catch (error) {
        giveBack(c, lease); // destroyed: it is broken
        if (
          !fresh && reused && options?.retry !== false &&
          error instanceof ConnectionBrokenError && error.beforeResponse
        ) {
          fresh = true;
          this.#retries++;
          continue;
        }
        throw error;
      }
    }
  }

  /** Counts: the pool's, plus `retries`. */
  get stats(): TcpPoolStats {
    return { ...this.#pool.stats, retries: this.#retries, stale: this.#stale };
  }

  /** `true` once `close` was called. */
  get closed(): boolean {
    return this.#pool.closed;
  }

  /**
   * Closes the pool: idle connections at once, connections in use when
   * released (or at once with `force`).
   *
   * @param options `force`.
   * @returns When every connection is closed.
   */
  close(options?: PoolCloseOptions): Promise<void> {
    return this.#pool.close(options);
  }

  /**
   * Closes the pool, for `await using`.
   *
   * @returns When every connection is closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
