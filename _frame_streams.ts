// Copyright 2026 the chanpool authors. MIT license.
// framing.ts's web-stream codecs: frames and lines through TransformStreams.
// framing.ts re-exports them.

import {
  CR,
  DECODER,
  EMPTY,
  encode,
  fail,
  format,
  type FrameOptions,
  FrameTooLargeError,
  NEWLINE,
  positive,
  readHeader,
  Slab,
  SLAB_MAX,
  UnexpectedEofError,
} from "./_frame_format.ts";
import { describe } from "./_util.ts";

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
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If an option is out of range.
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
   * @throws {TypeError} If an option has the wrong type.
   * @throws {RangeError} If an option is out of range.
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
   * @throws {TypeError} If `options` or `maxLineLength` has the wrong type.
   * @throws {RangeError} If `maxLineLength` is not a positive integer.
   */
  constructor(options?: LineDecoderOptions) {
    if (
      options !== undefined && (typeof options !== "object" || options === null)
    ) {
      fail(
        "create LineDecoderStream",
        `options must be an object, received ${describe(options)}`,
        TypeError,
      );
    }
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
