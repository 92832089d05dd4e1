// Copyright 2026 the chanpool authors. MIT license.
/**
 * Framing over any byte stream: length-prefixed frames, lines and exact-size
 * reads, as Go's `gtcp` offers them (`SendPkg`, `RecvPkg`, `RecvLine`,
 * `Recv(n)`), plus stream codecs.
 *
 * A {@linkcode FrameReader} reads from anything with
 * `read(p: Uint8Array): Promise<number | null>` (a `Deno.Conn`, a test
 * double); {@linkcode writeFrame} writes to anything with `write`. A header
 * that announces more than `maxFrameSize` raises
 * {@linkcode FrameTooLargeError} before anything is allocated; EOF inside a
 * frame, line or exact read raises {@linkcode UnexpectedEofError}; EOF between
 * frames is a clean end (`null`). After either error the reader refuses
 * further reads: the stream is out of step and unusable.
 *
 * @example Usage
 * ```ts
 * import { encodeFrame, FrameReader } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * // Any object with read(p) will do: here, two frames in one chunk.
 * const data = new Uint8Array([
 *   ...encodeFrame(new Uint8Array([1, 2, 3])),
 *   ...encodeFrame(new Uint8Array([])),
 * ]);
 * let done = false;
 * const reader = new FrameReader({
 *   read(p) {
 *     if (done) return Promise.resolve(null);
 *     done = true;
 *     p.set(data);
 *     return Promise.resolve(data.length);
 *   },
 * });
 * assert.deepEqual(await reader.readFrame(), new Uint8Array([1, 2, 3]));
 * assert.deepEqual(await reader.readFrame(), new Uint8Array([]));
 * assert.equal(await reader.readFrame(), null); // clean EOF
 * ```
 *
 * @module
 */

import { describe } from "./_util.ts";

// -- Errors --

/**
 * A frame or line longer than the limit: the header's declared length (or
 * the line's length so far) and the limit are in the message and as
 * properties. Nothing of that size was allocated.
 *
 * @example Usage
 * ```ts
 * import { FrameTooLargeError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const error = new FrameTooLargeError(70_000, 65_536);
 * assert.equal(error.size, 70_000);
 * assert.equal(error.limit, 65_536);
 * assert.match(error.message, /70000 exceeds maxFrameSize 65536/);
 * ```
 */
export class FrameTooLargeError extends Error {
  /** The declared (or observed) length. */
  readonly size: number;
  /** The limit it exceeded. */
  readonly limit: number;

  /**
   * Makes the error.
   *
   * @param size The declared length.
   * @param limit The limit.
   * @param what What was too large: "frame" (the default) or "line".
   */
  constructor(size: number, limit: number, what: "frame" | "line" = "frame") {
    super(
      what === "frame"
        ? `Cannot decode frame: declared length ${size} exceeds maxFrameSize ${limit}`
        : `Cannot decode line: length ${size} exceeds maxLineLength ${limit}`,
    );
    this.name = "FrameTooLargeError";
    this.size = size;
    this.limit = limit;
  }
}

/**
 * The stream ended inside a header, a frame, a line or an exact read.
 *
 * @example Usage
 * ```ts
 * import { UnexpectedEofError } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const error = new UnexpectedEofError("frame", 10, 4);
 * assert.equal(error.name, "UnexpectedEofError");
 * assert.deepEqual([error.expected, error.received], [10, 4]);
 * ```
 */
export class UnexpectedEofError extends Error {
  /** Bytes that were needed. */
  readonly expected: number;
  /** Bytes that arrived before EOF. */
  readonly received: number;

  /**
   * Makes the error.
   *
   * @param where "header", "frame" or "bytes" (an exact read).
   * @param expected Bytes that were needed.
   * @param received Bytes that arrived before EOF.
   */
  constructor(where: string, expected: number, received: number) {
    super(
      `Cannot read ${where}: unexpected EOF after ${received} of ${expected} bytes`,
    );
    this.name = "UnexpectedEofError";
    this.expected = expected;
    this.received = received;
  }
}

// -- Options --

/** How frames are delimited: a length header before each payload. */
export interface FrameOptions {
  /**
   * Bytes in the length header: 1, 2, 4 or 8.
   *
   * @default {4}
   */
  headerSize?: 1 | 2 | 4 | 8 | undefined;
  /**
   * Read and write the header little-endian.
   *
   * @default {false}
   */
  littleEndian?: boolean | undefined;
  /**
   * The largest payload accepted, in bytes; checked before allocating.
   *
   * @default {4 * 1024 * 1024} (or what the header can express, if less)
   */
  maxFrameSize?: number | undefined;
}

/** Options for a {@linkcode FrameReader}. */
export interface FrameReaderOptions extends FrameOptions {
  /**
   * The read buffer's initial size in bytes; it grows as frames need.
   *
   * @default {8192}
   */
  bufferSize?: number | undefined;
  /**
   * The longest line `readLine` accepts, in bytes, without its newline.
   *
   * @default {65536}
   */
  maxLineLength?: number | undefined;
}

/** Anything to read bytes from: a `Deno.Conn`, a file, a test double. */
export interface ByteReader {
  /**
   * Reads into `p`.
   *
   * @param p Where to read to.
   * @returns Bytes read, or `null` at EOF.
   * @throws An earlier failure of this reader, or what the source throws.
   */
  read(p: Uint8Array): Promise<number | null>;
}

/** Anything to write bytes to: a `Deno.Conn`, a file, a test double. */
export interface ByteWriter {
  /**
   * Writes some of `p`.
   *
   * @param p The bytes.
   * @returns How many were written.
   */
  write(p: Uint8Array): Promise<number>;
}

const DEFAULT_MAX_FRAME = 4 * 1024 * 1024;
const NEWLINE = 0x0a;
const CR = 0x0d;

interface Format {
  header: 1 | 2 | 4 | 8;
  little: boolean;
  max: number;
}

function fail(where: string, message: string, Type = RangeError): never {
  throw new Type(`Cannot ${where}: ${message}`);
}

const FORMATS = new WeakMap<FrameOptions, Format>();
let DEFAULT_FORMAT: Format | undefined;

/** `format`, remembered per options object: writeFrame runs per request. */
function cachedFormat(
  options: FrameOptions | undefined,
  where: string,
): Format {
  if (options === undefined) return DEFAULT_FORMAT ??= format(undefined, where);
  if (typeof options !== "object" || options === null) {
    return format(options, where);
  }
  let f = FORMATS.get(options);
  if (f === undefined) FORMATS.set(options, f = format(options, where));
  return f;
}

function format(options: FrameOptions | undefined, where: string): Format {
  if (
    options !== undefined && (typeof options !== "object" || options === null)
  ) {
    fail(
      where,
      `options must be an object, received ${describe(options)}`,
      TypeError,
    );
  }
  const header = options?.headerSize ?? 4;
  if (header !== 1 && header !== 2 && header !== 4 && header !== 8) {
    fail(
      where,
      `headerSize must be 1, 2, 4 or 8, received ${describe(header)}`,
    );
  }
  const little = options?.littleEndian ?? false;
  if (typeof little !== "boolean") {
    fail(
      where,
      `littleEndian must be a boolean, received ${describe(little)}`,
      TypeError,
    );
  }
  const expressible = header === 8
    ? Number.MAX_SAFE_INTEGER
    : 2 ** (8 * header) - 1;
  const max = options?.maxFrameSize ?? Math.min(DEFAULT_MAX_FRAME, expressible);
  if (typeof max !== "number") {
    fail(
      where,
      `maxFrameSize must be a number, received ${describe(max)}`,
      TypeError,
    );
  }
  if (!Number.isSafeInteger(max) || max < 1) {
    fail(where, `maxFrameSize must be a positive integer, received ${max}`);
  }
  return { header, little, max: Math.min(max, expressible) };
}

function positive(
  where: string,
  name: string,
  value: unknown,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") {
    fail(
      where,
      `${name} must be a number, received ${describe(value)}`,
      TypeError,
    );
  }
  if (!Number.isSafeInteger(value) || value < 1) {
    fail(where, `${name} must be a positive integer, received ${value}`);
  }
  return value;
}

/** Reads a header at `at`; may exceed MAX_SAFE_INTEGER only for 8 bytes. */
function readHeader(buf: Uint8Array, at: number, f: Format): number {
  switch (f.header) {
    case 1:
      return buf[at]!;
    case 2:
      return f.little
        ? buf[at]! | (buf[at + 1]! << 8)
        : (buf[at]! << 8) | buf[at + 1]!;
    case 4:
      return f.little
        ? (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) |
          (buf[at + 3]! << 24)) >>> 0
        : ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) |
          buf[at + 3]!) >>> 0;
    case 8: {
      const a = readHeader(buf, at, { ...f, header: 4 });
      const b = readHeader(buf, at + 4, { ...f, header: 4 });
      const [hi, lo] = f.little ? [b, a] : [a, b];
      // Beyond 2^53 precision is lost, but it is far above any limit.
      return hi * 4294967296 + lo;
    }
  }
}

function writeHeader(buf: Uint8Array, length: number, f: Format): void {
  const h = f.header;
  let value = length;
  for (let i = 0; i < h; i++) {
    const byte = value % 256;
    value = Math.floor(value / 256);
    buf[f.little ? i : h - 1 - i] = byte;
  }
}

// -- Encoding --

/**
 * Encodes one frame: the length header, then the payload, in one array.
 *
 * @example Usage
 * ```ts
 * import { encodeFrame } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(encodeFrame(new Uint8Array([9])), new Uint8Array([0, 0, 0, 1, 9]));
 * assert.deepEqual(
 *   encodeFrame(new Uint8Array([9]), { headerSize: 2, littleEndian: true }),
 *   new Uint8Array([1, 0, 9]),
 * );
 * ```
 *
 * @param payload The payload.
 * @param options `headerSize`, `littleEndian`, `maxFrameSize`.
 * @returns Header and payload.
 * @throws {TypeError} If `payload` is not a Uint8Array or an option has the
 *   wrong type.
 * @throws {RangeError} If the payload exceeds `maxFrameSize`, or an option is
 *   out of range.
 */
export function encodeFrame(
  payload: Uint8Array,
  options?: FrameOptions,
): Uint8Array {
  const f = format(options, "encode frame");
  return encode(payload, f, "encode frame");
}

function encode(payload: Uint8Array, f: Format, where: string): Uint8Array {
  if (!(payload instanceof Uint8Array)) {
    fail(
      where,
      `payload must be a Uint8Array, received ${describe(payload)}`,
      TypeError,
    );
  }
  if (payload.length > f.max) {
    fail(
      where,
      `payload length ${payload.length} exceeds maxFrameSize ${f.max}`,
    );
  }
  const out = new Uint8Array(f.header + payload.length);
  writeHeader(out, payload.length, f);
  out.set(payload, f.header);
  return out;
}

/**
 * Writes one frame with a single write loop (short writes continue where
 * they stopped); header and payload go out together.
 *
 * @example Usage
 * ```ts
 * import { writeFrame } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const chunks: Uint8Array[] = [];
 * const writer = {
 *   write: (p: Uint8Array) => { // writes at most 2 bytes at a time
 *     chunks.push(p.slice(0, 2));
 *     return Promise.resolve(Math.min(2, p.length));
 *   },
 * };
 * await writeFrame(writer, new Uint8Array([7, 8]));
 * assert.deepEqual(chunks.flatMap((c) => [...c]), [0, 0, 0, 2, 7, 8]);
 * ```
 *
 * @param writer Where to write.
 * @param payload The payload.
 * @param options `headerSize`, `littleEndian`, `maxFrameSize`.
 * @throws {TypeError} If an argument or option has the wrong type.
 * @throws {RangeError} If the payload exceeds `maxFrameSize`, or an option is
 *   out of range.
 * @throws What the writer throws (the frame may be partly written).
 */
export async function writeFrame(
  writer: ByteWriter,
  payload: Uint8Array,
  options?: FrameOptions,
): Promise<void> {
  await writeAll(
    writer,
    encode(payload, cachedFormat(options, "write frame"), "write frame"),
  );
}

/**
 * Writes frames to one writer through a buffer it reuses, so a frame costs
 * a copy but no allocation; each frame goes out with one write loop. For a
 * connection that sends a frame per request. Frames larger than 64 KiB, or
 * written while another is still in flight, get a buffer of their own.
 *
 * @example Usage
 * ```ts
 * import { FrameWriter } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const out: number[] = [];
 * const writer = new FrameWriter({
 *   write: (p: Uint8Array) => (out.push(...p), Promise.resolve(p.length)),
 * }, { headerSize: 2 });
 * await writer.write(new Uint8Array([7]));
 * await writer.write(new Uint8Array([8, 9]));
 * assert.deepEqual(out, [0, 1, 7, 0, 2, 8, 9]);
 * ```
 */
export class FrameWriter {
  readonly #writer: ByteWriter;
  readonly #f: Format;
  #buf: Uint8Array = EMPTY;
  #busy = false;

  /**
   * Makes a writer.
   *
   * @param writer Where frames go.
   * @param options `headerSize`, `littleEndian`, `maxFrameSize`.
   */
  constructor(writer: ByteWriter, options?: FrameOptions) {
    if (
      typeof writer !== "object" || writer === null ||
      typeof writer.write !== "function"
    ) {
      fail(
        "create FrameWriter",
        `writer must have a write method, received ${describe(writer)}`,
        TypeError,
      );
    }
    this.#writer = writer;
    this.#f = cachedFormat(options, "create FrameWriter");
  }

  /**
   * The largest payload this writer accepts, in bytes: `maxFrameSize`, or
   * what the header can express if that is less.
   *
   * @example Usage
   * ```ts
   * import { FrameWriter } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const sink = { write: (p: Uint8Array) => Promise.resolve(p.length) };
   * assert.equal(new FrameWriter(sink, { headerSize: 1 }).maxFrameSize, 255);
   * ```
   */
  get maxFrameSize(): number {
    return this.#f.max;
  }

  /**
   * Writes one frame: header and payload in one buffer, one write loop.
   *
   * @param payload The payload.
   * @returns When every byte was written.
   * @throws {RangeError} If the payload exceeds `maxFrameSize` (nothing is
   *   written).
   * @throws {TypeError} If `payload` is not a Uint8Array.
   * @throws What the writer throws.
   */
  write(payload: Uint8Array): Promise<void> {
    const f = this.#f;
    if (!(payload instanceof Uint8Array) || payload.length > f.max) {
      try {
        encode(payload, f, "write frame"); // throws the right error
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const need = f.header + payload.length;
    if (this.#busy || need > REUSE_MAX) {
      return writeAll(this.#writer, encode(payload, f, "write frame"));
    }
    let buf = this.#buf;
    if (buf.length < need) {
      buf = this.#buf = new Uint8Array(Math.max(need, buf.length * 2, 256));
    }
    writeHeader(buf, payload.length, f);
    buf.set(payload, f.header);
    this.#busy = true;
    return this.#writeReused(buf.subarray(0, need));
  }

  async #writeReused(bytes: Uint8Array): Promise<void> {
    try {
      await writeAll(this.#writer, bytes);
    } finally {
      this.#busy = false;
    }
  }
}

const REUSE_MAX = 64 * 1024;

/** Writes all of `bytes`, resuming short writes where they stopped. */
async function writeAll(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    const n = await writer.write(off === 0 ? bytes : bytes.subarray(off));
    if (!(n > 0)) {
      throw new Error(`Cannot write frame: the writer wrote ${n} bytes`);
    }
    off += n;
  }
}

// -- Reading --

/**
 * Small payloads are copied into shared slabs and returned as views: one
 * allocation per 16 KiB rather than one per frame (each typed array with a
 * buffer of its own costs over a microsecond in Deno).
 */
class Slab {
  #slab: Uint8Array = EMPTY;
  #off = 0;

  carve(from: Uint8Array, start: number, len: number): Uint8Array {
    let slab = this.#slab;
    let off = this.#off;
    if (slab.length - off < len) {
      slab = this.#slab = new Uint8Array(SLAB);
      off = 0;
    }
    if (len <= 32) {
      for (let i = 0; i < len; i++) slab[off + i] = from[start + i]!;
    } else {
      slab.set(from.subarray(start, start + len), off);
    }
    this.#off = off + len;
    return slab.subarray(off, off + len);
  }
}

const EMPTY = new Uint8Array(0);
/** Payloads up to this size are carved out of shared slabs. */
const SLAB_MAX = 1024;
/**
 * The first allocation for a large frame that is not buffered yet; it grows
 * (doubling) with the bytes that arrive, so a header alone never makes the
 * reader allocate what it announces.
 */
const LARGE_START = 64 * 1024;
const SLAB = 16 * 1024;
const DECODER = new TextDecoder();

/**
 * Reads frames, lines and exact-size chunks from a byte reader, through its
 * own growable buffer. Only one read may be in progress at a time.
 *
 * @example Usage
 * ```ts
 * import { encodeFrame, FrameReader } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const data = new Uint8Array([
 *   ...new TextEncoder().encode("HELLO\r\n"),
 *   ...encodeFrame(new Uint8Array([1, 2])),
 *   5, 6, 7,
 * ]);
 * let sent = false;
 * const reader = new FrameReader({
 *   read: (p) => { // everything in one chunk
 *     if (sent) return Promise.resolve(null);
 *     sent = true;
 *     p.set(data);
 *     return Promise.resolve(data.length);
 *   },
 * });
 * assert.equal(await reader.readLine(), "HELLO");
 * assert.deepEqual(await reader.readFrame(), new Uint8Array([1, 2]));
 * assert.equal(reader.buffered, 3);
 * assert.deepEqual(await reader.readExact(3), new Uint8Array([5, 6, 7]));
 * assert.equal(await reader.readFrame(), null);
 * ```
 */
export class FrameReader {
  readonly #source: ByteReader;
  readonly #f: Format;
  readonly #initial: number;
  readonly #maxLine: number;
  #buf: Uint8Array = EMPTY;
  #start = 0;
  #end = 0;
  #error: Error | null = null;
  #eof = false;
  #slab: Slab | null = null;
  #pending: Promise<number | null> | null = null;
  #received = 0;
  /** The last frame read was large (≥ 16 KiB): read the next header alone. */
  #large = false;
  /** Size for a new buffer: large enough for the largest frame adopted. */

  /**
   * Makes a reader; the buffer is allocated on first use.
   *
   * @param source What to read from.
   * @param options Frame format, `bufferSize`, `maxLineLength`.
   */
  constructor(source: ByteReader, options?: FrameReaderOptions) {
    const where = "create FrameReader";
    if (
      typeof source !== "object" || source === null ||
      typeof source.read !== "function"
    ) {
      fail(
        where,
        `source must have a read method, received ${describe(source)}`,
        TypeError,
      );
    }
    this.#source = source;
    this.#f = cachedFormat(options, where);
    this.#initial = positive(where, "bufferSize", options?.bufferSize, 8192);
    this.#maxLine = positive(
      where,
      "maxLineLength",
      options?.maxLineLength,
      65536,
    );
  }

  /** Bytes read from the source but not consumed yet. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** The buffer's current size in bytes (it grows only as frames need). */
  get bufferCapacity(): number {
    return this.#buf.length;
  }

  /**
   * Reads one frame and returns its payload, which the caller owns: no
   * later read touches it. Payloads up to 1 KiB are carved out of shared
   * 16 KiB slabs (as Node's `Buffer` pool does), so `payload.buffer` may hold
   * other payloads too and one kept payload keeps its slab alive; `slice()`
   * it to keep many small payloads for long. A large frame is read straight
   * into the array it is returned in.
   *
   * @returns The payload, or `null` at EOF between frames.
   * @throws {FrameTooLargeError} If the header announces more than
   *   `maxFrameSize` (the reader stays failed).
   * @throws {UnexpectedEofError} If the stream ends inside a frame.
   * @throws What the source throws.
   */
  async readFrame(): Promise<Uint8Array | null> {
    // No await at all when the frame is buffered: each is a promise hop.
    this.#check();
    if (this.#pending !== null) await this.#settle();
    if (this.#end - this.#start < this.#f.header && !(await this.#header())) {
      return null;
    }
    const len = this.#takeHeader();
    this.#large = len >= LARGE_START >> 2;
    if (this.#end - this.#start < len) {
      if (len > SLAB_MAX) return await this.#readLarge(len);
      await this.#fill(len, "frame");
    }
    const start = this.#start;
    this.#start = start + len;
    if (len > SLAB_MAX) return this.#buf.slice(start, start + len);
    return this.#carve(start, len);
  }

  #carve(start: number, len: number): Uint8Array {
    return (this.#slab ??= new Slab()).carve(this.#buf, start, len);
  }

  /**
   * A large frame not fully buffered: an array of its own, exactly `len`
   * long (the caller owns it and it holds nothing else), filled with what
   * is buffered, then straight from the source, never past the frame (the
   * next frame's bytes stay in the source). It starts at LARGE_START and
   * doubles as bytes arrive.
   */
  async #readLarge(len: number): Promise<Uint8Array> {
    const have = this.#end - this.#start;
    let out = new Uint8Array(Math.min(len, Math.max(have, LARGE_START)));
    out.set(this.#buf.subarray(this.#start, this.#end));
    this.#start = this.#end = 0;
    let got = have;
    while (got < len) {
      if (got === out.length) {
        const grown = new Uint8Array(Math.min(len, out.length * 2));
        grown.set(out);
        out = grown;
      }
      const n = this.#eof ? null : await this.#source.read(out.subarray(got));
      if (n === null) {
        this.#eof = true;
        throw this.#failed(new UnexpectedEofError("frame", len, got));
      }
      got += n;
      this.#received += n;
    }
    return out;
  }

  /**
   * Reads one frame and returns a view of its payload inside the reader's
   * buffer, without copying. The view is valid only until the next call on
   * this reader; copy it to keep it.
   *
   * @returns The payload view, or `null` at EOF between frames.
   * @throws {FrameTooLargeError} If the header announces more than
   *   `maxFrameSize` (the reader stays failed).
   * @throws {UnexpectedEofError} If the stream ends inside a frame.
   * @throws What the source throws.
   */
  async readFrameView(): Promise<Uint8Array | null> {
    this.#check();
    if (this.#pending !== null) await this.#settle();
    if (this.#end - this.#start < this.#f.header && !(await this.#header())) {
      return null;
    }
    const len = this.#takeHeader();
    if (this.#end - this.#start < len) await this.#fill(len, "frame");
    const start = this.#start;
    this.#start = start + len;
    return this.#buf.subarray(start, start + len);
  }

  /**
   * Reads a line ending in `\n` (a `\r` before it is dropped too). A last
   * line without a newline is returned at EOF.
   *
   * @returns The line without its end, decoded as UTF-8, or `null` at EOF.
   * @throws {FrameTooLargeError} If a line is longer than `maxLineLength`.
   * @throws What the source throws.
   */
  async readLine(): Promise<string | null> {
    this.#check();
    if (this.#pending !== null) await this.#settle();
    let scanned = 0;
    while (true) {
      const buf = this.#buf;
      const start = this.#start;
      const i = buf.subarray(start + scanned, this.#end).indexOf(NEWLINE);
      if (i >= 0) {
        const nl = start + scanned + i;
        const end = nl > start && buf[nl - 1] === CR ? nl - 1 : nl;
        if (end - start > this.#maxLine) {
          throw this.#failed(
            new FrameTooLargeError(end - start, this.#maxLine, "line"),
          );
        }
        this.#start = nl + 1;
        return DECODER.decode(buf.subarray(start, end));
      }
      scanned = this.#end - start;
      // Allow one byte more for a `\r` before the newline.
      if (scanned > this.#maxLine + 1) {
        throw this.#failed(
          new FrameTooLargeError(scanned, this.#maxLine, "line"),
        );
      }
      if (!(await this.#more(scanned + 1))) {
        if (scanned === 0) return null;
        // The last line, without a newline. #more may have moved the
        // bytes (compacted or grown the buffer): read them where they are.
        const line = this.#buf.subarray(this.#start, this.#end);
        this.#start = this.#end;
        return DECODER.decode(
          line[line.length - 1] === CR ? line.subarray(0, -1) : line,
        );
      }
    }
  }

  /**
   * Reads exactly `n` bytes (a copy the caller owns).
   *
   * @param n How many bytes.
   * @returns The bytes, or `null` at EOF before the first of them.
   * @throws {RangeError} If `n` is not a non-negative integer.
   * @throws {UnexpectedEofError} If the stream ends after some of the bytes.
   * @throws What the source throws.
   */
  async readExact(n: number): Promise<Uint8Array | null> {
    this.#check();
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(
        `Cannot read exact: n must be a non-negative integer, received ${
          describe(n)
        }`,
      );
    }
    if (this.#pending !== null) await this.#settle();
    if (this.#end - this.#start === 0 && n > 0) {
      if (!(await this.#more(1))) return null;
    }
    const start = this.#start;
    if (this.#end - start >= n) {
      this.#start = start + n;
      return this.#buf.slice(start, start + n);
    }
    return await this.#readInto(new Uint8Array(n), "bytes");
  }

  /**
   * Reads into `p`: buffered bytes first, then straight from the source.
   *
   * @param p Where to read to.
   * @returns Bytes read, or `null` at EOF.
   */
  read(p: Uint8Array): Promise<number | null> {
    this.#check();
    const have = this.#end - this.#start;
    if (have > 0) {
      const n = Math.min(have, p.length);
      p.set(this.#buf.subarray(this.#start, this.#start + n));
      this.#start += n;
      return Promise.resolve(n);
    }
    if (this.#pending !== null) return this.#pending.then(() => this.read(p));
    if (this.#eof) return Promise.resolve(null);
    return this.#source.read(p).then((n) => {
      if (n !== null) this.#received += n;
      return n;
    });
  }

  #check(): void {
    if (this.#error !== null) throw this.#error;
  }

  /**
   * Waits for the prefetch in flight, so its bytes are buffered before a
   * read decides anything from what is buffered. Its failure is the
   * reader's.
   */
  async #settle(): Promise<void> {
    try {
      await this.#pending;
    } catch (error) {
      throw this.#failed(error as Error);
    }
  }

  /**
   * Records the reader's failure (every later call throws it) and returns
   * it for the caller to throw. (In this file `fail` throws an argument
   * error at once; `#failed` marks the reader.)
   */
  #failed(error: Error): Error {
    this.#error = error;
    return error;
  }

  /** Buffers a whole header; `false` at a clean EOF before it. */
  async #header(): Promise<boolean> {
    const h = this.#f.header;
    if (this.#pending !== null) await this.#pending;
    if (this.#end - this.#start >= h) return true;
    // After a large frame, read the header alone: the payload then goes
    // straight from the source into its own array, copied once.
    const exact = this.#large;
    if (this.#end === this.#start && !(await this.#more(1, exact))) {
      return false;
    }
    while (this.#end - this.#start < h) {
      if (!(await this.#more(h, exact))) {
        throw this.#failed(
          new UnexpectedEofError("header", h, this.#end - this.#start),
        );
      }
    }
    return true;
  }

  /** Consumes a buffered header and checks its length against the limit. */
  #takeHeader(): number {
    const len = readHeader(this.#buf, this.#start, this.#f);
    if (len > this.#f.max) {
      throw this.#failed(new FrameTooLargeError(len, this.#f.max));
    }
    this.#start += this.#f.header;
    return len;
  }

  /** Makes `n` bytes buffered or throws UnexpectedEofError. */
  async #fill(n: number, where: string): Promise<void> {
    while (this.#end - this.#start < n) {
      if (!(await this.#more(n))) {
        throw this.#failed(
          new UnexpectedEofError(where, n, this.#end - this.#start),
        );
      }
    }
  }

  /**
   * The one buffer-compaction routine: makes room to read at `#end`, for
   * `want` bytes from `#start` where the buffer allows. Compacts when that
   * is enough, else grows, doubling at most, so a buffer grows with what
   * arrives rather than with what a header announces. Returns the buffer.
   */
  #room(want: number): Uint8Array {
    const buf = this.#buf;
    const start = this.#start;
    const have = this.#end - start;
    if (have === 0) this.#start = this.#end = 0;
    else if (buf.length - start >= want && this.#end < buf.length) return buf;
    if (buf.length >= want && buf.length > have) {
      if (this.#start > 0) {
        buf.copyWithin(0, start, this.#end);
        this.#start = 0;
        this.#end = have;
      }
      return buf;
    }
    const grown = new Uint8Array(
      Math.max(this.#initial, have + 1, Math.min(want, buf.length * 2)),
    );
    grown.set(buf.subarray(start, start + have));
    this.#buf = grown;
    this.#start = 0;
    this.#end = have;
    return grown;
  }

  /**
   * Reads once more into the buffer, making room for `want` bytes from
   * `#start` (see #room); returns false at EOF.
   */
  async #more(want: number, exact = false): Promise<boolean> {
    if (this.#pending !== null) return (await this.#pending) !== null;
    if (this.#eof) return false;
    const buf = this.#room(want);
    const n = await this.#source.read(
      exact
        ? buf.subarray(this.#end, this.#start + Math.max(want, this.#f.header))
        : buf.subarray(this.#end),
    );
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    this.#received += n;
    return true;
  }

  /**
   * Starts one read from the source into the buffer now, unless one is in
   * flight already, and returns it: it resolves with the number of bytes it
   * brought (now buffered) or `null` at EOF. The next read on this reader
   * takes its bytes; nothing is read twice. A pooled connection leaves one
   * pending while idle, to see the server close it (or write to it) at once.
   *
   * @param onSettled Called when this read settles, right after the reader
   *   took its bytes (or EOF), or with `true` when it failed: cheaper than a
   *   `then` of your own on the returned promise, for a watch kept on many
   *   connections. (Handle the returned promise's rejection yourself then.)
   * @returns The read in flight.
   * @throws An earlier failure of this reader (the returned read rejects
   *   with what the source throws).
   */
  prefetch(onSettled?: (failed: boolean) => void): Promise<number | null> {
    this.#check();
    if (this.#pending !== null) {
      // One in flight already: `onSettled` hears of it too.
      if (onSettled !== undefined) {
        this.#pending.then(() => onSettled(false), () => onSettled(true));
      }
      return this.#pending;
    }
    if (this.#eof) return Promise.resolve(null);
    const buf = this.#room(this.#end - this.#start + 1);
    const pending = this.#source.read(
      this.#end === 0 ? buf : buf.subarray(this.#end),
    ).then(
      (n) => {
        this.#pending = null;
        if (n === null) this.#eof = true;
        else {
          this.#end += n;
          this.#received += n;
        }
        onSettled?.(false);
        return n;
      },
      (error) => {
        this.#pending = null;
        onSettled?.(true);
        throw error;
      },
    );
    this.#pending = pending;
    return pending;
  }

  /** Bytes read from the source so far, in all. */
  get received(): number {
    return this.#received;
  }

  /**
   * `true` once the source reported its end (bytes may still be buffered).
   *
   * @example Usage
   * ```ts
   * import { FrameReader } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const reader = new FrameReader({ read: () => Promise.resolve(null) });
   * assert.equal(reader.eof, false);
   * assert.equal(await reader.readLine(), null);
   * assert.equal(reader.eof, true);
   * ```
   */
  get eof(): boolean {
    return this.#eof;
  }

  /** Fills `out` from the buffer, then straight from the source. */
  async #readInto(out: Uint8Array, where: string): Promise<Uint8Array> {
    let got = this.#end - this.#start;
    out.set(this.#buf.subarray(this.#start, this.#end));
    this.#start = this.#end = 0;
    const small = this.#buf.length > 0
      ? this.#buf.length >> 1
      : this.#initial >> 1;
    while (got < out.length) {
      const left = out.length - got;
      if (left < small) {
        // Short remainder: read into the buffer, which may bring the next
        // frames along, and copy.
        await this.#fill(left, where).catch((error) => {
          if (error instanceof UnexpectedEofError) {
            throw this.#failed(
              new UnexpectedEofError(where, out.length, got + this.buffered),
            );
          }
          throw error;
        });
        out.set(this.#buf.subarray(this.#start, this.#start + left), got);
        this.#start += left;
        return out;
      }
      const n = this.#eof ? null : await this.#source.read(out.subarray(got));
      if (n === null) {
        this.#eof = true;
        throw this.#failed(new UnexpectedEofError(where, out.length, got));
      }
      got += n;
      this.#received += n;
    }
    return out;
  }
}

// -- Streams --

/**
 * Pending bytes for the stream decoders. A chunk that arrives with nothing
 * pending is parsed in place; only an unfinished tail is copied.
 */
class Accumulator {
  buf: Uint8Array = EMPTY;
  start = 0;
  end = 0;
  #owned = false;

  push(chunk: Uint8Array): void {
    const have = this.end - this.start;
    if (have === 0) {
      this.buf = chunk;
      this.start = 0;
      this.end = chunk.length;
      this.#owned = false;
      return;
    }
    if (this.#owned && this.buf.length - this.end >= chunk.length) {
      this.buf.set(chunk, this.end);
      this.end += chunk.length;
      return;
    }
    const need = have + chunk.length;
    const next = new Uint8Array(Math.max(need, this.buf.length * 2, 1024));
    next.set(this.buf.subarray(this.start, this.end));
    next.set(chunk, have);
    this.buf = next;
    this.start = 0;
    this.end = need;
    this.#owned = true;
  }

  /** Drops what was consumed; copies a borrowed chunk's unfinished tail. */
  settle(): void {
    if (this.start === this.end) {
      this.buf = EMPTY;
      this.start = this.end = 0;
      this.#owned = false;
    } else if (!this.#owned) {
      this.buf = this.buf.slice(this.start, this.end);
      this.end -= this.start;
      this.start = 0;
      this.#owned = true;
    }
  }
}

/**
 * Splits a byte stream into frame payloads, e.g.
 * `conn.readable.pipeThrough(new FrameDecoderStream())`.
 * Payloads up to 1 KiB share slabs, as with {@linkcode FrameReader.readFrame}.
 *
 * @example Usage
 * ```ts
 * import { encodeFrame, FrameDecoderStream } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const bytes = [...encodeFrame(new Uint8Array([1])), ...encodeFrame(new Uint8Array([2, 3]))];
 * const chunks = bytes.map((b) => new Uint8Array([b])); // one byte at a time
 * const frames = await Array.fromAsync(
 *   ReadableStream.from(chunks).pipeThrough(new FrameDecoderStream()),
 * );
 * assert.deepEqual(frames, [new Uint8Array([1]), new Uint8Array([2, 3])]);
 * ```
 */
export class FrameDecoderStream
  extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * Makes the stream.
   *
   * @param options `headerSize`, `littleEndian`, `maxFrameSize`.
   */
  constructor(options?: FrameOptions) {
    const f = format(options, "create FrameDecoderStream");
    const acc = new Accumulator();
    const slab = new Slab();
    super({
      transform(chunk, controller) {
        acc.push(chunk);
        while (acc.end - acc.start >= f.header) {
          const len = readHeader(acc.buf, acc.start, f);
          if (len > f.max) throw new FrameTooLargeError(len, f.max);
          const at = acc.start + f.header;
          if (acc.end - at < len) break;
          controller.enqueue(
            len > SLAB_MAX
              ? acc.buf.slice(at, at + len)
              : slab.carve(acc.buf, at, len),
          );
          acc.start = at + len;
        }
        acc.settle();
      },
      flush() {
        const have = acc.end - acc.start;
        if (have === 0) return;
        if (have < f.header) {
          throw new UnexpectedEofError("header", f.header, have);
        }
        const len = readHeader(acc.buf, acc.start, f);
        throw new UnexpectedEofError("frame", len, have - f.header);
      },
    });
  }
}

/**
 * Turns payloads into frames (header and payload in one chunk each).
 *
 * @example Usage
 * ```ts
 * import { FrameEncoderStream } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const out = await Array.fromAsync(
 *   ReadableStream.from([new Uint8Array([5])]).pipeThrough(
 *     new FrameEncoderStream({ headerSize: 1 }),
 *   ),
 * );
 * assert.deepEqual(out, [new Uint8Array([1, 5])]);
 * ```
 */
export class FrameEncoderStream
  extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * Makes the stream.
   *
   * @param options `headerSize`, `littleEndian`, `maxFrameSize`.
   */
  constructor(options?: FrameOptions) {
    const f = format(options, "create FrameEncoderStream");
    super({
      transform(payload, controller) {
        controller.enqueue(encode(payload, f, "encode frame"));
      },
    });
  }
}

/** Options for a {@linkcode LineDecoderStream}. */
export interface LineDecoderOptions {
  /**
   * The longest line accepted, in bytes, without its newline.
   *
   * @default {65536}
   */
  maxLineLength?: number | undefined;
}

/**
 * Splits a byte stream into lines (`\n` or `\r\n`, dropped), decoded as
 * UTF-8; a last line without a newline is emitted at the end.
 *
 * @example Usage
 * ```ts
 * import { LineDecoderStream } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const bytes = new TextEncoder().encode("a\r\nbc\nd");
 * const lines = await Array.fromAsync(
 *   ReadableStream.from([bytes.subarray(0, 2), bytes.subarray(2)])
 *     .pipeThrough(new LineDecoderStream()),
 * );
 * assert.deepEqual(lines, ["a", "bc", "d"]);
 * ```
 */
export class LineDecoderStream extends TransformStream<Uint8Array, string> {
  /**
   * Makes the stream.
   *
   * @param options `maxLineLength`.
   */
  constructor(options?: LineDecoderOptions) {
    const max = positive(
      "create LineDecoderStream",
      "maxLineLength",
      options?.maxLineLength,
      65536,
    );
    const acc = new Accumulator();
    // Bytes after acc.start already scanned without finding a newline: a
    // long line arriving in small chunks is scanned once, not per chunk.
    let scanned = 0;
    const emit = (
      controller: TransformStreamDefaultController<string>,
      from: number,
      to: number,
    ) => {
      const end = to > from && acc.buf[to - 1] === CR ? to - 1 : to;
      if (end - from > max) {
        throw new FrameTooLargeError(end - from, max, "line");
      }
      controller.enqueue(DECODER.decode(acc.buf.subarray(from, end)));
    };
    super({
      transform(chunk, controller) {
        acc.push(chunk);
        while (true) {
          const from = acc.start + scanned;
          const i = acc.buf.subarray(from, acc.end).indexOf(NEWLINE);
          if (i < 0) break;
          emit(controller, acc.start, from + i);
          acc.start = from + i + 1;
          scanned = 0;
        }
        scanned = acc.end - acc.start;
        if (scanned > max + 1) {
          throw new FrameTooLargeError(scanned, max, "line");
        }
        acc.settle();
      },
      flush(controller) {
        if (acc.end > acc.start) emit(controller, acc.start, acc.end);
      },
    });
  }
}
