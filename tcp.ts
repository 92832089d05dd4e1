// Copyright 2026 the chanpool authors. MIT license.
/**
 * Pooled TCP (and TLS) connections that are never handed out dead, and
 * never handed out with another request's reply on the way.
 *
 * {@linkcode TcpPool} keeps `Deno.connect` connections (TLS: `node:tls`,
 * see the README) in a {@linkcode Pool}. What it guarantees, exactly:
 *
 * - A connection goes back to the idle set only when nothing is in flight
 *   on it: no read or write of the borrower's pending, no bytes written
 *   since the last read completed, nothing buffered, no EOF seen. Otherwise
 *   `release()` destroys it (`stats.destroyed.dirty`).
 * - While idle, a read stays pending on it (the idle watch): EOF, a reset
 *   or any byte at all closes it and evicts it at once. A connection found
 *   dead or holding bytes when it is borrowed is destroyed and another is
 *   taken (`stats.stale`).
 * - Every I/O call takes `{ signal, timeout }`; expiry or abort after the
 *   call started closes the connection (`stats.destroyed.broken`), so its
 *   late reply reaches nobody.
 * - {@linkcode TcpPool.exchange} (any protocol: pass a function that reads
 *   one reply) and {@linkcode TcpPool.request} (length-prefixed frames) add
 *   a `verify(request, reply)` hook: a reply that fails it destroys the
 *   connection and rejects with {@linkcode ProtocolError}. Bytes left
 *   buffered after a reply do the same. This is what catches a server that
 *   sends a reply nobody asked for: no pool can tell an unsolicited reply
 *   from the real one by itself.
 * - Every error is typed: {@linkcode ConnectionBrokenError},
 *   {@linkcode ProtocolError}, {@linkcode TimeoutError},
 *   {@linkcode DialError}, {@linkcode PoolClosedError}, the framing errors,
 *   or the caller's own `signal.reason`; the runtime's error is the `cause`.
 *
 * @example Usage
 * ```ts
 * import { TcpPool } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * // An echo server: whatever it gets, it sends back.
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = (async () => {
 *   for await (const conn of listener) {
 *     conn.readable.pipeTo(conn.writable).catch(() => {});
 *   }
 * })();
 *
 * {
 *   await using pool = new TcpPool({ port: listener.addr.port, max: 2 });
 *   // A line protocol: write a line, read one line back.
 *   const line = await pool.exchange(
 *     new TextEncoder().encode("PING\r\n"),
 *     (reader) => reader.readLine(),
 *     { timeout: 1_000 },
 *   );
 *   assert.equal(line, "PING");
 *   // Length-prefixed frames.
 *   const reply = await pool.request(new TextEncoder().encode("ping"));
 *   assert.equal(new TextDecoder().decode(reply), "ping");
 * }
 * listener.close();
 * await served;
 * ```
 *
 * @module
 */

import type {
  FrameOptions,
  FrameReader,
  FrameReaderOptions,
} from "./framing.ts";
import { type Format, format } from "./_frame_format.ts";
import {
  type BorrowOptions,
  type ConnectivityState,
  type DestroyedStats,
  type LeakReport,
  type Lease,
  Pool,
  type PoolCloseOptions,
  type PoolEventMap,
  type PoolEventType,
  type PoolHistograms,
  type PoolOptions,
  type PoolStats,
  PoolTimeoutError,
  type StateChangeEvent,
  TimeoutError,
} from "./pool.ts";
import { SYSTEM_CLOCK } from "./_time.ts";
import { closeForce } from "./_options.ts";
import { poolHooks, tcpHooks } from "./_internal.ts";
import {
  connectTcp,
  connectUnix,
  dialTls,
  type Socket,
  type TlsSettings,
} from "./_socket.ts";
import { describe } from "./_util.ts";
import {
  bytes,
  Connection,
  exchangeArgs,
  exchangeOn,
  type ExchangeOptions,
  giveBack,
  type ReadReply,
  REQUEST,
  Shared,
} from "./_conn.ts";

export { ConnectionBrokenError, ProtocolError } from "./_conn.ts";
import { endView, pingView, PooledConn } from "./_pooled.ts";
import { Mux, type MuxSettings, type TcpPipelineStats } from "./_mux.ts";
export type { TcpPipelineStats } from "./_mux.ts";
import { encode } from "./_frame_format.ts";
import { MAX_DELAY } from "./_util.ts";

const EMPTY_PAYLOAD = new Uint8Array(0);

/** `pipeline`, checked; `null` when off. */
function pipelineSettings(pipeline: unknown): MuxSettings | null {
  if (pipeline === undefined) return null;
  const where = "Cannot create pool: pipeline";
  if (typeof pipeline !== "object" || pipeline === null) {
    throw new TypeError(
      `${where} must be an object { match, ... }, received ${
        describe(pipeline)
      }`,
    );
  }
  const {
    match,
    maxInFlight = 64,
    maxBatchBytes = 65536,
    orphanTimeout = 5_000,
    tagOf,
    tagLimit = 2 ** 32,
  } = pipeline as TcpPipelineOptions;
  if (match !== "fifo" && match !== "tagged") {
    throw new (typeof match === "string" ? RangeError : TypeError)(
      `${where}.match must be "fifo" or "tagged", received ${describe(match)}`,
    );
  }
  const int = (name: string, v: unknown, min: number, max: number) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new (typeof v === "number" ? RangeError : TypeError)(
        `${where}.${name} must be an integer from ${min} to ${max}, received ${
          describe(v)
        }`,
      );
    }
    return v;
  };
  int("maxInFlight", maxInFlight, 1, 65536);
  int("maxBatchBytes", maxBatchBytes, 1, 2 ** 30);
  int("orphanTimeout", orphanTimeout, 1, MAX_DELAY);
  if (match === "tagged") {
    if (typeof tagOf !== "function") {
      throw new TypeError(
        `${where}.tagOf must be a function with match "tagged", received ${
          describe(tagOf)
        }`,
      );
    }
    int("tagLimit", tagLimit, maxInFlight, 2 ** 32);
  } else {
    for (
      const [name, v] of [["tagOf", tagOf], [
        "tagLimit",
        pipeline && (pipeline as TcpPipelineOptions).tagLimit,
      ]] as const
    ) {
      if (v !== undefined) {
        throw new TypeError(
          `${where}.${name} is for match "tagged", received ${
            describe(v)
          } with match "fifo"`,
        );
      }
    }
  }
  return {
    match,
    maxInFlight,
    maxBatchBytes,
    orphanTimeout,
    tagOf: tagOf as ((reply: unknown) => number) | undefined,
    tagLimit,
  };
}
export { PooledConn } from "./_pooled.ts";
export type {
  ExchangeOptions,
  IoOptions,
  RequestOptions,
  WriteOptions,
} from "./_conn.ts";

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
  | "clock"
  | "backoff"
  | "failFast"
  | "maxWaiting"
  | "histograms"
>;

/** What a leak report or a heartbeat tells about a connection. */
export interface TcpConnInfo {
  /** The local address (its port identifies the connection). */
  localAddr: Deno.Addr;
  /** The server's address. */
  remoteAddr: Deno.Addr;
}

/** Pings for idle connections: see {@linkcode TcpPoolOptions.heartbeat}. */
export interface TcpHeartbeatOptions {
  /** How long a connection may sit idle before it is pinged, in ms. */
  interval: number;
  /**
   * Checks one idle connection, lent for the call (do not release it).
   * Returning `false`, throwing, or leaving anything in flight or unread
   * destroys it. `signal` aborts after `connectTimeout`: pass it to the
   * connection's calls.
   */
  ping: (conn: PooledConn, signal: AbortSignal) => unknown;
}

/** TLS settings for {@linkcode TcpPoolOptions.tls}. */
export interface TcpTlsOptions {
  /**
   * PEM root certificates to verify the server with (a private CA, a
   * self-signed server), passed to `node:tls` as `ca`. Unset: the runtime's
   * default roots.
   */
  caCerts?: string[] | undefined;
  /** ALPN protocols offered to the server. */
  alpnProtocols?: string[] | undefined;
  /**
   * Skip checking the certificate's names against `hostname` (the chain is
   * still verified).
   *
   * @default {false}
   */
  unsafelyDisableHostnameVerification?: boolean | undefined;
  /** A client certificate chain (PEM), with `key`, for mutual TLS. */
  cert?: string | undefined;
  /** The client certificate's private key (PEM). */
  key?: string | undefined;
}

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
  /** The server's port (required unless `path` is given). */
  port?: number | undefined;
  /**
   * A Unix domain socket to connect to instead of `hostname:port` (Deno
   * needs read and write permission for it). Not with `tls`, `hostname` or
   * `port`; `noDelay` and `keepAlive` do not apply.
   */
  path?: string | undefined;
  /**
   * Connect with TLS: `true`, or {@linkcode TcpTlsOptions}. Certificates
   * are verified; the handshake is part of the dial, bounded by
   * `connectTimeout`.
   *
   * @default {false}
   */
  tls?: boolean | TcpTlsOptions | undefined;
  /**
   * Sets `TCP_NODELAY` on each connection.
   *
   * @default {true}
   */
  noDelay?: boolean | undefined;
  /**
   * Sets `SO_KEEPALIVE` on each connection.
   *
   * @default {true}
   */
  keepAlive?: boolean | undefined;
  /**
   * The initial size of each connection's read buffer, in bytes; it grows
   * for larger replies (up to `frame.maxFrameSize` for frames) and drops back
   * to this size when the connection goes idle.
   *
   * @default {8192}
   */
  readBufferSize?: number | undefined;
  /**
   * Length-prefixed framing for `readFrame`, `writeFrame` and `request`:
   * `headerSize` (1, 2, 4 or 8), `littleEndian`, `maxFrameSize` (≥ 1).
   *
   * @default {{ headerSize: 4, littleEndian: false, maxFrameSize: 4 MiB }}
   */
  frame?: FrameOptions | undefined;
  /**
   * Pings connections idle for `interval` ms, for peers behind NATs or
   * firewalls that drop silent connections without a word (off by default:
   * the idle watch sees every close the server makes).
   */
  heartbeat?: TcpHeartbeatOptions | undefined;
  /**
   * Leave a read pending on every idle connection, so a close or stray
   * bytes evict it at once. Turn it off only to rely on `heartbeat` (and on
   * the retry of stale connections) instead: without it, a connection the
   * server closed while idle is found out when it is next used.
   *
   * @default {true}
   */
  idleWatch?: boolean | undefined;
  /**
   * Receives leak reports (see `leakTimeout`). By default they go to
   * `console.warn`.
   */
  onLeak?: ((report: LeakReport<TcpConnInfo>) => void) | undefined;
  /**
   * Many requests in flight per connection for {@linkcode TcpPool.exchange}
   * and {@linkcode TcpPool.request}: replies matched in request order
   * (`"fifo"`) or by a tag the library allocates (`"tagged"`). Off by
   * default: each call then has its connection to itself.
   */
  pipeline?: TcpPipelineOptions | undefined;
}

/**
 * Pipelining: how calls share connections and how replies find their
 * calls. See the README's "Pipelining" section.
 */
export interface TcpPipelineOptions {
  /**
   * `"fifo"`: the server answers in request order (RESP, memcached text,
   * HTTP/1.1, SMTP). `"tagged"`: each reply carries the tag of its request
   * (memcached meta `O`, DNS over TCP, your own RPC); pass the payload as
   * a function of the tag, and `tagOf`.
   */
  match: "fifo" | "tagged";
  /**
   * Calls in flight per connection. Past it, calls go to the least-loaded
   * connection, then to a new one up to `max`, then wait in order.
   *
   * @default {64}
   */
  maxInFlight?: number | undefined;
  /**
   * The calls placed on a connection in one turn of the event loop go out
   * in one write of up to this many bytes (a larger request goes alone; a
   * tagged request is sized once made, so it may take a batch past it).
   *
   * @default {65536}
   */
  maxBatchBytes?: number | undefined;
  /**
   * How long the reply of a call that timed out or was aborted after its
   * request was written may still take, in ms. Its place is not reused
   * before that reply is read (fifo: read and dropped; tagged: its tag
   * stays taken). Past this, the connection is closed (fifo: every later
   * reply waits behind it) or, tagged, replaced once its other calls are
   * answered.
   *
   * @default {5000}
   */
  orphanTimeout?: number | undefined;
  /**
   * `"tagged"` only, and required there: the tag a reply carries, as
   * returned by the call's `read`. A tag that answers no call in flight is
   * a `ProtocolError` that closes the connection.
   */
  tagOf?: ((reply: unknown) => number) | undefined;
  /**
   * `"tagged"` only: tags run from 0 to `tagLimit - 1` per connection (a
   * protocol with a 16-bit ID passes 65536). At least `maxInFlight`.
   *
   * @default {2 ** 32}
   */
  tagLimit?: number | undefined;
}

/**
 * Options for {@linkcode TcpPool.exchange}: `timeout` bounds the whole call
 * (borrow, dial, write, read, retry); `0` or `Infinity`: no limit (the wait
 * for a connection is then bounded by `acquireTimeout` alone).
 *
 * @typeParam R The reply type.
 */
export interface PoolExchangeOptions<R> extends ExchangeOptions<R> {
  /**
   * Whether running the request twice is harmless. If so, a *reused*
   * connection that breaks (EOF or a reset) before its reply is complete
   * (the server had just closed it, or went away) is retried once on a
   * fresh connection. A request the server may have run already (a reply
   * cut short) runs again: pass `false` for anything that must not.
   *
   * @default {true}
   */
  idempotent?: boolean | undefined;
  /**
   * With `pipeline`: the call takes a connection of its own, as without
   * it (a blocking command, a transaction). No effect otherwise.
   *
   * @default {false}
   */
  exclusive?: boolean | undefined;
}

/** Options for {@linkcode TcpPool.request}. */
export type PoolRequestOptions = PoolExchangeOptions<Uint8Array>;

/** Why connections were destroyed: the pool's reasons, plus TCP's own. */
export interface TcpDestroyedStats extends DestroyedStats {
  /** A call on it failed, timed out or was aborted, or it reached EOF. */
  broken: number;
  /**
   * Released with a call in flight, a reply not read, or unread bytes.
   */
  dirty: number;
  /** Found dead or holding bytes when borrowed. */
  stale: number;
  /**
   * Its last reply ended exactly where the read that brought it did, so
   * bytes the server sent right behind the reply could not be ruled out
   * (the reply was delivered; the connection was not reused).
   */
  unchecked: number;
}

/** Counts of a {@linkcode TcpPool}: the pool's, plus retries. */
export interface TcpPoolStats extends PoolStats {
  /** Requests retried on a fresh connection after a stale one failed. */
  retries: number;
  /**
   * Connections found dead or dirty at borrow time, after the pool handed
   * them over but before the idle watch could evict them (also counted in
   * `destroyed.stale`).
   */
  stale: number;
  /** Destroyed connections, by reason. */
  destroyed: TcpDestroyedStats;
  /** With `pipeline` set: its counts. */
  pipeline?: TcpPipelineStats;
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

function tlsSettings(tls: unknown): TlsSettings | null {
  if (tls === false) return null;
  if (tls === true) return {};
  if (typeof tls !== "object" || tls === null) {
    throw new TypeError(
      `Cannot create pool: tls must be a boolean or TLS options, received ${
        describe(tls)
      }`,
    );
  }
  const t = tls as TcpTlsOptions;
  for (const name of ["caCerts", "alpnProtocols"] as const) {
    const v = t[name];
    if (
      v !== undefined &&
      !(Array.isArray(v) && v.every((x) => typeof x === "string"))
    ) {
      throw new TypeError(
        `Cannot create pool: tls.${name} must be an array of strings, received ${
          describe(v)
        }`,
      );
    }
  }
  for (const name of ["cert", "key"] as const) {
    const v = t[name];
    if (v !== undefined && typeof v !== "string") {
      throw new TypeError(
        `Cannot create pool: tls.${name} must be a PEM string, received ${
          describe(v)
        }`,
      );
    }
  }
  if ((t.cert === undefined) !== (t.key === undefined)) {
    throw new TypeError(
      "Cannot create pool: tls.cert and tls.key must be given together",
    );
  }
  const unsafe = t.unsafelyDisableHostnameVerification;
  if (unsafe !== undefined && typeof unsafe !== "boolean") {
    throw new TypeError(
      `Cannot create pool: tls.unsafelyDisableHostnameVerification must be a boolean, received ${
        describe(unsafe)
      }`,
    );
  }
  return t;
}

/** A boolean option of TcpPool's. */
function flag(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") {
    throw new TypeError(
      `Cannot create pool: ${name} must be a boolean, received ${
        describe(value)
      }`,
    );
  }
  return value;
}

/** What a leak report shows of a connection. */
function info(c: Connection): TcpConnInfo {
  return { localAddr: c.sock.localAddr, remoteAddr: c.sock.remoteAddr };
}

/**
 * A pool of TCP (or TLS) connections to one server.
 *
 * @example Usage
 * ```ts
 * import { TcpPool } from "@chanpool/chanpool";
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
 *     ports.add((conn.localAddr as Deno.NetAddr).port);
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
  readonly #shared: Shared;
  readonly #mux: Mux | null = null;
  readonly #frameFormat: Format;
  readonly #hostname: string;
  readonly #port: number;
  readonly #path: string | undefined;
  #retries = 0;
  #stale = 0;
  /** TCP connects not settled yet, given up ones included (close waits). */
  readonly #connecting = new Set<Promise<void>>();

  static {
    tcpHooks.inner = (pool) => (pool as TcpPool).#pool;
  }

  /**
   * Makes a pool; it dials lazily (or in the background for `minIdle`).
   *
   * @param options Where to connect, and pool options.
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If an option is out of range (`hostname` empty,
   *   `port`, `readBufferSize`, `frame`, and the pool's options).
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
      hostname: rawHostname,
      port: rawPort,
      path,
      tls = false,
      noDelay = true,
      keepAlive = true,
      readBufferSize = 8192,
      frame,
      heartbeat,
      idleWatch = true,
      onLeak,
      pipeline,
      ...poolOptions
    } = options;
    const muxSettings = pipelineSettings(pipeline);
    if (path !== undefined) {
      if (typeof path !== "string" || path === "") {
        throw new (path === "" ? RangeError : TypeError)(
          `Cannot create pool: path must be a non-empty string, received ${
            describe(path)
          }`,
        );
      }
      for (
        const [name, value] of [["hostname", rawHostname], [
          "port",
          rawPort,
        ]] as const
      ) {
        if (value !== undefined) {
          throw new TypeError(
            `Cannot create pool: ${name} cannot be given with path (a Unix socket), received ${
              describe(value)
            }`,
          );
        }
      }
      if (tls !== false) {
        throw new TypeError(
          `Cannot create pool: tls cannot be given with path (a Unix socket), received ${
            describe(tls)
          }`,
        );
      }
    }
    const hostname = rawHostname ?? "127.0.0.1";
    if (typeof hostname !== "string" || hostname === "") {
      throw new (hostname === "" ? RangeError : TypeError)(
        `Cannot create pool: hostname must be a non-empty string, received ${
          describe(hostname)
        }`,
      );
    }
    const p = path === undefined ? port(rawPort) : 0;
    if (
      typeof readBufferSize !== "number" || !Number.isInteger(readBufferSize) ||
      readBufferSize < 1
    ) {
      throw new (typeof readBufferSize === "number" ? RangeError : TypeError)(
        `Cannot create pool: readBufferSize must be a positive integer, received ${
          describe(readBufferSize)
        }`,
      );
    }
    const tlsOptions = tlsSettings(tls);
    flag("noDelay", noDelay);
    flag("keepAlive", keepAlive);
    if (onLeak !== undefined && typeof onLeak !== "function") {
      throw new TypeError(
        `Cannot create pool: onLeak must be a function, received ${
          describe(onLeak)
        }`,
      );
    }
    if (
      heartbeat !== undefined &&
      (typeof heartbeat !== "object" || heartbeat === null)
    ) {
      throw new TypeError(
        `Cannot create pool: heartbeat must be { interval, ping }, received ${
          describe(heartbeat)
        }`,
      );
    }
    if (heartbeat !== undefined && typeof heartbeat.ping !== "function") {
      throw new TypeError(
        `Cannot create pool: heartbeat.ping must be a function, received ${
          describe(heartbeat.ping)
        }`,
      );
    }
    // Validates frame options now rather than at the first dial.
    const frameFormat = format(frame, "create pool", "frame.");
    const maxFrame = frameFormat.max;
    this.#frameFormat = frameFormat;
    this.#hostname = hostname;
    this.#port = p;
    this.#path = path;
    if (typeof idleWatch !== "boolean") {
      throw new TypeError(
        `Cannot create pool: idleWatch must be a boolean, received ${
          describe(idleWatch)
        }`,
      );
    }
    const shared = this.#shared = new Shared(
      poolOptions.clock ?? SYSTEM_CLOCK,
      maxFrame,
      idleWatch,
    );
    const readerOptions: FrameReaderOptions = {
      ...frame,
      bufferSize: readBufferSize,
    };
    const dial = async (signal: AbortSignal): Promise<Connection> => {
      let sock: Socket;
      if (path !== undefined) {
        sock = await connectUnix(path, signal, this.#connecting);
      } else if (tlsOptions === null) {
        const tcp = await connectTcp(hostname, p, signal, this.#connecting);
        try {
          if (noDelay) tcp.setNoDelay(true);
          if (keepAlive) tcp.setKeepAlive(true);
        } catch (error) {
          tcp.close();
          throw error;
        }
        sock = tcp;
      } else {
        sock = await dialTls(
          hostname,
          p,
          tlsOptions,
          signal,
          noDelay,
          keepAlive,
        );
      }
      return new Connection(sock, shared, frame, readerOptions);
    };
    this.#pool = new Pool(dial, {
      ...poolOptions,
      name: this.address,
      close: (c, reason) => c.close(reason),
      watch: (c, evict) => {
        c.evict = evict;
        c.shared.watchSoon(c);
      },
      ...(onLeak === undefined ? {} : {
        onLeak: (report) =>
          onLeak({ ...report, resource: info(report.resource) }),
      }),
      ...(heartbeat === undefined ? {} : {
        heartbeat: {
          interval: heartbeat.interval,
          ping: (c, signal) => this.#ping(c, heartbeat.ping, signal),
        },
      }),
    });
    if (muxSettings !== null) {
      this.#mux = new Mux(
        this.#pool,
        shared,
        muxSettings,
        (lease) => this.#take(lease),
        this.#pool.stats.max,
        (poolOptions.maxLifetime ?? 1_800_000) || Infinity,
        ((poolOptions.leakTimeout ?? 0) || Infinity) !== Infinity,
      );
    }
  }

  /**
   * `hostname:port` of the server (`[host]:port` for IPv6), or `unix:path`
   * for a Unix socket; it names the pool in `DialError` messages.
   */
  get address(): string {
    if (this.#path !== undefined) return `unix:${this.#path}`;
    const h = this.#hostname;
    return `${h.includes(":") ? `[${h}]` : h}:${this.#port}`;
  }

  /**
   * Borrows a connection: an idle one that is still alive and clean, or a
   * new one.
   *
   * @param options `signal`, `timeout` (default `acquireTimeout`; `0` or
   *   `Infinity`: no limit), `fresh`.
   * @returns The connection; release it when done.
   * @throws {TypeError} If an option has the wrong type (nothing is
   *   borrowed).
   * @throws {RangeError} If `timeout` is out of range.
   * @throws {PoolTimeoutError} If none came within the timeout.
   * @throws {DialError} If the dial made for this borrow failed.
   * @throws {PoolClosedError} If the pool is or becomes closed.
   * @throws {PoolExhaustedError} At `max` with `whenExhausted: "fail"`.
   */
  async borrow(options?: BorrowOptions): Promise<PooledConn> {
    while (true) {
      const lease = await this.#pool.borrow(options);
      if (this.#take(lease)) return new PooledConn(lease);
    }
  }

  /**
   * Lends a borrowed connection, or destroys it if it died (or received
   * bytes nobody asked for) during the hand-over, before its idle watch
   * could evict it.
   */
  #take(lease: Lease<Connection>): boolean {
    const c = lease.resource;
    if (c.unusable || !c.clean) {
      this.#stale++;
      c.poison(undefined);
      poolHooks.destroyAs(lease, "stale", undefined);
      return false;
    }
    c.borrowed = true;
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
   * Borrows a connection, writes `payload` as it is, reads one reply with
   * `read`, and releases the connection: any protocol (lines, RESP, your
   * own) with every guarantee of the pool. `read` gets the connection's
   * {@linkcode FrameReader} and returns the parsed reply.
   *
   * - `timeout` bounds the whole call: borrow, dial, write, read, retry.
   *   It rejects with {@linkcode TimeoutError} (a
   *   {@linkcode PoolTimeoutError} as `cause` if it ran out while waiting
   *   for a connection). Once the request started, the connection is
   *   closed, so its late reply reaches nobody.
   * - A *reused* connection that breaks before the reply is complete (the
   *   server had just closed it, or went away) is retried once on a fresh
   *   connection, unless `idempotent` is `false`.
   * - `verify(request, reply)` that returns false, or bytes left unread
   *   after the reply, reject with {@linkcode ProtocolError} and destroy the
   *   connection (never retried: the request was delivered).
   * - EOF before the reply is complete is a {@linkcode ConnectionBrokenError}.
   *
   * @example A line protocol
   * ```ts
   * import { TcpPool } from "@chanpool/chanpool";
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
   *   const token = crypto.randomUUID();
   *   const line = await pool.exchange(
   *     new TextEncoder().encode(`ECHO ${token}\r\n`),
   *     (reader) => reader.readLine(),
   *     { timeout: 1_000, verify: (_req, reply) => reply === `ECHO ${token}` },
   *   );
   *   assert.equal(line, `ECHO ${token}`);
   * }
   * listener.close();
   * await served;
   * ```
   *
   * @typeParam R The reply type.
   * @param payload The request's bytes, written as they are; with
   *   `pipeline.match` `"tagged"`, a function of the tag that returns them.
   * @param read Reads one reply from the connection's reader.
   * @param options `timeout`, `signal`, `idempotent`, `verify`, `exclusive`.
   * @returns What `read` returned.
   * @throws {TypeError} If an argument or option has the wrong type
   *   (nothing is borrowed or sent).
   * @throws {RangeError} If `timeout` is out of range.
   * @throws {TimeoutError} If `timeout` ran out.
   * @throws {ConnectionBrokenError} If the connection failed.
   * @throws {ProtocolError} If the reply failed `verify` or was followed by
   *   unread bytes.
   * @throws {DialError} If no connection could be dialed.
   * @throws {PoolClosedError} If the pool is or becomes closed.
   */
  exchange<R>(
    payload: Uint8Array | ((tag: number) => Uint8Array),
    read: (reader: FrameReader) => Promise<R> | R,
    options?: PoolExchangeOptions<R>,
  ): Promise<R> {
    return this.#exchange("exchange", false, read, payload, options);
  }

  /**
   * Borrows a connection, sends one length-prefixed frame, reads one frame
   * back, releases: {@linkcode TcpPool.exchange} for frames (gtcp's
   * `SendRecvPkg`), with the same guarantees.
   *
   * @param payload The request's payload; with `pipeline.match` `"tagged"`,
   *   a function of the tag that returns it (framed once made).
   * @param options `timeout` (for the whole call), `signal`, `idempotent`,
   *   `verify`.
   * @returns The response's payload.
   * @throws {TypeError} If an argument or option has the wrong type
   *   (nothing is borrowed or sent).
   * @throws {RangeError} If the payload exceeds `maxFrameSize`, or `timeout`
   *   is out of range.
   * @throws {TimeoutError} If `timeout` ran out.
   * @throws {ConnectionBrokenError} If the connection failed.
   * @throws {ProtocolError} If the reply failed `verify` or was followed by
   *   unread bytes.
   * @throws {DialError} If no connection could be dialed.
   * @throws {PoolClosedError} If the pool is or becomes closed.
   */
  request(
    payload: Uint8Array | ((tag: number) => Uint8Array),
    options?: PoolRequestOptions,
  ): Promise<Uint8Array> {
    return this.#exchange(...REQUEST, payload, options);
  }

  #exchange<R>(
    what: string,
    frame: boolean,
    read: ReadReply<R>,
    payload: Uint8Array | ((tag: number) => Uint8Array),
    options: PoolExchangeOptions<R> | undefined,
  ): Promise<R> {
    const exclusive = options?.exclusive;
    if (exclusive !== undefined && typeof exclusive !== "boolean") {
      throw new TypeError(
        `Cannot ${what}: exclusive must be a boolean, received ${
          describe(exclusive)
        }`,
      );
    }
    const mux = this.#mux;
    const tagged = mux !== null && mux.tagged;
    if (typeof payload === "function") {
      if (!tagged || exclusive === true) {
        throw new TypeError(
          `Cannot ${what}: payload must be a Uint8Array${
            tagged ? " for an exclusive call" : ""
          }, received a function (a function of the tag is for pipeline.match "tagged")`,
        );
      }
    } else if (tagged && exclusive !== true) {
      bytes(what, "payload", payload);
      throw new TypeError(
        `Cannot ${what}: payload must be a function (tag) => Uint8Array with pipeline.match "tagged", received a Uint8Array`,
      );
    }
    if (mux !== null && exclusive !== true) {
      return this.#pipelined(mux, what, frame, read, payload, options);
    }
    return this.#exchangeAlone(
      what,
      frame,
      read,
      payload as Uint8Array,
      options,
    );
  }

  #pipelined<R>(
    mux: Mux,
    what: string,
    frame: boolean,
    read: ReadReply<R>,
    payload: Uint8Array | ((tag: number) => Uint8Array),
    options: PoolExchangeOptions<R> | undefined,
  ): Promise<R> {
    const { verify, signal, timeout, retry } = this.#callArgs(
      what,
      payload,
      frame,
      read,
      options,
    );
    let bytes = payload;
    if (frame) {
      const format = this.#frameFormat;
      if (typeof payload === "function") {
        // Framed once made: a payload too large fails its own call.
        bytes = (tag) => encode(payload(tag), format, what);
      } else {
        bytes = encode(payload, format, what);
      }
    }
    return mux.call(bytes, read, verify, signal, timeout, retry);
  }

  /**
   * A call's arguments, checked before anything is borrowed or sent; an
   * aborted signal wins over an idle connection: nothing is sent.
   */
  #callArgs<R>(
    what: string,
    payload: Uint8Array | ((tag: number) => Uint8Array),
    frame: boolean,
    read: ReadReply<R>,
    options: PoolExchangeOptions<R> | undefined,
  ) {
    const args = exchangeArgs(
      what,
      typeof payload === "function" ? EMPTY_PAYLOAD : payload,
      frame,
      read,
      options,
      this.#shared,
    );
    const idempotent = options?.idempotent;
    if (idempotent !== undefined && typeof idempotent !== "boolean") {
      throw new TypeError(
        `Cannot ${what}: idempotent must be a boolean, received ${
          describe(idempotent)
        }`,
      );
    }
    args.signal?.throwIfAborted();
    return { ...args, retry: idempotent !== false };
  }

  async #exchangeAlone<R>(
    what: string,
    frame: boolean,
    read: ReadReply<R>,
    payload: Uint8Array,
    options: PoolExchangeOptions<R> | undefined,
  ): Promise<R> {
    const { verify, signal, timeout, retry } = this.#callArgs(
      what,
      payload,
      frame,
      read,
      options,
    );
    const clock = this.#shared.clock;
    const at = timeout === Infinity ? Infinity : clock.now() + timeout;
    let fresh = false;
    while (true) {
      // An idle connection without a promise hop; else borrow and wait.
      let lease = fresh ? undefined : this.#pool.tryBorrow();
      if (lease === undefined) {
        // The time left, checked here: a borrow's timeout of 0 is no limit.
        const left = at === Infinity ? Infinity : at - clock.now();
        if (left <= 0) {
          throw new TimeoutError(
            `Cannot ${what}: timed out after ${Math.round(timeout)} ms`,
            timeout,
          );
        }
        try {
          lease = await this.#pool.borrow({
            signal,
            fresh,
            // No limit of its own: the wait is the pool's acquireTimeout.
            timeout: at === Infinity ? undefined : left,
          });
        } catch (error) {
          if (error instanceof PoolTimeoutError && at !== Infinity) {
            throw new TimeoutError(
              `Cannot ${what}: timed out after ${
                Math.round(timeout)
              } ms waiting for a connection (${error.message})`,
              timeout,
              { cause: error },
            );
          }
          throw error;
        }
      }
      if (!this.#take(lease)) continue;
      const c = lease.resource;
      const reused = c.used;
      c.used = true;
      if (at !== Infinity && at <= clock.now()) {
        giveBack(c, lease);
        throw new TimeoutError(
          `Cannot ${what}: timed out after ${Math.round(timeout)} ms`,
          timeout,
        );
      }
      try {
        const reply = await exchangeOn(
          c,
          payload,
          frame,
          read,
          verify,
          signal,
          at,
          timeout,
        );
        giveBack(c, lease);
        return reply;
      } catch (error) {
        giveBack(c, lease); // destroyed: it is broken
        // The connection broke under the call (EOF or a reset, before or
        // in the middle of the reply): a reused one had gone stale or its
        // server went away. The caller has nothing; an idempotent request
        // may run again.
        if (!fresh && reused && retry && c.ended) {
          fresh = true;
          this.#retries++;
          continue;
        }
        throw error;
      }
    }
  }

  /** A heartbeat: lends an idle connection to `ping`, then checks it. */
  async #ping(
    c: Connection,
    ping: TcpHeartbeatOptions["ping"],
    signal: AbortSignal,
  ): Promise<boolean> {
    if (c.unusable || !c.clean) return false;
    c.borrowed = true;
    const view = pingView(c);
    let ok: unknown;
    try {
      ok = await ping(view, signal);
    } finally {
      endView(view);
    }
    if (ok === false || c.unusable || !c.clean) return false;
    c.borrowed = false;
    c.shared.watchSoon(c);
    return true;
  }

  /** Counts: the pool's, plus `retries`, `stale`, and TCP's destroy reasons. */
  get stats(): TcpPoolStats {
    const stats = this.#pool.stats;
    return {
      ...stats,
      ...(this.#mux === null ? {} : { pipeline: this.#mux.stats }),
      retries: this.#retries,
      stale: this.#stale,
      destroyed: {
        broken: 0,
        dirty: 0,
        stale: 0,
        unchecked: 0,
        ...stats.destroyed,
      },
    };
  }

  /** `true` once `close` was called. */
  get closed(): boolean {
    return this.#pool.closed;
  }

  /**
   * Whether the server can be reached, as {@linkcode Pool.state} reports
   * it: `"idle"`, `"connecting"`, `"ready"`, `"transient_failure"` (the
   * last dial failed; calls wait for the next probe) or `"closed"`.
   *
   * @returns The state.
   */
  get state(): ConnectivityState {
    return this.#pool.state;
  }

  /**
   * Calls `listener` on every change of {@linkcode TcpPool.state}; see
   * {@linkcode Pool.on}.
   *
   * @param type `"statechange"`.
   * @param listener Called with a {@linkcode StateChangeEvent}.
   * @returns A function that removes the listener.
   */
  on(
    type: "statechange",
    listener: (event: StateChangeEvent) => void,
  ): () => void;
  /**
   * Calls `listener` on every pool event of `type` (`"borrow"`,
   * `"release"`, `"dialstart"`, `"dial"`, `"dialerror"`, `"dialabandon"`,
   * `"destroy"` with TCP's reasons too, `"timeout"`); see
   * {@linkcode Pool.on}. `pool` in each event is the address.
   *
   * @typeParam K The event type.
   * @param type The event type.
   * @param listener Called with the event (valid during the call only).
   * @returns A function that removes the listener.
   */
  on<K extends PoolEventType>(
    type: K,
    listener: (event: PoolEventMap[K]) => void,
  ): () => void;
  on(
    type: "statechange" | PoolEventType,
    listener: (event: never) => void,
  ): () => void {
    return (this.#pool.on as (
      type: string,
      listener: (event: never) => void,
    ) => () => void)(type, listener);
  }

  /**
   * Histograms of wait, use and dial times with `histograms: true`; see
   * {@linkcode Pool.histograms}.
   *
   * @returns The histograms, or `null`.
   */
  get histograms(): PoolHistograms | null {
    return this.#pool.histograms;
  }

  /**
   * Closes the pool: idle connections at once, connections in use when
   * released (or at once with `force`: a call in flight on them rejects
   * with {@linkcode PoolClosedError}).
   *
   * @param options `force`.
   * @returns When every connection is closed.
   * @throws {TypeError} If `options` or `force` has the wrong type (the
   *   pool is left as it was).
   */
  async close(options?: PoolCloseOptions): Promise<void> {
    closeForce(options); // before anything is closed
    this.#shared.poolClosed = true;
    this.#mux?.close();
    await this.#pool.close(options);
    this.#mux?.stop();
    // Connects the pool gave up on: each closes what it lands (bounded: a
    // connect still pending is cancelled a second after its dial ended).
    while (this.#connecting.size > 0) await Promise.all(this.#connecting);
    this.#shared.stop();
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
