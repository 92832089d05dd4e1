// Copyright 2026 the chanpool authors. MIT license.
// Channel benchmarks: chanpool's `Channel` against npm peers and two
// baselines written here, in one `deno bench` run. Each scenario moves 1 000
// values per iteration and is one group:
//
// - buffered:  capacity 1 024; 1 000 awaited sends, then 1 000 awaited receives
// - ping-pong: two tasks, two unbuffered channels, 1 000 round trips
// - try-ops:   capacity 16; trySend then tryReceive, 1 000 times
// - select:    a producer alternates sends on two unbuffered channels; the
//              consumer runs a blocking select over both 1 000 times
//
// Peers:
//
// - ts-chan: `send`/`recv` are `async` functions. By default (safe mode) every
//   call that completes without a macrotask boundary then waits for one
//   (`setImmediate`), to break microtask cycles; `setUnsafe(true)` turns that
//   off, so both modes are measured ("ts-chan" and "ts-chan (unsafe)").
// - @king011/easyts: `read`/`write`/`selectChan` return plain values when they
//   can complete at once and promises only when they must wait; it is driven
//   here as it is meant to be (awaiting only actual promises), so it does less
//   work than a promise-returning channel and is shown for reference only.
//
// Baselines:
//
// - "array (no promises)": a ring buffer over a plain array, no promises or
//   tasks; the floor for any queue.
// - "same-contract baseline": the smallest channel with our contract
//   (send/receive always return a promise), without select, close or abort.
//   chanpool is meant to stay within 1.5x of it.
//
// Every bench checks what it received after each iteration and throws if the
// sum is wrong. Channels are built once at module level and reused: each
// iteration leaves them empty. Asynchronous benches must be declared
// `async fn()`: Deno.bench awaits only async functions, and times a plain
// function that returns a promise as synchronous, dropping the promise.
//
// Run with `deno bench bench/channel_bench.ts` (npm peers download on first
// use).

// Peers are imported inline with pinned `npm:` specifiers, so that deno.json
// keeps no dependencies (the library has none; benchmarks may import peers
// that way).
// deno-lint-ignore-file no-import-prefix

import { Channel, select } from "../mod.ts";
import {
  Chan as TsChan,
  recv as tsRecv,
  Select as TsSelect,
} from "npm:ts-chan@0.6.0";
import {
  Chan as EzChan,
  selectChan as ezSelect,
} from "npm:@king011/easyts@0.1.2";

const N = 1_000;
const EXPECTED = (N * (N - 1)) / 2;

function check(what: string, sum: number, expected = EXPECTED): void {
  if (sum !== expected) {
    throw new Error(`${what}: sum is ${sum}, expected ${expected}`);
  }
}

// -- Baselines --

/**
 * A FIFO ring buffer over a plain array (power-of-two size, doubled when
 * full). Both baselines use it: `Array.prototype.shift` copies the rest of
 * the array in V8, and on a 1 000-value queue it was ~10x slower than this
 * here, which would make the baselines slow for no reason.
 */
class RingQueue<T> {
  #buf: (T | undefined)[] = new Array(16);
  #head = 0;
  #count = 0;

  get length(): number {
    return this.#count;
  }

  push(value: T): void {
    if (this.#count === this.#buf.length) this.#grow();
    this.#buf[(this.#head + this.#count) & (this.#buf.length - 1)] = value;
    this.#count++;
  }

  /** Takes the oldest value; the caller checks `length > 0` first. */
  shift(): T {
    const value = this.#buf[this.#head] as T;
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#buf.length - 1);
    this.#count--;
    return value;
  }

  #grow(): void {
    const old = this.#buf;
    const buf: (T | undefined)[] = new Array(old.length * 2);
    for (let i = 0; i < this.#count; i++) {
      buf[i] = old[(this.#head + i) & (old.length - 1)];
    }
    this.#buf = buf;
    this.#head = 0;
  }
}

const RESOLVED: Promise<void> = Promise.resolve();

interface ParkedSender<T> {
  value: T;
  resolve: () => void;
}

/**
 * The smallest channel with chanpool's contract: a FIFO buffer of
 * `capacity` values and FIFO arrays of parked senders and receivers.
 * `send` returns a shared resolved promise when it completes at once,
 * `receive` returns `Promise.resolve(value)`. No select, close or abort.
 */
class SameContractChannel<T> {
  readonly #capacity: number;
  readonly #buf = new RingQueue<T>();
  readonly #senders: ParkedSender<T>[] = [];
  readonly #receivers: ((value: T) => void)[] = [];

  constructor(capacity = 0) {
    this.#capacity = capacity;
  }

  send(value: T): Promise<void> {
    if (this.#receivers.length > 0) {
      (this.#receivers.shift() as (value: T) => void)(value);
      return RESOLVED;
    }
    if (this.#buf.length < this.#capacity) {
      this.#buf.push(value);
      return RESOLVED;
    }
    return new Promise<void>((resolve) => {
      this.#senders.push({ value, resolve });
    });
  }

  receive(): Promise<T> {
    if (this.#buf.length > 0) {
      const value = this.#buf.shift();
      if (this.#senders.length > 0) {
        const sender = this.#senders.shift() as ParkedSender<T>;
        this.#buf.push(sender.value);
        sender.resolve();
      }
      return Promise.resolve(value);
    }
    if (this.#senders.length > 0) {
      const sender = this.#senders.shift() as ParkedSender<T>;
      sender.resolve();
      return Promise.resolve(sender.value);
    }
    return new Promise<T>((resolve) => {
      this.#receivers.push(resolve);
    });
  }
}

// -- buffered: capacity 1 024, 1 000 awaited sends, then 1 000 awaited receives --

const BUFFERED_CAPACITY = 1_024;
const bufOurs = new Channel<number>({ capacity: BUFFERED_CAPACITY });
const bufBase = new SameContractChannel<number>(BUFFERED_CAPACITY);
const bufTs = new TsChan<number>(BUFFERED_CAPACITY);
const bufTsUnsafe = new TsChan<number>(BUFFERED_CAPACITY).setUnsafe(true);
const bufEz = new EzChan<number>(BUFFERED_CAPACITY);
const bufArray = new RingQueue<number>();

Deno.bench({
  group: "buffered",
  name: "chanpool",
  async fn() {
    for (let i = 0; i < N; i++) await bufOurs.send(i);
    let sum = 0;
    for (let i = 0; i < N; i++) sum += await bufOurs.receive();
    check("chanpool buffered", sum);
  },
});

Deno.bench({
  group: "buffered",
  name: "same-contract baseline",
  baseline: true,
  async fn() {
    for (let i = 0; i < N; i++) await bufBase.send(i);
    let sum = 0;
    for (let i = 0; i < N; i++) sum += await bufBase.receive();
    check("same-contract buffered", sum);
  },
});

async function tsBuffered(ch: TsChan<number>, what: string): Promise<void> {
  for (let i = 0; i < N; i++) await ch.send(i);
  let sum = 0;
  for (let i = 0; i < N; i++) {
    const r = await ch.recv();
    if (r.done) throw new Error(`${what}: channel closed`);
    sum += r.value;
  }
  check(what, sum);
}

Deno.bench({
  group: "buffered",
  name: "ts-chan",
  async fn() {
    await tsBuffered(bufTs, "ts-chan buffered");
  },
});

Deno.bench({
  group: "buffered",
  name: "ts-chan (unsafe)",
  async fn() {
    await tsBuffered(bufTsUnsafe, "ts-chan (unsafe) buffered");
  },
});

Deno.bench({
  group: "buffered",
  name: "easyts",
  async fn() {
    for (let i = 0; i < N; i++) {
      const w = bufEz.write(i);
      if ((w instanceof Promise ? await w : w) !== true) {
        throw new Error("easyts buffered: write failed");
      }
    }
    let sum = 0;
    for (let i = 0; i < N; i++) {
      const r = bufEz.read();
      const v = r instanceof Promise ? await r : r;
      if (v === undefined) throw new Error("easyts buffered: channel closed");
      sum += v;
    }
    check("easyts buffered", sum);
  },
});

Deno.bench({
  group: "buffered",
  name: "array (no promises)",
  fn() {
    for (let i = 0; i < N; i++) bufArray.push(i);
    let sum = 0;
    for (let i = 0; i < N; i++) sum += bufArray.shift();
    check("array buffered", sum);
  },
});

// -- ping-pong: two tasks, two unbuffered channels, 1 000 round trips --

// chanpool and the baseline get their own copies of the code rather than one
// shared helper: a helper called with both classes would be measured
// monomorphic for whichever runs first and polymorphic for the other.
const pingOurs = new Channel<number>();
const pongOurs = new Channel<number>();
const pingBase = new SameContractChannel<number>();
const pongBase = new SameContractChannel<number>();
const pingTs = new TsChan<number>();
const pongTs = new TsChan<number>();
const pingTsUnsafe = new TsChan<number>().setUnsafe(true);
const pongTsUnsafe = new TsChan<number>().setUnsafe(true);
const pingEz = new EzChan<number>();
const pongEz = new EzChan<number>();
const pingArray = new RingQueue<number>();
const pongArray = new RingQueue<number>();

async function tsPingPong(
  ping: TsChan<number>,
  pong: TsChan<number>,
  what: string,
): Promise<void> {
  let sum = 0;
  const a = async () => {
    for (let i = 0; i < N; i++) {
      await ping.send(i);
      const r = await pong.recv();
      if (r.done) throw new Error(`${what}: channel closed`);
      sum += r.value;
    }
  };
  const b = async () => {
    for (let i = 0; i < N; i++) {
      const r = await ping.recv();
      if (r.done) throw new Error(`${what}: channel closed`);
      await pong.send(r.value);
    }
  };
  await Promise.all([a(), b()]);
  check(what, sum);
}

Deno.bench({
  group: "ping-pong",
  name: "chanpool",
  async fn() {
    let sum = 0;
    const a = async () => {
      for (let i = 0; i < N; i++) {
        await pingOurs.send(i);
        sum += await pongOurs.receive();
      }
    };
    const b = async () => {
      for (let i = 0; i < N; i++) await pongOurs.send(await pingOurs.receive());
    };
    await Promise.all([a(), b()]);
    check("chanpool ping-pong", sum);
  },
});

Deno.bench({
  group: "ping-pong",
  name: "same-contract baseline",
  baseline: true,
  async fn() {
    let sum = 0;
    const a = async () => {
      for (let i = 0; i < N; i++) {
        await pingBase.send(i);
        sum += await pongBase.receive();
      }
    };
    const b = async () => {
      for (let i = 0; i < N; i++) await pongBase.send(await pingBase.receive());
    };
    await Promise.all([a(), b()]);
    check("same-contract ping-pong", sum);
  },
});

Deno.bench({
  group: "ping-pong",
  name: "ts-chan",
  async fn() {
    await tsPingPong(pingTs, pongTs, "ts-chan ping-pong");
  },
});

Deno.bench({
  group: "ping-pong",
  name: "ts-chan (unsafe)",
  async fn() {
    await tsPingPong(pingTsUnsafe, pongTsUnsafe, "ts-chan (unsafe) ping-pong");
  },
});

Deno.bench({
  group: "ping-pong",
  name: "easyts",
  async fn() {
    let sum = 0;
    const a = async () => {
      for (let i = 0; i < N; i++) {
        const w = pingEz.write(i);
        if ((w instanceof Promise ? await w : w) !== true) {
          throw new Error("easyts ping-pong: write failed");
        }
        const r = pongEz.read();
        const v = r instanceof Promise ? await r : r;
        if (v === undefined) throw new Error("easyts ping-pong: closed");
        sum += v;
      }
    };
    const b = async () => {
      for (let i = 0; i < N; i++) {
        const r = pingEz.read();
        const v = r instanceof Promise ? await r : r;
        if (v === undefined) throw new Error("easyts ping-pong: closed");
        const w = pongEz.write(v);
        if ((w instanceof Promise ? await w : w) !== true) {
          throw new Error("easyts ping-pong: write failed");
        }
      }
    };
    await Promise.all([a(), b()]);
    check("easyts ping-pong", sum);
  },
});

// Without promises there are no tasks to switch between: this does the same
// four queue operations per round trip in one loop, as a floor.
Deno.bench({
  group: "ping-pong",
  name: "array (no promises)",
  fn() {
    let sum = 0;
    for (let i = 0; i < N; i++) {
      pingArray.push(i);
      pongArray.push(pingArray.shift());
      sum += pongArray.shift();
    }
    check("array ping-pong", sum);
  },
});

// -- try-ops: capacity 16, trySend then tryReceive, 1 000 times --
//
// The same-contract baseline has no try-ops, so it is left out of this group.
// ts-chan's unsafe mode changes only its async methods, not trySend/tryRecv,
// so only one ts-chan entry is shown.

const TRY_CAPACITY = 16;
const tryOurs = new Channel<number>({ capacity: TRY_CAPACITY });
const tryTs = new TsChan<number>(TRY_CAPACITY);
const tryEz = new EzChan<number>(TRY_CAPACITY);
const tryArray = new RingQueue<number>();

Deno.bench({
  group: "try-ops",
  name: "chanpool",
  fn() {
    let sent = 0;
    let sum = 0;
    for (let i = 0; i < N; i++) {
      if (tryOurs.trySend(i)) sent++;
      const r = tryOurs.tryReceive();
      if (r.state === "ok") sum += r.value;
    }
    check("chanpool try-ops sent", sent, N);
    check("chanpool try-ops", sum);
  },
});

Deno.bench({
  group: "try-ops",
  name: "ts-chan",
  fn() {
    let sent = 0;
    let sum = 0;
    for (let i = 0; i < N; i++) {
      if (tryTs.trySend(i)) sent++;
      const r = tryTs.tryRecv();
      if (r !== undefined && !r.done) sum += r.value;
    }
    check("ts-chan try-ops sent", sent, N);
    check("ts-chan try-ops", sum);
  },
});

Deno.bench({
  group: "try-ops",
  name: "easyts",
  fn() {
    let sent = 0;
    let sum = 0;
    for (let i = 0; i < N; i++) {
      if (tryEz.tryWrite(i)) sent++;
      const r = tryEz.tryRead();
      if (r !== undefined && !r.done) sum += r.value;
    }
    check("easyts try-ops sent", sent, N);
    check("easyts try-ops", sum);
  },
});

Deno.bench({
  group: "try-ops",
  name: "array (no promises)",
  baseline: true,
  fn() {
    let sent = 0;
    let sum = 0;
    for (let i = 0; i < N; i++) {
      if (tryArray.length < TRY_CAPACITY) {
        tryArray.push(i);
        sent++;
      }
      if (tryArray.length > 0) sum += tryArray.shift();
    }
    check("array try-ops sent", sent, N);
    check("array try-ops", sum);
  },
});

// -- select: a producer alternates sends on two unbuffered channels; the
// consumer runs a blocking select over both, 1 000 times --
//
// The baselines have no select, so chanpool is this group's baseline. Each
// peer's cases are built once and reused, as a Go loop would.

const selA = new Channel<number>();
const selB = new Channel<number>();
const selCases = [{ receive: selA }, { receive: selB }] as const;

const selTsA = new TsChan<number>();
const selTsB = new TsChan<number>();
const selTs = new TsSelect([tsRecv(selTsA), tsRecv(selTsB)]);

const selTsUnsafeA = new TsChan<number>().setUnsafe(true);
const selTsUnsafeB = new TsChan<number>().setUnsafe(true);
const selTsUnsafe = new TsSelect([tsRecv(selTsUnsafeA), tsRecv(selTsUnsafeB)])
  .setUnsafe(true);

const selEzA = new EzChan<number>();
const selEzB = new EzChan<number>();
const selEzCaseA = selEzA.readCase();
const selEzCaseB = selEzB.readCase();

Deno.bench({
  group: "select",
  name: "chanpool",
  baseline: true,
  async fn() {
    const producer = async () => {
      for (let i = 0; i < N; i++) await (i & 1 ? selB : selA).send(i);
    };
    const consumer = async () => {
      let sum = 0;
      let fromB = 0;
      for (let i = 0; i < N; i++) {
        const r = await select(selCases);
        if (!r.ok) throw new Error("chanpool select: channel closed");
        sum += r.value;
        fromB += r.index;
      }
      check("chanpool select case index", fromB, N / 2);
      return sum;
    };
    const [, sum] = await Promise.all([producer(), consumer()]);
    check("chanpool select", sum);
  },
});

async function tsSelectBench(
  a: TsChan<number>,
  b: TsChan<number>,
  sel: typeof selTs,
  what: string,
): Promise<void> {
  const producer = async () => {
    for (let i = 0; i < N; i++) await (i & 1 ? b : a).send(i);
  };
  const consumer = async () => {
    let sum = 0;
    let fromB = 0;
    for (let i = 0; i < N; i++) {
      const index = await sel.wait();
      const r = index === 0 ? sel.recv(sel.cases[0]) : sel.recv(sel.cases[1]);
      if (r.done) throw new Error(`${what}: channel closed`);
      sum += r.value;
      fromB += index;
    }
    check(`${what} case index`, fromB, N / 2);
    return sum;
  };
  const [, sum] = await Promise.all([producer(), consumer()]);
  check(what, sum);
}

Deno.bench({
  group: "select",
  name: "ts-chan",
  async fn() {
    await tsSelectBench(selTsA, selTsB, selTs, "ts-chan select");
  },
});

Deno.bench({
  group: "select",
  name: "ts-chan (unsafe)",
  async fn() {
    await tsSelectBench(
      selTsUnsafeA,
      selTsUnsafeB,
      selTsUnsafe,
      "ts-chan (unsafe) select",
    );
  },
});

Deno.bench({
  group: "select",
  name: "easyts",
  async fn() {
    const producer = async () => {
      for (let i = 0; i < N; i++) {
        const w = (i & 1 ? selEzB : selEzA).write(i);
        if ((w instanceof Promise ? await w : w) !== true) {
          throw new Error("easyts select: write failed");
        }
      }
    };
    const consumer = async () => {
      let sum = 0;
      let fromB = 0;
      for (let i = 0; i < N; i++) {
        const s = ezSelect(selEzCaseA, selEzCaseB);
        const c = s instanceof Promise ? await s : s;
        const v = c === selEzCaseA ? selEzCaseA.read() : selEzCaseB.read();
        if (v === undefined) throw new Error("easyts select: channel closed");
        sum += v;
        if (c === selEzCaseB) fromB++;
      }
      check("easyts select case index", fromB, N / 2);
      return sum;
    };
    const [, sum] = await Promise.all([producer(), consumer()]);
    check("easyts select", sum);
  },
});
