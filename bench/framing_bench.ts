// Copyright 2026 the chanpool authors. MIT license.
// Decoding a 64 MiB stream of 4-byte length-prefixed frames (16 B, 1 KiB and
// 64 KiB payloads, one group each), delivered in 64 KiB chunks, in one
// `deno bench` run:
//
// - "FrameReader.readFrame": chanpool, owned payloads.
// - "FrameReader.readFrameView": chanpool's zero-copy variant (a view valid
//   until the next read).
// - "FrameDecoderStream": the TransformStream, fed the same chunks.
// - "naive (concat + slice)": the decoder from countless answers to "how do
//   I frame TCP messages": every read concatenates the chunk onto a new
//   array, and every frame is sliced off the front, copying the remainder.
//   Quadratic in the frames per chunk; at 16 B frames it copies ~100 GB per
//   64 MiB, so it runs once (n: 1).
// - "concat per read + offsets": a careful naive decoder: one new array per
//   read, frames copied out by offset. Shown for honesty: at 16 B frames the
//   per-frame allocation dominates every decoder that returns owned arrays.
// - "alloc + set (owned limit)": knows where every payload is; allocates a
//   fresh array per frame and fills it with `set`, nothing else: the floor
//   for any decoder returning owned payloads.
// - "set into reused buffer (copy limit)": `set` of each chunk into one
//   buffer: the raw copy floor.
//
// Encoding groups: `encodeFrame` per payload, and the same payloads through
// FrameEncoderStream. Every bench checks the frames and bytes it saw.
//
// Run: deno bench bench/framing_bench.ts
// (FRAMING_SIZES=65536 deno bench --allow-env bench/framing_bench.ts: one size;
// FRAMING_SIZES=1048576: the long-line group alone)

import {
  encodeFrame,
  FrameDecoderStream,
  FrameEncoderStream,
  FrameReader,
} from "../mod.ts";

const STREAM = 64 * 1024 * 1024;
const CHUNK = 64 * 1024;

interface Fixture {
  size: number;
  count: number;
  data: Uint8Array;
  payloads: Uint8Array[];
}

function fixture(size: number): Fixture {
  const count = Math.floor(STREAM / (size + 4));
  const data = new Uint8Array(count * (size + 4));
  const view = new DataView(data.buffer);
  for (let i = 0, off = 0; i < count; i++, off += size + 4) {
    view.setUint32(off, size);
    data[off + 4 + (i % size)] = i & 0xff;
  }
  const payloads = Array.from({ length: Math.min(count, 4096) }, (_, i) => {
    const p = new Uint8Array(size);
    p[i % size] = i & 0xff;
    return p;
  });
  return { size, count, data, payloads };
}

/** Serves `data` in CHUNK-sized pieces, copied into the caller's buffer. */
class ChunkSource {
  #data: Uint8Array;
  #off = 0;
  constructor(data: Uint8Array) {
    this.#data = data;
  }
  read(p: Uint8Array): Promise<number | null> {
    const left = this.#data.length - this.#off;
    if (left === 0) return Promise.resolve(null);
    const n = Math.min(p.length, left, CHUNK);
    p.set(this.#data.subarray(this.#off, this.#off + n));
    this.#off += n;
    return Promise.resolve(n);
  }
}

function chunks(data: Uint8Array): Uint8Array[] {
  const out = [];
  for (let off = 0; off < data.length; off += CHUNK) {
    out.push(data.subarray(off, off + CHUNK));
  }
  return out;
}

function check(f: Fixture, frames: number, bytes: number): void {
  if (frames !== f.count || bytes !== f.count * f.size) {
    throw new Error(
      `decoded ${frames} frames, ${bytes} bytes; wanted ${f.count}`,
    );
  }
}

// FRAMING_SIZES=65536 (comma-separated) runs only those groups.
function onlySizes(): number[] | undefined {
  try {
    return Deno.env.get("FRAMING_SIZES")?.split(",").map(Number);
  } catch {
    return undefined; // no --allow-env: every size
  }
}
const only = onlySizes();
const sizes = [16, 1024, 64 * 1024].filter((s) => !only || only.includes(s));

for (const size of sizes) {
  const f = fixture(size);
  const parts = chunks(f.data);
  const label = size === 16 ? "16 B" : size === 1024 ? "1 KiB" : "64 KiB";
  const group = `decode ${label} frames`;
  // 4 million frames per iteration at 16 B: a few iterations are plenty.
  const few = size === 16 ? { n: 3, warmup: 1 } : {};

  Deno.bench({
    name: "FrameReader.readFrame",
    group,
    baseline: true,
    ...few,
    async fn() {
      const reader = new FrameReader(new ChunkSource(f.data), {
        bufferSize: CHUNK,
      });
      let frames = 0, bytes = 0, frame;
      while ((frame = await reader.readFrame()) !== null) {
        frames++;
        bytes += frame.length;
      }
      check(f, frames, bytes);
    },
  });

  Deno.bench({
    name: "FrameReader.readFrameView",
    ...few,
    group,
    async fn() {
      const reader = new FrameReader(new ChunkSource(f.data), {
        bufferSize: CHUNK,
      });
      let frames = 0, bytes = 0, frame;
      while ((frame = await reader.readFrameView()) !== null) {
        frames++;
        bytes += frame.length;
      }
      check(f, frames, bytes);
    },
  });

  Deno.bench({
    name: "FrameDecoderStream",
    ...few,
    group,
    async fn() {
      let frames = 0, bytes = 0;
      const decoded = ReadableStream.from(parts).pipeThrough(
        new FrameDecoderStream(),
      );
      for await (const frame of decoded) {
        frames++;
        bytes += frame.length;
      }
      check(f, frames, bytes);
    },
  });

  Deno.bench({
    name: "naive (concat + slice)",
    group,
    ...(size === 16 ? { n: 1, warmup: 0 } : {}),
    async fn() {
      const source = new ChunkSource(f.data);
      const chunk = new Uint8Array(CHUNK);
      let buffer = new Uint8Array(0);
      let frames = 0, bytes = 0;
      while (true) {
        while (buffer.length >= 4) {
          const len = new DataView(buffer.buffer).getUint32(0);
          if (buffer.length < 4 + len) break;
          const frame = buffer.slice(4, 4 + len);
          buffer = buffer.slice(4 + len);
          frames++;
          bytes += frame.length;
        }
        const n = await source.read(chunk);
        if (n === null) break;
        const joined = new Uint8Array(buffer.length + n);
        joined.set(buffer);
        joined.set(chunk.subarray(0, n), buffer.length);
        buffer = joined;
      }
      check(f, frames, bytes);
    },
  });

  Deno.bench({
    name: "concat per read + offsets",
    ...few,
    group,
    async fn() {
      const source = new ChunkSource(f.data);
      const chunk = new Uint8Array(CHUNK);
      let pending = new Uint8Array(0);
      let frames = 0, bytes = 0;
      while (true) {
        const n = await source.read(chunk);
        if (n === null) break;
        // A new array for what is pending plus the new chunk, every read.
        const joined = new Uint8Array(pending.length + n);
        joined.set(pending);
        joined.set(chunk.subarray(0, n), pending.length);
        const view = new DataView(joined.buffer);
        let off = 0;
        while (joined.length - off >= 4) {
          const len = view.getUint32(off);
          if (joined.length - off < 4 + len) break;
          const frame = joined.slice(off + 4, off + 4 + len);
          frames++;
          bytes += frame.length;
          off += 4 + len;
        }
        pending = joined.subarray(off);
      }
      check(f, frames, bytes);
    },
  });

  Deno.bench({
    name: "alloc + set (owned limit)",
    ...few,
    group,
    async fn() {
      // Knows every payload's offset: no parsing, no buffering.
      const data = f.data;
      let frames = 0, bytes = 0;
      for (let off = 0; off < data.length; off += size + 4) {
        const frame = new Uint8Array(size);
        frame.set(data.subarray(off + 4, off + 4 + size));
        frames++;
        bytes += frame.length;
      }
      await Promise.resolve();
      check(f, frames, bytes);
    },
  });

  Deno.bench({
    name: "set into reused buffer (copy limit)",
    group,
    async fn() {
      const buf = new Uint8Array(CHUNK);
      let bytes = 0;
      for (const part of parts) {
        buf.set(part);
        bytes += part.length;
      }
      await Promise.resolve();
      if (bytes !== f.data.length) throw new Error("short copy");
    },
  });

  const encodeGroup = `encode ${label} frames`;
  Deno.bench({
    name: "encodeFrame",
    ...few,
    group: encodeGroup,
    baseline: true,
    fn() {
      let bytes = 0;
      for (let i = 0; i < f.count; i++) {
        bytes += encodeFrame(f.payloads[i % f.payloads.length]!).length;
      }
      if (bytes !== f.data.length) throw new Error("wrong length");
    },
  });
  Deno.bench({
    name: "FrameEncoderStream",
    ...few,
    group: encodeGroup,
    async fn() {
      let bytes = 0;
      let i = 0;
      const source = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (i === f.count) return controller.close();
          controller.enqueue(f.payloads[i++ % f.payloads.length]!);
        },
      }, { highWaterMark: 0 });
      for await (
        const frame of source.pipeThrough(new FrameEncoderStream())
      ) bytes += frame.length;
      if (bytes !== f.data.length) throw new Error("wrong length");
    },
  });
}

// -- A long line: readLine against readExact of the same size --
//
// A 1 MiB line (maxLineLength raised) from the same 64 KiB chunks: the
// line's buffer doubles from 8 KiB towards the limit, so it is read in
// O(log n) growths; readExact of the same size is the floor.

const LONG = 1 << 20;
const longLine = new TextEncoder().encode("x".repeat(LONG - 2) + "\r\n");
if (!only || only.includes(LONG)) {
  Deno.bench({
    name: "FrameReader.readLine (1 MiB line)",
    group: "1 MiB line",
    baseline: true,
    async fn() {
      const reader = new FrameReader(new ChunkSource(longLine), {
        maxLineLength: 2 * LONG,
      });
      const line = await reader.readLine();
      if (line?.length !== LONG - 2) throw new Error("wrong line");
    },
  });
  Deno.bench({
    name: "FrameReader.readExact (1 MiB)",
    group: "1 MiB line",
    async fn() {
      const reader = new FrameReader(new ChunkSource(longLine));
      const bytes = await reader.readExact(LONG);
      if (bytes?.length !== LONG) throw new Error("wrong length");
    },
  });
}
