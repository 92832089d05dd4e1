// Copyright 2026 the chanpool authors. MIT license.
// Mux: many requests in flight per connection for a TcpPool with
// `pipeline` ("fifo" or "tagged" matching). Internal; tcp.ts drives it.

import { readerHooks } from "./_frame_format.ts";
import type { Lease, Pool } from "./pool.ts";
import { PoolClosedError, PoolTimeoutError, TimeoutError } from "./_errors.ts";
import { poolHooks } from "./_internal.ts";
import type { Deadline } from "./_time.ts";
import { describe } from "./_util.ts";
import {
  type Connection,
  ConnectionBrokenError,
  giveBack,
  isSocketError,
  ProtocolError,
  type ReadReply,
  type Shared,
} from "./_conn.ts";

/** The checked `pipeline` options of a TcpPool. */
export interface MuxSettings {
  match: "fifo" | "tagged";
  maxInFlight: number;
  maxBatchBytes: number;
  orphanTimeout: number;
  tagOf: ((reply: unknown) => number) | undefined;
  tagLimit: number;
}

/** What a call writes: bytes (fifo), or bytes made for its tag (tagged). */
export type Payload = Uint8Array | ((tag: number) => Uint8Array);

/** Counts of a `TcpPool`'s pipelining (with `pipeline` set). */
export interface TcpPipelineStats {
  /** Connections carrying pipelined calls now. */
  conns: number;
  /** Calls written or about to be, not answered nor given up. */
  inFlight: number;
  /** Calls waiting for a place on a connection. */
  queued: number;
  /** Calls given up (timeout, abort) after they were written, ever. */
  orphans: number;
  /** Idempotent calls written again after their connection broke, ever. */
  resent: number;
  /** Connections closed for their orphans (tagged), ever. */
  replaced: number;
}

const FRESH = { fresh: true } as const;

const QUEUED = 0;
const BATCHED = 1;
const WRITTEN = 2;
const DONE = 3;
/** Given up (timed out or aborted) after it was written: its reply is due. */
const ORPHAN = 4;
/**
 * A flush waits for this many microtask turns in a row with no new call on
 * its connection (see #flushQuiet): a caller's next call, started by its
 * reply, comes a few turns after it (one per `await` between them).
 */
const QUIET_TURNS = 8;
/** ...and for this many turns at most, however many calls keep coming. */
const MAX_TURNS = 256;

// deno-lint-ignore no-explicit-any
type AnyCall = Call<any>;

/** One pipelined exchange; its own deadline node and abort listener. */
class Call<R> implements Deadline {
  at: number;
  pos = -1;
  dprev: Deadline | null = null;
  dnext: Deadline | null = null;
  state = QUEUED;
  conn: MuxConn | null = null;
  tag = -1;
  /** Bytes of the last write (verify's request). */
  sent: Uint8Array | null = null;
  resent = false;
  /**
   * Sent again: it goes only on a connection dialed for the purpose after
   * this epoch (the ones held when it broke may have been cut with it).
   */
  after = -1;
  readonly mux: Mux;
  readonly payload: Payload;
  readonly read: ReadReply<R>;
  readonly verify: ((request: Uint8Array, reply: R) => unknown) | undefined;
  readonly signal: AbortSignal | undefined;
  readonly timeout: number;
  readonly idempotent: boolean;
  readonly resolve: (value: R) => void;
  readonly reject: (reason: unknown) => void;

  constructor(
    mux: Mux,
    payload: Payload,
    read: ReadReply<R>,
    verify: ((request: Uint8Array, reply: R) => unknown) | undefined,
    signal: AbortSignal | undefined,
    timeout: number,
    at: number,
    idempotent: boolean,
    settle: PromiseWithResolvers<R>,
  ) {
    this.mux = mux;
    this.payload = payload;
    this.read = read;
    this.verify = verify;
    this.signal = signal;
    this.timeout = timeout;
    this.at = at;
    this.idempotent = idempotent;
    this.resolve = settle.resolve;
    this.reject = settle.reject;
  }

  /** Its deadline passed: the call's own, or (an orphan) its reply's. */
  fire(): void {
    this.pos = -1;
    if (this.state === ORPHAN) {
      this.mux.orphanExpired(this);
      return;
    }
    this.mux.giveUp(
      this,
      new TimeoutError(
        `Cannot send request: timed out after ${Math.round(this.timeout)} ms`,
        this.timeout,
      ),
    );
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.mux.giveUp(this, this.signal!.reason);
  }
}

/** A connection the multiplexer holds, with the calls it carries. */
class MuxConn {
  readonly lease: Lease<Connection>;
  readonly c: Connection;
  /** Calls placed here and not answered: batched, written, orphaned. */
  load = 0;
  orphans = 0;
  /** Takes no new calls: given back (or, retiring, closed) once empty. */
  draining = false;
  /** Closed, not given back, once empty: orphans held its places. */
  retire = false;
  /** An orphan's reply is overdue: closed once only orphans are owed. */
  expired = false;
  /**
   * Given up for another address under a TcpAgent's `maxTotal`: closed
   * once empty, so its place goes to the pool waiting for one (given back,
   * it could go to a borrow of our own waiting in the pool).
   */
  surrender = false;
  dead = false;
  writing = false;
  reading = false;
  flushQueued = false;
  /** Calls placed here ever; the flush compares it across microtasks. */
  placed = 0;
  /** Calls placed here, not written yet, in order. */
  batch: AnyCall[] = [];
  /** fifo: written calls in write order (from `head`). */
  fifo: AnyCall[] = [];
  head = 0;
  /** tagged: written calls by tag. */
  readonly tags = new Map<number, AnyCall>();
  nextTag = 0;
  /** The read function of the last call written (tagged: any reads any). */
  lastRead: ReadReply<unknown> | null = null;
  /** A write buffer, reused while a batch fits. */
  buf: Uint8Array | null = null;
  /** When it was taken in (Mux's epoch), and whether it was dialed for it. */
  readonly born: number;
  readonly fresh: boolean;

  constructor(lease: Lease<Connection>, born: number, fresh: boolean) {
    this.lease = lease;
    this.c = lease.resource;
    this.born = born;
    this.fresh = fresh;
  }

  /** Written calls not answered yet (orphans included). */
  get owed(): number {
    return this.fifo.length - this.head + this.tags.size;
  }
}

/**
 * Runs pipelined exchanges over connections borrowed from a pool: each
 * connection carries up to `maxInFlight` calls; replies are matched in
 * order ("fifo") or by tag ("tagged").
 */
export class Mux {
  readonly #pool: Pool<Connection>;
  readonly #shared: Shared;
  readonly #s: MuxSettings;
  /** Lends a borrowed lease's connection (false: stale, destroyed). */
  readonly #take: (lease: Lease<Connection>) => boolean;
  readonly #conns: MuxConn[] = [];
  /** Calls waiting for a place, FIFO. */
  #queue: AnyCall[] = [];
  #qhead = 0;
  /** Calls in the queue still QUEUED (given-up ones stay there, skipped). */
  #queued = 0;
  /** Borrows in flight for the queue (fresh ones among them). */
  #borrowing = 0;
  #freshBorrowing = 0;
  /** Counts connections taken in; see Call.after. */
  #epoch = 0;
  #closed = false;
  /** Connections emptied this turn: given back to the pool after it. */
  #parked: MuxConn[] = [];
  #parkTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  #orphans = 0;
  #resent = 0;
  #replaced = 0;
  #max: number;
  readonly #lifetime: number;
  readonly #leakWatch: boolean;

  constructor(
    pool: Pool<Connection>,
    shared: Shared,
    settings: MuxSettings,
    take: (lease: Lease<Connection>) => boolean,
    max: number,
    lifetime: number,
    leakWatch: boolean,
  ) {
    this.#lifetime = lifetime;
    this.#leakWatch = leakWatch;
    this.#pool = pool;
    this.#shared = shared;
    this.#s = settings;
    this.#take = take;
    this.#max = max;
  }

  get tagged(): boolean {
    return this.#s.match === "tagged";
  }

  get stats(): TcpPipelineStats {
    let inFlight = 0;
    for (const m of this.#conns) inFlight += m.load - m.orphans;
    return {
      conns: this.#conns.length,
      inFlight,
      queued: this.#queued,
      orphans: this.#orphans,
      resent: this.#resent,
      replaced: this.#replaced,
    };
  }

  /** Starts a call; the promise settles with its reply or a typed error. */
  call<R>(
    payload: Payload,
    read: ReadReply<R>,
    verify: ((request: Uint8Array, reply: R) => unknown) | undefined,
    signal: AbortSignal | undefined,
    timeout: number,
    idempotent: boolean,
  ): Promise<R> {
    if (this.#closed) {
      return Promise.reject(
        new PoolClosedError("Cannot send request: the pool closed"),
      );
    }
    const settle = Promise.withResolvers<R>();
    const at = timeout === Infinity
      ? Infinity
      : this.#shared.clock.now() + timeout;
    const call = new Call(
      this,
      payload,
      read,
      verify,
      signal,
      timeout,
      at,
      idempotent,
      settle,
    );
    if (at !== Infinity) this.#shared.deadlines.add(call);
    signal?.addEventListener("abort", call, { once: true });
    this.#assign(call);
    return settle.promise;
  }

  /** Places `call` on the least-loaded connection, a new one, or the queue. */
  #assign(call: AnyCall): void {
    // Calls queued before it go first.
    const m = this.#queued > 0 ? null : this.#pick();
    if (m !== null) {
      this.#place(m, call);
      return;
    }
    call.state = QUEUED;
    this.#queue.push(call);
    this.#queued++;
    this.#drain();
  }

  /**
   * The least-loaded connection with room, or an idle pooled one; for a
   * call sent again (`after` ≥ 0), only one dialed for it since.
   */
  #pick(after = -1): MuxConn | null {
    let best: MuxConn | null = null;
    const limit = this.#s.maxInFlight;
    for (const m of this.#conns) {
      if (m.draining || m.load >= limit) continue;
      if (after >= 0 && !(m.fresh && m.born > after)) continue;
      if (best === null || m.load < best.load) best = m;
    }
    if (after >= 0) return best;
    if (best !== null && best.load > 0 && this.#conns.length < this.#max) {
      // Room on a busy one; an idle pooled connection is better still.
      const idle = this.#idle();
      if (idle !== null) return idle;
    }
    if (best !== null) {
      if (this.#yield(best) || this.#aged(best)) return this.#pick();
      return best;
    }
    return this.#idle();
  }

  /** A connection idle in the pool, taken in (never waits or dials). */
  #idle(): MuxConn | null {
    while (true) {
      const lease = this.#pool.tryBorrow();
      if (lease === undefined) return null;
      if (this.#take(lease)) return this.#adopt(lease);
    }
  }

  /**
   * Borrowers wait in the pool for a connection this multiplexer holds:
   * one connection takes no new calls, so it goes back once it empties.
   * `true` if `m` was the one.
   */
  #yield(m: MuxConn): boolean {
    // One that carries nothing yet takes its calls first: given up at
    // once, a connection handed over by the waiter before (an exclusive
    // call, or another pipeline) would carry no call at all.
    if (m.load === 0) return false;
    // Our own borrows wait there too: only someone else's wait counts.
    const waiter = poolHooks.waitingCount(this.#pool) > this.#borrowing;
    // Another address waits for a place under the agent's cap: a busy
    // pipeline never idles a connection for the cap to close.
    const capped = !waiter && poolHooks.contended(this.#pool);
    if (!waiter && !capped) return false;
    for (const o of this.#conns) if (o.draining) return false;
    if (waiter && this.#conns.length === 1 && this.#borrowing > 0) {
      return false;
    }
    m.draining = true;
    m.surrender = capped;
    if (m.load === 0) this.#park(m);
    return true;
  }

  /**
   * `m` is past `maxLifetime`: it takes no new calls and goes back once
   * empty, where the pool closes it (a busy pipeline never parks, so the
   * pool would never see its age). `true` if so.
   */
  #aged(m: MuxConn): boolean {
    if (m.c.born + this.#lifetime > this.#shared.clock.now()) return false;
    m.draining = true;
    if (m.load === 0) this.#park(m);
    return true;
  }

  #adopt(lease: Lease<Connection>, fresh = false): MuxConn {
    const m = new MuxConn(lease, ++this.#epoch, fresh);
    this.#conns.push(m);
    return m;
  }

  /** Borrows connections for the queued calls, up to `max`. */
  #grow(): void {
    if (this.#closed) return;
    // A call sent again waits at the head for a connection of its own:
    // that borrow goes first.
    if (
      this.#freshBorrowing === 0 && (this.#peek()?.after ?? -1) >= 0 &&
      this.#conns.length + this.#borrowing < this.#max
    ) {
      this.#borrowing++;
      this.#freshBorrowing++;
      this.#borrow(true);
    }
    const queued = this.#queued;
    while (
      this.#borrowing * this.#s.maxInFlight < queued &&
      this.#conns.length + this.#borrowing < this.#max
    ) {
      this.#borrowing++;
      this.#borrow(false);
    }
  }

  async #borrow(fresh: boolean): Promise<void> {
    let lease: Lease<Connection>;
    try {
      while (true) {
        const timeout = this.#borrowTimeout();
        lease = await this.#pool.borrow(
          timeout === undefined
            ? (fresh ? FRESH : undefined)
            : { timeout, fresh },
        );
        if (this.#take(lease)) break;
      }
    } catch (error) {
      this.#borrowing--;
      if (fresh) {
        this.#freshBorrowing--;
        // No connection to send them again on: they fail, typed, rather
        // than asking again at once.
        for (let i = this.#qhead; i < this.#queue.length; i++) {
          const call = this.#queue[i]!;
          if (call.state !== QUEUED || call.after < 0) continue;
          this.#queued--;
          this.#settle(call);
          call.reject(error);
        }
      }
      // No connection to serve the queue: the calls waiting for this one
      // get why (a DialError, a PoolTimeoutError, PoolClosedError).
      if (this.#conns.length === 0) this.#failQueue(error);
      else this.#drain();
      return;
    }
    this.#borrowing--;
    if (fresh) this.#freshBorrowing--;
    if (this.#closed) {
      giveBack(lease.resource, lease);
      return;
    }
    const m = this.#adopt(lease, fresh);
    this.#drain();
    // Calls that gave up meanwhile left nothing for it: back it goes.
    if (m.load === 0) this.#park(m);
  }

  /**
   * How long the queue's borrow may wait: as without pipeline, a call's
   * own timeout bounds its wait, not acquireTimeout, so the longest any
   * queued call allows; `undefined` (acquireTimeout) if one has no
   * timeout of its own.
   */
  #borrowTimeout(): number | undefined {
    const now = this.#shared.clock.now();
    let longest = 0;
    for (let i = this.#qhead; i < this.#queue.length; i++) {
      const call = this.#queue[i]!;
      if (call.state !== QUEUED) continue;
      if (call.at === Infinity) return undefined;
      if (call.at - now > longest) longest = call.at - now;
    }
    return longest > 0 ? longest : undefined;
  }

  /**
   * Rejects up to one connection's worth of queued calls with `error`;
   * a PoolTimeoutError only the calls it bounds (those with no timeout
   * of their own: the others time out by themselves).
   */
  #failQueue(error: unknown): void {
    const timedOut = error instanceof PoolTimeoutError;
    let n = this.#s.maxInFlight;
    for (let i = this.#qhead; i < this.#queue.length && n > 0; i++) {
      const call = this.#queue[i]!;
      if (call.state !== QUEUED || (timedOut && call.at !== Infinity)) {
        continue;
      }
      n--;
      this.#queued--;
      this.#settle(call); // DONE: the queue skips it
      call.reject(error);
    }
    this.#grow();
  }

  #dequeue(): AnyCall | undefined {
    while (this.#qhead < this.#queue.length) {
      const call = this.#queue[this.#qhead]!;
      this.#queue[this.#qhead++] = undefined as unknown as AnyCall;
      if (this.#qhead > 1024 && this.#qhead * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#qhead);
        this.#qhead = 0;
      }
      if (call.state === QUEUED) {
        this.#queued--;
        return call;
      }
    }
    return undefined;
  }

  /** The first queued call, left in the queue. */
  #peek(): AnyCall | undefined {
    for (let i = this.#qhead; i < this.#queue.length; i++) {
      const call = this.#queue[i]!;
      if (call.state === QUEUED) return call;
    }
    return undefined;
  }

  /** Places queued calls while there is room. */
  #drain(): void {
    while (this.#qhead < this.#queue.length) {
      const next = this.#peek();
      if (next === undefined) break;
      const m = this.#pick(next.after);
      if (m === null) break;
      const call = this.#dequeue();
      if (call === undefined) break;
      this.#place(m, call);
    }
    if (this.#qhead < this.#queue.length) this.#grow();
  }

  #place(m: MuxConn, call: AnyCall): void {
    call.state = BATCHED;
    call.conn = m;
    m.load++;
    m.placed++;
    m.batch.push(call);
    if (!m.flushQueued && !m.writing) {
      m.flushQueued = true;
      const placed = m.placed;
      queueMicrotask(() => this.#flushQuiet(m, placed, 0, 0));
    }
  }

  /**
   * Flushes `m` once QUIET_TURNS microtask turns in a row have passed with
   * no call placed on it. Replies are handed out one after another as the
   * read loop parses them, and each caller's next call comes a few turns
   * after its reply: without the wait, each of those calls would go out in
   * a write of its own (a `write` costs more than the rest of a call). A
   * call placed alone waits QUIET_TURNS turns (well under a microsecond
   * each), never a timer; a write in progress has the calls placed meanwhile
   * written as soon as it ends, as before.
   */
  #flushQuiet(m: MuxConn, seen: number, quiet: number, turns: number): void {
    if (
      !m.dead && !m.writing &&
      turns < MAX_TURNS
    ) {
      if (m.placed !== seen) {
        const placed = m.placed;
        queueMicrotask(() => this.#flushQuiet(m, placed, 0, turns + 1));
        return;
      }
      if (quiet < QUIET_TURNS) {
        queueMicrotask(() => this.#flushQuiet(m, seen, quiet + 1, turns + 1));
        return;
      }
    }
    this.#flush(m);
  }

  /** Writes what was placed on `m` this turn: one write, up to the cap. */
  #flush(m: MuxConn): void {
    m.flushQueued = false;
    if (m.dead || m.writing || m.batch.length === 0) return;
    const tagged = this.#s.match === "tagged";
    const cap = this.#s.maxBatchBytes;
    const parts: Uint8Array[] = [];
    let size = 0;
    let taken = 0;
    const batch = m.batch;
    for (; taken < batch.length; taken++) {
      const call = batch[taken]!;
      if (call.state !== BATCHED) continue;
      if (size > 0 && size + this.#bytesOf(call) > cap) break;
      let bytes: Uint8Array;
      if (tagged) {
        const tag = this.#tagFor(m);
        try {
          bytes = (call.payload as (tag: number) => Uint8Array)(tag);
          if (!(bytes instanceof Uint8Array)) {
            throw new TypeError(
              `Cannot send request: the payload function must return a Uint8Array, received ${
                describe(bytes)
              }`,
            );
          }
        } catch (error) {
          if (call.state !== BATCHED) continue; // given up meanwhile
          m.load--;
          this.#settle(call);
          call.reject(error);
          continue;
        }
        // Given up by its own payload function: not sent.
        if (call.state !== BATCHED) continue;
        call.tag = tag;
        m.tags.set(tag, call);
      } else {
        bytes = call.payload as Uint8Array;
        m.fifo.push(call);
      }
      call.sent = bytes;
      call.state = WRITTEN;
      m.lastRead = call.read;
      parts.push(bytes);
      size += bytes.length;
      // A tagged request is sized once made: it may end the batch past the cap.
      if (tagged && size >= cap) {
        taken++;
        break;
      }
    }
    m.batch = taken === batch.length ? [] : batch.slice(taken);
    if (parts.length === 0) {
      if (m.load === 0) this.#park(m);
      return;
    }
    let out: Uint8Array;
    if (parts.length === 1) {
      out = parts[0]!;
    } else {
      let buf = m.buf;
      if (buf === null || buf.length < size) {
        buf = new Uint8Array(Math.max(size, 4096));
        if (size <= cap) m.buf = buf;
      }
      let off = 0;
      for (const p of parts) {
        buf.set(p, off);
        off += p.length;
      }
      out = buf.subarray(0, size);
    }
    m.writing = true;
    // Busy is not leaked: the lease's leak clock restarts with each write.
    if (this.#leakWatch) poolHooks.renew(m.lease, this.#shared.clock.now());
    this.#write(m, out);
    if (!m.reading) this.#readLoop(m);
  }

  /** Its size when known before it is made (fifo); 0 for a tagged one. */
  #bytesOf(call: AnyCall): number {
    return typeof call.payload === "function" ? 0 : call.payload.length;
  }

  /** The next tag not in use on `m` (orphans keep theirs until answered). */
  #tagFor(m: MuxConn): number {
    const limit = this.#s.tagLimit;
    let tag = m.nextTag;
    while (m.tags.has(tag)) tag = tag + 1 === limit ? 0 : tag + 1;
    m.nextTag = tag + 1 === limit ? 0 : tag + 1;
    return tag;
  }

  async #write(m: MuxConn, out: Uint8Array): Promise<void> {
    try {
      const sock = m.c.sock;
      let off = 0;
      while (off < out.length) {
        off += await sock.write(off === 0 ? out : out.subarray(off));
      }
    } catch (error) {
      m.writing = false;
      this.#break(m, error, null);
      return;
    }
    m.writing = false;
    if (m.dead) return;
    if (m.batch.length > 0) this.#flush(m);
  }

  /** Reads replies while calls are owed on `m`; hands each to its call. */
  async #readLoop(m: MuxConn): Promise<void> {
    m.reading = true;
    const reader = m.c.reader;
    const tagged = this.#s.match === "tagged";
    let head: AnyCall | null = null;
    try {
      while (!m.dead && m.owed > 0) {
        readerHooks.replyMode(reader, true);
        let reply: unknown;
        // A read that answers synchronously (its reply was buffered) costs
        // no promise hop: the replies of one socket read are handed out in
        // one go, so their callers' next requests share one write.
        if (tagged) {
          head = null;
          reply = m.lastRead!(reader);
        } else {
          head = m.fifo[m.head]!;
          reply = head.read(reader);
        }
        if (reply instanceof Promise) reply = await reply;
        if (m.dead) return;
        if (reply === null && reader.eof) {
          throw new ConnectionBrokenError(
            "the server closed the connection",
          );
        }
        let call: AnyCall;
        if (tagged) {
          let tag: unknown;
          try {
            tag = this.#s.tagOf!(reply);
          } catch (error) {
            throw new ProtocolError(
              "Cannot send request: pipeline.tagOf threw on a reply",
              { cause: error },
            );
          }
          const owner = m.tags.get(tag as number);
          if (owner === undefined) {
            throw new ProtocolError(
              `Cannot send request: a reply with tag ${
                describe(tag)
              } answers no call in flight`,
            );
          }
          m.tags.delete(tag as number);
          call = owner;
        } else {
          m.fifo[m.head++] = undefined as unknown as AnyCall;
          if (m.head === m.fifo.length) {
            m.fifo.length = 0;
            m.head = 0;
          }
          call = head!;
          head = null;
        }
        m.load--;
        // The place is free: a queued call takes it before any later one.
        if (this.#queued > 0) this.#drain();
        if (call.state === ORPHAN) {
          this.#unorphan(m, call);
          continue;
        }
        if (call.verify !== undefined) {
          let ok: unknown;
          let cause: unknown;
          try {
            ok = call.verify(call.sent!, reply);
          } catch (error) {
            cause = error;
          }
          if (!ok) {
            this.#settle(call);
            const error = new ProtocolError(
              cause === undefined
                ? `Cannot send request: the reply does not answer the request (verify returned ${
                  describe(ok)
                })`
                : "Cannot send request: verify threw",
              cause === undefined ? undefined : { cause },
            );
            call.reject(error);
            this.#break(m, error, null);
            return;
          }
        }
        this.#settle(call);
        call.resolve(reply);
        if (this.#closed && m.load === m.orphans && m.orphans > 0) {
          this.#closeOrphaned(m);
          return;
        }
        if (m.expired && m.owed === m.orphans) {
          throw new TimeoutError(
            `Cannot send request: a reply given up on did not arrive within pipeline.orphanTimeout (${this.#s.orphanTimeout} ms)`,
            this.#s.orphanTimeout,
          );
        }
      }
      readerHooks.replyMode(reader, false);
      if (!m.dead && reader.buffered > 0) {
        throw new ProtocolError(
          `Cannot send request: ${reader.buffered} bytes arrived with no call in flight (an unsolicited reply)`,
        );
      }
    } catch (error) {
      m.reading = false;
      readerHooks.replyMode(reader, false);
      // The call whose reply failed gets the error itself only if its own
      // parser (or reply) was at fault, not the socket.
      const own = head !== null && !reader.eof &&
        !(error instanceof ConnectionBrokenError) && !isSocketError(error);
      if (!m.dead) this.#break(m, error, own ? head : null);
      return;
    }
    m.reading = false;
    if (m.dead) return;
    if (m.load === 0) this.#park(m);
    else if (m.owed > 0) this.#readLoop(m);
    if (this.#qhead < this.#queue.length) this.#drain();
  }

  /** A call is over for good: off the deadline heap and the signal. */
  #settle(call: AnyCall): void {
    call.state = DONE;
    if (call.pos !== -1) this.#shared.deadlines.remove(call);
    call.signal?.removeEventListener("abort", call);
  }

  /** A timeout or an abort: the call rejects; a written one's place stays. */
  giveUp(call: AnyCall, reason: unknown): void {
    const state = call.state;
    if (state === DONE || state === ORPHAN) return;
    if (call.pos !== -1) this.#shared.deadlines.remove(call);
    call.signal?.removeEventListener("abort", call);
    if (state === QUEUED) {
      call.state = DONE; // the queue skips it
      this.#queued--;
    } else if (state === BATCHED) {
      // Not written: nothing was sent, its place is free. It stays in the
      // batch (flush skips it): flush may be walking the batch now (a
      // payload function that aborts its own call).
      call.state = DONE;
      const m = call.conn!;
      m.load--;
      if (this.#queued > 0) this.#drain();
      if (m.load === 0) this.#park(m);
    } else {
      // Written: its reply is still due. It is read and dropped (fifo) or
      // its tag stays taken (tagged) until it comes, within orphanTimeout.
      call.state = ORPHAN;
      const m = call.conn!;
      m.orphans++;
      this.#orphans++;
      call.at = this.#shared.clock.now() + this.#s.orphanTimeout;
      this.#shared.deadlines.add(call);
      if (
        this.#s.match === "tagged" && !m.draining &&
        m.orphans * 4 > this.#s.maxInFlight
      ) {
        // A quarter of its places held by replies that may never come.
        m.draining = m.retire = true;
      }
      if (this.#closed && m.load === m.orphans) {
        call.reject(reason);
        this.#closeOrphaned(m);
        return;
      }
    }
    call.reject(reason);
  }

  #unorphan(m: MuxConn, call: AnyCall): void {
    call.state = DONE;
    if (call.pos !== -1) this.#shared.deadlines.remove(call);
    m.orphans--;
  }

  /** An orphan's reply did not come within orphanTimeout. */
  orphanExpired(call: AnyCall): void {
    const m = call.conn!;
    if (m.dead) return;
    const error = new TimeoutError(
      `Cannot send request: a reply given up on did not arrive within pipeline.orphanTimeout (${this.#s.orphanTimeout} ms)`,
      this.#s.orphanTimeout,
    );
    if (this.#s.match === "fifo" || m.owed === m.orphans) {
      // fifo: every later reply waits behind it. tagged: nothing else owed.
      this.#break(m, error, null);
    } else {
      // tagged: the calls still answered here finish; then it is replaced.
      m.draining = m.retire = m.expired = true;
    }
  }

  /** `m` has nothing in flight: back to the pool after this turn. */
  #park(m: MuxConn): void {
    if (m.dead) return;
    this.#parked.push(m);
    if (this.#parkTimer === undefined) {
      const timer = this.#parkTimer = setTimeout(this.#unpark, 0);
      Deno.unrefTimer(timer);
    }
  }

  readonly #unpark = (): void => {
    this.#parkTimer = undefined;
    const parked = this.#parked;
    this.#parked = [];
    for (const m of parked) {
      if (m.dead || m.load > 0) continue;
      this.#remove(m);
      if (m.retire) {
        // Replaced: a fresh connection takes its place when one is needed.
        this.#replaced++;
        m.dead = true;
        m.c.poison(undefined);
      } else if (m.surrender && !this.#closed) {
        // Its place under the cap goes to the pool waiting for one.
        m.dead = true;
        m.c.borrowed = false;
        m.c.close();
        poolHooks.destroyAs(m.lease, "evicted", undefined);
        continue;
      }
      m.c.borrowed = true;
      giveBack(m.c, m.lease);
    }
    // Calls that waited while a connection went to another borrower, or
    // for a connection of their own (sent again).
    if (!this.#closed && this.#qhead < this.#queue.length) this.#drain();
  };

  #remove(m: MuxConn): void {
    const i = this.#conns.indexOf(m);
    if (i !== -1) this.#conns.splice(i, 1);
  }

  /**
   * `m` failed (EOF, a reset, a parser's error, a reply nobody asked for):
   * it is closed. Unwritten calls go back to the queue; written ones reject
   * typed (the one whose reply failed with the error itself), or, when
   * idempotent, run once more on another connection.
   */
  #break(m: MuxConn, error: unknown, head: AnyCall | null): void {
    if (m.dead) return;
    m.dead = true;
    this.#remove(m);
    const c = m.c;
    const closed = this.#closed || c.shared.poolClosed;
    const ours = c.closed && c.closeReason !== undefined;
    c.poison(error);
    m.c.borrowed = true;
    giveBack(c, m.lease);
    const reason = error instanceof ConnectionBrokenError
      ? error.message
      : error instanceof TimeoutError
      ? "a reply given up on did not come within pipeline.orphanTimeout"
      : error instanceof ProtocolError
      ? `another reply on its connection was wrong (${error.message})`
      : `the connection broke (${
        (error as Error)?.message ?? describe(error)
      })`;
    const broken = (written: boolean) =>
      closed
        ? new PoolClosedError("Cannot send request: the pool closed", {
          cause: error,
        })
        : ours
        ? c.closeReason
        : new ConnectionBrokenError(
          `Cannot send request: ${reason}${
            written
              ? " (the request was written: the server may have run it)"
              : ""
          }`,
          { cause: error, beforeResponse: true, written },
        );
    const again: AnyCall[] = [];
    for (const call of m.batch) {
      if (call.state !== BATCHED) continue;
      call.conn = null;
      again.push(call);
    }
    m.batch = [];
    const written: AnyCall[] = [];
    for (let i = m.head; i < m.fifo.length; i++) written.push(m.fifo[i]!);
    for (const call of m.tags.values()) written.push(call);
    m.fifo = [];
    m.head = 0;
    m.tags.clear();
    m.load = 0;
    for (const call of written) {
      if (call.state === ORPHAN) {
        call.state = DONE;
        if (call.pos !== -1) this.#shared.deadlines.remove(call);
        continue;
      }
      if (call.state !== WRITTEN) continue;
      if (call === head) {
        this.#settle(call);
        call.reject(error);
      } else if (!closed && call.idempotent && !call.resent) {
        call.resent = true;
        call.after = this.#epoch;
        this.#resent++;
        call.conn = null;
        again.push(call);
      } else {
        this.#settle(call);
        call.reject(broken(true));
      }
    }
    m.orphans = 0;
    if (closed) {
      for (const call of again) {
        this.#settle(call);
        call.reject(broken(false));
      }
      return;
    }
    // Back to the front of the queue, in their order.
    for (const call of again) call.state = QUEUED;
    this.#queued += again.length;
    const rest = this.#queue.slice(this.#qhead);
    this.#queue = again.concat(rest);
    this.#qhead = 0;
    this.#drain();
  }

  /** The pool closes: queued calls reject; in-flight ones finish. */
  close(): void {
    this.#closed = true;
    while (true) {
      const call = this.#dequeue();
      if (call === undefined) break;
      this.#settle(call);
      call.reject(new PoolClosedError("Cannot send request: the pool closed"));
    }
    this.#queue = [];
    this.#qhead = 0;
    for (const m of [...this.#conns]) {
      if (m.load === 0) this.#park(m);
      else if (m.load === m.orphans) this.#closeOrphaned(m);
    }
  }

  /**
   * The pool closed and `m` owes only replies nobody awaits: closed now,
   * not after orphanTimeout (close() would wait for it).
   */
  #closeOrphaned(m: MuxConn): void {
    this.#break(
      m,
      new PoolClosedError(
        "Cannot send request: the pool closed with only given-up calls in flight",
      ),
      null,
    );
  }

  /** After the pool's close: nothing may stay armed. */
  stop(): void {
    if (this.#parkTimer !== undefined) clearTimeout(this.#parkTimer);
    this.#parkTimer = undefined;
    this.#unpark();
  }
}
