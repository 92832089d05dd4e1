// Copyright 2026 the chanpool authors. MIT license.
// An RPC server for the pipelining tests and benches, on 127.0.0.1, port 0.
//
// A request is [u32 length][u32 tag][u32 delay ms][body]; the reply is
// [u32 length][u32 tag][body], sent `delay` ms later ("tagged": replies in
// the order their delays run out; "fifo": in request order, each one held
// until those before it went). Delay 0xffffffff: never answered (fifo:
// nor is anything after it on that connection). A body
// starting with "KILL" closes the connection at once; "JUNK" answers with
// the tag plus one (a tag nobody asked for). The client side: `rpc()`
// encodes a request, `readRpc()` reads a reply.
//
// With `{ overlap: true }` each delay counts from the request's arrival, so
// replies overlap: "fifo" sends a reply once its delay ran out and every
// reply before it went; replies ready in the same turn go in one write.

import { acceptAll, type Served } from "./_servers.ts";
import type { FrameReader } from "../mod.ts";

export const NEVER = 0xffff_ffff;

export interface RpcReply {
  tag: number;
  body: Uint8Array;
}

export interface RpcServer extends Served {
  /** Requests read so far. */
  readonly requests: number;
  /** Writes `bytes` on every open connection (unsolicited). */
  inject(bytes: Uint8Array): Promise<void>;
  /** Closes every open connection (the server stays up). */
  kill(): void;
}

/** Encodes a request. */
export function rpc(tag: number, delay: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 8 + body.length);
  view.setUint32(4, tag);
  view.setUint32(8, delay);
  out.set(body, 12);
  return out;
}

/** Encodes a reply (for a test's own server). */
export function rpcReply(tag: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 4 + body.length);
  view.setUint32(4, tag);
  out.set(body, 8);
  return out;
}

/** Reads one reply (null at EOF before it). */
export async function readRpc(reader: FrameReader): Promise<RpcReply | null> {
  const frame = await reader.readFrame();
  if (frame === null) return null;
  if (frame.length < 4) throw new Error("short reply");
  const tag = new DataView(frame.buffer, frame.byteOffset).getUint32(0);
  return { tag, body: frame.subarray(4) };
}

export const tagOf = (reply: unknown): number => (reply as RpcReply).tag;

/** A request as the server reads it. */
export interface RpcRequest {
  tag: number;
  delay: number;
  body: Uint8Array;
}

/** Splits a byte stream into requests, whatever the reads cut it into. */
export class RequestParser {
  #buf = new Uint8Array(0);

  /** Takes the bytes of one read; returns the requests now whole. */
  push(chunk: Uint8Array): RpcRequest[] {
    const buf = new Uint8Array(this.#buf.length + chunk.length);
    buf.set(this.#buf);
    buf.set(chunk, this.#buf.length);
    const out: RpcRequest[] = [];
    let off = 0;
    while (buf.length - off >= 4) {
      const view = new DataView(buf.buffer, off);
      const len = view.getUint32(0);
      if (buf.length - off < 4 + len) break;
      out.push({
        tag: view.getUint32(4),
        delay: view.getUint32(8),
        body: buf.slice(off + 12, off + 4 + len),
      });
      off += 4 + len;
    }
    this.#buf = buf.slice(off);
    return out;
  }
}

/** The parts, one after another. */
export function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// -- for the tests that use the server --

export const enc: TextEncoder = new TextEncoder();
export const dec: TextDecoder = new TextDecoder();
/** A reply's body as text. */
export const text = (r: RpcReply | null): string => dec.decode(r!.body);
export const sleep = (ms: number): Promise<void> =>
  new Promise((r) => setTimeout(r, ms));

/** Waits until `ok()` (polling every 2 ms), or throws after `ms`. */
export async function until(
  what: string,
  ok: () => boolean,
  ms = 2_000,
): Promise<void> {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(2);
  }
}

/** The outcome of `p`, handled at once (no unhandled rejection). */
export const outcome = <T>(p: Promise<T>): Promise<T | Error> =>
  p.then((v) => v, (e: Error) => e);

const KILL = [0x4b, 0x49, 0x4c, 0x4c];
const JUNK = [0x4a, 0x55, 0x4e, 0x4b];

function startsWith(body: Uint8Array, word: number[]): boolean {
  return body.length >= 4 && word.every((b, i) => body[i] === b);
}

/** Options of {@linkcode startRpcServer}. */
export interface RpcServerOptions {
  /** Delays count from each request's arrival, not the reply before. */
  overlap?: boolean;
  /** Sets TCP_NODELAY on accepted connections. */
  noDelay?: boolean;
}

/** Starts the server; `order` says how replies are ordered. */
export function startRpcServer(
  order: "fifo" | "tagged",
  options: RpcServerOptions = {},
): RpcServer {
  const overlap = options.overlap === true;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const timers = new Map<ReturnType<typeof setTimeout>, () => void>();
  let requests = 0;
  let closedAll = false;
  const served = acceptAll(listener, conns, async (conn) => {
    if (options.noDelay) (conn as Deno.TcpConn).setNoDelay(true);
    const parser = new RequestParser();
    const chunk = new Uint8Array(65536);
    // fifo: replies wait for those before them.
    let chain = Promise.resolve();
    let closed = false;
    const send = async (bytes: Uint8Array) => {
      if (closed || closedAll) return;
      try {
        let off = 0;
        while (off < bytes.length) off += await conn.write(bytes.subarray(off));
      } catch {
        closed = true;
      }
    };
    // This connection's pending delays: they end when it does.
    const mine = new Set<ReturnType<typeof setTimeout>>();
    // overlap, fifo: a slot per reply in request order, filled when its
    // delay runs out; tagged: replies whose delay ran out, in that order.
    let due: { reply: Uint8Array | null }[] = [];
    let dueHead = 0;
    let ready: Uint8Array[] = [];
    let flushing = false;
    const flushReady = () => {
      flushing = false;
      while (dueHead < due.length && due[dueHead]!.reply !== null) {
        ready.push(due[dueHead++]!.reply!);
      }
      if (dueHead > 1024 && dueHead * 2 > due.length) {
        due = due.slice(dueHead);
        dueHead = 0;
      }
      if (ready.length === 0) return;
      const all = concat(ready);
      ready = [];
      const prev = chain;
      chain = prev.then(() => send(all));
    };
    const schedule = (reply: Uint8Array, ms: number) => {
      const slot = { reply: null as Uint8Array | null };
      if (order === "fifo") due.push(slot);
      const fire = () => {
        if (order === "fifo") slot.reply = reply;
        else ready.push(reply);
        if (!flushing) {
          flushing = true;
          queueMicrotask(flushReady);
        }
      };
      if (ms === 0) return fire();
      // fifo: a reply never sent holds back every later one.
      if (ms === NEVER) return;
      const t = setTimeout(() => {
        timers.delete(t);
        mine.delete(t);
        fire();
      }, ms);
      timers.set(t, () => {});
      mine.add(t);
    };
    const later = (ms: number) =>
      new Promise<void>((resolve) => {
        if (ms === 0) return resolve();
        const t = setTimeout(() => {
          timers.delete(t);
          mine.delete(t);
          resolve();
        }, ms);
        timers.set(t, resolve);
        mine.add(t);
      });
    const endDelays = () => {
      for (const t of mine) {
        clearTimeout(t);
        timers.get(t)?.();
        timers.delete(t);
      }
      mine.clear();
    };
    try {
      while (true) {
        const n = await conn.read(chunk);
        if (n === null) break;
        const out: Uint8Array[] = [];
        for (const { tag, delay, body } of parser.push(chunk.subarray(0, n))) {
          requests++;
          if (startsWith(body, KILL)) {
            closed = true;
            endDelays();
            conn.close();
            conns.delete(conn);
            return;
          }
          const reply = rpcReply(startsWith(body, JUNK) ? tag + 1 : tag, body);
          if (delay === NEVER && order === "tagged") continue;
          if (overlap) {
            schedule(reply, delay);
          } else if (order === "fifo") {
            // In order: a reply never sent holds back every later one.
            if (delay === 0) {
              out.push(reply);
            } else {
              const flush = out.splice(0);
              const prev = chain;
              chain = (async () => {
                await prev;
                for (const r of flush) await send(r);
                await later(delay === NEVER ? 2 ** 31 - 1 : delay);
                await send(reply);
              })();
            }
          } else if (delay === 0) {
            out.push(reply);
          } else {
            later(delay).then(() => send(reply));
          }
        }
        if (out.length > 0) {
          const all = concat(out);
          if (order === "fifo") {
            const prev = chain;
            chain = prev.then(() => send(all));
          } else {
            await send(all);
          }
        }
      }
    } catch {
      // reset
    }
    closed = true;
    endDelays();
    await chain;
    try {
      conn.close();
    } catch {
      // closed already
    }
    conns.delete(conn);
  }, () => {
    // Pending replies go nowhere: their waits end now.
    closedAll = true;
    for (const [t, resolve] of timers) {
      clearTimeout(t);
      resolve();
    }
    timers.clear();
  });
  return {
    ...served,
    get port() {
      return served.port;
    },
    get accepted() {
      return served.accepted;
    },
    get open() {
      return served.open;
    },
    get requests() {
      return requests;
    },
    drained: (ms) => served.drained(ms),
    stop: () => served.stop(),
    [Symbol.asyncDispose]: () => served.stop(),
    async inject(bytes) {
      await Promise.all(
        [...conns].map((c) => c.write(bytes).catch(() => 0)),
      );
    },
    kill() {
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // closed already
        }
      }
      conns.clear();
    },
  };
}
