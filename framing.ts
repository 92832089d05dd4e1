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
import {
  type ByteReader,
  type ByteWriter,
  cachedFormat,
  CR,
  DECODER,
  EMPTY,
  encode,
  fail,
  type Format,
  format,
  type FrameOptions,
  type FrameReaderOptions,
  FrameTooLargeError,
  NEWLINE,
  positive,
  readerHooks,
  readHeader,
  Slab,
  SLAB_MAX,
  UnexpectedEofError,
  writeHeader,
} from "./_frame_format.ts";

export { FrameTooLargeError, UnexpectedEofError } from "./_frame_format.ts";
export type {
  ByteReader,
  ByteWriter,
  FrameOptions,
  FrameReaderOptions,
} from "./_frame_format.ts";
export {
  FrameDecoderStream,
  FrameEncoderStream,
  type LineDecoderOptions,
  LineDecoderStream,
} from "./_frame_streams.ts";

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
  checkWriter(writer, "write frame");
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
   * @throws {TypeError} If `writer` has no `write` method, or an option has
   *   the wrong type.
   * @throws {RangeError} If an option is out of range.
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

/** writeFrame's `writer`, checked as FrameWriter's constructor does. */
function checkWriter(writer: unknown, where: string): void {
  if (
    typeof writer !== "object" || writer === null ||
    typeof (writer as ByteWriter).write !== "function"
  ) {
    fail(
      where,
      `writer must have a write method, received ${describe(writer)}`,
      TypeError,
    );
  }
}

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
 * The first allocation for a large frame that is not buffered yet; it grows
 * (doubling) with the bytes that arrive, so a header alone never makes the
 * reader allocate what it announces.
 */
const LARGE_START = 64 * 1024;

/** Checks readExact's `n`. */
function exactCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new (typeof n === "number" ? RangeError : TypeError)(
      `Cannot read exact: n must be a non-negative integer, received ${
        describe(n)
      }`,
    );
  }
}

/** Lines this short are scanned and decoded in JS, without a view. */
const SHORT = 64;

/** Index of the first `\n` in `buf[from, end)`, or -1. */
function newline(buf: Uint8Array, from: number, end: number): number {
  const stop = Math.min(end, from + SHORT);
  for (let i = from; i < stop; i++) if (buf[i] === NEWLINE) return i;
  if (stop === end) return -1;
  const i = buf.subarray(stop, end).indexOf(NEWLINE);
  return i < 0 ? -1 : stop + i;
}

/** `buf[start, end)` as UTF-8: short ASCII without the decoder's call. */
function text(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= SHORT) {
    let out = "";
    for (let i = start; i < end; i++) {
      const b = buf[i]!;
      if (b >= 0x80) return DECODER.decode(buf.subarray(start, end));
      out += String.fromCharCode(b);
    }
    return out;
  }
  return DECODER.decode(buf.subarray(start, end));
}

/**
 * Where a read into `buf` from `end` should stop: short of the buffer's
 * last byte when that leaves room. A reply that fills a read's space to
 * the byte hides what the server sent behind it (the reply cannot be
 * checked, and its connection is not reused); replies are often sized in
 * powers of two, like buffers, so the space is not one.
 */
function spaceEnd(buf: Uint8Array, end: number): number {
  return buf.length - end > 1 ? buf.length - 1 : buf.length;
}

/** `out`'s bytes in an array twice as long, at most `len`. */
function grow(out: Uint8Array, len: number): Uint8Array<ArrayBuffer> {
  const grown = new Uint8Array(Math.min(len, out.length * 2));
  grown.set(out);
  return grown;
}

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
  /** Reply mode (see readerHooks.replyMode): set by a pooled exchange. */
  #reply = false;
  /** In reply mode: bytes consumed before the reply began. */
  #replyMark = 0;
  /**
   * The last read into the buffer filled all the space it was given: more
   * bytes may be waiting in the source (see readerHooks.unsure).
   */
  #filled = false;

  static {
    readerHooks.replyMode = (reader, on) => {
      const r = reader as FrameReader;
      r.#reply = on;
      if (on) r.#replyMark = r.#received - (r.#end - r.#start);
    };
    readerHooks.shrink = (reader) => (reader as FrameReader).#shrink();
    readerHooks.unsure = (reader) => {
      const r = reader as FrameReader;
      return r.#filled && r.#end === r.#start;
    };
  }

  /**
   * Makes a reader; the buffer is allocated on first use.
   *
   * @param source What to read from.
   * @param options Frame format, `bufferSize`, `maxLineLength`.
   * @throws {TypeError} If `source` has no `read` method, or an option has
   *   the wrong type.
   * @throws {RangeError} If an option is out of range.
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
    const h = this.#f.header;
    if (this.#end - this.#start < h) {
      // After a large frame, the next header alone, read here: one await
      // rather than three nested ones (large frames come in runs).
      // Not in reply mode: a header read alone cannot see what follows it.
      if (
        this.#large && !this.#reply && this.#end === this.#start && !this.#eof
      ) {
        const buf = this.#room(h);
        const n = await this.#source.read(buf.subarray(0, h));
        if (n === null) {
          this.#eof = true;
          return this.#endOfStream();
        }
        this.#end += n;
        this.#received += n;
      }
      if (this.#end - this.#start < h && !(await this.#header())) {
        return this.#endOfStream();
      }
    }
    const len = this.#takeHeader();
    this.#large = len >= LARGE_START >> 2;
    if (this.#end - this.#start < len) {
      if (len > SLAB_MAX) {
        // A large frame not fully buffered: an array of its own, exactly
        // `len` long (the caller owns it and it holds nothing else), filled
        // with what is buffered, then straight from the source, never past
        // the frame (the next frame's bytes stay in the source). It starts
        // at LARGE_START and doubles as bytes arrive. The loop of
        // #readGrowing, inline rather than a call to it: one promise hop
        // less per frame, on the path the 64 KiB bench measures.
        const have = this.#end - this.#start;
        let out = new Uint8Array(Math.min(len, Math.max(have, LARGE_START)));
        out.set(this.#buf.subarray(this.#start, this.#end));
        this.#start = this.#end = 0;
        let got = have;
        // In reply mode the last bytes come through the buffer (#tail).
        const stop = this.#reply ? len - 1 : len;
        while (got < stop) {
          if (this.#reply && len - got <= this.#initial >> 1) break;
          if (got === out.length) out = grow(out, len);
          const n = this.#eof ? null : await this.#source.read(
            out.subarray(got, Math.min(out.length, stop)),
          );
          if (n === null) {
            this.#eof = true;
            throw this.#failed(new UnexpectedEofError("frame", len, got));
          }
          got += n;
          this.#received += n;
        }
        return got === len ? out : await this.#tail(out, got, len, "frame");
      }
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
      return this.#endOfStream();
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
      const nl = newline(buf, start + scanned, this.#end);
      if (nl >= 0) {
        const end = nl > start && buf[nl - 1] === CR ? nl - 1 : nl;
        if (end - start > this.#maxLine) {
          throw this.#failed(
            new FrameTooLargeError(end - start, this.#maxLine, "line"),
          );
        }
        this.#start = nl + 1;
        return text(buf, start, end);
      }
      scanned = this.#end - start;
      // Allow one byte more for a `\r` before the newline.
      if (scanned > this.#maxLine + 1) {
        throw this.#failed(
          new FrameTooLargeError(scanned, this.#maxLine, "line"),
        );
      }
      if (!(await this.#more(scanned + 1, false, this.#maxLine + 2))) {
        if (scanned === 0) return this.#endOfStream();
        if (this.#reply) {
          // A reply cut short is not a line.
          throw this.#failed(
            new UnexpectedEofError("line", scanned + 1, scanned),
          );
        }
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
   * Reads exactly `n` bytes and returns a view of them inside the reader's
   * buffer, without copying. The view is valid only until the next call on
   * this reader; copy it to keep it. The buffer grows with the bytes that
   * arrive, not with `n`.
   *
   * @param n How many bytes.
   * @returns The view, or `null` at EOF before the first of them.
   * @throws {TypeError} If `n` is not a number.
   * @throws {RangeError} If `n` is not a non-negative integer.
   * @throws {UnexpectedEofError} If the stream ends after some of the bytes.
   * @throws What the source throws.
   */
  async readExactView(n: number): Promise<Uint8Array | null> {
    this.#check();
    exactCount(n);
    if (this.#pending !== null) await this.#settle();
    if (this.#end - this.#start === 0 && n > 0) {
      if (!(await this.#more(1))) return this.#endOfStream();
    }
    if (this.#end - this.#start < n) await this.#fill(n, "bytes");
    const start = this.#start;
    this.#start = start + n;
    return this.#buf.subarray(start, start + n);
  }

  /**
   * The bytes already buffered and not consumed, as a view inside the
   * reader's buffer, without reading from the source or consuming them:
   * for a parser that takes a message synchronously when it is all there
   * (then {@linkcode FrameReader.skip}s it) and otherwise falls back to the
   * reads that wait. The view is valid only until the next call on this
   * reader.
   *
   * @example Usage
   * ```ts
   * import { FrameReader } from "@chanpool/chanpool";
   * import assert from "node:assert/strict";
   *
   * const chunks = [new TextEncoder().encode("+OK\r\n+PONG\r\n")];
   * const reader = new FrameReader({
   *   read: (p) => {
   *     const chunk = chunks.shift();
   *     if (chunk === undefined) return Promise.resolve(null);
   *     p.set(chunk);
   *     return Promise.resolve(chunk.length);
   *   },
   * });
   * assert.equal(reader.peek().length, 0); // nothing read yet
   * assert.equal(await reader.readLine(), "+OK");
   * const rest = reader.peek(); // "+PONG\r\n", still buffered
   * assert.equal(new TextDecoder().decode(rest), "+PONG\r\n");
   * reader.skip(rest.length);
   * assert.equal(reader.buffered, 0);
   * ```
   *
   * @returns A view of the {@linkcode FrameReader.buffered} bytes.
   * @throws An earlier failure of this reader.
   */
  peek(): Uint8Array {
    this.#check();
    return this.#buf.subarray(this.#start, this.#end);
  }

  /**
   * Consumes `n` buffered bytes (seen with {@linkcode FrameReader.peek})
   * without reading from the source.
   *
   * @param n How many bytes, at most {@linkcode FrameReader.buffered}.
   * @throws {TypeError} If `n` is not a number.
   * @throws {RangeError} If `n` is not a non-negative integer, or more bytes
   *   than are buffered.
   * @throws An earlier failure of this reader.
   */
  skip(n: number): void {
    this.#check();
    if (!Number.isSafeInteger(n) || n < 0 || n > this.#end - this.#start) {
      throw new (typeof n === "number" ? RangeError : TypeError)(
        `Cannot skip: n must be an integer from 0 to ${
          this.#end - this.#start
        } (the bytes buffered), received ${describe(n)}`,
      );
    }
    this.#start += n;
  }

  /**
   * Reads exactly `n` bytes (a copy the caller owns).
   *
   * @param n How many bytes.
   * @returns The bytes, or `null` at EOF before the first of them.
   * @throws {TypeError} If `n` is not a number.
   * @throws {RangeError} If `n` is not a non-negative integer.
   * @throws {UnexpectedEofError} If the stream ends after some of the bytes.
   * @throws What the source throws.
   */
  async readExact(n: number): Promise<Uint8Array | null> {
    this.#check();
    exactCount(n);
    if (this.#pending !== null) await this.#settle();
    if (this.#end - this.#start === 0 && n > 0) {
      if (!(await this.#more(1))) return this.#endOfStream();
    }
    const start = this.#start;
    if (this.#end - start >= n) {
      this.#start = start + n;
      return this.#buf.slice(start, start + n);
    }
    // A large n is what a header announced, not what came: the array grows
    // with the bytes that arrive (as a large frame's does).
    if (n > LARGE_START) return await this.#readGrowing(n, "bytes");
    return await this.#readInto(new Uint8Array(n), "bytes");
  }

  /**
   * Reads into `p`: buffered bytes first, then straight from the source.
   *
   * @param p Where to read to.
   * @returns Bytes read, or `null` at EOF.
   * @throws {TypeError} If `p` is not a Uint8Array (nothing is read).
   * @throws What the source throws.
   */
  read(p: Uint8Array): Promise<number | null> {
    if (!(p instanceof Uint8Array)) {
      return Promise.reject(
        new TypeError(
          `Cannot read: p must be a Uint8Array, received ${describe(p)}`,
        ),
      );
    }
    this.#check();
    const have = this.#end - this.#start;
    if (have > 0) {
      const n = Math.min(have, p.length);
      p.set(this.#buf.subarray(this.#start, this.#start + n));
      this.#start += n;
      return Promise.resolve(n);
    }
    if (this.#pending !== null) return this.#pending.then(() => this.read(p));
    if (this.#eof) return this.#endOfStreamAsync();
    return this.#source.read(p).then((n) => {
      if (n !== null) {
        this.#received += n;
        this.#filled = n === p.length;
      } else {
        this.#eof = true;
        return this.#endOfStream();
      }
      return n;
    });
  }

  /**
   * What a read returns at EOF before its first byte: `null`, unless the
   * reader is in reply mode and bytes of the reply already came (a RESP
   * array cut after its first item, a second line that never came): then
   * the reply was cut short, and that is an UnexpectedEofError.
   */
  #endOfStream(): null {
    if (this.#reply && this.#received > this.#replyMark) {
      const got = this.#received - this.#replyMark;
      throw this.#failed(new UnexpectedEofError("reply", got + 1, got));
    }
    return null;
  }

  #endOfStreamAsync(): Promise<null> {
    try {
      return Promise.resolve(this.#endOfStream());
    } catch (error) {
      return Promise.reject(error);
    }
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
    // straight from the source into its own array, copied once (not in reply
    // mode, where a read must be able to bring what follows the reply).
    const exact = this.#large && !this.#reply;
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
   * is enough, else grows to `want`, doubling at most, so a buffer grows with
   * what arrives rather than with what a header announces; a caller that
   * does not know how much it wants (a line) passes its limit as `cap` and
   * the buffer doubles towards it (O(n) copies and reads for a long line).
   * Returns the buffer.
   */
  #room(want: number, cap = want): Uint8Array {
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
      Math.max(
        this.#initial,
        have + 1,
        Math.min(cap, buf.length * 2),
      ),
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
  async #more(
    want: number,
    exact = false,
    cap = want,
  ): Promise<boolean> {
    if (this.#pending !== null) return (await this.#pending) !== null;
    if (this.#eof) return false;
    // In reply mode, room beyond what is wanted (one byte, and the one that
    // spaceEnd leaves unused): a read that brings the reply's last byte can
    // bring a byte sent after it too.
    const buf = this.#reply
      ? this.#room(want + 2, cap + 2)
      : this.#room(want, cap);
    const space = exact
      ? buf.subarray(this.#end, this.#start + Math.max(want, this.#f.header))
      : this.#reply
      ? buf.subarray(this.#end, spaceEnd(buf, this.#end))
      : buf.subarray(this.#end);
    const n = await this.#source.read(space);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#filled = n === space.length;
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
   * @throws {TypeError} If `onSettled` is neither undefined nor a function
   *   (nothing is read).
   * @throws An earlier failure of this reader (the returned read rejects
   *   with what the source throws).
   */
  prefetch(onSettled?: (failed: boolean) => void): Promise<number | null> {
    if (onSettled !== undefined && typeof onSettled !== "function") {
      throw new TypeError(
        `Cannot prefetch: onSettled must be a function, received ${
          describe(onSettled)
        }`,
      );
    }
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
    const space = buf.subarray(this.#end, spaceEnd(buf, this.#end));
    const pending = this.#source.read(space).then(
      (n) => {
        this.#pending = null;
        if (n === null) this.#eof = true;
        else {
          this.#filled = n === space.length;
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

  /**
   * Exactly `len` bytes (more than are buffered) into an array of their own:
   * what is buffered, then straight from the source, never past `len`. It
   * starts at LARGE_START and doubles as bytes arrive. In reply mode the
   * last bytes come through the buffer (#tail).
   */
  async #readGrowing(len: number, where: string): Promise<Uint8Array> {
    const have = this.#end - this.#start;
    const out = new Uint8Array(Math.min(len, Math.max(have, LARGE_START)));
    out.set(this.#buf.subarray(this.#start, this.#end));
    this.#start = this.#end = 0;
    return await this.#direct(out, have, len, where);
  }

  /**
   * Fills `out` (exactly `len` long, or growing to it) from `got` on,
   * straight from the source, never past `len`. In reply mode the direct
   * reads stop short of the end and the rest comes through the buffer
   * (#tail); a remainder of half a buffer or less always does.
   */
  async #direct(
    out: Uint8Array,
    got: number,
    len: number,
    where: string,
  ): Promise<Uint8Array> {
    const stop = this.#reply ? len - 1 : len;
    const small = (this.#buf.length > 0 ? this.#buf.length : this.#initial) >>
      1;
    while (got < stop && len - got >= small) {
      if (got === out.length) out = grow(out, len);
      const n = this.#eof ? null : await this.#source.read(
        out.subarray(got, Math.min(out.length, stop)),
      );
      if (n === null) {
        this.#eof = true;
        throw this.#failed(new UnexpectedEofError(where, len, got));
      }
      got += n;
      this.#received += n;
    }
    return got === len ? out : await this.#tail(out, got, len, where);
  }

  /**
   * The last `len - got` bytes of `out`, read into the buffer (which may
   * bring what follows along: the next frames, or bytes nobody asked for,
   * which then show as buffered) and copied; `out` grows to `len` first.
   */
  async #tail(
    out: Uint8Array,
    got: number,
    len: number,
    where: string,
  ): Promise<Uint8Array> {
    if (out.length < len) {
      const whole = new Uint8Array(len);
      whole.set(out.subarray(0, got));
      out = whole;
    }
    const left = len - got;
    try {
      await this.#fill(left, where);
    } catch (error) {
      if (!(error instanceof UnexpectedEofError)) throw error;
      throw this.#failed(
        new UnexpectedEofError(where, len, got + this.buffered),
      );
    }
    out.set(this.#buf.subarray(this.#start, this.#start + left), got);
    this.#start += left;
    return out;
  }

  async #readInto(out: Uint8Array, where: string): Promise<Uint8Array> {
    const got = this.#end - this.#start;
    out.set(this.#buf.subarray(this.#start, this.#end));
    this.#start = this.#end = 0;
    return await this.#direct(out, got, out.length, where);
  }

  /** See readerHooks.shrink. */
  #shrink(): void {
    if (
      this.#buf.length > this.#initial && this.#pending === null &&
      this.#end === this.#start
    ) {
      this.#buf = EMPTY;
      this.#start = this.#end = 0;
    }
  }
}
