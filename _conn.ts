// Copyright 2026 the chanpool authors. MIT license.
// A pooled TCP connection and the one request path behind every call:
// Connection (the socket, its reader and what is in flight on it), the
// per-pool Shared state (I/O deadlines, the deferred idle watch), the fault
// classifier that turns runtime errors into the documented typed errors,
// argument checks, exchangeOn (write, read, verify) and giveBack (release
// or destroy). tcp.ts builds PooledConn and TcpPool on it and re-exports
// the errors and I/O option types defined here.

import {
  type FrameOptions,
  FrameReader,
  type FrameReaderOptions,
  FrameTooLargeError,
  FrameWriter,
  UnexpectedEofError,
} from "./framing.ts";
import { readerHooks } from "./_frame_format.ts";
import { PoolClosedError, TimeoutError } from "./_errors.ts";
import type { Lease } from "./pool.ts";
import { type Clock, DeadlineHeap, race } from "./_time.ts";
import { poolHooks } from "./_internal.ts";
import { type Socket, SocketError } from "./_socket.ts";
import { describe, tooLong } from "./_util.ts";

// -- Errors --

/**
 * A connection failed in the middle of its work: the server closed or reset
 * it, it was destroyed or released while a call was in flight, or it was
 * already broken. The connection is not reused. `beforeResponse` says
 * whether no byte of a reply had arrived (then a retry on another connection
 * is safe for an idempotent request); `cause` is the runtime's error.
 *
 * @example Usage
 * ```ts
 * import { ConnectionBrokenError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const error = new ConnectionBrokenError("Cannot read reply: EOF", {
 *   beforeResponse: true,
 * });
 * assert.equal(error.name, "ConnectionBrokenError");
 * assert.equal(error.beforeResponse, true);
 * ```
 */
export class ConnectionBrokenError extends Error {
  /** `true` when the connection failed before any byte of the reply. */
  readonly beforeResponse: boolean;
  /**
   * `false` when the request was never written (a pipelined call that
   * could not be placed again); `true` when it was, or may have been, so
   * the server may have run it.
   */
  readonly written: boolean;

  /**
   * Makes the error.
   *
   * @param message What failed.
   * @param options `cause`, whether no reply byte had arrived, and
   *   whether the request was written.
   */
  constructor(
    message: string,
    options?: ErrorOptions & { beforeResponse?: boolean; written?: boolean },
  ) {
    super(message, options);
    this.name = "ConnectionBrokenError";
    this.beforeResponse = options?.beforeResponse ?? false;
    this.written = options?.written ?? true;
  }
}

/**
 * A reply that cannot be the answer to the request it came for: `verify`
 * returned false (or threw: that is the `cause`), or bytes nobody asked for
 * were buffered before the request or after the reply. The request was
 * delivered, so it is never retried; the connection is destroyed.
 *
 * @example Usage
 * ```ts
 * import { ProtocolError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const error = new ProtocolError("Cannot send request: verify rejected the reply");
 * assert.equal(error.name, "ProtocolError");
 * ```
 */
export class ProtocolError extends Error {
  /**
   * Makes the error.
   *
   * @param message What was wrong.
   * @param options `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
  }
}

// -- I/O options --

/** Options for every I/O call of a {@linkcode PooledConn}. */
export interface IoOptions {
  /**
   * How long the call may take, in milliseconds. When it runs out after the
   * call started, the connection is closed (it is out of step) and the call
   * rejects with a {@linkcode TimeoutError}. `0` or `Infinity`: no limit.
   *
   * @default {Infinity}
   */
  timeout?: number | undefined;
  /**
   * Cancels the call: it rejects with `signal.reason`, and, if the call had
   * started, the connection is closed.
   */
  signal?: AbortSignal | undefined;
}

/** Options for {@linkcode PooledConn.write} and `writeFrame`. */
export interface WriteOptions extends IoOptions {
  /**
   * `false` for bytes the server does not answer: the connection then stays
   * reusable without a read. By default a write means a reply is due, and a
   * connection released before a read completed is destroyed.
   *
   * @default {true}
   */
  expectReply?: boolean | undefined;
}

/**
 * Options for one request and its reply.
 *
 * @typeParam R The reply type.
 */
export interface ExchangeOptions<R> extends IoOptions {
  /**
   * Checks that `reply` answers `request` (an id, an echoed token). Called
   * once the reply is read; returning a falsy value or throwing destroys the
   * connection and rejects with {@linkcode ProtocolError}. Without it, a
   * server that sends an unsolicited reply can shift later replies by one
   * on the same connection; see the module docs for what is detected
   * without it.
   */
  verify?: ((request: Uint8Array, reply: R) => unknown) | undefined;
}

/** Options for {@linkcode PooledConn.request}. */
export type RequestOptions = ExchangeOptions<Uint8Array>;

// -- Shared state of one pool's connections --

/** What every connection of one pool shares. */
export class Shared {
  readonly clock: Clock;
  /** The largest frame payload the pool's connections write. */
  readonly maxFrame: number;
  /** I/O deadlines: one timer for all of them, as for the pool's waiters. */
  readonly deadlines: DeadlineHeap;
  poolClosed = false;
  // Released connections whose idle watch starts at the next macrotask.
  #toWatch: Connection[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;

  /** `idleWatch`: leave a read pending on idle connections. */
  readonly watchIdle: boolean;

  constructor(clock: Clock, maxFrame: number, watchIdle: boolean) {
    this.clock = clock;
    this.maxFrame = maxFrame;
    this.watchIdle = watchIdle;
    this.deadlines = new DeadlineHeap(clock, true);
  }

  /**
   * Arms `c`'s idle watch at the next macrotask, if it is still idle then.
   * A connection borrowed again at once (a loop of requests, a waiter
   * served by the release) never has a read pending when it writes, which
   * costs Deno a few microseconds per request; one that stays idle is
   * watched a moment later, and its watch read returns at once whatever
   * arrived meanwhile.
   */
  watchSoon(c: Connection): void {
    if (c.queued || !this.watchIdle) return;
    c.queued = true;
    this.#toWatch.push(c);
    if (this.#timer === undefined) {
      const timer = this.#timer = setTimeout(this.#flush, 0);
      Deno.unrefTimer(timer);
    }
  }

  readonly #flush = (): void => {
    this.#timer = undefined;
    const list = this.#toWatch;
    this.#toWatch = [];
    for (const c of list) {
      c.queued = false;
      if (!c.borrowed) c.watch();
    }
  };

  /** Stops every timer; for the pool's close, once its connections are. */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#toWatch = [];
    this.deadlines.clear();
  }
}

// -- Connection: the pooled resource --

function noop(): void {}

/**
 * One socket and its read side, as the pool holds it. Users get it wrapped
 * in a {@linkcode PooledConn}.
 */
export class Connection {
  readonly sock: Socket;
  readonly reader: FrameReader;
  readonly writer: FrameWriter;
  readonly shared: Shared;
  evict: (() => boolean) | null = null;
  closed = false;
  /** Why we closed it: what a call still in flight rejects with. */
  closeReason: unknown = undefined;
  /** The idle watch's read while pending, to silence its rejection. */
  #watch: Promise<number | null> | null = null;
  /** Lent (or being pinged): a watch result is the borrower's. */
  borrowed = false;
  /** In the shared watch queue. */
  queued = false;
  /** Saw EOF, an error or stray bytes while not borrowed. */
  stale = false;
  /** A call on it failed midway: out of step, never reused. */
  broken = false;
  /** A read (or write) of the borrower's is in flight. */
  reading = false;
  writing = false;
  /** Bytes were written since the last read completed: a reply is due. */
  unanswered = false;
  /** The first use of this connection is over. */
  used = false;
  /** A stream read (a prefetch) of the borrower's is pending. */
  pulling = false;
  /** Bumped when a pending stream read is given up: it takes nothing. */
  pullGen = 0;
  /** Its write side was shut (closeWrite), or a stream read was cancelled. */
  spent = false;
  /**
   * A reply's last read filled its buffer to the byte: bytes the server
   * sent right behind it could still be in the socket, unseen; it is not
   * reused (destroyed as `unchecked`).
   */
  unchecked = false;
  /**
   * The socket itself ended under a call: EOF or an error of the socket
   * (a reset), not a timeout, an abort or a parser's complaint. What the
   * retry of a stale connection looks at.
   */
  ended = false;
  /** When it was made, on the pool's clock (a pipeline's `maxLifetime`). */
  readonly born: number;

  constructor(
    sock: Socket,
    shared: Shared,
    frame: FrameOptions | undefined,
    readerOptions: FrameReaderOptions,
  ) {
    this.sock = sock;
    this.shared = shared;
    this.writer = new FrameWriter(sock, frame);
    this.reader = new FrameReader(sock, readerOptions);
    this.born = shared.clock.now();
  }

  /** Bytes received and not consumed yet. */
  get buffered(): number {
    return this.reader.buffered;
  }

  /** The idle watch's read is still pending (a borrower inherits it). */
  get watching(): boolean {
    return this.#watch !== null;
  }

  /** Nothing in flight, nothing owed, nothing unread, not at EOF. */
  get clean(): boolean {
    return !this.reading && !this.writing && !this.unanswered &&
      !this.pulling && this.reader.buffered === 0 && !this.reader.eof;
  }

  /** Dead, out of step or unchecked: never lent or pooled again. */
  get unusable(): boolean {
    return this.dead || this.spent || this.unchecked;
  }

  /** Closed, failed or found stale: no call may use it any more. */
  get dead(): boolean {
    return this.broken || this.stale || this.closed;
  }

  /**
   * Leaves a read pending while idle (the reader's prefetch, so the next
   * borrower's first read takes its bytes: nothing lost or read twice). If
   * it completes while the connection is idle, the connection is dead or
   * dirty: closed and evicted at once.
   */
  watch(): void {
    if (this.closed || this.#watch !== null) return;
    try {
      this.#watch = this.reader.prefetch(this.#watched);
    } catch {
      this.#idleFault();
    }
  }

  /**
   * The watch's read settled. If the connection is still idle, that was EOF,
   * a reset or bytes nobody asked for: it is dead or dirty. (A borrower that
   * took it over meanwhile reads the result itself.)
   */
  readonly #watched = (failed: boolean): void => {
    // A failed read nobody may await (idle, or lent but not read from).
    if (failed) {
      this.#watch?.catch(noop);
      this.stale = true;
    }
    this.#watch = null;
    if (this.borrowed || this.closed) return;
    this.#idleFault();
  };

  #idleFault(): void {
    this.stale = true;
    this.close();
    this.evict?.();
  }

  /** Closes the socket; calls in flight reject with `reason`. */
  close(reason?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    try {
      this.sock.close();
    } catch {
      // already closed
    }
    // The watch's read rejects now; a borrower may not be there to see it.
    this.#watch?.catch(noop);
  }

  /** Out of step: closed now, so whatever is still on the way reaches nobody. */
  poison(reason: unknown): void {
    this.broken = true;
    this.close(reason);
  }
}

const DENO_ERRORS: ReadonlySet<unknown> = new Set(Object.values(Deno.errors));

/** An error from the socket itself, not from a parser or the caller. */
export function isSocketError(error: unknown): error is Error {
  return error instanceof SocketError ||
    (error instanceof Error && DENO_ERRORS.has(error.constructor));
}

/**
 * The error a caller sees for `error`, raised by a call on `c` that had
 * started; the connection is out of step from now on. Our own errors and
 * the caller's pass through; the runtime's become ConnectionBrokenError,
 * or, when we closed the socket ourselves, the reason we closed it.
 */
export function fault(
  c: Connection,
  error: unknown,
  what: string,
  received: number,
  replying = false,
): unknown {
  const ours = c.closed && c.closeReason !== undefined;
  c.poison(error);
  if (error === c.closeReason && ours) return error;
  if (ours && isSocketError(error)) return c.closeReason;
  const beforeResponse = c.reader.received === received;
  if (c.closed && c.closeReason === undefined && c.shared.poolClosed) {
    return new PoolClosedError(`Cannot ${what}: the pool closed`, {
      cause: error,
    });
  }
  if (isSocketError(error)) {
    c.ended = true;
    return new ConnectionBrokenError(`Cannot ${what}: ${error.message}`, {
      cause: error,
      beforeResponse,
    });
  }
  if (c.reader.eof) c.ended = true;
  if (
    c.reader.eof && !(error instanceof FrameTooLargeError) &&
    !(error instanceof ProtocolError) &&
    (replying || !(error instanceof UnexpectedEofError))
  ) {
    // The stream ended under the call: whatever the reply's parser made of
    // that (its own error, a ConnectionBrokenError of its own, a reply cut
    // short), the connection broke. Classified by what the socket did, not
    // by what was thrown.
    return new ConnectionBrokenError(
      `Cannot ${what}: the server closed the connection${
        beforeResponse ? "" : " mid-reply"
      }`,
      { cause: error, beforeResponse },
    );
  }
  return error;
}

/** EOF where a reply should have been: the connection is done. */
function closedEarly(
  c: Connection,
  what: string,
  received: number,
): ConnectionBrokenError {
  c.poison(undefined);
  c.ended = true;
  return new ConnectionBrokenError(
    `Cannot ${what}: the server closed the connection`,
    { beforeResponse: c.reader.received === received },
  );
}

/**
 * Races a call on `c` against a deadline (absolute, on the pool's clock)
 * and a signal; either one closes the connection before rejecting, so what
 * the call was waiting for reaches nobody.
 */
export function raceOn<R>(
  c: Connection,
  work: Promise<R>,
  at: number,
  limit: number,
  signal: AbortSignal | undefined,
  what: string,
): Promise<R> {
  return race(c.shared.deadlines, work, at, signal, () => {
    const error = new TimeoutError(
      `Cannot ${what}: timed out after ${Math.round(limit)} ms`,
      limit,
    );
    c.poison(error);
    return error;
  }, (reason) => c.poison(reason));
}

// -- Argument checks --

/** A call's `{ signal, timeout }`, checked; `at` is the absolute deadline. */
export interface Limits {
  signal: AbortSignal | undefined;
  timeout: number;
}

export function limits(what: string, options: IoOptions | undefined): Limits {
  if (options === undefined) return NO_LIMITS;
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot ${what}: options must be an object, received ${
        describe(options)
      }`,
    );
  }
  const { signal, timeout = Infinity } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(
      `Cannot ${what}: signal must be an AbortSignal, received ${
        describe(signal)
      }`,
    );
  }
  if (typeof timeout !== "number") {
    throw new TypeError(
      `Cannot ${what}: timeout must be a number of milliseconds, received ${
        describe(timeout)
      }`,
    );
  }
  if (!(timeout >= 0)) {
    throw new RangeError(
      `Cannot ${what}: timeout must be a non-negative number of milliseconds, received ${timeout}`,
    );
  }
  const long = tooLong(what, "timeout", timeout);
  if (long !== undefined) throw long;
  // 0, like Infinity, is no limit.
  return { signal, timeout: timeout || Infinity };
}

const NO_LIMITS: Limits = { signal: undefined, timeout: Infinity };

export function bytes(what: string, name: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot ${what}: ${name} must be a Uint8Array, received ${
        describe(value)
      }`,
    );
  }
  return value;
}

export function frameSize(
  what: string,
  shared: Shared,
  payload: Uint8Array,
): void {
  const max = shared.maxFrame;
  if (payload.length > max) {
    throw new RangeError(
      `Cannot ${what}: payload length ${payload.length} exceeds maxFrameSize ${max}`,
    );
  }
}

/** An exchange's arguments, checked before any I/O. */
interface ExchangeArgs<R> extends Limits {
  verify: ((request: Uint8Array, reply: R) => unknown) | undefined;
}

export function exchangeArgs<R>(
  what: string,
  payload: unknown,
  frame: boolean,
  read: unknown,
  options: ExchangeOptions<R> | undefined,
  shared: Shared,
): ExchangeArgs<R> {
  bytes(what, "payload", payload);
  if (typeof read !== "function") {
    throw new TypeError(
      `Cannot ${what}: read must be a function, received ${describe(read)}`,
    );
  }
  const verify = options?.verify;
  if (verify !== undefined && typeof verify !== "function") {
    throw new TypeError(
      `Cannot ${what}: verify must be a function, received ${describe(verify)}`,
    );
  }
  const { signal, timeout } = limits(what, options);
  if (frame) frameSize(what, shared, payload as Uint8Array);
  return { verify, signal, timeout };
}

// -- Exchanges --

/** Reads one reply; `null` from it at EOF means the server hung up. */
export type ReadReply<R> = (reader: FrameReader) => Promise<R> | R;

const READ_FRAME: ReadReply<Uint8Array | null> = (reader) => reader.readFrame();

/** What `request` passes to an exchange: framed, read back as a frame. */
export const REQUEST = [
  "request",
  true,
  READ_FRAME as ReadReply<Uint8Array>,
] as const;

/**
 * Writes a request and reads its reply on a lent connection that is idle
 * and clean: the one path behind every request, on a held connection or
 * through the pool. `frame`: the payload is written as a length-prefixed
 * frame (else as is). `at` is the absolute deadline, `limit` the timeout
 * it came from (for the message).
 */
export async function exchangeOn<R>(
  c: Connection,
  payload: Uint8Array,
  frame: boolean,
  read: ReadReply<R>,
  verify: ((request: Uint8Array, reply: R) => unknown) | undefined,
  signal: AbortSignal | undefined,
  at: number,
  limit: number,
): Promise<R> {
  const what = "send request";
  // Aborted while the call waited for this connection: nothing is sent.
  signal?.throwIfAborted();
  c.reading = c.writing = true;
  const received = c.reader.received;
  let reply: R;
  try {
    const work = exchangeWork(c, payload, frame, read);
    reply = signal === undefined && at === Infinity
      ? await work
      : await raceOn(c, work, at, limit, signal, what);
  } catch (error) {
    throw fault(c, error, what, received, true);
  } finally {
    c.reading = c.writing = false;
    readerHooks.replyMode(c.reader, false);
  }
  if (reply === null && c.reader.eof) throw closedEarly(c, what, received);
  c.unanswered = false;
  if (verify !== undefined) {
    let ok: unknown;
    try {
      ok = verify(payload, reply);
    } catch (error) {
      c.poison(error);
      throw new ProtocolError(`Cannot ${what}: verify threw`, {
        cause: error,
      });
    }
    if (!ok) {
      c.poison(undefined);
      throw new ProtocolError(
        `Cannot ${what}: the reply does not answer the request (verify returned ${
          describe(ok)
        })`,
      );
    }
  }
  const extra = c.reader.buffered;
  if (extra > 0) {
    // More than the reply arrived: a reply nobody asked for came before or
    // after ours. Verified, the reply is ours; either way the stream is out
    // of step and the connection goes.
    c.poison(undefined);
    if (verify === undefined) {
      throw new ProtocolError(
        `Cannot ${what}: ${extra} more bytes arrived after the reply (an unsolicited reply; pass verify to keep the verified reply)`,
      );
    }
  } else if (readerHooks.unsure(c.reader)) {
    // The reply ended exactly where its last read's space did: whether the
    // server sent more behind it cannot be told. The reply is whole and
    // goes to its caller; the connection is not reused.
    c.unchecked = true;
  }
  return reply;
}

async function exchangeWork<R>(
  c: Connection,
  payload: Uint8Array,
  frame: boolean,
  read: ReadReply<R>,
): Promise<R> {
  if (frame) await c.writer.write(payload);
  else await writeAll(c.sock, payload);
  c.writing = false;
  c.unanswered = true;
  readerHooks.replyMode(c.reader, true);
  return await read(c.reader);
}

export async function writeAll(sock: Socket, p: Uint8Array): Promise<void> {
  let off = 0;
  while (off < p.length) {
    off += await sock.write(off === 0 ? p : p.subarray(off));
  }
}

/** Ends a borrow: back to the pool, or destroyed if broken or dirty. */
export function giveBack(c: Connection, lease: Lease<Connection>): void {
  c.borrowed = false;
  if (c.unchecked && !c.dead) {
    c.close();
    poolHooks.destroyAs(lease, "unchecked", undefined);
  } else if (c.unusable || c.reader.eof) {
    poolHooks.destroyAs(lease, "broken", c.closeReason);
  } else if (!c.clean) {
    const reason = new ConnectionBrokenError(
      "Cannot use connection: it was released with a call in flight, a reply unread or bytes unread",
    );
    c.poison(reason);
    poolHooks.destroyAs(lease, "dirty", reason);
  } else {
    // A buffer grown for a large reply is not kept while idle.
    readerHooks.shrink(c.reader);
    // Idle (not handed straight to a waiting borrower): watch it.
    if (!poolHooks.release(lease)) c.shared.watchSoon(c);
  }
}

// -- Streams --

/**
 * The next bytes from `c`: what is buffered, else one read's worth. The read
 * is the reader's prefetch, so a read given up (a cancelled stream, a proxy
 * session that ended) loses nothing: its bytes land in the buffer. `null`
 * at EOF, or when the read was given up.
 */
export async function pullChunk(c: Connection): Promise<Uint8Array | null> {
  const reader = c.reader;
  if (reader.buffered === 0) {
    if (reader.eof) return null;
    const gen = c.pullGen;
    const received = reader.received;
    c.pulling = true;
    try {
      await reader.prefetch();
    } catch (error) {
      if (gen !== c.pullGen) return null;
      throw fault(c, error, "read", received);
    } finally {
      if (gen === c.pullGen) c.pulling = false;
    }
    if (gen !== c.pullGen) return null;
    if (reader.buffered === 0) return null; // EOF
  }
  const chunk = new Uint8Array(reader.buffered);
  await reader.read(chunk);
  c.unanswered = false;
  return chunk;
}

/**
 * Reads from `c` straight into `buf` (buffered bytes first), without the
 * reader's buffer: no copy, but a read given up loses its bytes, so the
 * connection is spent (never reused). For a proxy that destroys its
 * upstream after the session anyway. Resolves with the byte count, or
 * `null` at EOF.
 */
export async function pullInto(
  c: Connection,
  buf: Uint8Array,
): Promise<number | null> {
  const reader = c.reader;
  c.spent = true;
  if (reader.buffered === 0 && c.watching) {
    // The idle watch's read is pending on the socket: a second read would
    // race it. Take its bytes first (they arrive in the reader's buffer).
    const received = reader.received;
    try {
      await reader.prefetch();
    } catch (error) {
      throw fault(c, error, "read", received);
    }
  }
  if (reader.buffered > 0) return await reader.read(buf);
  if (reader.eof) return null;
  const received = reader.received;
  c.reading = true;
  try {
    const n = await c.sock.read(buf);
    if (n !== null) c.unanswered = false;
    return n;
  } catch (error) {
    throw fault(c, error, "read", received);
  } finally {
    c.reading = false;
  }
}

/**
 * Writes all of `p` to `c`, as PooledConn.write does (a reply is then due;
 * a failure is classified by `fault`), without its per-call argument and
 * option checks and its promise hops: the proxy's path to the upstream,
 * once per chunk, with a buffer of its own.
 */
export async function pushAll(c: Connection, p: Uint8Array): Promise<void> {
  const received = c.reader.received;
  const sock = c.sock;
  c.writing = true;
  try {
    let off = await sock.write(p);
    while (off < p.length) off += await sock.write(p.subarray(off));
    c.unanswered = true;
  } catch (error) {
    throw fault(c, error, "write", received);
  } finally {
    c.writing = false;
  }
}

/**
 * Hooks into PooledConn for proxy.ts (bound in PooledConn's static block):
 * the next chunk from the server (see pullChunk), a read into the caller's
 * buffer (see pullInto), a write of all of a buffer (see pushAll), and
 * `stopPull`: gives up a pending pullChunk read (it stays the reader's
 * prefetch, so its bytes land in the buffer; the pullChunk call resolves
 * `null`), so that an exchange may run next, and says whether release would
 * now give the connection back (alive, lease held, clean, no EOF).
 */
export const connHooks: {
  pull: (conn: object) => Promise<Uint8Array | null>;
  pullInto: (conn: object, buf: Uint8Array) => Promise<number | null>;
  push: (conn: object, p: Uint8Array) => Promise<void>;
  stopPull: (conn: object) => boolean;
} = {
  pull: () => Promise.reject(new Error("tcp.ts is not loaded")),
  pullInto: () => Promise.reject(new Error("tcp.ts is not loaded")),
  push: () => Promise.reject(new Error("tcp.ts is not loaded")),
  stopPull: () => {
    throw new Error("tcp.ts is not loaded");
  },
};
