// Copyright 2026 the chanpool authors. MIT license.
// A memcached client on TcpPool that speaks the meta protocol (`mg`, `ms`,
// `md`, `ma`, `mn`), and a demo against a local memcached started on a free
// port (skipped, with a note, when memcached is not on the PATH).
//
// Pipelining (the default): the pool runs with `pipeline: { match: "tagged"
// }`, so many calls share each connection. Every request carries the tag
// the pool allocates as its opaque (`O<tag>`), memcached echoes it on the
// reply, and `tagOf` hands the reply to its call, whatever order replies
// come in. A miss (`EN O<tag>`) carries the opaque too, as long as `q` is
// not sent (`q` drops the miss reply altogether), so `mg` never uses `q`.
//
// Error replies (`CLIENT_ERROR`, `SERVER_ERROR`, `ERROR`) carry no opaque.
// The commands that may get one for a well-formed request, `ms` (an item
// too large, out of memory) and `ma` (a value that is not a number), are
// each followed by a fence, `mg <key> u O<tag>.` (`u`: the item is not
// bumped nor marked as read), whose reply carries the tag with a `.` that no
// other reply has: the reader takes the untagged line before it as the
// call's answer. `ms` goes with `q`, so a stored item answers with the
// fence's line alone. An error on an `mg` or `md` (nothing this client sends
// should get one) cannot be matched: the connection is closed with a
// ProtocolError (its other calls are retried once when idempotent).
// Tested against memcached 1.6.18: a server whose miss is a bare `EN`
// (without the opaque) fails the same way, at the first miss.
//
// `mn` answers `MN` without an opaque: `ping()` sends it on a connection
// of its own (`exclusive`). `pipeline: false` gives one call per connection
// at a time (the bench's baseline); the tag is then always 0.
//
// Keys are strings of 1 to 250 bytes (UTF-8) without spaces or control
// characters; values are bytes (a string is sent as UTF-8).
//
// Run: deno run --allow-net=127.0.0.1 --allow-run=memcached examples/memcached.ts

import {
  type FrameReader,
  ProtocolError,
  TcpPool,
  type TcpPoolOptions,
} from "../mod.ts";
import { freePort } from "./redis.ts";

/** An error reply from memcached (`CLIENT_ERROR`, `SERVER_ERROR`, `ERROR`). */
export class MemcachedError extends Error {
  /** `CLIENT_ERROR`, `SERVER_ERROR` or `ERROR`. */
  readonly code: string;

  constructor(line: string) {
    super(`memcached: ${line}`);
    this.name = "MemcachedError";
    this.code = line.split(" ", 1)[0] ?? "";
  }
}

/** A value read with its metadata ({@linkcode MemcachedClient.gets}). */
export interface MemcachedItem {
  value: Uint8Array;
  /** The client flags (32-bit unsigned). */
  flags: number;
  /** The CAS token, for `cas()`. */
  cas: bigint;
  /** Seconds left to live; `-1`: no expiry. */
  ttl: number;
}

/** Options of one call. */
export interface MemcachedCallOptions {
  /** Bounds the call, in milliseconds (default: the client's `timeout`). */
  timeout?: number;
  signal?: AbortSignal;
  /**
   * Whether the call may run twice if its connection breaks after it was
   * written. Default: `true` for reads, `set` and `touch`; `false` for the
   * rest.
   */
  idempotent?: boolean;
}

/** Options of the storage calls. */
export interface MemcachedStoreOptions extends MemcachedCallOptions {
  /** Seconds to live (`0`: no expiry; above 30 days: a Unix time). */
  ttl?: number;
  /** Client flags stored with the item, 0 to 2 ** 32 - 1. */
  flags?: number;
}

/** Options of `incr` and `decr`. */
export interface MemcachedCounterOptions extends MemcachedCallOptions {
  /** On a miss, create the counter with this value (else: `null`). */
  initial?: bigint | number;
  /** Seconds to live of a counter created by `initial` (default 0). */
  ttl?: number;
}

/** Options of {@linkcode MemcachedClient}. */
export interface MemcachedClientOptions
  extends Omit<TcpPoolOptions, "pipeline"> {
  /**
   * `true` (the default), or the pipeline's `maxInFlight`,
   * `maxBatchBytes` and `orphanTimeout`; `false`: one call per connection.
   */
  pipeline?:
    | boolean
    | { maxInFlight?: number; maxBatchBytes?: number; orphanTimeout?: number };
  /**
   * The default timeout of each call, in milliseconds.
   *
   * @default {5000}
   */
  timeout?: number;
}

/** A parsed reply: the call's code, flags and data block, and its tag. */
export interface MetaReply {
  tag: number;
  /** `VA`, `HD`, `EN`, `NS`, `EX`, `NF`, or an error reply's code. */
  code: string;
  /** The return flags, by letter (`f`, `c`, `t`, `s`, `W`, `X`, `Z`...). */
  flags: Record<string, string>;
  value: Uint8Array | null;
  error: MemcachedError | null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAX_KEY = 250;
const MAX_U32 = 2 ** 32 - 1;
const MAX_U64 = 2n ** 64n - 1n;
/** The largest data block read (memcached's own `-I` limit is 1 GiB). */
const MAX_VALUE = 1024 * 1024 * 1024;
const FENCE = ".";

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Uint8Array) return `a Uint8Array of ${v.length} bytes`;
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  return String(v);
}

/** Whether every character of `s` is ASCII (one byte in UTF-8). */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** The UTF-8 length of `s`, without encoding an ASCII string. */
function utf8Length(s: string): number {
  return isAscii(s) ? s.length : encoder.encode(s).length;
}

/** Checks a key: 1 to 250 UTF-8 bytes, no space or control character. */
export function checkKey(what: string, key: unknown): string {
  if (typeof key !== "string") {
    throw new TypeError(
      `Cannot ${what}: key must be a string, received ${describe(key)}`,
    );
  }
  const n = utf8Length(key);
  if (n === 0 || n > MAX_KEY) {
    throw new RangeError(
      `Cannot ${what}: key must be 1 to ${MAX_KEY} bytes long, received ${n} bytes (${
        describe(key.length > 40 ? key.slice(0, 40) + "..." : key)
      })`,
    );
  }
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f)) {
      throw new RangeError(
        `Cannot ${what}: key must not contain spaces or control characters, received ${
          describe(key)
        } (character ${i} is U+${c.toString(16).padStart(4, "0")})`,
      );
    }
  }
  return key;
}

/** A value's bytes: an ASCII string stays a string (written as is). */
function checkValue(what: string, value: unknown): Uint8Array | string {
  if (typeof value === "string") {
    return isAscii(value) ? value : encoder.encode(value);
  }
  if (value instanceof Uint8Array) return value;
  throw new TypeError(
    `Cannot ${what}: value must be a Uint8Array or a string, received ${
      describe(value)
    }`,
  );
}

function checkInt(
  what: string,
  name: string,
  v: unknown,
  min: number,
  max: number,
): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new (typeof v === "number" ? RangeError : TypeError)(
      `Cannot ${what}: ${name} must be an integer from ${min} to ${max}, received ${
        describe(v)
      }`,
    );
  }
  return v;
}

function checkU64(what: string, name: string, v: unknown): bigint {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) {
    return BigInt(v);
  }
  if (typeof v === "bigint" && v >= 0n && v <= MAX_U64) return v;
  throw new (typeof v === "number" || typeof v === "bigint"
    ? RangeError
    : TypeError)(
    `Cannot ${what}: ${name} must be an unsigned 64-bit integer (a bigint, or a safe integer), received ${
      describe(v)
    }`,
  );
}

/** The call's options, checked (`timeout`, `signal`, `idempotent`). */
function callOptions(
  what: string,
  options: MemcachedCallOptions | undefined,
): void {
  if (options === undefined) return;
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot ${what}: options must be an object, received ${
        describe(options)
      }`,
    );
  }
  const { signal, idempotent } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(
      `Cannot ${what}: signal must be an AbortSignal, received ${
        describe(signal)
      }`,
    );
  }
  if (idempotent !== undefined && typeof idempotent !== "boolean") {
    throw new TypeError(
      `Cannot ${what}: idempotent must be a boolean, received ${
        describe(idempotent)
      }`,
    );
  }
}

/** A reply line's tokens after the code: `O` is the tag, the rest flags. */
function parseFlags(
  tokens: string[],
  from: number,
): { flags: Record<string, string>; opaque: string | null } {
  const flags: Record<string, string> = {};
  let opaque: string | null = null;
  for (let i = from; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === "") continue;
    if (t[0] === "O") opaque = t.slice(1);
    else flags[t[0]!] = t.slice(1);
  }
  return { flags, opaque };
}

function tagText(text: string, line: string): number {
  if (!/^\d{1,10}$/.test(text)) {
    throw new ProtocolError(
      `memcached: bad opaque in ${JSON.stringify(line.slice(0, 80))}`,
    );
  }
  return Number(text);
}

/** Reads one line and, after `VA`, its data block; `null` at EOF. */
async function readUnit(
  reader: FrameReader,
): Promise<
  | {
    line: string;
    code: string;
    flags: Record<string, string>;
    opaque: string | null;
    value: Uint8Array | null;
  }
  | null
> {
  const line = await reader.readLine();
  if (line === null) return null;
  const tokens = line.split(" ");
  const code = tokens[0]!;
  switch (code) {
    case "VA": {
      const size = Number(tokens[1]);
      if (!/^\d+$/.test(tokens[1] ?? "") || size > MAX_VALUE) {
        throw new ProtocolError(
          `memcached: bad VA line ${JSON.stringify(line.slice(0, 80))}`,
        );
      }
      const value = await reader.readExact(size);
      const end = await reader.readExactView(2);
      if (
        (value === null && size > 0) || end === null || end[0] !== 13 ||
        end[1] !== 10
      ) {
        throw new ProtocolError(`memcached: bad data block of ${size} bytes`);
      }
      return {
        line,
        code,
        ...parseFlags(tokens, 2),
        value: value ?? new Uint8Array(0),
      };
    }
    case "HD":
    case "EN":
    case "NS":
    case "EX":
    case "NF":
    case "MN":
      return { line, code, ...parseFlags(tokens, 1), value: null };
    case "CLIENT_ERROR":
    case "SERVER_ERROR":
    case "ERROR":
      return { line, code, flags: {}, opaque: null, value: null };
    default:
      throw new ProtocolError(
        `memcached: not a meta reply: ${JSON.stringify(line.slice(0, 80))}`,
      );
  }
}

/** readMetaReply when the reply is not whole in the buffer (or unusual). */
async function readMetaReplyAsync(
  reader: FrameReader,
): Promise<MetaReply | null> {
  const first = await readUnit(reader);
  if (first === null) return null;
  if (first.opaque !== null) {
    if (first.opaque.endsWith(FENCE)) {
      // The fence alone: an `ms ... q` that stored its item.
      return {
        tag: tagText(first.opaque.slice(0, -1), first.line),
        code: "HD",
        flags: {},
        value: null,
        error: null,
      };
    }
    return {
      tag: tagText(first.opaque, first.line),
      code: first.code,
      flags: first.flags,
      value: first.value,
      error: null,
    };
  }
  if (first.code === "EN" || first.code === "MN") {
    throw new ProtocolError(
      `memcached: a reply without the opaque: ${
        JSON.stringify(first.line.slice(0, 80))
      } (a miss must echo O: this memcached may be too old)`,
    );
  }
  // An untagged answer: its call's fence comes next.
  const fence = await readUnit(reader);
  if (
    fence === null || fence.opaque === null || !fence.opaque.endsWith(FENCE)
  ) {
    throw new ProtocolError(
      `memcached: a reply without the opaque that no fence follows: ${
        JSON.stringify(first.line.slice(0, 80))
      }`,
    );
  }
  const isError = first.code.endsWith("ERROR");
  return {
    tag: tagText(fence.opaque.slice(0, -1), fence.line),
    code: first.code,
    flags: first.flags,
    value: first.value,
    error: isError ? new MemcachedError(first.line) : null,
  };
}

// -- The fast path: a reply whole in the reader's buffer --
//
// Parsed from the bytes `FrameReader.peek()` shows, with no await and no
// string but the flags' values; anything short or unusual (an error line,
// a bad number, a line without `\r`) is left to readMetaReplyAsync, which
// reads the same bytes again and throws what it throws.

/** Lines longer than this go the slow way (a key is 250 bytes at most). */
const FAST_LINE = 1024;
/** Values up to this size are copied into shared slabs (see carve). */
const SLAB_MAX = 1024;
const SLAB_SIZE = 16 * 1024;

const CODES = new Map<number, string>(
  ["VA", "HD", "EN", "NS", "EX", "NF", "MN"].map((c) => [
    (c.charCodeAt(0) << 8) | c.charCodeAt(1),
    c,
  ]),
);

// What scanLine found (scratch: read right after each call).
let lineCode = "";
let lineSize = 0;
let lineTag = -1;
let lineFence = false;
let lineFlags: Record<string, string> | null = null;
let lineNext = 0;

/** Parses the line at `from` if it is whole and usual; `false` if not. */
function scanLine(view: Uint8Array, from: number): boolean {
  const nl = view.indexOf(10, from);
  if (nl < from + 3 || nl - from > FAST_LINE || view[nl - 1] !== 13) {
    return false;
  }
  const end = nl - 1;
  const code = CODES.get((view[from]! << 8) | view[from + 1]!);
  if (code === undefined) return false;
  let p = from + 2;
  if (p < end && view[p] !== 32) return false;
  lineSize = 0;
  lineTag = -1;
  lineFence = false;
  lineFlags = null;
  if (code === "VA") {
    let n = 0;
    const first = ++p;
    for (; p < end && view[p] !== 32; p++) {
      const d = view[p]! - 48;
      if (d < 0 || d > 9) return false;
      n = n * 10 + d;
    }
    if (p === first || p - first > 10 || n > MAX_VALUE) return false;
    lineSize = n;
  }
  while (p < end) {
    p++; // the space
    if (p === end || view[p] === 32) continue; // an empty token
    const letter = view[p]!;
    let q = p + 1;
    while (q < end && view[q] !== 32) q++;
    if (letter === 0x4f) { // O: the tag, `.` after a fence's
      let stop = q;
      lineFence = view[q - 1] === 0x2e;
      if (lineFence) stop--;
      if (stop === p + 1 || stop - p - 1 > 10) return false;
      let tag = 0;
      for (let i = p + 1; i < stop; i++) {
        const d = view[i]! - 48;
        if (d < 0 || d > 9) return false;
        tag = tag * 10 + d;
      }
      lineTag = tag;
    } else {
      let value = "";
      for (let i = p + 1; i < q; i++) {
        const c = view[i]!;
        if (c > 0x7f) return false;
        value += String.fromCharCode(c);
      }
      (lineFlags ??= {})[String.fromCharCode(letter)] = value;
    }
    p = q;
  }
  lineCode = code;
  lineNext = nl + 1;
  return true;
}

let slab = new Uint8Array(0);
let slabAt = 0;

/**
 * A copy of `len` bytes at `start`: a small one is carved out of a shared
 * 16 KiB slab (one allocation for many values, as `FrameReader.readFrame`
 * does), so its `buffer` may hold other values.
 */
function carve(view: Uint8Array, start: number, len: number): Uint8Array {
  if (len > SLAB_MAX) return view.slice(start, start + len);
  if (slab.length - slabAt < len) {
    slab = new Uint8Array(SLAB_SIZE);
    slabAt = 0;
  }
  const at = slabAt;
  for (let i = 0; i < len; i++) slab[at + i] = view[start + i]!;
  slabAt = at + len;
  return slab.subarray(at, at + len);
}

/** The reply at the start of the buffer, consumed; `null`: not whole there. */
function parseBuffered(reader: FrameReader): MetaReply | null {
  const view = reader.peek();
  if (!scanLine(view, 0)) return null;
  let code = lineCode;
  let flags = lineFlags;
  let tag = lineTag;
  let end = lineNext;
  let value: Uint8Array | null = null;
  if (code === "VA") {
    const size = lineSize;
    if (
      end + size + 2 > view.length || view[end + size] !== 13 ||
      view[end + size + 1] !== 10
    ) {
      return null;
    }
    value = carve(view, end, size);
    end += size + 2;
  }
  if (tag === -1) {
    // An untagged answer (`ms`, `ma`): its fence must follow. A bare miss
    // is readMetaReplyAsync's ProtocolError.
    if (code === "EN" || code === "MN") return null;
    if (!scanLine(view, end) || lineTag === -1 || !lineFence) return null;
    if (lineCode === "VA") return null;
    tag = lineTag;
    end = lineNext;
  } else if (lineFence) {
    // The fence alone: an `ms ... q` that stored its item.
    code = "HD";
    flags = null;
    value = null;
  }
  reader.skip(end);
  return { tag, code, flags: flags ?? {}, value, error: null };
}

/**
 * Reads one reply of any call (tagged pipelining reads whichever reply
 * comes next): a tagged line, or an untagged line (an `ms` or `ma` answer,
 * or an error) followed by its call's fence. `null` at EOF. A reply whole
 * in the reader's buffer is returned as is, not in a promise: the pool's
 * read loop then hands out every buffered reply without an await.
 */
export function readMetaReply(
  reader: FrameReader,
): MetaReply | Promise<MetaReply | null> {
  return parseBuffered(reader) ?? readMetaReplyAsync(reader);
}

/** The reply's tag, for `pipeline.tagOf`. */
export const metaTagOf = (reply: unknown): number => (reply as MetaReply).tag;

const readReply = readMetaReply as (
  reader: FrameReader,
) => MetaReply | Promise<MetaReply>;

// -- Requests --

/**
 * A request: `<line> O<tag>`, an optional data block, or (fenced) `<line>`,
 * the data block and `mg <key> u O<tag>.`.
 */
interface Request {
  line: string;
  key: string;
  /** A value: bytes, or an ASCII string. */
  data: Uint8Array | string | null;
  fenced: boolean;
  /** The line (and so the key) is ASCII. */
  ascii: boolean;
  lineBytes: number;
  keyBytes: number;
}

function request(
  line: string,
  key: string,
  data: Uint8Array | string | null,
  fenced: boolean,
): Request {
  const ascii = isAscii(line);
  return {
    line,
    key,
    data,
    fenced,
    ascii,
    lineBytes: ascii ? line.length : encoder.encode(line).length,
    keyBytes: ascii ? key.length : encoder.encode(key).length,
  };
}

let out = new Uint8Array(0);
let outAt = 0;

/** Writes ASCII `s` at `at`; returns the end. */
function putAscii(buf: Uint8Array, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) buf[at + i] = s.charCodeAt(i);
  return at + s.length;
}

function putText(buf: Uint8Array, at: number, s: string, ascii: boolean) {
  if (ascii) return putAscii(buf, at, s);
  return at + encoder.encodeInto(s, buf.subarray(at)).written;
}

/** Writes the decimal digits of `n` (a tag: 0 to 2 ** 32 - 1). */
function putInt(buf: Uint8Array, at: number, n: number): number {
  let digits = 1;
  for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
  for (let i = at + digits - 1; i >= at; i--) {
    buf[i] = 48 + n % 10;
    n = Math.floor(n / 10);
  }
  return at + digits;
}

/**
 * The request's bytes for `tag`: a small request is written into a shared
 * 16 KiB slab (never overwritten: the pool may still hold it), with no
 * TextEncoder for ASCII.
 */
function encodeRequest(r: Request, tag: number): Uint8Array {
  const data = r.data;
  const max = r.lineBytes + (data === null ? 0 : data.length) +
    2 * r.keyBytes + 48;
  let buf: Uint8Array;
  let at: number;
  if (max > SLAB_SIZE >> 2) {
    buf = new Uint8Array(max);
    at = 0;
  } else {
    if (out.length - outAt < max) {
      out = new Uint8Array(SLAB_SIZE);
      outAt = 0;
    }
    buf = out;
    at = outAt;
  }
  const start = at;
  at = putText(buf, at, r.line, r.ascii);
  if (!r.fenced) {
    buf[at++] = 32;
    buf[at++] = 0x4f; // O
    at = putInt(buf, at, tag);
  }
  buf[at++] = 13;
  buf[at++] = 10;
  if (data !== null) {
    if (typeof data === "string") at = putAscii(buf, at, data);
    else {
      buf.set(data, at);
      at += data.length;
    }
    buf[at++] = 13;
    buf[at++] = 10;
  }
  if (r.fenced) {
    at = putAscii(buf, at, "mg ");
    at = putText(buf, at, r.key, r.ascii);
    at = putAscii(buf, at, " u O");
    at = putInt(buf, at, tag);
    buf[at++] = 0x2e; // .
    buf[at++] = 13;
    buf[at++] = 10;
  }
  if (buf === out) outAt = at;
  return buf.subarray(start, at);
}

/**
 * A memcached client on a {@linkcode TcpPool}: the meta protocol, pipelined
 * with tags (see the top of this file).
 */
export class MemcachedClient implements AsyncDisposable {
  /** The pool underneath (stats, close). */
  readonly pool: TcpPool;
  readonly #pipelined: boolean;
  readonly #timeout: number;

  constructor(options: MemcachedClientOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `Cannot create client: options must be an object, received ${
          describe(options)
        }`,
      );
    }
    const { pipeline = true, timeout = 5_000, ...poolOptions } = options;
    if (
      typeof timeout !== "number" || Number.isNaN(timeout) || timeout < 0
    ) {
      throw new (typeof timeout === "number" ? RangeError : TypeError)(
        `Cannot create client: timeout must be a non-negative number of milliseconds, received ${
          describe(timeout)
        }`,
      );
    }
    if (
      typeof pipeline !== "boolean" &&
      (typeof pipeline !== "object" || pipeline === null)
    ) {
      throw new TypeError(
        `Cannot create client: pipeline must be a boolean or an object, received ${
          describe(pipeline)
        }`,
      );
    }
    this.#timeout = timeout;
    this.#pipelined = pipeline !== false;
    this.pool = new TcpPool({
      ...poolOptions,
      ...(pipeline === false ? {} : {
        pipeline: {
          ...(pipeline === true ? {} : pipeline),
          match: "tagged",
          tagOf: metaTagOf,
        },
      }),
    });
  }

  async #call(
    what: string,
    request: Request,
    options: MemcachedCallOptions | undefined,
    idempotent: boolean,
  ): Promise<MetaReply> {
    const timeout = options?.timeout ?? this.#timeout;
    const opts = {
      timeout,
      idempotent: options?.idempotent ?? idempotent,
      ...(options?.signal === undefined ? {} : { signal: options.signal }),
    };
    const read = readReply;
    const reply = this.#pipelined
      ? await this.pool.exchange(
        (tag) => encodeRequest(request, tag),
        read,
        opts,
      )
      : await this.pool.exchange(encodeRequest(request, 0), read, {
        ...opts,
        verify: (_req, r) => r.tag === 0,
      });
    if (reply.error !== null) throw reply.error;
    if (reply.code === "MN") {
      throw new ProtocolError(`Cannot ${what}: memcached answered MN`);
    }
    return reply;
  }

  /**
   * Gets a value (`mg <key> v`).
   *
   * @returns The value, or `null` on a miss. A value up to 1 KiB is a view
   *   into a 16 KiB slab it shares with others (as `FrameReader.readFrame`'s
   *   payloads are): `slice()` it to keep many small values for long.
   */
  async get(
    key: string,
    options?: MemcachedCallOptions,
  ): Promise<Uint8Array | null> {
    checkKey("get", key);
    callOptions("get", options);
    const r = await this.#call(
      "get",
      request(`mg ${key} v`, key, null, false),
      options,
      true,
    );
    return r.code === "VA" ? r.value : null;
  }

  /** Gets a value as UTF-8 text (`null` on a miss). */
  async getText(
    key: string,
    options?: MemcachedCallOptions,
  ): Promise<string | null> {
    const v = await this.get(key, options);
    return v === null ? null : decoder.decode(v);
  }

  /**
   * Gets a value with its flags, CAS token and TTL (`mg <key> v f c t`);
   * `touch` also sets a new TTL (`T`).
   */
  async gets(
    key: string,
    options?: MemcachedCallOptions & { touch?: number },
  ): Promise<MemcachedItem | null> {
    checkKey("gets", key);
    callOptions("gets", options);
    let line = `mg ${key} v f c t`;
    if (options?.touch !== undefined) {
      line += ` T${checkInt("gets", "touch", options.touch, 0, 2 ** 31 - 1)}`;
    }
    const r = await this.#call(
      "gets",
      request(line, key, null, false),
      options,
      true,
    );
    if (r.code !== "VA") return null;
    return {
      value: r.value!,
      flags: Number(r.flags.f ?? 0),
      cas: BigInt(r.flags.c ?? 0),
      ttl: Number(r.flags.t ?? -1),
    };
  }

  /** Sets a new TTL (`mg <key> T<ttl>`); `false` on a miss. */
  async touch(
    key: string,
    ttl: number,
    options?: MemcachedCallOptions,
  ): Promise<boolean> {
    checkKey("touch", key);
    checkInt("touch", "ttl", ttl, 0, 2 ** 31 - 1);
    callOptions("touch", options);
    const r = await this.#call(
      "touch",
      request(`mg ${key} T${ttl}`, key, null, false),
      options,
      true,
    );
    return r.code === "HD";
  }

  async #store(
    what: string,
    mode: string,
    key: string,
    value: Uint8Array | string,
    options: MemcachedStoreOptions | undefined,
    cas: bigint | undefined,
  ): Promise<string> {
    checkKey(what, key);
    const data = checkValue(what, value);
    callOptions(what, options);
    const ttl = checkInt(what, "ttl", options?.ttl ?? 0, 0, 2 ** 31 - 1);
    const flags = checkInt(what, "flags", options?.flags ?? 0, 0, MAX_U32);
    let line = `ms ${key} ${data.length} T${ttl} F${flags} M${mode} q`;
    if (cas !== undefined) line += ` C${cas}`;
    const r = await this.#call(
      what,
      request(line, key, data, true),
      options,
      mode === "S" && cas === undefined,
    );
    return r.code;
  }

  /** Stores a value (`ms`, mode set); `true` once stored. */
  async set(
    key: string,
    value: Uint8Array | string,
    options?: MemcachedStoreOptions,
  ): Promise<boolean> {
    return await this.#store("set", "S", key, value, options, undefined) ===
      "HD";
  }

  /** Stores a value only if the key is missing; `false` if it exists. */
  async add(
    key: string,
    value: Uint8Array | string,
    options?: MemcachedStoreOptions,
  ): Promise<boolean> {
    return await this.#store("add", "E", key, value, options, undefined) ===
      "HD";
  }

  /** Stores a value only if the key exists; `false` if it is missing. */
  async replace(
    key: string,
    value: Uint8Array | string,
    options?: MemcachedStoreOptions,
  ): Promise<boolean> {
    return await this.#store("replace", "R", key, value, options, undefined) ===
      "HD";
  }

  /** Appends to an existing value; `false` if the key is missing. */
  async append(
    key: string,
    value: Uint8Array | string,
    options?: MemcachedCallOptions,
  ): Promise<boolean> {
    return await this.#store("append", "A", key, value, options, undefined) ===
      "HD";
  }

  /** Prepends to an existing value; `false` if the key is missing. */
  async prepend(
    key: string,
    value: Uint8Array | string,
    options?: MemcachedCallOptions,
  ): Promise<boolean> {
    return await this.#store("prepend", "P", key, value, options, undefined) ===
      "HD";
  }

  /**
   * Stores a value if its CAS token is still `cas` (from `gets`).
   *
   * @returns `"stored"`, `"exists"` (changed since), or `"not_found"`.
   */
  async cas(
    key: string,
    value: Uint8Array | string,
    cas: bigint,
    options?: MemcachedStoreOptions,
  ): Promise<"stored" | "exists" | "not_found"> {
    const token = checkU64("cas", "cas", cas);
    const code = await this.#store("cas", "S", key, value, options, token);
    return code === "HD" ? "stored" : code === "EX" ? "exists" : "not_found";
  }

  /** Deletes a key (`md`); `false` if it was missing. */
  async delete(
    key: string,
    options?: MemcachedCallOptions,
  ): Promise<boolean> {
    checkKey("delete", key);
    callOptions("delete", options);
    const r = await this.#call(
      "delete",
      request(`md ${key}`, key, null, false),
      options,
      false,
    );
    return r.code === "HD";
  }

  async #arith(
    what: string,
    mode: string,
    key: string,
    delta: bigint | number,
    options: MemcachedCounterOptions | undefined,
  ): Promise<bigint | null> {
    checkKey(what, key);
    const d = checkU64(what, "delta", delta);
    callOptions(what, options);
    let line = `ma ${key} v D${d} M${mode}`;
    if (options?.initial !== undefined) {
      const j = checkU64(what, "initial", options.initial);
      const ttl = checkInt(what, "ttl", options.ttl ?? 0, 0, 2 ** 31 - 1);
      line += ` N${ttl} J${j}`;
    } else if (options?.ttl !== undefined) {
      throw new TypeError(
        `Cannot ${what}: ttl is for a counter created by initial, received ttl ${
          describe(options.ttl)
        } without initial`,
      );
    }
    const r = await this.#call(
      what,
      request(line, key, null, true),
      options,
      false,
    );
    if (r.code !== "VA") return null;
    const text = decoder.decode(r.value!);
    if (!/^\d+$/.test(text)) {
      throw new ProtocolError(`memcached: ${what} returned ${describe(text)}`);
    }
    return BigInt(text);
  }

  /**
   * Adds `delta` to a counter (`ma`, wrapping at 2 ** 64).
   *
   * @returns The new value, or `null` if the key is missing (and no
   *   `initial` was given).
   * @throws {MemcachedError} If the value is not a number.
   */
  incr(
    key: string,
    delta: bigint | number = 1n,
    options?: MemcachedCounterOptions,
  ): Promise<bigint | null> {
    return this.#arith("incr", "I", key, delta, options);
  }

  /** Subtracts `delta` from a counter (stops at 0); see `incr`. */
  decr(
    key: string,
    delta: bigint | number = 1n,
    options?: MemcachedCounterOptions,
  ): Promise<bigint | null> {
    return this.#arith("decr", "D", key, delta, options);
  }

  /** `mn` on a connection of its own (its `MN` carries no opaque). */
  async ping(options?: MemcachedCallOptions): Promise<void> {
    callOptions("ping", options);
    await this.pool.exchange(encoder.encode("mn\r\n"), async (reader) => {
      const line = await reader.readLine();
      if (line !== "MN") {
        throw new ProtocolError(
          `memcached: expected MN, received ${describe(line)}`,
        );
      }
      return line;
    }, {
      timeout: options?.timeout ?? this.#timeout,
      exclusive: true,
      ...(options?.signal === undefined ? {} : { signal: options.signal }),
    });
  }

  /** Closes the pool. */
  close(): Promise<void> {
    return this.pool.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// -- A local memcached (the demo's, the tests' and the bench's) --

/**
 * Starts memcached on 127.0.0.1:`port` (TCP only, `-U 0`; `-u root`, which
 * memcached needs when run as root and ignores otherwise); the caller waits
 * until it answers and kills it.
 */
export function spawnMemcached(
  port: number,
  args: readonly string[] = [],
): Deno.ChildProcess {
  return new Deno.Command("memcached", {
    args: [
      "-l",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      "0",
      "-u",
      "root",
      ...args,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Whether `memcached` can be run here. */
export function haveMemcached(): boolean {
  try {
    return new Deno.Command("memcached", {
      args: ["-V"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

export { freePort };

// -- The demo --

async function demo(): Promise<void> {
  if (!haveMemcached()) {
    console.log("example:memcached skipped: memcached is not on the PATH");
    return;
  }
  const port = await freePort();
  const server = spawnMemcached(port);
  try {
    await using mc = new MemcachedClient({ port, max: 4, timeout: 1_000 });
    for (let i = 0;; i++) {
      try {
        await mc.ping({ timeout: 500 });
        break;
      } catch (error) {
        if (i > 50) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    console.log(`memcached on 127.0.0.1:${port}`);
    await mc.set("greeting", "hello", { ttl: 60, flags: 7 });
    console.log(`get greeting -> ${await mc.getText("greeting")}`);
    const item = await mc.gets("greeting");
    console.log(
      `gets greeting -> flags ${item?.flags}, ttl ${item?.ttl}, cas ${item?.cas}`,
    );
    console.log(`get missing -> ${await mc.get("missing")}`);
    console.log(
      `cas with a stale token -> ${await mc.cas(
        "greeting",
        "hi",
        item!.cas + 1n,
      )}`,
    );
    console.log(`add greeting (exists) -> ${await mc.add("greeting", "x")}`);
    console.log(
      `incr visits (initial 10) -> ${await mc.incr("visits", 1, {
        initial: 10,
      })}`,
    );
    console.log(`incr visits by 5 -> ${await mc.incr("visits", 5)}`);
    try {
      await mc.incr("greeting");
    } catch (error) {
      console.log(`incr greeting -> ${(error as MemcachedError).message}`);
    }
    console.log(`delete greeting -> ${await mc.delete("greeting")}`);
    try {
      await mc.get("has space");
    } catch (error) {
      console.log(`get "has space" -> ${(error as Error).name}, nothing sent`);
    }

    // 1000 gets from 64 tasks share the pool's connections.
    await mc.set("k", "v");
    const start = performance.now();
    let wrong = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      for (let i = 0; i < 16; i++) {
        if (await mc.getText("k") !== "v") wrong++;
      }
    }));
    const s = mc.pool.stats;
    console.log(
      `1024 gets from 64 tasks: ${wrong} wrong, ${
        Math.round(performance.now() - start)
      } ms, ${s.dials} connections dialed`,
    );
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
}

if (import.meta.main) await demo();
