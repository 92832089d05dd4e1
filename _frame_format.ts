// Copyright 2026 the chanpool authors. MIT license.
// What framing.ts and its stream codecs share: the errors, the options, the
// checked frame format, header reading and writing, and encoding. framing.ts
// re-exports the public part.

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
   * @param where "header", "frame", "bytes" (an exact read), "line" (a
   *   line without its newline, where a whole line was required) or "reply"
   *   (a request's reply cut short between two of its reads).
   * @param expected Bytes that were needed (for a line: one more than
   *   arrived, its newline at least).
   * @param received Bytes that arrived before EOF.
   */
  constructor(where: string, expected: number, received: number) {
    super(
      where === "line"
        ? `Cannot read line: unexpected EOF after ${received} bytes without a newline`
        : where === "reply"
        ? `Cannot read reply: unexpected EOF after ${received} bytes of it`
        : `Cannot read ${where}: unexpected EOF after ${received} of ${expected} bytes`,
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

export const DEFAULT_MAX_FRAME = 4 * 1024 * 1024;
export const NEWLINE = 0x0a;
export const CR = 0x0d;

export interface Format {
  header: 1 | 2 | 4 | 8;
  little: boolean;
  max: number;
}

export function fail(where: string, message: string, Type = RangeError): never {
  throw new Type(`Cannot ${where}: ${message}`);
}

export const FORMATS = new WeakMap<FrameOptions, Format>();
let DEFAULT_FORMAT: Format | undefined;

/** `format`, remembered per options object: writeFrame runs per request. */
export function cachedFormat(
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

/**
 * Checks frame options. `prefix` names them in messages when they are an
 * option of something else (`"frame."`: `frame.headerSize`).
 */
export function format(
  options: FrameOptions | undefined,
  where: string,
  prefix = "",
): Format {
  if (
    options !== undefined && (typeof options !== "object" || options === null)
  ) {
    fail(
      where,
      `${
        prefix ? prefix.slice(0, -1) : "options"
      } must be an object, received ${describe(options)}`,
      TypeError,
    );
  }
  const header = options?.headerSize ?? 4;
  if (typeof header !== "number") {
    fail(
      where,
      `${prefix}headerSize must be a number, received ${describe(header)}`,
      TypeError,
    );
  }
  if (header !== 1 && header !== 2 && header !== 4 && header !== 8) {
    fail(
      where,
      `${prefix}headerSize must be 1, 2, 4 or 8, received ${describe(header)}`,
    );
  }
  const little = options?.littleEndian ?? false;
  if (typeof little !== "boolean") {
    fail(
      where,
      `${prefix}littleEndian must be a boolean, received ${describe(little)}`,
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
      `${prefix}maxFrameSize must be a number, received ${describe(max)}`,
      TypeError,
    );
  }
  if (!Number.isSafeInteger(max) || max < 1) {
    fail(
      where,
      `${prefix}maxFrameSize must be a positive integer, received ${max}`,
    );
  }
  return { header, little, max: Math.min(max, expressible) };
}

export function positive(
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
export function readHeader(buf: Uint8Array, at: number, f: Format): number {
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

export function writeHeader(buf: Uint8Array, length: number, f: Format): void {
  const h = f.header;
  let value = length;
  for (let i = 0; i < h; i++) {
    const byte = value % 256;
    value = Math.floor(value / 256);
    buf[f.little ? i : h - 1 - i] = byte;
  }
}

export const EMPTY: Uint8Array = new Uint8Array(0);
export const DECODER: TextDecoder = new TextDecoder();

export function encode(
  payload: Uint8Array,
  f: Format,
  where: string,
): Uint8Array {
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
 * Small payloads are copied into shared slabs and returned as views: one
 * allocation per 16 KiB rather than one per frame (each typed array with a
 * buffer of its own costs over a microsecond in Deno).
 */
export class Slab {
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

/**
 * Hooks into FrameReader for the pooled connection (bound in its static
 * block); not public API.
 */
export const readerHooks: {
  /**
   * Reply mode on or off. On, the reader serves one request's reply: a line
   * cut by EOF is an UnexpectedEofError (never a value), and the last bytes
   * of a large frame or exact read come through the buffer, so bytes that
   * arrived with the reply (a reply nobody asked for) are buffered, and seen.
   */
  replyMode(reader: object, on: boolean): void;
  /**
   * Drops a grown buffer (nothing buffered, no read in flight): an idle
   * connection keeps `bufferSize` bytes, not its largest reply's.
   */
  shrink(reader: object): void;
  /**
   * Nothing is buffered, but the last read filled all the space it was
   * given: bytes sent right behind what was read may still be in the
   * source, unseen. A reply that ends so cannot be checked for them.
   */
  unsure(reader: object): boolean;
} = {
  replyMode: () => {
    throw new Error("framing.ts is not loaded");
  },
  shrink: () => {
    throw new Error("framing.ts is not loaded");
  },
  unsure: () => {
    throw new Error("framing.ts is not loaded");
  },
};

/** Payloads up to this size are carved out of shared slabs. */
export const SLAB_MAX = 1024;
export const SLAB = 16 * 1024;
