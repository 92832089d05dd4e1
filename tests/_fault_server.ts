// Copyright 2026 the chanpool authors. MIT license.
// A framed echo server that misbehaves on request, for fault-injection tests.
//
// Wire format (self-contained; does not use framing.ts): every frame is a
// 4-byte big-endian length, then that many payload bytes. A request payload
// is a 4-byte big-endian request id plus any body; the echo response is one
// frame with the same payload.

import { mulberry32 } from "./_random.ts";

/** How the server treats each request and each idle connection. */
export interface FaultMode {
  /**
   * Close a connection that has had no request pending or in progress and
   * no bytes in either direction for this long, in milliseconds (Redis
   * `timeout`).
   */
  closeIdleAfter?: number;
  /**
   * Once per idle period, write {@linkcode STRAY_BYTES} to a connection that
   * has been idle this long, in milliseconds.
   */
  strayBytesWhenIdleAfter?: number;
  /** Respond this long after the request arrived, in milliseconds. */
  delay?: number;
  /** Read the request, then close the connection without responding. */
  closeBeforeResponse?: boolean;
  /** Write the whole response, then close the connection. */
  closeAfterResponse?: boolean;
  /** Write the header and half the payload of the response, then close. */
  closeMidResponse?: boolean;
  /**
   * Respond with a header declaring {@linkcode GARBAGE_LENGTH} bytes, then
   * the payload; the connection stays open.
   */
  garbage?: boolean;
  /**
   * After each response, write the same response frame once more this many
   * milliseconds later: an unsolicited frame, which shifts every later reply
   * on that connection by one.
   */
  duplicateAfter?: number;
  /** Pick one fault per request at random; see {@linkcode RandomFaults}. */
  random?: RandomFaults;
}

/**
 * Per-request fault probabilities for soak tests. At most one fault is drawn
 * per request, from one seeded PRNG (mulberry32) shared by all connections;
 * with the remaining probability the request falls through to the static
 * fields of the mode. The probabilities must sum to at most 1.
 */
export interface RandomFaults {
  /** PRNG seed; log it so a failing soak run can be replayed. */
  seed: number;
  /** Close without responding. @default {0} */
  pClose?: number;
  /** Respond, then close. @default {0} */
  pCloseAfter?: number;
  /** Write half the response, then close. @default {0} */
  pCloseMid?: number;
  /** Respond after `delayMs`. @default {0} */
  pDelay?: number;
  /** The delay for `pDelay`, in milliseconds. @default {50} */
  delayMs?: number;
  /** Respond, then write {@linkcode STRAY_BYTES} right after. @default {0} */
  pStray?: number;
  /** Respond with a huge declared length, as `garbage`. @default {0} */
  pGarbage?: number;
  /** Respond, then write the same frame again `duplicateMs` later. @default {0} */
  pDuplicate?: number;
  /** The delay for `pDuplicate`, in milliseconds. @default {2} */
  duplicateMs?: number;
}

/** Why the server closed (or saw the end of) a connection. */
export type CloseCause =
  | "client"
  | "idle"
  | "beforeResponse"
  | "afterResponse"
  | "midResponse"
  | "oversized"
  | "server";

/** What the server knows about one accepted connection. */
export interface ConnectionInfo {
  /** 1-based accept order. */
  readonly id: number;
  /** The client's port: equals the client conn's `localAddr.port`. */
  readonly remotePort: number;
  /** Complete request frames received. */
  requests: number;
  /** Complete responses written. */
  responses: number;
  /** The id of the last request received, if any. */
  lastRequestId: number | undefined;
  /** Whether the connection is still open on the server side. */
  open: boolean;
  /** Why it was closed, once closed. */
  closedBy: CloseCause | undefined;
}

/** Counters since the server started; a snapshot. */
export interface FaultServerStats {
  /** Connections accepted in total. */
  connections: number;
  /** Connections open now. */
  open: number;
  /** Complete request frames received. */
  requests: number;
  /** Complete responses written (including garbage and late ones). */
  responses: number;
  /** Responses written after a delay. */
  delayed: number;
  /** Connections the client closed or reset. */
  closedByClient: number;
  /** Connections closed by `closeIdleAfter`. */
  closedIdle: number;
  /** Connections closed by `closeBeforeResponse` or `pClose`. */
  closedBeforeResponse: number;
  /** Connections closed by `closeAfterResponse` or `pCloseAfter`. */
  closedAfterResponse: number;
  /** Connections closed by `closeMidResponse` or `pCloseMid`. */
  closedMidResponse: number;
  /** Stray byte writes (idle or `pStray`). */
  strayWrites: number;
  /** Garbage responses written. */
  garbageWrites: number;
  /** Unsolicited duplicate frames written. */
  duplicateWrites: number;
}

/** Options for {@linkcode startFaultServer}. */
export interface FaultServerOptions {
  /** Address to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to listen on. @default {0} */
  port?: number;
  /** Initial mode. @default {{}} (echo) */
  mode?: FaultMode | "echo";
  /** A request frame larger than this closes the connection. @default {16_777_216} */
  maxFrameSize?: number;
}

/** A running fault server; see {@linkcode startFaultServer}. */
export interface FaultServer extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  /** `{ transport: "tcp", hostname, port }`: pass to `Deno.connect`. */
  readonly addr: TcpAddr;
  /** Whether the listener is accepting connections. */
  readonly listening: boolean;
  readonly mode: FaultMode;
  readonly stats: FaultServerStats;
  /** Every connection accepted so far, in accept order. */
  readonly connectionsSeen: readonly ConnectionInfo[];
  setMode(mode: FaultMode | "echo"): void;
  waitFor(
    predicate: (server: FaultServer) => boolean,
    options?: { signal?: AbortSignal; timeout?: number },
  ): Promise<void>;
  closeConnections(): Promise<void>;
  stop(options?: { closeConnections?: boolean }): Promise<void>;
  restart(): void;
  close(): Promise<void>;
}

/** A TCP address, accepted as is by `Deno.connect`. */
export type TcpAddr = Deno.NetAddr & { transport: "tcp" };

/** Bytes written by the stray-bytes faults: 3 bytes, less than a header. */
export const STRAY_BYTES: Uint8Array = new Uint8Array([0x21, 0x3f, 0x0a]);

/** The length a garbage response declares. */
export const GARBAGE_LENGTH = 0xffff_fff0;

const HEADER = 4;
const READ_SIZE = 64 * 1024;

/**
 * Starts a framed echo server on 127.0.0.1, port 0 by default, whose
 * behaviour tests change at run time with `setMode`.
 *
 * Requests on one connection are answered in order, even when delayed; a
 * delay counts from the request's arrival. A client may vanish at any moment:
 * write and read errors only close that connection.
 *
 * @example Usage
 * ```ts ignore
 * await using server = startFaultServer({ mode: { closeIdleAfter: 50 } });
 * using conn = await Deno.connect(server.addr);
 * ```
 */
export function startFaultServer(
  options: FaultServerOptions = {},
): FaultServer {
  return new FaultServerImpl(options);
}

/** Encodes one frame: header and payload in one buffer. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(HEADER + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length);
  frame.set(payload, HEADER);
  return frame;
}

/** Encodes one request frame: id, then body. */
export function encodeRequest(
  id: number,
  body: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const payload = new Uint8Array(4 + body.length);
  new DataView(payload.buffer).setUint32(0, id);
  payload.set(body, 4);
  return encodeFrame(payload);
}

type Action = "echo" | "closeBefore" | "closeMid" | "garbage";

interface Plan {
  delay: number;
  action: Action;
  closeAfter: boolean;
  stray: boolean;
  /** Write the response again this many ms later; -1 for never. */
  duplicate: number;
}

function validateMode(mode: FaultMode | "echo"): FaultMode {
  if (mode === "echo") return {};
  if (typeof mode !== "object" || mode === null) {
    throw new TypeError(`Cannot set mode: expected an object, got ${mode}`);
  }
  for (
    const key of [
      "closeIdleAfter",
      "strayBytesWhenIdleAfter",
      "delay",
      "duplicateAfter",
    ]
  ) {
    const v = mode[key as keyof FaultMode];
    if (v !== undefined && !(typeof v === "number" && v >= 0)) {
      throw new RangeError(`Cannot set mode: ${key} must be >= 0, got ${v}`);
    }
  }
  const r = mode.random;
  if (r !== undefined) {
    const ps = [
      r.pClose,
      r.pCloseAfter,
      r.pCloseMid,
      r.pDelay,
      r.pStray,
      r.pGarbage,
      r.pDuplicate,
    ];
    let sum = 0;
    for (const p of ps) {
      if (p === undefined) continue;
      if (!(p >= 0 && p <= 1)) {
        throw new RangeError(`Cannot set mode: probability ${p} not in [0, 1]`);
      }
      sum += p;
    }
    if (sum > 1 + 1e-9) {
      throw new RangeError(
        `Cannot set mode: fault probabilities sum to ${sum}, more than 1`,
      );
    }
  }
  return { ...mode };
}

class FaultServerImpl implements FaultServer {
  readonly hostname: string;
  readonly port: number;
  readonly #maxFrameSize: number;
  #listener: Deno.TcpListener | undefined;
  #acceptLoop: Promise<void> = Promise.resolve();
  #mode: FaultMode;
  #random: (() => number) | undefined;
  #closed = false;
  // every live ServerConn is in #conns; its task is in #tasks until it ends
  readonly #conns = new Set<ServerConn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #seen: ConnectionInfo[] = [];
  readonly #waiters = new Set<(final?: boolean) => void>();
  // bugs in this file, rethrown by close() so a test cannot miss them
  readonly #errors: unknown[] = [];
  readonly stats: FaultServerStats = {
    connections: 0,
    open: 0,
    requests: 0,
    responses: 0,
    delayed: 0,
    closedByClient: 0,
    closedIdle: 0,
    closedBeforeResponse: 0,
    closedAfterResponse: 0,
    closedMidResponse: 0,
    strayWrites: 0,
    garbageWrites: 0,
    duplicateWrites: 0,
  };

  constructor(options: FaultServerOptions) {
    this.#mode = validateMode(options.mode ?? {});
    this.#random = this.#mode.random && mulberry32(this.#mode.random.seed);
    this.#maxFrameSize = options.maxFrameSize ?? 16 * 1024 * 1024;
    const listener = Deno.listen({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 0,
    });
    this.hostname = listener.addr.hostname;
    this.port = listener.addr.port;
    this.#startAccepting(listener);
  }

  get addr(): TcpAddr {
    return { transport: "tcp", hostname: this.hostname, port: this.port };
  }

  get listening(): boolean {
    return this.#listener !== undefined;
  }

  get mode(): FaultMode {
    return this.#mode;
  }

  get connectionsSeen(): readonly ConnectionInfo[] {
    return this.#seen;
  }

  /** Replaces the mode; idle clocks of idle connections restart now. */
  setMode(mode: FaultMode | "echo"): void {
    const next = validateMode(mode);
    if (next.random?.seed !== this.#mode.random?.seed || !this.#random) {
      this.#random = next.random && mulberry32(next.random.seed);
    }
    if (!next.random) this.#random = undefined;
    this.#mode = next;
    for (const c of this.#conns) c.armIdle();
  }

  /** Resolves once `predicate(this)` holds, checked after every change. */
  waitFor(
    predicate: (server: FaultServer) => boolean,
    options: { signal?: AbortSignal; timeout?: number } = {},
  ): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    if (this.#closed) {
      return Promise.reject(
        new Error("Cannot wait: the fault server is closed"),
      );
    }
    const { signal, timeout = 5_000 } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const done = () => {
      this.#waiters.delete(check);
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    // `final` is set once by close(): a last look, then reject
    const check = (final = false) => {
      let ok: boolean;
      try {
        ok = predicate(this);
      } catch (error) {
        done();
        reject(error);
        return;
      }
      if (ok) {
        done();
        resolve();
      } else if (final) {
        done();
        reject(new Error("Cannot wait: the fault server is closed"));
      }
    };
    const onAbort = () => {
      done();
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      done();
      reject(
        new Error(
          `Timed out after ${timeout} ms waiting for ${predicate}; stats ${
            JSON.stringify(this.stats)
          }`,
        ),
      );
    }, timeout);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#waiters.add(check);
    return promise;
  }

  /** Closes every open connection (the listener keeps listening). */
  async closeConnections(): Promise<void> {
    for (const c of this.#conns) c.close("server");
    await Promise.all(this.#tasks);
  }

  /**
   * Stops listening, so dials fail with `ConnectionRefused`; existing
   * connections stay open unless `closeConnections` is set.
   */
  async stop(options: { closeConnections?: boolean } = {}): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    if (listener) {
      try {
        listener.close();
      } catch { /* already closed */ }
    }
    await this.#acceptLoop;
    if (options.closeConnections) await this.closeConnections();
    this.changed();
  }

  /** Listens again on the same hostname and port after `stop()`. */
  restart(): void {
    if (this.#closed) throw new Error("Cannot restart: the server is closed");
    if (this.#listener) return;
    this.#startAccepting(
      Deno.listen({ hostname: this.hostname, port: this.port }),
    );
    this.changed();
  }

  /**
   * Closes the listener and every connection and awaits every task.
   * Idempotent. Rejects if a connection task failed (a bug in this file).
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.stop({ closeConnections: true });
    for (const check of [...this.#waiters]) check(true);
    if (this.#errors.length > 0) {
      const errors = this.#errors.splice(0);
      throw new AggregateError(errors, "Fault server failed internally");
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -- Internals used by ServerConn --

  get closedFlag(): boolean {
    return this.#closed;
  }

  get maxFrameSize(): number {
    return this.#maxFrameSize;
  }

  /** Wakes every waitFor. */
  changed(): void {
    for (const check of [...this.#waiters]) check();
  }

  plan(): Plan {
    const m = this.#mode;
    const plan: Plan = {
      delay: m.delay ?? 0,
      action: m.closeBeforeResponse
        ? "closeBefore"
        : m.closeMidResponse
        ? "closeMid"
        : m.garbage
        ? "garbage"
        : "echo",
      closeAfter: m.closeAfterResponse ?? false,
      stray: false,
      duplicate: m.duplicateAfter ?? -1,
    };
    const r = m.random;
    if (r && this.#random) {
      let x = this.#random();
      const pick = (p: number | undefined): boolean => {
        x -= p ?? 0;
        return x < 0;
      };
      const base = {
        delay: 0,
        closeAfter: false,
        stray: false,
        duplicate: -1,
      } as const;
      if (pick(r.pClose)) return { ...base, action: "closeBefore" };
      if (pick(r.pCloseAfter)) {
        return { ...base, action: "echo", closeAfter: true };
      }
      if (pick(r.pCloseMid)) return { ...base, action: "closeMid" };
      if (pick(r.pDelay)) {
        return { ...base, action: "echo", delay: r.delayMs ?? 50 };
      }
      if (pick(r.pStray)) return { ...base, action: "echo", stray: true };
      if (pick(r.pGarbage)) return { ...base, action: "garbage" };
      if (pick(r.pDuplicate)) {
        return { ...base, action: "echo", duplicate: r.duplicateMs ?? 2 };
      }
    }
    return plan;
  }

  #startAccepting(listener: Deno.TcpListener): void {
    this.#listener = listener;
    this.#acceptLoop = this.#accept(listener);
  }

  async #accept(listener: Deno.TcpListener): Promise<void> {
    while (true) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        // listener closed (stop/close) or a transient accept error
        if (this.#listener !== listener) return;
        continue;
      }
      if (this.#closed || this.#listener !== listener) {
        try {
          conn.close();
        } catch { /* gone */ }
        continue;
      }
      this.#adopt(conn);
    }
  }

  #adopt(conn: Deno.TcpConn): void {
    try {
      conn.setNoDelay(true);
    } catch { /* the peer may already be gone */ }
    this.stats.connections++;
    this.stats.open++;
    const info: ConnectionInfo = {
      id: this.stats.connections,
      remotePort: (conn.remoteAddr as Deno.NetAddr).port,
      requests: 0,
      responses: 0,
      lastRequestId: undefined,
      open: true,
      closedBy: undefined,
    };
    this.#seen.push(info);
    const sc = new ServerConn(this, conn, info);
    this.#conns.add(sc);
    const task = sc.serve().catch((error) => {
      this.#errors.push(error);
    }).finally(() => {
      this.#conns.delete(sc);
      this.#tasks.delete(task);
      this.changed();
    });
    this.#tasks.add(task);
    this.changed();
  }

  /** Called once per connection, when it closes for whatever cause. */
  onClosed(cause: CloseCause): void {
    this.stats.open--;
    switch (cause) {
      case "client":
        this.stats.closedByClient++;
        break;
      case "idle":
        this.stats.closedIdle++;
        break;
      case "beforeResponse":
        this.stats.closedBeforeResponse++;
        break;
      case "afterResponse":
        this.stats.closedAfterResponse++;
        break;
      case "midResponse":
        this.stats.closedMidResponse++;
        break;
      default:
        break;
    }
    this.changed();
  }
}

/** One accepted connection: a read loop and an ordered response chain. */
class ServerConn {
  readonly #server: FaultServerImpl;
  readonly #conn: Deno.TcpConn;
  readonly info: ConnectionInfo;
  // aborted exactly when the connection is closed; cancels delays
  readonly #abort = new AbortController();
  // responses are written in request order: each request extends #chain
  #chain: Promise<void> = Promise.resolve();
  // writes never interleave: each write extends #writes
  #writes: Promise<void> = Promise.resolve();
  // requests received and not yet fully handled; idle iff 0
  #pending = 0;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #strayTimer: ReturnType<typeof setTimeout> | undefined;
  // read buffer: unparsed bytes live in #buf[#start, #end)
  #buf = new Uint8Array(READ_SIZE * 2);
  #start = 0;
  #end = 0;

  constructor(
    server: FaultServerImpl,
    conn: Deno.TcpConn,
    info: ConnectionInfo,
  ) {
    this.#server = server;
    this.#conn = conn;
    this.info = info;
  }

  get closed(): boolean {
    return this.#abort.signal.aborted;
  }

  async serve(): Promise<void> {
    this.armIdle();
    try {
      await this.#readLoop();
    } finally {
      this.close("client");
      // every handler checks `closed`; delays end on abort
      await this.#chain;
      await this.#writes;
    }
  }

  /** Closes the connection once; later calls do nothing. */
  close(cause: CloseCause): void {
    if (this.closed) return;
    this.#abort.abort();
    this.#clearIdle();
    try {
      this.#conn.close();
    } catch { /* already gone */ }
    this.info.open = false;
    this.info.closedBy = cause;
    this.#server.onClosed(cause);
  }

  /** (Re)starts the idle clocks if no request is pending. */
  armIdle(): void {
    this.#clearIdle();
    if (this.closed || this.#pending > 0) return;
    const { closeIdleAfter, strayBytesWhenIdleAfter } = this.#server.mode;
    if (closeIdleAfter !== undefined) {
      this.#idleTimer = setTimeout(() => {
        this.#idleTimer = undefined;
        this.close("idle");
      }, closeIdleAfter);
    }
    if (strayBytesWhenIdleAfter !== undefined) {
      this.#strayTimer = setTimeout(() => {
        this.#strayTimer = undefined;
        this.#server.stats.strayWrites++;
        // once per idle period: re-armed only by the next activity
        this.#write(STRAY_BYTES, false);
      }, strayBytesWhenIdleAfter);
    }
  }

  #clearIdle(): void {
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#strayTimer);
    this.#idleTimer = undefined;
    this.#strayTimer = undefined;
  }

  async #readLoop(): Promise<void> {
    while (!this.closed) {
      if (this.#buf.length - this.#end < READ_SIZE) this.#makeRoom();
      let n: number | null;
      try {
        n = await this.#conn.read(this.#buf.subarray(this.#end));
      } catch {
        return; // reset, or closed by us
      }
      if (n === null) return;
      this.#end += n;
      if (!this.#parse()) return;
      if (this.#pending === 0) this.armIdle(); // bytes in: the idle clock restarts
    }
  }

  #makeRoom(): void {
    const used = this.#end - this.#start;
    if (this.#start > 0 && this.#buf.length - used >= READ_SIZE) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      const next = new Uint8Array(
        Math.max(this.#buf.length * 2, used + READ_SIZE),
      );
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next;
    }
    this.#start = 0;
    this.#end = used;
  }

  /** Takes every complete frame out of the buffer; false if closed. */
  #parse(): boolean {
    const view = new DataView(this.#buf.buffer);
    while (this.#end - this.#start >= HEADER) {
      const length = view.getUint32(this.#start);
      if (length > this.#server.maxFrameSize) {
        this.close("oversized");
        return false;
      }
      if (this.#end - this.#start < HEADER + length) break;
      const from = this.#start + HEADER;
      const payload = this.#buf.slice(from, from + length);
      this.#start = from + length;
      this.#request(payload);
      if (this.closed) return false;
    }
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return true;
  }

  #request(payload: Uint8Array): void {
    const stats = this.#server.stats;
    stats.requests++;
    this.info.requests++;
    if (payload.length >= 4) {
      this.info.lastRequestId = new DataView(payload.buffer).getUint32(0);
    }
    this.#pending++;
    this.#clearIdle();
    const plan = this.#server.plan();
    const due = performance.now() + plan.delay;
    this.#chain = this.#chain.then(() => this.#respond(payload, plan, due));
    this.#server.changed();
  }

  async #respond(payload: Uint8Array, plan: Plan, due: number): Promise<void> {
    try {
      if (this.closed) return;
      const wait = due - performance.now();
      if (plan.delay > 0 && wait > 0) {
        if (!await sleep(wait, this.#abort.signal)) return;
      }
      if (this.closed) return;
      const stats = this.#server.stats;
      switch (plan.action) {
        case "closeBefore":
          this.close("beforeResponse");
          return;
        case "closeMid": {
          const frame = encodeFrame(payload);
          const cut = HEADER + Math.floor(payload.length / 2);
          await this.#write(frame.subarray(0, cut), false);
          this.close("midResponse");
          return;
        }
        case "garbage": {
          const frame = encodeFrame(payload);
          new DataView(frame.buffer).setUint32(0, GARBAGE_LENGTH);
          if (await this.#write(frame, true)) stats.garbageWrites++;
          break;
        }
        case "echo": {
          const frame = encodeFrame(payload);
          if (!await this.#write(frame, true)) return;
          if (plan.delay > 0) stats.delayed++;
          if (plan.duplicate >= 0) this.#duplicate(frame, plan.duplicate);
          break;
        }
      }
      if (plan.stray) {
        stats.strayWrites++;
        await this.#write(STRAY_BYTES, false);
      }
      if (plan.closeAfter) this.close("afterResponse");
    } finally {
      this.#pending--;
      if (this.#pending === 0) this.armIdle();
      this.#server.changed();
    }
  }

  /** Writes `frame` again `ms` from now, unasked (cancelled on close). */
  #duplicate(frame: Uint8Array, ms: number): void {
    this.#pending++;
    void sleep(ms, this.#abort.signal).then(async (due) => {
      try {
        if (due && !this.closed && await this.#write(frame, false)) {
          this.#server.stats.duplicateWrites++;
        }
      } finally {
        this.#pending--;
        if (this.#pending === 0) this.armIdle();
        this.#server.changed();
      }
    });
  }

  /**
   * Writes all of `bytes` after earlier writes; true on success. A failed
   * write closes the connection (the client went away).
   */
  #write(bytes: Uint8Array, response: boolean): Promise<boolean> {
    const done = this.#writes.then(async () => {
      if (this.closed) return false;
      try {
        let off = 0;
        while (off < bytes.length) {
          off += await this.#conn.write(bytes.subarray(off));
        }
      } catch {
        this.close("client");
        return false;
      }
      if (response) {
        this.#server.stats.responses++;
        this.info.responses++;
      }
      return true;
    });
    this.#writes = done.then(() => {});
    return done;
  }
}

/** Sleeps `ms`; resolves false at once if `signal` aborts. Leaves no timer. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  const { promise, resolve } = Promise.withResolvers<boolean>();
  const onAbort = () => {
    clearTimeout(timer);
    resolve(false);
  };
  const timer = setTimeout(() => {
    signal.removeEventListener("abort", onAbort);
    resolve(true);
  }, ms);
  signal.addEventListener("abort", onAbort, { once: true });
  return promise;
}
