// Copyright 2026 the chanpool authors. MIT license.
// Every public entry point of mod.ts, walked with wrong types and
// out-of-range values: each must throw (or reject with) TypeError or
// RangeError, name the argument and show the value, and do nothing first:
// no dial, no borrow, no byte sent or read, no value sent or received, no
// socket or listener opened, nothing closed. Each group counts what its
// entry points could have done and compares the counts before and after.
//
// Kinds, as the checks apply them: a value of the wrong type is a
// TypeError; a value of the right type out of range (a negative or too
// long duration, a port of 0, an empty host name) is a RangeError; an
// enumerated string option (`order`, `idleOrder`, `whenExhausted`) given
// any other value is a RangeError.

import assert from "node:assert/strict";
import {
  Channel,
  encodeFrame,
  FrameDecoderStream,
  FrameEncoderStream,
  FrameReader,
  FrameWriter,
  LineDecoderStream,
  Pool,
  type PooledConn,
  proxy,
  type ProxyListener,
  select,
  serveProxy,
  TcpPool,
  trySelect,
  writeFrame,
} from "../mod.ts";
import { type LineServer, startLineServer } from "./_servers.ts";

type ErrorClass = typeof TypeError | typeof RangeError;

/** One wrong call. */
interface Row<C> {
  /** The call, as the step's name shows it. */
  call: string;
  /** The argument or option the message must name. */
  name: string;
  /** The bad value: the message must show it (see `shown`). */
  value?: unknown;
  /** What the message shows instead (`null`: no value to show). */
  shows?: string | null;
  error: ErrorClass;
  run: (ctx: C) => unknown;
}

/** A fresh context per row, what it counts, and its cleanup. */
interface Fixture<C> {
  ctx: C;
  snapshot: () => unknown;
  dispose: () => Promise<void>;
}

/** How a message shows a bad value (strings quoted, objects by kind). */
function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object" && value !== null) return "an object";
  return String(value);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const macrotask = () => new Promise((r) => setTimeout(r, 0));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a call did: threw/rejected, or returned (a value, or still pending). */
async function attempt(
  run: () => unknown,
): Promise<{ error: unknown } | { value: unknown }> {
  let result: unknown;
  try {
    result = run();
  } catch (error) {
    return { error };
  }
  if (!(result instanceof Promise)) return { value: result };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = new Promise<{ value: unknown }>((resolve) => {
    timer = setTimeout(() => resolve({ value: "(still pending)" }), 2_000);
  });
  try {
    return await Promise.race([
      result.then((value) => ({ value }), (error) => ({ error })),
      pending,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes what a wrongly accepted call made (a pool, a server, a stream). */
async function disposeOf(value: unknown): Promise<void> {
  if (typeof value !== "object" || value === null) return;
  const v = value as Partial<AsyncDisposable & Disposable> & {
    release?: () => void;
  };
  if (typeof v[Symbol.asyncDispose] === "function") {
    await v[Symbol.asyncDispose]!();
  } else if (typeof v[Symbol.dispose] === "function") v[Symbol.dispose]!();
}

async function walk<C>(
  t: Deno.TestContext,
  setup: () => Promise<Fixture<C>>,
  rows: Row<C>[],
): Promise<void> {
  for (const row of rows) {
    const step = `${row.call}: ${row.error.name} naming ${row.name}`;
    await t.step(step, async () => {
      const f = await setup();
      try {
        const before = await f.snapshot();
        const outcome = await attempt(() => row.run(f.ctx));
        await macrotask();
        await macrotask();
        const after = await f.snapshot();
        // Every problem at once, so that a failure says all that went wrong.
        const problems: string[] = [];
        try {
          assert.deepEqual(after, before);
        } catch (error) {
          problems.push(
            `something happened first: ${(error as Error).message}`,
          );
        }
        if ("value" in outcome) {
          await disposeOf(outcome.value);
          problems.unshift("it was accepted");
        } else if (!(outcome.error instanceof row.error)) {
          problems.unshift(`it threw ${String(outcome.error)}`);
        } else {
          const { message } = outcome.error;
          const named = new RegExp(`(^|[\\s:(])${escape(row.name)} `);
          if (!named.test(message)) {
            problems.unshift(`the message does not name it: ${message}`);
          }
          const shows = row.shows === undefined ? shown(row.value) : row.shows;
          if (shows !== null && !message.includes(shows)) {
            problems.unshift(`the message does not show ${shows}: ${message}`);
          }
        }
        if (problems.length > 0) assert.fail(problems.join("; "));
      } finally {
        await f.dispose();
      }
    });
  }
}

const bytes = new TextEncoder().encode("PING\n");
const readLine = (reader: FrameReader) => reader.readLine();

// -- Channel, select, trySelect --

interface ChannelCtx {
  /** Capacity 2, one value buffered: a send and a receive complete at once. */
  ch: Channel<number>;
}

function channelFixture(): Promise<Fixture<ChannelCtx>> {
  const ch = new Channel<number>({ capacity: 2 });
  ch.trySend(1);
  return Promise.resolve({
    ctx: { ch },
    snapshot: () => ({ size: ch.size, closed: ch.closed }),
    dispose: () => Promise.resolve(ch.close()),
  });
}

Deno.test("arguments: Channel, select and trySelect", async (t) => {
  const rows: Row<ChannelCtx>[] = [
    {
      call: 'new Channel("x")',
      name: "options",
      value: "x",
      error: TypeError,
      run: () => new Channel("x" as never),
    },
    ...([
      ["1", TypeError],
      [-1, RangeError],
      [1.5, RangeError],
      [NaN, RangeError],
    ] as const).map(([value, error]): Row<ChannelCtx> => ({
      call: `new Channel({ capacity: ${shown(value)} })`,
      name: "capacity",
      value,
      error,
      run: () => new Channel({ capacity: value as number }),
    })),
    {
      call: 'new Channel({ order: "stack" })',
      name: "order",
      value: "stack",
      error: RangeError,
      run: () => new Channel({ order: "stack" as never }),
    },
    {
      call: 'send(2, "x")',
      name: "options",
      value: "x",
      error: TypeError,
      run: ({ ch }) => ch.send(2, "x" as never),
    },
    {
      call: 'send(2, { signal: "x" })',
      name: "signal",
      value: "x",
      error: TypeError,
      run: ({ ch }) => ch.send(2, { signal: "x" as never }),
    },
    {
      call: "receive(5)",
      name: "options",
      value: 5,
      error: TypeError,
      run: ({ ch }) => ch.receive(5 as never),
    },
    {
      call: "receive({ signal: {} })",
      name: "signal",
      value: {},
      error: TypeError,
      run: ({ ch }) => ch.receive({ signal: {} as never }),
    },
    {
      call: 'select("x")',
      name: "cases",
      value: "x",
      error: TypeError,
      run: () => select("x" as never),
    },
    {
      call: 'select([{ receive: "x" }])',
      name: "cases[0]",
      value: { receive: "x" },
      error: TypeError,
      run: () => select([{ receive: "x" as never }]),
    },
    {
      call: 'select([{ receive: ch }], "x")',
      name: "options",
      value: "x",
      error: TypeError,
      run: ({ ch }) => select([{ receive: ch }], "x" as never),
    },
    {
      call: 'select([{ receive: ch }], { signal: "x" })',
      name: "signal",
      value: "x",
      error: TypeError,
      run: ({ ch }) => select([{ receive: ch }], { signal: "x" as never }),
    },
    {
      call: 'select([{ receive: ch }], { default: "yes" })',
      name: "default",
      value: "yes",
      error: TypeError,
      run: ({ ch }) => select([{ receive: ch }], { default: "yes" as never }),
    },
    {
      call: "trySelect({})",
      name: "cases",
      value: {},
      error: TypeError,
      run: () => trySelect({} as never),
    },
    {
      call: "trySelect([1])",
      name: "cases[0]",
      value: 1,
      error: TypeError,
      run: () => trySelect([1 as never]),
    },
  ];
  await walk(t, channelFixture, rows);
});

// -- Pool --

interface PoolCtx {
  /** Counts its calls. */
  dial: () => { id: number };
  /** Holds one idle resource, dialed before the row. */
  pool: Pool<{ id: number }>;
}

async function poolFixture(): Promise<Fixture<PoolCtx>> {
  let dials = 0;
  let closes = 0;
  const dial = () => ({ id: ++dials });
  const pool = new Pool(dial, { max: 2, close: () => void closes++ });
  (await pool.borrow()).release();
  return {
    ctx: { dial, pool },
    snapshot: () => ({
      dials,
      closes,
      closed: pool.closed,
      stats: pool.stats,
    }),
    dispose: () => pool.close({ force: true }),
  };
}

/** Wrong values for a duration option (a timeout, or heartbeat.interval). */
const BAD_DURATIONS = [
  ["10", TypeError],
  [-1, RangeError],
  [NaN, RangeError],
  [2 ** 31, RangeError],
] as const;

/** Wrong values for a count option. */
const BAD_COUNTS = [
  ["1", TypeError],
  [-1, RangeError],
  [1.5, RangeError],
  [NaN, RangeError],
] as const;

Deno.test("arguments: Pool's constructor and options", async (t) => {
  const badOption = (
    name: string,
    value: unknown,
    error: ErrorClass,
    shows?: string,
  ): Row<PoolCtx> => ({
    call: `new Pool(dial, { ${name}: ${shown(value)} })`,
    name,
    value,
    ...(shows === undefined ? {} : { shows }),
    error,
    // minIdle: an accepted pool would start dialing at once.
    run: ({ dial }) => new Pool(dial, { minIdle: 1, [name]: value }),
  });
  const rows: Row<PoolCtx>[] = [
    {
      call: 'new Pool("x")',
      name: "dial",
      value: "x",
      error: TypeError,
      run: () => new Pool("x" as never),
    },
    {
      call: 'new Pool(dial, "x")',
      name: "options",
      value: "x",
      error: TypeError,
      run: ({ dial }) => new Pool(dial, "x" as never),
    },
    ...["close", "validate", "onLeak", "watch"].map((name) =>
      badOption(name, "x", TypeError)
    ),
    ...[...BAD_COUNTS, [0, RangeError] as const].map(([v, e]) =>
      badOption("max", v, e)
    ),
    ...BAD_COUNTS.map(([v, e]) => badOption("maxIdle", v, e)),
    {
      call: "new Pool(dial, { max: 2, maxIdle: 3 })",
      name: "maxIdle",
      value: 3,
      error: RangeError,
      run: ({ dial }) => new Pool(dial, { max: 2, maxIdle: 3 }),
    },
    ...BAD_COUNTS.map(([v, e]) => ({
      ...badOption("minIdle", v, e),
      run: ({ dial }: PoolCtx) => new Pool(dial, { minIdle: v as number }),
    })),
    {
      call: "new Pool(dial, { maxIdle: 1, minIdle: 2 })",
      name: "minIdle",
      value: 2,
      error: RangeError,
      run: ({ dial }) => new Pool(dial, { maxIdle: 1, minIdle: 2 }),
    },
    ...[...BAD_COUNTS, [0, RangeError] as const].map(([v, e]) =>
      badOption("maxDialing", v, e)
    ),
    badOption("idleOrder", "stack", RangeError),
    badOption("whenExhausted", "block", RangeError),
    ...[
      "acquireTimeout",
      "connectTimeout",
      "idleTimeout",
      "maxLifetime",
      "leakTimeout",
    ].flatMap((name) => BAD_DURATIONS.map(([v, e]) => badOption(name, v, e))),
    badOption("heartbeat", "x", TypeError),
    {
      ...badOption("heartbeat.ping", undefined, TypeError),
      call: "new Pool(dial, { heartbeat: { interval: 10 } })",
      run: ({ dial }) =>
        new Pool(dial, { minIdle: 1, heartbeat: { interval: 10 } as never }),
    },
    ...[...BAD_DURATIONS, [0, RangeError] as const].map(([v, e]) => ({
      ...badOption("heartbeat.interval", v, e),
      call: `new Pool(dial, { heartbeat: { interval: ${shown(v)}, ping } })`,
      run: ({ dial }: PoolCtx) =>
        new Pool(dial, {
          minIdle: 1,
          heartbeat: { interval: v as number, ping: () => true },
        }),
    })),
    badOption("clock", {}, TypeError),
    badOption("name", 5, TypeError),
    badOption("failFast", "yes", TypeError),
    ...BAD_COUNTS.map(([v, e]) => badOption("maxWaiting", v, e)),
    badOption("backoff", "x", TypeError),
    ...([
      ["initial", "50", TypeError],
      ["initial", 0, RangeError],
      ["initial", Infinity, RangeError],
      ["multiplier", 0.5, RangeError],
      ["jitter", 1.5, RangeError],
      ["jitter", -0.1, RangeError],
      ["max", 10, RangeError], // below initial (50)
      ["max", "2000", TypeError],
    ] as const).map(([field, v, e]) => ({
      ...badOption(`backoff.${field}`, v, e),
      call: `new Pool(dial, { backoff: { ${field}: ${shown(v)} } })`,
      run: ({ dial }: PoolCtx) =>
        new Pool(dial, { minIdle: 1, backoff: { [field]: v } as never }),
    })),
  ];
  await walk(t, poolFixture, rows);
});

Deno.test("arguments: Pool's methods", async (t) => {
  const rows: Row<PoolCtx>[] = [
    {
      call: 'borrow("x")',
      name: "options",
      value: "x",
      error: TypeError,
      run: ({ pool }) => pool.borrow("x" as never),
    },
    ...BAD_DURATIONS.map(([value, error]): Row<PoolCtx> => ({
      call: `borrow({ timeout: ${shown(value)} })`,
      name: "timeout",
      value,
      error,
      run: ({ pool }) => pool.borrow({ timeout: value as number }),
    })),
    {
      call: 'borrow({ signal: "x" })',
      name: "signal",
      value: "x",
      error: TypeError,
      run: ({ pool }) => pool.borrow({ signal: "x" as never }),
    },
    {
      call: 'borrow({ fresh: "yes" })',
      name: "fresh",
      value: "yes",
      error: TypeError,
      run: ({ pool }) => pool.borrow({ fresh: "yes" as never }),
    },
    {
      call: 'borrow({ failFast: "yes" })',
      name: "failFast",
      value: "yes",
      error: TypeError,
      run: ({ pool }) => pool.borrow({ failFast: "yes" as never }),
    },
    {
      call: 'on("change", fn)',
      name: "type",
      value: "change",
      error: TypeError,
      run: ({ pool }) => pool.on("change" as never, () => {}),
    },
    {
      call: 'on("statechange", "x")',
      name: "listener",
      value: "x",
      error: TypeError,
      run: ({ pool }) => pool.on("statechange", "x" as never),
    },
    {
      call: 'use("x")',
      name: "fn",
      value: "x",
      error: TypeError,
      run: ({ pool }) => pool.use("x" as never),
    },
    {
      call: "use(fn, { timeout: -1 })",
      name: "timeout",
      value: -1,
      error: RangeError,
      run: ({ pool }) => pool.use((r) => r, { timeout: -1 }),
    },
    {
      call: 'close("x")',
      name: "options",
      value: "x",
      error: TypeError,
      run: ({ pool }) => pool.close("x" as never),
    },
    {
      call: 'close({ force: "yes" })',
      name: "force",
      value: "yes",
      error: TypeError,
      run: ({ pool }) => pool.close({ force: "yes" as never }),
    },
  ];
  await walk(t, poolFixture, rows);
});

// -- TcpPool, PooledConn --

interface TcpCtx {
  server: LineServer;
  /** Holds one idle connection that served one request. */
  pool: TcpPool;
  /** A second connection, lent (PooledConn rows). */
  conn: PooledConn | undefined;
}

/** A line server that counts the lines it gets, and a pool on it. */
async function tcpFixture(lend: boolean): Promise<Fixture<TcpCtx>> {
  let lines = 0;
  const server = startLineServer(({ line }) => {
    lines++;
    return { reply: line };
  });
  const pool = new TcpPool({ port: server.port, max: 2 });
  await pool.exchange(bytes, readLine);
  const conn = lend ? await pool.borrow({ fresh: true }) : undefined;
  return {
    ctx: { server, pool, conn },
    snapshot: async () => {
      await sleep(20); // for a byte on its way to the server
      return {
        accepted: server.accepted,
        lines,
        closed: pool.closed,
        stats: pool.stats,
        conn: conn === undefined
          ? null
          : { broken: conn.broken, buffered: conn.buffered },
      };
    },
    dispose: async () => {
      conn?.destroy();
      await pool.close();
      await server.stop();
    },
  };
}

Deno.test("arguments: TcpPool's constructor and options", async (t) => {
  const badOption = (
    name: string,
    options: Record<string, unknown>,
    value: unknown,
    error: ErrorClass,
    shows?: string | null,
  ): Row<TcpCtx> => ({
    call: `new TcpPool(${Deno.inspect(options)})`,
    name,
    value,
    ...(shows === undefined ? {} : { shows }),
    error,
    // minIdle: an accepted pool would dial at once.
    run: ({ server }) =>
      new TcpPool({ port: server.port, minIdle: 1, ...options }),
  });
  const rows: Row<TcpCtx>[] = [
    {
      call: 'new TcpPool("x")',
      name: "options",
      value: "x",
      error: TypeError,
      run: () => new TcpPool("x" as never),
    },
    badOption("hostname", { hostname: 5 }, 5, TypeError),
    badOption("hostname", { hostname: "" }, "", RangeError),
    badOption("port", { port: "80" }, "80", TypeError),
    badOption("port", { port: undefined }, undefined, TypeError),
    ...[0, -1, 65536, 1.5, NaN].map((v) =>
      badOption("port", { port: v }, v, RangeError)
    ),
    badOption("tls", { tls: "yes" }, "yes", TypeError),
    badOption("tls.caCerts", { tls: { caCerts: "PEM" } }, "PEM", TypeError),
    badOption(
      "tls.alpnProtocols",
      { tls: { alpnProtocols: [1] } },
      [1],
      TypeError,
    ),
    badOption(
      "tls.unsafelyDisableHostnameVerification",
      { tls: { unsafelyDisableHostnameVerification: "yes" } },
      "yes",
      TypeError,
    ),
    badOption("tls.cert", { tls: { cert: 1, key: "k" } }, 1, TypeError),
    badOption("tls.key", { tls: { cert: "c", key: 1 } }, 1, TypeError),
    badOption("tls.cert", { tls: { cert: "c" } }, undefined, TypeError, null),
    badOption("noDelay", { noDelay: "yes" }, "yes", TypeError),
    badOption("keepAlive", { keepAlive: "yes" }, "yes", TypeError),
    badOption("readBufferSize", { readBufferSize: "1" }, "1", TypeError),
    ...[0, -1, 1.5].map((v) =>
      badOption("readBufferSize", { readBufferSize: v }, v, RangeError)
    ),
    badOption("frame", { frame: "x" }, "x", TypeError),
    badOption("frame.headerSize", { frame: { headerSize: 3 } }, 3, RangeError),
    badOption(
      "frame.headerSize",
      { frame: { headerSize: "4" } },
      "4",
      TypeError,
    ),
    badOption(
      "frame.littleEndian",
      { frame: { littleEndian: "no" } },
      "no",
      TypeError,
    ),
    badOption(
      "frame.maxFrameSize",
      { frame: { maxFrameSize: 0 } },
      0,
      RangeError,
    ),
    badOption(
      "frame.maxFrameSize",
      { frame: { maxFrameSize: "1" } },
      "1",
      TypeError,
    ),
    badOption("heartbeat", { heartbeat: "x" }, "x", TypeError),
    badOption(
      "heartbeat.ping",
      { heartbeat: { interval: 10, ping: "x" } },
      "x",
      TypeError,
    ),
    ...[...BAD_DURATIONS, [0, RangeError] as const].map(([v, e]) =>
      badOption(
        "heartbeat.interval",
        { heartbeat: { interval: v, ping: () => true } },
        v,
        e,
      )
    ),
    badOption("idleWatch", { idleWatch: "yes" }, "yes", TypeError),
    badOption("onLeak", { onLeak: "x" }, "x", TypeError),
    // The pool's options, passed on to Pool (one wrong value each).
    badOption("max", { max: 0 }, 0, RangeError),
    badOption("maxIdle", { maxIdle: -1 }, -1, RangeError),
    badOption("maxDialing", { maxDialing: "2" }, "2", TypeError),
    badOption("idleOrder", { idleOrder: "stack" }, "stack", RangeError),
    badOption("whenExhausted", { whenExhausted: "x" }, "x", RangeError),
    ...[
      "acquireTimeout",
      "connectTimeout",
      "idleTimeout",
      "maxLifetime",
      "leakTimeout",
    ].flatMap((name) =>
      BAD_DURATIONS.map(([v, e]) => badOption(name, { [name]: v }, v, e))
    ),
    badOption("clock", { clock: 1 }, 1, TypeError),
    {
      ...badOption("minIdle", {}, -1, RangeError),
      call: "new TcpPool({ minIdle: -1 })",
      run: ({ server }) => new TcpPool({ port: server.port, minIdle: -1 }),
    },
  ];
  await walk(t, () => tcpFixture(false), rows);
});

/** Bad `{ timeout, signal }` for an I/O call named `call`. */
function badIo(
  call: string,
  run: (ctx: TcpCtx, options: unknown) => unknown,
): Row<TcpCtx>[] {
  return [
    {
      call: `${call}, "x")`,
      name: "options",
      value: "x",
      error: TypeError,
      run: (ctx) => run(ctx, "x"),
    },
    ...BAD_DURATIONS.map(([value, error]): Row<TcpCtx> => ({
      call: `${call}, { timeout: ${shown(value)} })`,
      name: "timeout",
      value,
      error,
      run: (ctx) => run(ctx, { timeout: value }),
    })),
    {
      call: `${call}, { signal: 1 })`,
      name: "signal",
      value: 1,
      error: TypeError,
      run: (ctx) => run(ctx, { signal: 1 }),
    },
  ];
}

Deno.test("arguments: TcpPool's methods", async (t) => {
  const rows: Row<TcpCtx>[] = [
    {
      call: 'borrow("x")',
      name: "options",
      value: "x",
      error: TypeError,
      run: ({ pool }) => pool.borrow("x" as never),
    },
    {
      call: "borrow({ timeout: -1 })",
      name: "timeout",
      value: -1,
      error: RangeError,
      run: ({ pool }) => pool.borrow({ timeout: -1 }),
    },
    {
      call: 'borrow({ fresh: "yes" })',
      name: "fresh",
      value: "yes",
      error: TypeError,
      run: ({ pool }) => pool.borrow({ fresh: "yes" as never }),
    },
    {
      call: 'exchange("x", read)',
      name: "payload",
      value: "x",
      error: TypeError,
      run: ({ pool }) => pool.exchange("x" as never, readLine),
    },
    {
      call: 'exchange(bytes, "x")',
      name: "read",
      value: "x",
      error: TypeError,
      run: ({ pool }) => pool.exchange(bytes, "x" as never),
    },
    ...badIo(
      "exchange(bytes, read",
      ({ pool }, o) => pool.exchange(bytes, readLine, o as never),
    ),
    {
      call: 'exchange(bytes, read, { verify: "x" })',
      name: "verify",
      value: "x",
      error: TypeError,
      run: ({ pool }) =>
        pool.exchange(bytes, readLine, { verify: "x" as never }),
    },
    {
      call: 'exchange(bytes, read, { idempotent: "x" })',
      name: "idempotent",
      value: "x",
      error: TypeError,
      run: ({ pool }) =>
        pool.exchange(bytes, readLine, { idempotent: "x" as never }),
    },
    {
      call: "request(5)",
      name: "payload",
      value: 5,
      error: TypeError,
      run: ({ pool }) => pool.request(5 as never),
    },
    {
      call: "request(5 MiB)",
      name: "payload",
      shows: "payload length 5242880",
      error: RangeError,
      run: ({ pool }) => pool.request(new Uint8Array(5 * 1024 * 1024)),
    },
    ...badIo("request(bytes", ({ pool }, o) => pool.request(bytes, o as never)),
    {
      call: "request(bytes, { idempotent: 1 })",
      name: "idempotent",
      value: 1,
      error: TypeError,
      run: ({ pool }) => pool.request(bytes, { idempotent: 1 as never }),
    },
    {
      call: 'close("x")',
      name: "options",
      value: "x",
      error: TypeError,
      run: ({ pool }) => pool.close("x" as never),
    },
    {
      call: 'close({ force: "yes" })',
      name: "force",
      value: "yes",
      error: TypeError,
      run: ({ pool }) => pool.close({ force: "yes" as never }),
    },
  ];
  await walk(t, () => tcpFixture(false), rows);
});

Deno.test("arguments: PooledConn's methods", async (t) => {
  const c = (ctx: TcpCtx) => ctx.conn!;
  const buf = new Uint8Array(16);
  const rows: Row<TcpCtx>[] = [
    {
      call: 'write("x")',
      name: "p",
      value: "x",
      error: TypeError,
      run: (ctx) => c(ctx).write("x" as never),
    },
    ...badIo("write(bytes", (ctx, o) => c(ctx).write(bytes, o as never)),
    {
      call: 'write(bytes, { expectReply: "no" })',
      name: "expectReply",
      value: "no",
      error: TypeError,
      run: (ctx) => c(ctx).write(bytes, { expectReply: "no" as never }),
    },
    {
      call: "read([])",
      name: "p",
      value: [],
      error: TypeError,
      run: (ctx) => c(ctx).read([] as never),
    },
    ...badIo("read(buf", (ctx, o) => c(ctx).read(buf, o as never)),
    ...[[-1, RangeError], [1.5, RangeError], ["4", TypeError]].map((
      [value, error],
    ): Row<TcpCtx> => ({
      call: `readExact(${shown(value)})`,
      name: "n",
      value,
      error: error as ErrorClass,
      run: (ctx) => c(ctx).readExact(value as number),
    })),
    ...badIo("readExact(4", (ctx, o) => c(ctx).readExact(4, o as never)),
    ...badIo("readLine(", (ctx, o) => c(ctx).readLine(o as never)),
    ...badIo("readFrame(", (ctx, o) => c(ctx).readFrame(o as never)),
    {
      call: "writeFrame(5)",
      name: "payload",
      value: 5,
      error: TypeError,
      run: (ctx) => c(ctx).writeFrame(5 as never),
    },
    {
      call: "writeFrame(5 MiB)",
      name: "payload",
      shows: "payload length 5242880",
      error: RangeError,
      run: (ctx) => c(ctx).writeFrame(new Uint8Array(5 * 1024 * 1024)),
    },
    ...badIo(
      "writeFrame(bytes",
      (ctx, o) => c(ctx).writeFrame(bytes, o as never),
    ),
    {
      call: "writeFrame(bytes, { expectReply: 1 })",
      name: "expectReply",
      value: 1,
      error: TypeError,
      run: (ctx) => c(ctx).writeFrame(bytes, { expectReply: 1 as never }),
    },
    {
      call: 'exchange("x", read)',
      name: "payload",
      value: "x",
      error: TypeError,
      run: (ctx) => c(ctx).exchange("x" as never, readLine),
    },
    {
      call: "exchange(bytes, 5)",
      name: "read",
      value: 5,
      error: TypeError,
      run: (ctx) => c(ctx).exchange(bytes, 5 as never),
    },
    ...badIo(
      "exchange(bytes, read",
      (ctx, o) => c(ctx).exchange(bytes, readLine, o as never),
    ),
    {
      call: "exchange(bytes, read, { verify: 1 })",
      name: "verify",
      value: 1,
      error: TypeError,
      run: (ctx) => c(ctx).exchange(bytes, readLine, { verify: 1 as never }),
    },
    {
      call: "request([])",
      name: "payload",
      value: [],
      error: TypeError,
      run: (ctx) => c(ctx).request([] as never),
    },
    ...badIo("request(bytes", (ctx, o) => c(ctx).request(bytes, o as never)),
  ];
  await walk(t, () => tcpFixture(true), rows);
});

// -- Framing --

interface FramingCtx {
  /** A source that counts its reads (each brings one byte). */
  source: { read(p: Uint8Array): Promise<number | null> };
  /** A sink that counts its writes. */
  sink: { write(p: Uint8Array): Promise<number> };
  reader: FrameReader;
  writer: FrameWriter;
}

function framingFixture(): Promise<Fixture<FramingCtx>> {
  let reads = 0;
  let writes = 0;
  const source = {
    read(p: Uint8Array) {
      reads++;
      p[0] = 10;
      return Promise.resolve(1);
    },
  };
  const sink = {
    write(p: Uint8Array) {
      writes++;
      return Promise.resolve(p.length);
    },
  };
  const reader = new FrameReader(source);
  const writer = new FrameWriter(sink, { headerSize: 1 });
  return Promise.resolve({
    ctx: { source, sink, reader, writer },
    snapshot: () => ({ reads, writes, buffered: reader.buffered }),
    dispose: () => Promise.resolve(),
  });
}

/** Bad frame options, for a call that takes them as `run(options)`. */
function badFrame(
  call: string,
  run: (ctx: FramingCtx, options: unknown) => unknown,
): Row<FramingCtx>[] {
  return [
    ["options", "x", TypeError, "x"],
    ["headerSize", { headerSize: 3 }, RangeError, 3],
    ["headerSize", { headerSize: "4" }, TypeError, "4"],
    ["littleEndian", { littleEndian: 1 }, TypeError, 1],
    ["maxFrameSize", { maxFrameSize: 0 }, RangeError, 0],
    ["maxFrameSize", { maxFrameSize: 1.5 }, RangeError, 1.5],
    ["maxFrameSize", { maxFrameSize: "1" }, TypeError, "1"],
  ].map(([name, options, error, value]) => ({
    call: `${call}${Deno.inspect(options)})`,
    name: name as string,
    value,
    error: error as ErrorClass,
    run: (ctx) => run(ctx, options),
  }));
}

Deno.test("arguments: framing", async (t) => {
  const big = new Uint8Array(256);
  const rows: Row<FramingCtx>[] = [
    {
      call: 'encodeFrame("x")',
      name: "payload",
      value: "x",
      error: TypeError,
      run: () => encodeFrame("x" as never),
    },
    {
      call: "encodeFrame(256 bytes, { headerSize: 1 })",
      name: "payload",
      shows: "payload length 256",
      error: RangeError,
      run: () => encodeFrame(big, { headerSize: 1 }),
    },
    ...badFrame(
      "encodeFrame(bytes, ",
      (_, o) => encodeFrame(bytes, o as never),
    ),
    {
      call: 'writeFrame("x", bytes)',
      name: "writer",
      value: "x",
      error: TypeError,
      run: () => writeFrame("x" as never, bytes),
    },
    {
      call: "writeFrame(sink, 5)",
      name: "payload",
      value: 5,
      error: TypeError,
      run: ({ sink }) => writeFrame(sink, 5 as never),
    },
    ...badFrame(
      "writeFrame(sink, bytes, ",
      ({ sink }, o) => writeFrame(sink, bytes, o as never),
    ),
    {
      call: "new FrameWriter({})",
      name: "writer",
      value: {},
      error: TypeError,
      run: () => new FrameWriter({} as never),
    },
    ...badFrame(
      "new FrameWriter(sink, ",
      ({ sink }, o) => new FrameWriter(sink, o as never),
    ),
    {
      call: "writer.write(5)",
      name: "payload",
      value: 5,
      error: TypeError,
      run: ({ writer }) => writer.write(5 as never),
    },
    {
      call: "writer.write(256 bytes) (headerSize 1)",
      name: "payload",
      shows: "payload length 256",
      error: RangeError,
      run: ({ writer }) => writer.write(big),
    },
    {
      call: "new FrameReader(5)",
      name: "source",
      value: 5,
      error: TypeError,
      run: () => new FrameReader(5 as never),
    },
    ...badFrame(
      "new FrameReader(source, ",
      ({ source }, o) => new FrameReader(source, o as never),
    ),
    ...["bufferSize", "maxLineLength"].flatMap((name) =>
      [[0, RangeError], [1.5, RangeError], ["8", TypeError]].map((
        [value, error],
      ): Row<FramingCtx> => ({
        call: `new FrameReader(source, { ${name}: ${shown(value)} })`,
        name,
        value,
        error: error as ErrorClass,
        run: ({ source }) => new FrameReader(source, { [name]: value }),
      }))
    ),
    ...(["readExact", "readExactView"] as const).flatMap((method) =>
      [[-1, RangeError], [1.5, RangeError], ["4", TypeError]].map((
        [value, error],
      ): Row<FramingCtx> => ({
        call: `reader.${method}(${shown(value)})`,
        name: "n",
        value,
        error: error as ErrorClass,
        run: ({ reader }) => reader[method](value as number),
      }))
    ),
    {
      call: 'reader.read("x")',
      name: "p",
      value: "x",
      error: TypeError,
      run: ({ reader }) => reader.read("x" as never),
    },
    {
      call: 'reader.prefetch("x")',
      name: "onSettled",
      value: "x",
      error: TypeError,
      run: ({ reader }) => reader.prefetch("x" as never),
    },
    ...badFrame(
      "new FrameDecoderStream(",
      (_, o) => new FrameDecoderStream(o as never),
    ),
    ...badFrame(
      "new FrameEncoderStream(",
      (_, o) => new FrameEncoderStream(o as never),
    ),
    {
      call: 'new LineDecoderStream("x")',
      name: "options",
      value: "x",
      error: TypeError,
      run: () => new LineDecoderStream("x" as never),
    },
    ...[[0, RangeError], [1.5, RangeError], ["8", TypeError]].map((
      [value, error],
    ): Row<FramingCtx> => ({
      call: `new LineDecoderStream({ maxLineLength: ${shown(value)} })`,
      name: "maxLineLength",
      value,
      error: error as ErrorClass,
      run: () => new LineDecoderStream({ maxLineLength: value as number }),
    })),
  ];
  await walk(t, framingFixture, rows);
});

// -- proxy, serveProxy --

interface ProxyCtx {
  server: LineServer;
  pool: TcpPool;
  /** A client connection double that counts what is done to it. */
  down: Deno.Conn;
  /** A listener double that counts accepts and closes. */
  listener: ProxyListener;
  /** A port nothing listens on (the snapshot checks it stays free). */
  port: number;
}

/** Whether a listener can be opened on `port` now (nothing holds it). */
/**
 * A free port below Linux's ephemeral range (32768 and up), so no outgoing
 * connection of this or another process takes it while a test watches it.
 */
function quietPort(): number {
  for (let i = 0; i < 100; i++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    if (free(port)) return port;
  }
  throw new Error("no free port in 20000-29999");
}

function free(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

function proxyFixture(): Promise<Fixture<ProxyCtx>> {
  const server = startLineServer();
  const pool = new TcpPool({ port: server.port });
  const done = {
    reads: 0,
    writes: 0,
    closes: 0,
    accepts: 0,
    listenerCloses: 0,
  };
  // EOF at once: a session wrongly started with it ends by itself.
  const down = {
    read: () => (done.reads++, Promise.resolve(null)),
    write: (p: Uint8Array) => (done.writes++, Promise.resolve(p.length)),
    closeWrite: () => Promise.resolve(),
    close: () => void done.closes++,
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
  } as unknown as Deno.Conn;
  let wake: ((error: unknown) => void) | undefined;
  const listener: ProxyListener = {
    accept: () => {
      done.accepts++;
      return new Promise<never>((_, reject) => wake = reject);
    },
    close: () => {
      done.listenerCloses++;
      wake?.(new Deno.errors.BadResource("closed"));
    },
    addr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
  };
  const port = quietPort();
  return Promise.resolve({
    ctx: { server, pool, down, listener, port },
    snapshot: async () => {
      await sleep(10);
      return {
        ...done,
        accepted: server.accepted,
        stats: pool.stats,
        portFree: free(port),
      };
    },
    dispose: async () => {
      await pool.close();
      await server.stop();
    },
  });
}

/** Bad session options, for a call that takes them as `run(options)`. */
function badProxyOptions(
  call: string,
  run: (ctx: ProxyCtx, options: unknown) => unknown,
): Row<ProxyCtx>[] {
  const reset = () => true;
  return ([
    ["options", "x", TypeError, "x"],
    ["signal", { signal: "x" }, TypeError, "x"],
    ...["idleTimeout", "connectTimeout", "drainTime"].flatMap((name) =>
      BAD_DURATIONS.map(([v, e]) => [name, { [name]: v }, e, v])
    ),
    ["reuse", { reuse: "yes" }, TypeError, "yes"],
    ["reuse.reset", { reuse: {} }, TypeError, undefined],
    ...BAD_DURATIONS.map(([v, e]) => [
      "reuse.timeout",
      { reuse: { reset, timeout: v } },
      e,
      v,
    ]),
  ] as [string, unknown, ErrorClass, unknown][]).map((
    [name, options, error, value],
  ) => ({
    call: `${call}${Deno.inspect(options)})`,
    name,
    value,
    error,
    run: (ctx) => run(ctx, options),
  }));
}

Deno.test("arguments: proxy and serveProxy", async (t) => {
  const addr = (ctx: ProxyCtx) => ({ hostname: "127.0.0.1", port: ctx.port });
  const rows: Row<ProxyCtx>[] = [
    {
      call: 'proxy("not a conn", pool)',
      name: "downstream",
      value: "not a conn",
      error: TypeError,
      run: ({ pool }) => proxy("not a conn" as never, pool),
    },
    {
      call: "proxy({ read }, pool)",
      name: "downstream",
      value: {},
      error: TypeError,
      run: ({ pool }) => proxy({ read: () => null } as never, pool),
    },
    {
      call: 'proxy(down, "not a pool")',
      name: "pool",
      value: "not a pool",
      error: TypeError,
      run: ({ down }) => proxy(down, "not a pool" as never),
    },
    {
      call: "proxy(down, { borrow })",
      name: "pool",
      value: {},
      error: TypeError,
      run: ({ down, pool }) =>
        proxy(down, { borrow: (o: never) => pool.borrow(o) } as never),
    },
    ...badProxyOptions(
      "proxy(down, pool, ",
      ({ down, pool }, o) => proxy(down, pool, o as never),
    ),
    {
      call: 'serveProxy("x", pool)',
      name: "listen",
      value: "x",
      error: TypeError,
      run: ({ pool }) => serveProxy("x" as never, pool),
    },
    {
      call: "serveProxy({ accept }, pool)",
      name: "listen",
      value: {},
      error: TypeError,
      run: ({ pool }) =>
        serveProxy({
          accept: () => Promise.reject(new Deno.errors.BadResource("closed")),
        } as never, pool),
    },
    {
      call: 'serveProxy({ port: "80" }, pool)',
      name: "listen.port",
      value: "80",
      error: TypeError,
      run: ({ pool }) => serveProxy({ port: "80" as never }, pool),
    },
    ...[-1, 65536, 1.5].map((port): Row<ProxyCtx> => ({
      call: `serveProxy({ port: ${port} }, pool)`,
      name: "listen.port",
      value: port,
      error: RangeError,
      run: ({ pool }) => serveProxy({ port }, pool),
    })),
    {
      call: "serveProxy({ hostname: 5, port }, pool)",
      name: "listen.hostname",
      value: 5,
      error: TypeError,
      run: ({ pool, port }) => serveProxy({ hostname: 5 as never, port }, pool),
    },
    {
      call: 'serveProxy(addr, "not a pool")',
      name: "pool",
      value: "not a pool",
      error: TypeError,
      run: (ctx) => serveProxy(addr(ctx), "not a pool" as never),
    },
    {
      call: 'serveProxy(listener, "not a pool")',
      name: "pool",
      value: "not a pool",
      error: TypeError,
      run: ({ listener }) => serveProxy(listener, "not a pool" as never),
    },
    {
      call: "serveProxy(addr, pool, { onError: 1 })",
      name: "onError",
      value: 1,
      error: TypeError,
      run: (ctx) => serveProxy(addr(ctx), ctx.pool, { onError: 1 as never }),
    },
    ...badProxyOptions(
      "serveProxy(addr, pool, ",
      (ctx, o) => serveProxy(addr(ctx), ctx.pool, o as never),
    ),
    ...badProxyOptions(
      "serveProxy(listener, pool, ",
      ({ listener, pool }, o) => serveProxy(listener, pool, o as never),
    ).slice(0, 3),
  ];
  await walk(t, proxyFixture, rows);
});
