// Copyright 2026 the chanpool authors. MIT license.
// PooledConn: a connection lent by a TcpPool (tcp.ts re-exports it), with
// its I/O calls, exchanges, streams and release.

import type { FrameReader } from "./framing.ts";
import { describe } from "./_util.ts";
import { type Lease, PoolClosedError } from "./pool.ts";
import {
  bytes,
  type Connection,
  ConnectionBrokenError,
  connHooks,
  exchangeArgs,
  exchangeOn,
  type ExchangeOptions,
  fault,
  frameSize,
  giveBack,
  type IoOptions,
  limits,
  ProtocolError,
  pullChunk,
  pullInto,
  pushAll,
  raceOn,
  type ReadReply,
  REQUEST,
  type RequestOptions,
  writeAll,
  type WriteOptions,
} from "./_conn.ts";

// -- PooledConn: a borrowed connection --

const READ = 0;
const WRITE = 1;
const WRITE_NO_REPLY = 2;
type Kind = typeof READ | typeof WRITE | typeof WRITE_NO_REPLY;

// Bound in PooledConn's static block: makes a connection lent for a ping,
// and ends it.
export let pingView: (c: Connection) => PooledConn;
export let endView: (conn: PooledConn) => void;

/**
 * A connection lent by a {@linkcode TcpPool}. Release it (or let
 * `await using` do it) when done; destroy it if it is in an unknown state.
 * Every call rejects with a `TypeError` once it is released.
 *
 * Release gives it back to the pool only if it is clean: no call in flight,
 * no bytes written since the last read completed (pass `expectReply: false`
 * to a write the server does not answer), nothing unread, no EOF. Otherwise
 * it is destroyed, so a reply still on its way can never reach the next
 * borrower.
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
 *   await using pool = new TcpPool({ port: listener.addr.port });
 *   await using conn = await pool.borrow();
 *   await conn.write(new TextEncoder().encode("hello\n"), { timeout: 1_000 });
 *   assert.equal(await conn.readLine({ timeout: 1_000 }), "hello");
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
  readonly #lease: Lease<Connection> | null;
  #c: Connection | null;
  readonly #reused: boolean;
  #readable: ReadableStream<Uint8Array> | undefined = undefined;
  #writable: WritableStream<Uint8Array> | undefined = undefined;

  /**
   * Made by {@linkcode TcpPool.borrow}; not public API.
   *
   * @ignore
   * @param lease The pool's lease on the connection (`null` for a ping's
   *   view of an idle connection).
   * @param c The connection, for a ping's view.
   */
  constructor(lease: Lease<Connection> | null, c?: Connection) {
    this.#lease = lease;
    const conn = lease === null ? c! : lease.resource;
    this.#c = conn;
    this.#reused = conn.used;
    conn.used = true;
  }

  static {
    pingView = (c) => new PooledConn(null, c);
    endView = (conn) => {
      conn.#c = null;
    };
    connHooks.pull = (conn) => pullChunk((conn as PooledConn).#live("read"));
    connHooks.pullInto = (conn, buf) =>
      pullInto((conn as PooledConn).#live("read"), buf);
    connHooks.push = (conn, p) =>
      pushAll((conn as PooledConn).#live("write"), p);
    connHooks.stopPull = (pooled) => {
      const conn = pooled as PooledConn;
      const c = conn.#c;
      if (c === null) return false;
      if (c.pulling) {
        c.pulling = false;
        c.pullGen++;
      }
      return !c.unusable && c.clean && conn.#lease !== null &&
        conn.#lease.held;
    };
  }

  /** The connection, if this conn may still use it; else why not. */
  #live(what: string): Connection {
    const c = this.#c;
    if (c === null) {
      throw new TypeError(`Cannot ${what}: the connection was released`);
    }
    if (this.#lease !== null && !this.#lease.held) {
      throw new PoolClosedError(`Cannot ${what}: the pool closed`);
    }
    if (c.dead) {
      throw new ConnectionBrokenError(
        `Cannot ${what}: the connection is broken`,
        { cause: c.closeReason, beforeResponse: true },
      );
    }
    return c;
  }

  /** `true` if an earlier borrower used this connection. */
  get reused(): boolean {
    this.#conn();
    return this.#reused;
  }

  #conn(): Connection {
    const c = this.#c;
    if (c === null) throw new TypeError("Cannot use connection: released");
    return c;
  }

  /**
   * `true` once a call on it failed midway (or it was closed): it will be
   * destroyed on release.
   */
  get broken(): boolean {
    return this.#conn().unusable;
  }

  /**
   * The local address: a `Deno.NetAddr` (its port identifies the
   * connection), or a `Deno.UnixAddr` for a pool over a Unix socket.
   */
  get localAddr(): Deno.Addr {
    return this.#conn().sock.localAddr;
  }

  /** The server's address (a `Deno.UnixAddr` for a Unix socket). */
  get remoteAddr(): Deno.Addr {
    return this.#conn().sock.remoteAddr;
  }

  /** Unread bytes already received (a connection released so is dirty). */
  get buffered(): number {
    return this.#conn().buffered;
  }

  /**
   * Runs one I/O call on the connection: checks come first (a bad argument
   * rejects without touching the connection), then the call (see
   * {@linkcode runIo}).
   */
  #io<R>(
    what: string,
    options: IoOptions | undefined,
    kind: Kind,
    start: (c: Connection) => Promise<R>,
  ): Promise<R> {
    try {
      const c = this.#live(what);
      const { signal, timeout } = limits(what, options);
      const reading = kind === READ;
      if (reading ? c.reading || c.pulling : c.writing) {
        throw new TypeError(
          `Cannot ${what}: another ${
            reading ? "read" : "write"
          } is in flight on this connection`,
        );
      }
      signal?.throwIfAborted();
      return runIo(c, what, signal, timeout, kind, start);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Writes all of `p` (looping over short writes). A reply is then due:
   * the connection is reused only once a read completed, unless
   * `expectReply` is `false`.
   *
   * @param p The bytes.
   * @param options `timeout`, `signal`, `expectReply`.
   * @returns `p.length`.
   * @throws {TypeError} If an argument or option has the wrong type (the
   *   connection is not touched), or the connection was released.
   * @throws {RangeError} If `timeout` is negative, NaN, or finite and above
   *   2^31 − 1.
   * @throws {ConnectionBrokenError} If the connection failed.
   * @throws {TimeoutError} If `timeout` ran out (the connection is closed).
   */
  write(p: Uint8Array, options?: WriteOptions): Promise<number> {
    let kind: Kind;
    try {
      bytes("write", "p", p);
      kind = writeKind("write", options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#io("write", options, kind, (c) => writeAll(c.sock, p))
      .then(() => p.length);
  }

  /**
   * Reads into `p`: buffered bytes first, then from the socket.
   *
   * @param p Where to read to.
   * @param options `timeout`, `signal`.
   * @returns The number of bytes read, or `null` at EOF (the connection is
   *   then destroyed on release).
   * @throws {TypeError} If an argument or option has the wrong type (the
   *   connection is not touched), or the connection was released.
   * @throws {RangeError} If `timeout` is negative, NaN, or finite and above
   *   2^31 − 1.
   * @throws {ConnectionBrokenError} If the connection failed.
   * @throws {TimeoutError} If `timeout` ran out (the connection is closed).
   */
  read(p: Uint8Array, options?: IoOptions): Promise<number | null> {
    try {
      bytes("read", "p", p);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#io("read", options, READ, (c) => c.reader.read(p));
  }

  /**
   * Reads exactly `n` bytes (Go `gtcp`'s `Recv(n)`).
   *
   * @param n How many.
   * @param options `timeout`, `signal`.
   * @returns The bytes, or `null` at EOF before any.
   * @throws {TypeError} If an argument or option has the wrong type (the
   *   connection is not touched), or the connection was released.
   * @throws {RangeError} If `n` is not a non-negative integer, or `timeout`
   *   is out of range.
   * @throws {UnexpectedEofError} If the stream ended after some of them.
   * @throws {ConnectionBrokenError} If the connection failed.
   * @throws {TimeoutError} If `timeout` ran out (the connection is closed).
   */
  readExact(n: number, options?: IoOptions): Promise<Uint8Array | null> {
    if (!Number.isSafeInteger(n) || n < 0) {
      return Promise.reject(
        new (typeof n === "number" ? RangeError : TypeError)(
          `Cannot read exact: n must be a non-negative integer, received ${
            describe(n)
          }`,
        ),
      );
    }
    return this.#io("read exact", options, READ, (c) => c.reader.readExact(n));
  }

  /**
   * Reads a line ending in `\n` or `\r\n`, without it (`gtcp`'s `RecvLine`).
   *
   * @param options `timeout`, `signal`.
   * @returns The line, or `null` at EOF.
   * @throws {TypeError} If an argument or option has the wrong type (the
   *   connection is not touched), or the connection was released.
   * @throws {RangeError} If `timeout` is negative, NaN, or finite and above
   *   2^31 − 1.
   * @throws {FrameTooLargeError} If the line is longer than 64 KiB.
   * @throws {ConnectionBrokenError} If the connection failed.
   * @throws {TimeoutError} If `timeout` ran out (the connection is closed).
   */
  readLine(options?: IoOptions): Promise<string | null> {
    return this.#io("read line", options, READ, (c) => c.reader.readLine());
  }

  /**
   * Reads one length-prefixed frame (`gtcp`'s `RecvPkg`).
   *
   * @param options `timeout`, `signal`.
   * @returns Its payload, or `null` at EOF between frames.
   * @throws {TypeError} If an argument or option has the wrong type (the
   *   connection is not touched), or the connection was released.
   * @throws {RangeError} If `timeout` is negative, NaN, or finite and above
   *   2^31 − 1.
   * @throws {FrameTooLargeError} If the header announces more than
   *   `maxFrameSize`.
   * @throws {UnexpectedEofError} If the stream ended inside the frame.
   * @throws {ConnectionBrokenError} If the connection failed.
   * @throws {TimeoutError} If `timeout` ran out (the connection is closed).
   */
  readFrame(options?: IoOptions): Promise<Uint8Array | null> {
    return this.#io("read frame", options, READ, (c) => c.reader.readFrame());
  }

  /**
   * Writes one length-prefixed frame in a single write (`gtcp`'s `SendPkg`).
   *
   * @param payload The frame's payload.
   * @param options `timeout`, `signal`, `expectReply`.
   * @throws {TypeError} If an argument or option has the wrong type (the
   *   connection is not touched), or the connection was released.
   * @throws {RangeError} If the payload exceeds `maxFrameSize` (nothing is
   *   written and the connection stays usable), or `timeout` is out of
   *   range.
   * @throws {ConnectionBrokenError} If the connection failed.
   * @throws {TimeoutError} If `timeout` ran out (the connection is closed).
   */
  writeFrame(payload: Uint8Array, options?: WriteOptions): Promise<void> {
    const what = "write frame";
    let kind: Kind;
    try {
      bytes(what, "payload", payload);
      kind = writeKind(what, options);
      frameSize(what, this.#live(what).shared, payload);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#io(what, options, kind, (c) => c.writer.write(payload));
  }

  /**
   * Writes `payload` as it is and reads one reply with `read`, which gets
   * the connection's reader (`readLine`, `readFrame`, `readExact`...) and
   * returns the parsed reply. The same guarantees as
   * {@linkcode TcpPool.exchange}, on a connection you hold.
   *
   * @typeParam R The reply type.
   * @param payload The request's bytes.
   * @param read Reads one reply.
   * @param options `timeout`, `signal`, `verify`.
   * @returns What `read` returned.
   * @throws {TypeError} If an argument or option has the wrong type (the
   *   connection is not touched), or the connection was released.
   * @throws {RangeError} If `timeout` is negative, NaN, or finite and above
   *   2^31 − 1.
   * @throws {ProtocolError} If `verify` rejected the reply, or bytes were
   *   buffered before the request or after the reply.
   * @throws {ConnectionBrokenError} If the connection failed (or the
   *   server closed it before the reply was complete).
   * @throws {TimeoutError} If `timeout` ran out (the connection is closed).
   */
  exchange<R>(
    payload: Uint8Array,
    read: (reader: FrameReader) => Promise<R> | R,
    options?: ExchangeOptions<R>,
  ): Promise<R> {
    return this.#exchange("exchange", false, read, payload, options);
  }

  /**
   * Writes a frame and reads the reply frame (`gtcp`'s `SendRecvPkg`):
   * {@linkcode PooledConn.exchange} for length-prefixed frames.
   *
   * @param payload The request's payload.
   * @param options `timeout`, `signal`, `verify`.
   * @returns The reply's payload.
   * @throws {TypeError} If an argument or option has the wrong type (the
   *   connection is not touched), or the connection was released.
   * @throws {RangeError} If the payload exceeds `maxFrameSize` (nothing is
   *   written and the connection stays usable), or `timeout` is out of
   *   range.
   * @throws {ProtocolError} If `verify` rejected the reply, or bytes were
   *   buffered before the request or after the reply.
   * @throws {ConnectionBrokenError} If the connection failed.
   * @throws {TimeoutError} If `timeout` ran out (the connection is closed).
   */
  request(payload: Uint8Array, options?: RequestOptions): Promise<Uint8Array> {
    return this.#exchange(...REQUEST, payload, options);
  }

  #exchange<R>(
    what: string,
    frame: boolean,
    read: ReadReply<R>,
    payload: Uint8Array,
    options: ExchangeOptions<R> | undefined,
  ): Promise<R> {
    try {
      return this.#startExchange(what, frame, read, payload, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Checks, then the exchange (which holds the connection, not this). */
  #startExchange<R>(
    what: string,
    frame: boolean,
    read: ReadReply<R>,
    payload: Uint8Array,
    options: ExchangeOptions<R> | undefined,
  ): Promise<R> {
    const c = this.#live(what);
    const { verify, signal, timeout } = exchangeArgs(
      what,
      payload,
      frame,
      read,
      options,
      c.shared,
    );
    if (c.reading || c.writing || c.pulling) {
      throw new TypeError(
        `Cannot ${what}: another call is in flight on this connection${
          c.pulling ? " (a read of its readable stream is pending)" : ""
        }`,
      );
    }
    if (c.unchecked) {
      throw new ConnectionBrokenError(
        `Cannot ${what}: the last reply ended exactly where its read did, so bytes sent behind it cannot be ruled out; use another connection`,
        { beforeResponse: true },
      );
    }
    signal?.throwIfAborted();
    if (c.buffered > 0) {
      const n = c.buffered;
      c.poison(undefined);
      throw new ProtocolError(
        `Cannot ${what}: ${n} unread bytes were buffered before the request (a reply nobody read, or bytes the server sent unasked)`,
      );
    }
    const at = timeout === Infinity ? Infinity : c.shared.clock.now() + timeout;
    return exchangeOn(
      c,
      payload,
      frame,
      read,
      verify,
      signal,
      at,
      timeout,
    );
  }

  /**
   * The bytes the server sends, as a stream: bytes already buffered come
   * first. Each chunk is one read's worth. Cancelling it while a read is
   * pending loses nothing and corrupts nothing (the read's bytes land in the
   * connection's buffer), but the connection is then not reusable: release
   * destroys it. Reading it and calling `read`/`readLine`... at the same
   * time is a `TypeError`.
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
   *   await using pool = new TcpPool({ port: listener.addr.port });
   *   await using conn = await pool.borrow();
   *   const writer = conn.writable.getWriter();
   *   await writer.write(new TextEncoder().encode("ping"));
   *   await writer.close(); // closeWrite: the echo server ends too
   *   const text = await new Response(conn.readable).text();
   *   assert.equal(text, "ping");
   * }
   * listener.close();
   * await served;
   * ```
   *
   * @returns The stream (the same one on every call).
   */
  get readable(): ReadableStream<Uint8Array> {
    const c = this.#conn();
    // The stream's callbacks reach this conn through a weak reference: a
    // pending read must not keep a dropped conn (and its lease) alive.
    const self = new WeakRef(this);
    return this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await pullChunk(PooledConn.#liveOf(self, "read"));
        try {
          if (chunk === null) controller.close();
          else controller.enqueue(chunk);
        } catch {
          // cancelled meanwhile
        }
      },
      cancel: () => {
        if (c.pulling) {
          c.pulling = false;
          c.pullGen++;
          c.spent = true;
        }
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Bytes to the server, as a stream: each chunk is written whole; closing
   * it shuts the write side ({@linkcode PooledConn.closeWrite}); aborting it
   * destroys the connection.
   *
   * @returns The stream (the same one on every call).
   */
  get writable(): WritableStream<Uint8Array> {
    this.#conn();
    const self = new WeakRef(this); // as for readable
    const conn = (what: string) => {
      const conn = self.deref();
      if (conn === undefined) throw PooledConn.#dropped(what);
      return conn;
    };
    return this.#writable ??= new WritableStream<Uint8Array>({
      write: (chunk) => conn("write").write(chunk).then(noop),
      close: () => conn("close write").closeWrite(),
      abort: (reason) => self.deref()?.destroy(reason),
    });
  }

  /** The live connection of `ref`'s conn (see #live), if it is still held. */
  static #liveOf(ref: WeakRef<PooledConn>, what: string): Connection {
    const conn = ref.deref();
    if (conn === undefined) throw PooledConn.#dropped(what);
    return conn.#live(what);
  }

  static #dropped(what: string): ConnectionBrokenError {
    return new ConnectionBrokenError(
      `Cannot ${what}: the connection was dropped without release and reclaimed`,
    );
  }

  /**
   * Shuts the write side (TCP half-close: the server reads EOF) and keeps
   * reading possible. The connection is not reusable afterwards: release
   * destroys it.
   *
   * @throws {TypeError} If a write is in flight or it was released.
   * @throws {ConnectionBrokenError} If the connection failed.
   */
  closeWrite(): Promise<void> {
    const what = "close write";
    try {
      const c = this.#live(what);
      if (c.writing) {
        throw new TypeError(`Cannot ${what}: a write is in flight`);
      }
      c.spent = true;
      return shutWrite(c, what);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Gives the connection back: to the pool if it is clean, else destroyed
   * (counted in `stats.destroyed.dirty` or `.broken`). A call still in
   * flight then rejects with {@linkcode ConnectionBrokenError}.
   */
  release(): void {
    const c = this.#c;
    if (c === null) return;
    this.#c = null;
    if (this.#lease === null) return;
    giveBack(c, this.#lease);
  }

  /**
   * Closes the connection instead of giving it back; a call still in flight
   * rejects with {@linkcode ConnectionBrokenError} (`reason` as its cause).
   *
   * @param reason Why, for the pool's records.
   */
  destroy(reason?: unknown): void {
    const c = this.#c;
    if (c === null) return;
    this.#c = null;
    c.poison(
      new ConnectionBrokenError(
        "Cannot use connection: it was destroyed by its borrower",
        { cause: reason },
      ),
    );
    this.#lease?.destroy(reason);
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

function noop(): void {}

/** A write's kind, from its `expectReply` (checked). */
function writeKind(what: string, options: WriteOptions | undefined): Kind {
  const expect = typeof options === "object" && options !== null
    ? options.expectReply
    : undefined;
  if (expect !== undefined && typeof expect !== "boolean") {
    throw new TypeError(
      `Cannot ${what}: expectReply must be a boolean, received ${
        describe(expect)
      }`,
    );
  }
  return expect === false ? WRITE_NO_REPLY : WRITE;
}

/**
 * One I/O call on `c`, checked by the conn: under the options' deadline and
 * signal; a failure once started poisons the connection. Module-level, so a
 * call in flight holds the connection, never the conn or its lease (a conn
 * dropped with a call pending is still reclaimed, and the call rejects).
 */
async function runIo<R>(
  c: Connection,
  what: string,
  signal: AbortSignal | undefined,
  timeout: number,
  kind: Kind,
  start: (c: Connection) => Promise<R>,
): Promise<R> {
  const reading = kind === READ;
  if (reading) c.reading = true;
  else c.writing = true;
  const received = c.reader.received;
  try {
    const work = start(c);
    const result = signal === undefined && timeout === Infinity
      ? await work
      : await raceOn(
        c,
        work,
        timeout === Infinity ? Infinity : c.shared.clock.now() + timeout,
        timeout,
        signal,
        what,
      );
    if (kind === WRITE) c.unanswered = true;
    else if (reading && result !== null) c.unanswered = false;
    return result;
  } catch (error) {
    throw fault(c, error, what, received);
  } finally {
    if (reading) c.reading = false;
    else c.writing = false;
  }
}

/** Shuts `c`'s write side (a TCP half-close). */
async function shutWrite(c: Connection, what: string): Promise<void> {
  try {
    await c.sock.closeWrite();
  } catch (error) {
    throw fault(c, error, what, c.reader.received);
  }
}
