// Copyright 2026 the chanpool authors. MIT license.
// framing.ts over test readers that deliver bytes one at a time, in random
// chunks, or all at once; plus a fuzz test of hostile bytes.

import assert from "node:assert/strict";
import {
  type ByteReader,
  encodeFrame,
  FrameDecoderStream,
  FrameEncoderStream,
  type FrameOptions,
  FrameReader,
  FrameTooLargeError,
  LineDecoderStream,
  UnexpectedEofError,
  writeFrame,
} from "../framing.ts";
import { mulberry32 } from "./_random.ts";

const NONE = { permissions: "none" } as const;

// -- Test readers --

/**
 * Serves `data` in chunks whose sizes `next` picks (capped by what the
 * caller asks); records the largest buffer a read was given.
 */
class ChunkReader implements ByteReader {
  #data: Uint8Array;
  #off = 0;
  #next: () => number;
  largestRead = 0;
  reads = 0;

  constructor(data: Uint8Array, next: () => number = () => Infinity) {
    this.#data = data;
    this.#next = next;
  }

  read(p: Uint8Array): Promise<number | null> {
    this.reads++;
    this.largestRead = Math.max(this.largestRead, p.length);
    if (this.#off >= this.#data.length) return Promise.resolve(null);
    const n = Math.min(
      p.length,
      this.#data.length - this.#off,
      Math.max(1, this.#next()),
    );
    p.set(this.#data.subarray(this.#off, this.#off + n));
    this.#off += n;
    return Promise.resolve(n);
  }
}

const oneByte = (data: Uint8Array) => new ChunkReader(data, () => 1);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function bytes(n: number, seed = 1): Uint8Array {
  const random = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
}

const text = (s: string) => new TextEncoder().encode(s);

async function readAll(reader: FrameReader): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  let frame;
  while ((frame = await reader.readFrame()) !== null) out.push(frame);
  return out;
}

// -- Round trips --

const FORMATS: FrameOptions[] = [];
for (const headerSize of [1, 2, 4, 8] as const) {
  for (const littleEndian of [false, true]) {
    FORMATS.push({ headerSize, littleEndian });
  }
}

Deno.test(
  "encodeFrame() and FrameReader round-trip every header size and byte order",
  NONE,
  async () => {
    for (const format of FORMATS) {
      const max = format.headerSize === 1
        ? 255
        : format.headerSize === 2
        ? 65535
        : 70_000;
      const payloads = [new Uint8Array(0), bytes(1), bytes(200), bytes(max, 7)];
      const stream = concat(
        ...payloads.map((p) =>
          encodeFrame(p, { ...format, maxFrameSize: max })
        ),
      );
      for (const reader of [new ChunkReader(stream), oneByte(stream)]) {
        const frames = await readAll(
          new FrameReader(reader, { ...format, maxFrameSize: max }),
        );
        assert.deepEqual(frames, payloads, JSON.stringify(format));
      }
    }
  },
);

Deno.test(
  "encodeFrame() writes the header in the chosen byte order",
  NONE,
  () => {
    const p = new Uint8Array(258);
    assert.deepEqual(
      encodeFrame(p).subarray(0, 4),
      new Uint8Array([0, 0, 1, 2]),
    );
    assert.deepEqual(
      encodeFrame(p, { littleEndian: true }).subarray(0, 4),
      new Uint8Array([2, 1, 0, 0]),
    );
    assert.deepEqual(
      encodeFrame(p, { headerSize: 8 }).subarray(0, 8),
      new Uint8Array([0, 0, 0, 0, 0, 0, 1, 2]),
    );
    assert.deepEqual(
      encodeFrame(p, { headerSize: 2, littleEndian: true }).subarray(0, 2),
      new Uint8Array([2, 1]),
    );
  },
);

Deno.test(
  "encodeFrame() rejects a payload the header or maxFrameSize cannot carry",
  NONE,
  () => {
    assert.throws(
      () => encodeFrame(new Uint8Array(256), { headerSize: 1 }),
      RangeError,
    );
    assert.throws(
      () => encodeFrame(new Uint8Array(11), { maxFrameSize: 10 }),
      /payload length 11 exceeds maxFrameSize 10/,
    );
    assert.throws(() => encodeFrame("abc" as unknown as Uint8Array), TypeError);
    assert.equal(
      encodeFrame(new Uint8Array(10), { maxFrameSize: 10 }).length,
      14,
    );
  },
);

Deno.test(
  "FrameReader reads frames split at every byte boundary",
  NONE,
  async () => {
    const payloads = [bytes(3), new Uint8Array(0), bytes(17, 2), bytes(1, 3)];
    const stream = concat(...payloads.map((p) => encodeFrame(p)));
    for (let cut = 1; cut < stream.length; cut++) {
      let first = true;
      const reader = new ChunkReader(stream, () => {
        const n = first ? cut : Infinity;
        first = false;
        return n;
      });
      assert.deepEqual(
        await readAll(new FrameReader(reader)),
        payloads,
        `cut at ${cut}`,
      );
    }
  },
);

Deno.test(
  "FrameReader reads frames delivered in random chunk sizes (seeded)",
  NONE,
  async () => {
    const seed = 4242;
    console.log(`framing chunk seed: ${seed}`);
    const random = mulberry32(seed);
    const payloads = Array.from(
      { length: 300 },
      (_, i) => bytes(Math.floor(random() * 3000), i),
    );
    const stream = concat(...payloads.map((p) => encodeFrame(p)));
    for (let round = 0; round < 5; round++) {
      const reader = new ChunkReader(
        stream,
        () => 1 + Math.floor(random() * 5000),
      );
      assert.deepEqual(
        await readAll(new FrameReader(reader, { bufferSize: 64 })),
        payloads,
      );
    }
  },
);

Deno.test(
  "FrameReader reads many frames from one chunk with one source read each time",
  NONE,
  async () => {
    const payloads = Array.from({ length: 100 }, (_, i) => bytes(10, i));
    const reader = new ChunkReader(
      concat(...payloads.map((p) => encodeFrame(p))),
    );
    const frames = new FrameReader(reader, { bufferSize: 4096 });
    assert.deepEqual(await readAll(frames), payloads);
    assert.equal(reader.reads, 2, "one read for the data, one for EOF");
  },
);

Deno.test(
  "FrameReader.readFrame() returns owned copies; readFrameView() returns views",
  NONE,
  async () => {
    const stream = concat(encodeFrame(text("abc")), encodeFrame(text("def")));
    const owned = new FrameReader(new ChunkReader(stream));
    const a = await owned.readFrame();
    const b = await owned.readFrame();
    assert.deepEqual([a, b], [text("abc"), text("def")]);
    const views = new FrameReader(new ChunkReader(stream));
    const v = (await views.readFrameView())!;
    assert.deepEqual(v, text("abc"));
    assert.notEqual(v.buffer, a!.buffer);
    assert.deepEqual(await views.readFrameView(), text("def"));
    assert.equal(await views.readFrameView(), null);
  },
);

// -- Limits --

Deno.test(
  "FrameReader rejects maxFrameSize + 1 with FrameTooLargeError before reading the payload",
  NONE,
  async () => {
    const stream = concat(encodeFrame(bytes(100)), encodeFrame(bytes(101)));
    const reader = new ChunkReader(stream, () => 1);
    const frames = new FrameReader(reader, {
      maxFrameSize: 100,
      bufferSize: 16,
    });
    assert.equal((await frames.readFrame())!.length, 100);
    await assert.rejects(frames.readFrame(), (e) => {
      assert.ok(e instanceof FrameTooLargeError);
      assert.deepEqual([e.size, e.limit], [101, 100]);
      assert.match(e.message, /declared length 101 exceeds maxFrameSize 100/);
      return true;
    });
    assert.ok(
      frames.bufferCapacity <= 128,
      `buffer grew to ${frames.bufferCapacity}`,
    );
  },
);

Deno.test(
  "FrameReader does not allocate for a header declaring 4 GiB",
  NONE,
  async () => {
    const header = new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    for (const bufferSize of [4, 8192]) {
      const reader = new ChunkReader(header);
      const frames = new FrameReader(reader, { bufferSize });
      const before = Deno.memoryUsage().heapUsed;
      await assert.rejects(frames.readFrame(), FrameTooLargeError);
      assert.ok(reader.largestRead <= 8192);
      assert.ok(frames.bufferCapacity <= 8192);
      assert.ok(Deno.memoryUsage().heapUsed - before < 1 << 20);
    }
    // An 8-byte header of 2^64 − 1.
    const huge = new FrameReader(
      new ChunkReader(new Uint8Array(8).fill(0xff)),
      { headerSize: 8 },
    );
    await assert.rejects(huge.readFrame(), FrameTooLargeError);
  },
);

Deno.test("FrameReader refuses every read after an error", NONE, async () => {
  const frames = new FrameReader(
    new ChunkReader(new Uint8Array([0, 0, 0, 9, 1])),
    { maxFrameSize: 4 },
  );
  const error = await frames.readFrame().catch((e) => e);
  assert.ok(error instanceof FrameTooLargeError);
  await assert.rejects(frames.readFrame(), (e) => e === error);
  await assert.rejects(frames.readLine(), (e) => e === error);
  await assert.rejects(frames.readExact(1), (e) => e === error);
  assert.throws(() => frames.read(new Uint8Array(1)), (e) => e === error);
});

// -- EOF --

Deno.test("FrameReader returns null at EOF between frames", NONE, async () => {
  assert.equal(
    await new FrameReader(new ChunkReader(new Uint8Array(0))).readFrame(),
    null,
  );
  const frames = new FrameReader(new ChunkReader(encodeFrame(text("x"))));
  assert.deepEqual(await frames.readFrame(), text("x"));
  assert.equal(await frames.readFrame(), null);
  assert.equal(await frames.readFrame(), null);
});

Deno.test(
  "FrameReader throws UnexpectedEofError for EOF mid-header and mid-payload",
  NONE,
  async () => {
    for (const reader of [(d: Uint8Array) => new ChunkReader(d), oneByte]) {
      const midHeader = new FrameReader(reader(new Uint8Array([0, 0])));
      await assert.rejects(midHeader.readFrame(), (e) => {
        assert.ok(e instanceof UnexpectedEofError);
        assert.match(
          e.message,
          /Cannot read header: unexpected EOF after 2 of 4 bytes/,
        );
        return true;
      });
      const full = encodeFrame(bytes(50_000));
      const midPayload = new FrameReader(reader(full.subarray(0, 30_000)), {
        bufferSize: 64,
      });
      await assert.rejects(midPayload.readFrame(), (e) => {
        assert.ok(e instanceof UnexpectedEofError);
        assert.deepEqual([e.expected, e.received], [50_000, 29_996]);
        return true;
      });
    }
  },
);

// -- Lines, exact reads, raw reads --

Deno.test(
  "FrameReader.readLine() handles \\n, \\r\\n, empty lines and a last line without newline",
  NONE,
  async () => {
    const data = text("one\r\ntwo\n\nthree\r\nlast");
    for (const reader of [new ChunkReader(data), oneByte(data)]) {
      const lines = new FrameReader(reader, { bufferSize: 2 });
      const out = [];
      let line;
      while ((line = await lines.readLine()) !== null) out.push(line);
      assert.deepEqual(out, ["one", "two", "", "three", "last"]);
    }
  },
);

Deno.test(
  "FrameReader.readLine() rejects an over-long line with FrameTooLargeError",
  NONE,
  async () => {
    const ok = new FrameReader(new ChunkReader(text("12345\r\n")), {
      maxLineLength: 5,
    });
    assert.equal(await ok.readLine(), "12345");
    const long = new FrameReader(oneByte(text("123456\n")), {
      maxLineLength: 5,
    });
    await assert.rejects(
      long.readLine(),
      (e) => e instanceof FrameTooLargeError && e.limit === 5,
    );
    // A line that never ends stops at the limit, not at memory's end.
    const endless = new FrameReader({
      read: (p) => Promise.resolve((p.fill(0x61), p.length)),
    }, { maxLineLength: 1000 });
    await assert.rejects(endless.readLine(), FrameTooLargeError);
    assert.ok(endless.bufferCapacity < 64 * 1024);
  },
);

Deno.test(
  "FrameReader.readExact() reads n bytes, null at EOF before any, UnexpectedEofError after some",
  NONE,
  async () => {
    const data = bytes(10_000);
    const exact = new FrameReader(oneByte(data), { bufferSize: 16 });
    assert.deepEqual(await exact.readExact(3), data.subarray(0, 3));
    assert.deepEqual(await exact.readExact(0), new Uint8Array(0));
    assert.deepEqual(await exact.readExact(9_000), data.subarray(3, 9_003));
    await assert.rejects(exact.readExact(1_000), UnexpectedEofError);
    const empty = new FrameReader(new ChunkReader(new Uint8Array(0)));
    assert.equal(await empty.readExact(4), null);
    await assert.rejects(empty.readExact(-1), RangeError);
  },
);

Deno.test(
  "FrameReader.readExactView() returns views valid until the next read; its buffer grows with what arrives, not with n",
  NONE,
  async () => {
    const data = bytes(10_000);
    const reader = new FrameReader(new ChunkReader(data, () => 700), {
      bufferSize: 64,
    });
    const first = await reader.readExactView(3);
    assert.deepEqual(first, data.subarray(0, 3));
    assert.equal(first!.buffer, (await reader.readExactView(0))!.buffer);
    const big = await reader.readExactView(9_000);
    assert.deepEqual(big, data.subarray(3, 9_003));
    await assert.rejects(reader.readExactView(1_000), UnexpectedEofError);
    const empty = new FrameReader(new ChunkReader(new Uint8Array(0)));
    await assert.rejects(empty.readExactView(1.5), RangeError);
    assert.equal(await empty.readExactView(4), null);

    // A hostile length: 1 GiB announced, 100 bytes sent, then EOF.
    const hostile = new FrameReader(new ChunkReader(bytes(100)), {
      bufferSize: 64,
    });
    await assert.rejects(hostile.readExactView(2 ** 30), UnexpectedEofError);
    assert.ok(
      hostile.bufferCapacity <= 1024,
      `buffer ${hostile.bufferCapacity} bytes`,
    );
  },
);

Deno.test(
  "FrameReader.readExact() of a hostile length grows with what arrives: no read is offered more than it can hold so far",
  NONE,
  async () => {
    // 1 GiB announced, 100 KiB sent, then EOF.
    const source = new ChunkReader(bytes(100 * 1024), () => 4096);
    const reader = new FrameReader(source, { bufferSize: 64 });
    await assert.rejects(reader.readExact(2 ** 30), UnexpectedEofError);
    assert.ok(
      source.largestRead <= 256 * 1024,
      `a read was offered ${source.largestRead} bytes`,
    );
    // A large length that does arrive is read whole, in order.
    const data = bytes(300_000, 7);
    const whole = new FrameReader(new ChunkReader(data, () => 10_000));
    assert.deepEqual(await whole.readExact(300_000), data);
  },
);

Deno.test(
  "FrameReader.readLine() decodes short and long, ASCII and UTF-8 lines alike, across chunk and scan boundaries",
  NONE,
  async () => {
    const lines = [
      "",
      "a",
      "x".repeat(63),
      "y".repeat(64),
      "z".repeat(65),
      "w".repeat(200),
      "héllo wörld",
      "😀".repeat(20),
      "\uFEFFbom first",
      "tab\there",
      "é".repeat(40), // 80 bytes
    ];
    const data = text(lines.map((l) => l + "\r\n").join(""));
    const expected = lines.map((l) => new TextDecoder().decode(text(l)));
    for (const size of [1, 7, 64, 100_000]) {
      const reader = new FrameReader(new ChunkReader(data, () => size), {
        bufferSize: 16,
      });
      const got: string[] = [];
      let line;
      while ((line = await reader.readLine()) !== null) got.push(line);
      assert.deepEqual(got, expected, `chunks of ${size}`);
    }
  },
);

Deno.test(
  "FrameReader.read() and buffered drain buffered bytes before the source",
  NONE,
  async () => {
    const data = concat(text("hi\n"), bytes(5));
    const reader = new FrameReader(new ChunkReader(data));
    assert.equal(await reader.readLine(), "hi");
    assert.equal(reader.buffered, 5);
    const p = new Uint8Array(3);
    assert.equal(await reader.read(p), 3);
    assert.deepEqual(p, data.subarray(3, 6));
    assert.equal(reader.buffered, 2);
    assert.equal(await reader.read(new Uint8Array(10)), 2);
    assert.equal(reader.buffered, 0);
    assert.equal(await reader.read(new Uint8Array(10)), null);
  },
);

// -- Writing --

Deno.test("writeFrame() finishes short writes in one loop", NONE, async () => {
  const written: Uint8Array[] = [];
  const writer = {
    write(p: Uint8Array) {
      const n = Math.min(3, p.length);
      written.push(p.slice(0, n));
      return Promise.resolve(n);
    },
  };
  const payload = bytes(20);
  await writeFrame(writer, payload, { headerSize: 2 });
  assert.deepEqual(concat(...written), encodeFrame(payload, { headerSize: 2 }));
  assert.equal(written.length, 8);
  const stuck = { write: () => Promise.resolve(0) };
  await assert.rejects(writeFrame(stuck, payload), /wrote 0 bytes/);
});

// -- Streams --

async function collect<T>(stream: ReadableStream<T>): Promise<T[]> {
  return await Array.fromAsync(stream);
}

function chunked(data: Uint8Array, random: () => number): Uint8Array[] {
  const out = [];
  for (let off = 0; off < data.length;) {
    const n = 1 + Math.floor(random() * 700);
    out.push(data.slice(off, off + n));
    off += n;
  }
  return out;
}

Deno.test(
  "FrameEncoderStream and FrameDecoderStream round-trip with random chunking (seeded)",
  NONE,
  async () => {
    const seed = 777;
    console.log(`framing stream seed: ${seed}`);
    const random = mulberry32(seed);
    const payloads = Array.from(
      { length: 200 },
      (_, i) => bytes(Math.floor(random() * 2000), i),
    );
    for (
      const format of FORMATS.filter((f) => f.headerSize !== 1)
    ) {
      const encoded = concat(
        ...await collect(
          ReadableStream.from(payloads).pipeThrough(
            new FrameEncoderStream(format),
          ),
        ),
      );
      const decoded = await collect(
        ReadableStream.from(chunked(encoded, random)).pipeThrough(
          new FrameDecoderStream(format),
        ),
      );
      assert.deepEqual(decoded, payloads, JSON.stringify(format));
    }
  },
);

Deno.test(
  "FrameDecoderStream errors with typed errors on a huge header or EOF mid-frame",
  NONE,
  async () => {
    await assert.rejects(
      collect(
        ReadableStream.from([new Uint8Array([0xff, 0xff, 0xff, 0xff])])
          .pipeThrough(new FrameDecoderStream()),
      ),
      FrameTooLargeError,
    );
    await assert.rejects(
      collect(
        ReadableStream.from([new Uint8Array([0, 0, 0, 5, 1])]).pipeThrough(
          new FrameDecoderStream(),
        ),
      ),
      UnexpectedEofError,
    );
    await assert.rejects(
      collect(
        ReadableStream.from([new Uint8Array([0, 0])]).pipeThrough(
          new FrameDecoderStream(),
        ),
      ),
      UnexpectedEofError,
    );
  },
);

Deno.test(
  "LineDecoderStream splits lines across chunks and rejects over-long ones",
  NONE,
  async () => {
    const data = text("alpha\r\nbeta\n\ngamma é\ndelta");
    const random = mulberry32(5);
    const lines = await collect(
      ReadableStream.from(chunked(data, () => random() / 100)).pipeThrough(
        new LineDecoderStream(),
      ),
    );
    assert.deepEqual(lines, ["alpha", "beta", "", "gamma é", "delta"]);
    await assert.rejects(
      collect(
        ReadableStream.from([text("x".repeat(100))]).pipeThrough(
          new LineDecoderStream({ maxLineLength: 10 }),
        ),
      ),
      FrameTooLargeError,
    );
  },
);

// -- Options --

Deno.test(
  "framing rejects bad options naming the option and value",
  NONE,
  () => {
    const source = new ChunkReader(new Uint8Array(0));
    const cases: [() => unknown, typeof TypeError, RegExp][] = [
      [
        () => new FrameReader(source, { headerSize: 3 as 4 }),
        RangeError,
        /headerSize must be 1, 2, 4 or 8, received 3/,
      ],
      [
        () => new FrameReader(source, { maxFrameSize: -1 }),
        RangeError,
        /maxFrameSize must be a positive integer, received -1/,
      ],
      [
        () => new FrameReader(source, { maxFrameSize: 0 }),
        RangeError,
        /maxFrameSize must be a positive integer, received 0/,
      ],
      [
        () => encodeFrame(new Uint8Array(0), { maxFrameSize: 0.5 }),
        RangeError,
        /maxFrameSize must be a positive integer, received 0.5/,
      ],
      [
        () => new FrameDecoderStream({ maxFrameSize: 0 }),
        RangeError,
        /maxFrameSize must be a positive integer, received 0/,
      ],
      [
        () => new FrameReader(source, { maxFrameSize: NaN }),
        RangeError,
        /maxFrameSize .* received NaN/,
      ],
      [
        () => new FrameReader(source, { bufferSize: 0 }),
        RangeError,
        /bufferSize must be a positive integer, received 0/,
      ],
      [
        () => new FrameReader(source, { maxLineLength: 1.5 }),
        RangeError,
        /maxLineLength .* received 1.5/,
      ],
      [
        () =>
          new FrameReader(source, {
            littleEndian: "yes" as unknown as boolean,
          }),
        TypeError,
        /littleEndian must be a boolean/,
      ],
      [
        () => new FrameReader({} as ByteReader),
        TypeError,
        /source must have a read method/,
      ],
      [
        () => new FrameDecoderStream({ headerSize: 16 as 8 }),
        RangeError,
        /headerSize/,
      ],
      [
        () =>
          encodeFrame(new Uint8Array(1), {
            maxFrameSize: "big" as unknown as number,
          }),
        TypeError,
        /maxFrameSize must be a number, received "big"/,
      ],
    ];
    for (const [make, type, message] of cases) {
      assert.throws(
        make,
        (e: unknown) => e instanceof type && message.test((e as Error).message),
      );
    }
  },
);

// -- Fuzz --

const FUZZ_SEED = 0xf22;

Deno.test(
  "FrameReader fuzz: 10 000 random byte sequences end in a frame, null or a typed error",
  NONE,
  async () => {
    console.log(`framing fuzz seed: ${FUZZ_SEED}`);
    const random = mulberry32(FUZZ_SEED);
    const outcomes = {
      frames: 0,
      eof: 0,
      tooLarge: 0,
      unexpectedEof: 0,
      lines: 0,
    };
    const maxFrameSize = 1024;
    for (let i = 0; i < 10_000; i++) {
      const length = Math.floor(random() * 64);
      const data = Uint8Array.from({ length }, () => {
        // Bias towards small header bytes so that some frames complete.
        const r = random();
        return r < 0.5 ? Math.floor(random() * 4) : Math.floor(random() * 256);
      });
      const headerSize = ([1, 2, 4, 8] as const)[Math.floor(random() * 4)]!;
      const source = new ChunkReader(data, () => 1 + Math.floor(random() * 8));
      const reader = new FrameReader(source, {
        headerSize,
        littleEndian: random() < 0.5,
        maxFrameSize,
        maxLineLength: 32,
        bufferSize: 1 + Math.floor(random() * 16),
      });
      try {
        for (let step = 0; step < 100; step++) {
          const op = random();
          if (op < 0.7) {
            const frame = await reader.readFrame();
            if (frame === null) {
              outcomes.eof++;
              break;
            }
            assert.ok(frame.length <= maxFrameSize);
            outcomes.frames++;
          } else {
            const line = await reader.readLine();
            if (line === null) {
              outcomes.eof++;
              break;
            }
            outcomes.lines++;
          }
          assert.ok(reader.bufferCapacity <= 2 * (maxFrameSize + 8) + 64);
        }
      } catch (error) {
        if (error instanceof FrameTooLargeError) outcomes.tooLarge++;
        else if (error instanceof UnexpectedEofError) outcomes.unexpectedEof++;
        else throw error;
      }
      assert.ok(source.largestRead <= 2 * (maxFrameSize + 8) + 64);
    }
    for (const [what, n] of Object.entries(outcomes)) {
      assert.ok(
        n > 0,
        `no ${what}`,
      );
    }
  },
);

Deno.test(
  "FrameReader.prefetch() reads ahead once; the next reads take its bytes",
  NONE,
  async () => {
    const frames = [bytes(10), bytes(3000, 2)];
    const source = new ChunkReader(
      concat(...frames.map((f) => encodeFrame(f))),
      () => 7,
    );
    const reader = new FrameReader(source, { bufferSize: 16 });
    const first = reader.prefetch();
    assert.equal(reader.prefetch(), first, "one read in flight at most");
    assert.equal(await first, 7);
    assert.equal(reader.buffered, 7);
    assert.equal(reader.received, 7);
    // A read while a prefetch is pending waits for it, then goes on.
    const again = reader.prefetch();
    assert.deepEqual(await reader.readFrame(), frames[0]);
    assert.equal(await again, 7);
    assert.deepEqual(await reader.readFrame(), frames[1]);
    assert.equal(await reader.prefetch(), null);
    assert.equal(await reader.readFrame(), null);
  },
);

// -- Regressions from fault injection (issue 10) --

Deno.test("FrameReader.readLine: the last line at EOF is intact when the final fill compacted the buffer", async () => {
  const data = text("ab\ncdefghijklmno");
  const reader = new FrameReader(new ChunkReader(data), { bufferSize: 16 });
  assert.equal(await reader.readLine(), "ab");
  assert.equal(await reader.readLine(), "cdefghijklmno");
  assert.equal(await reader.readLine(), null);
});

Deno.test("FrameReader.readLine fuzz: line tails at EOF across buffer sizes and chunkings", async () => {
  const seed = 0x7a11;
  console.log(`readLine tail fuzz seed: ${seed}`);
  const random = mulberry32(seed);
  const pick = (n: number) => Math.floor(random() * n);
  for (let run = 0; run < 20_000; run++) {
    const lines = Array.from(
      { length: 1 + pick(4) },
      () => "x".repeat(pick(24)).replace(/x/g, () => "abcdefgh"[pick(8)]!),
    );
    const endsWithNewline = random() < 0.5;
    const body = lines.join("\n") + (endsWithNewline ? "\n" : "");
    // A last line is returned at EOF if it has bytes; "" after a final
    // newline (or an empty body) is no line.
    const expected = body.split("\n");
    if (expected.at(-1) === "") expected.pop();
    const chunk = 1 + pick(20);
    const reader = new FrameReader(
      new ChunkReader(text(body), () => 1 + pick(chunk)),
      { bufferSize: 1 + pick(32) },
    );
    const got: string[] = [];
    for (let line; (line = await reader.readLine()) !== null;) got.push(line);
    assert.deepEqual(got, expected, `run ${run}: ${JSON.stringify(body)}`);
  }
});

/** A source whose reads resolve when the test says, one chunk each. */
class ManualReader implements ByteReader {
  readonly chunks: Uint8Array[];
  largestRead = 0;
  #gate: PromiseWithResolvers<void> | null = null;
  constructor(chunks: Uint8Array[]) {
    this.chunks = chunks;
  }
  hold(): void {
    this.#gate = Promise.withResolvers();
  }
  open(): void {
    this.#gate?.resolve();
    this.#gate = null;
  }
  async read(p: Uint8Array): Promise<number | null> {
    this.largestRead = Math.max(this.largestRead, p.length);
    if (this.#gate !== null) await this.#gate.promise;
    const chunk = this.chunks.shift();
    if (chunk === undefined) return null;
    const n = Math.min(p.length, chunk.length);
    p.set(chunk.subarray(0, n));
    if (n < chunk.length) this.chunks.unshift(chunk.subarray(n));
    return n;
  }
}

Deno.test("FrameReader: prefetch() with bytes buffered, then readExact, takes the prefetched bytes in order", async () => {
  const source = new ManualReader([text("ab"), text("cdefgh")]);
  const reader = new FrameReader(source, { bufferSize: 8 });
  assert.deepEqual(await reader.readExact(1), text("a")); // "b" stays buffered
  source.hold();
  const pending = reader.prefetch();
  const exact = reader.readExact(4);
  source.open();
  assert.ok((await pending)! >= 1); // what it brought is taken in order
  assert.deepEqual(await exact, text("bcde"));
  assert.deepEqual(await reader.readExact(3), text("fgh"));
});

Deno.test("FrameReader.readFrame: a frame over 1 KiB read while a prefetch is in flight keeps the next frame", async () => {
  const big = bytes(2_000, 3);
  const x = encodeFrame(text("x"));
  const a = encodeFrame(big);
  const b = encodeFrame(text("next"));
  const source = new ManualReader([
    concat(x, a.subarray(0, 104)),
    concat(a.subarray(104), b),
  ]);
  const reader = new FrameReader(source);
  assert.deepEqual(await reader.readFrame(), text("x"));
  source.hold();
  void reader.prefetch();
  const frame = reader.readFrame();
  source.open();
  assert.deepEqual(await frame, big);
  assert.deepEqual(await reader.readFrame(), text("next"));
  assert.equal(await reader.readFrame(), null);
});

Deno.test("FrameReader.readFrame: a returned payload retains no more than its own bytes plus a small constant", async () => {
  const huge = bytes(4 << 20, 4);
  const small = Array.from({ length: 100 }, (_, i) => bytes(2_000, 10 + i));
  const data = concat(encodeFrame(huge), ...small.map((p) => encodeFrame(p)));
  // 1 000-byte reads: no 2 KB frame is ever fully buffered.
  const reader = new FrameReader(new ChunkReader(data, () => 1_000));
  assert.deepEqual(await reader.readFrame(), huge);
  let retained = 0;
  for (const expected of small) {
    const payload = (await reader.readFrame())!;
    assert.deepEqual(payload, expected);
    assert.ok(
      payload.buffer.byteLength <= payload.length + 1_024,
      `a ${payload.length}-byte payload holds ${payload.buffer.byteLength} bytes`,
    );
    retained += payload.buffer.byteLength;
  }
  assert.ok(retained < 300_000, `100 replies of 2 KB hold ${retained} bytes`);
});

Deno.test("FrameReader: a header alone does not make the reader allocate what it announces", async () => {
  const header = new Uint8Array([0x00, 0x40, 0x00, 0x00]); // 4 MiB
  const source = new ChunkReader(concat(header, bytes(10)));
  const reader = new FrameReader(source);
  await assert.rejects(reader.readFrame(), UnexpectedEofError);
  assert.ok(
    source.largestRead <= 64 * 1024,
    `a read was given ${source.largestRead} bytes`,
  );
  // The same through readFrameView, which fills the reader's own buffer.
  const viewSource = new ChunkReader(concat(header, bytes(10)));
  const viewReader = new FrameReader(viewSource);
  await assert.rejects(viewReader.readFrameView(), UnexpectedEofError);
  assert.ok(viewReader.bufferCapacity <= 64 * 1024);
});

Deno.test("LineDecoderStream scans a long line once, however small its chunks", async () => {
  const line = "y".repeat(16 * 1024);
  let scanned = 0;
  const indexOf = Uint8Array.prototype.indexOf;
  Uint8Array.prototype.indexOf = function (
    this: Uint8Array,
    ...args: Parameters<typeof indexOf>
  ) {
    scanned += this.length;
    return indexOf.apply(this, args);
  };
  try {
    const bytesIn = text(line + "\n");
    const stream = ReadableStream.from(
      Array.from(bytesIn, (b) => new Uint8Array([b])),
    ).pipeThrough(new LineDecoderStream());
    const lines = await Array.fromAsync(stream);
    assert.deepEqual(lines, [line]);
  } finally {
    Uint8Array.prototype.indexOf = indexOf;
  }
  assert.ok(scanned < 4 * line.length, `scanned ${scanned} bytes`);
});

// -- Regressions from fault injection (issue 17) --

Deno.test(
  "FrameReader.readLine(): a long line costs O(log n) buffer growths, not a read per byte",
  NONE,
  async () => {
    for (const length of [60_000, 240_000, 1 << 20]) {
      const source = new ChunkReader(text("x".repeat(length) + "\r\nnext\n"));
      const reader = new FrameReader(source, { maxLineLength: 1 << 21 });
      const line = await reader.readLine();
      assert.equal(line?.length, length);
      assert.equal(await reader.readLine(), "next");
      // 8 KiB doubling to 1 MiB: 8 growths, each one read.
      assert.ok(source.reads <= 12, `${length} B: ${source.reads} reads`);
      assert.ok(
        reader.bufferCapacity <= 2 * (length + 2),
        `${length} B: buffer of ${reader.bufferCapacity}`,
      );
    }
    // Growth stops at the limit: a line over it is refused at once.
    const capped = new ChunkReader(text("y".repeat(100_000) + "\n"));
    const limited = new FrameReader(capped, { maxLineLength: 50_000 });
    await assert.rejects(limited.readLine(), FrameTooLargeError);
    assert.ok(limited.bufferCapacity <= 50_002, `${limited.bufferCapacity}`);
  },
);

Deno.test("FrameReader.peek() shows the buffered bytes without consuming them; skip(n) consumes them", async () => {
  const chunks = [new TextEncoder().encode("ab\ncdef")];
  const reader = new FrameReader({
    read: (p) => {
      const chunk = chunks.shift();
      if (chunk === undefined) return Promise.resolve(null);
      p.set(chunk);
      return Promise.resolve(chunk.length);
    },
  });
  assert.deepEqual([...reader.peek()], []);
  assert.equal(await reader.readLine(), "ab");
  assert.equal(new TextDecoder().decode(reader.peek()), "cdef");
  assert.equal(new TextDecoder().decode(reader.peek()), "cdef", "not consumed");
  reader.skip(2);
  assert.equal(reader.buffered, 2);
  assert.throws(() => reader.skip(3), {
    name: "RangeError",
    message:
      "Cannot skip: n must be an integer from 0 to 2 (the bytes buffered), received 3",
  });
  assert.throws(() => reader.skip(-1), RangeError);
  assert.throws(() => reader.skip("1" as unknown as number), TypeError);
  assert.equal(new TextDecoder().decode((await reader.readExact(2))!), "ef");
  assert.equal(await reader.readExact(1), null);
});
