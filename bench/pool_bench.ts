// Copyright 2026 the chanpool authors. MIT license.
// Pool benchmarks: chanpool's Pool against generic-pool and tarn, in one
// `deno bench` run, with the same trivial resource (an object; creating it
// resolves at once, closing it does nothing) and max 10, every pool warmed
// to 10 idle resources first.
//
// - sequential: 1 000 borrow + release of an idle resource, one after another
// - contention: 64 tasks, each 16 times: borrow, one microtask, release
// - use(): 1 000 sequential `use(fn)` (tarn has none: acquire/try/finally)
//
// "bare array (limit)" is the least a pool can do: an array of idle
// resources and an array of parked resolvers, no timeouts, no counts, no
// leases; what every pool is measured against.
//
// generic-pool runs with its defaults (no testOnBorrow, no evictor); tarn
// with its defaults (its reaper interval runs while the pool lives). Every
// bench counts what it borrowed and throws if the count is wrong.
//
// Run: deno bench bench/pool_bench.ts (npm peers download on first use)

// Peers come inline with pinned `npm:` specifiers so the module's deno.json
// stays free of dependencies; only this bench uses them.
// deno-lint-ignore-file no-import-prefix
import * as genericPool from "npm:generic-pool@3.9.0";
import { Pool as TarnPool } from "npm:tarn@3.0.2";
import { Pool } from "../mod.ts";

const MAX = 10;
const SEQUENTIAL = 1_000;
const TASKS = 64;
const ROUNDS = 16;

interface Res {
  id: number;
}

let made = 0;
const create = () => Promise.resolve<Res>({ id: ++made });

const ours = new Pool<Res>(create, { max: MAX });
const generic = genericPool.createPool<Res>({
  create,
  destroy: () => Promise.resolve(),
}, { max: MAX, min: 0 });
const tarn = new TarnPool<Res>({
  create,
  destroy: () => {},
  min: 0,
  max: MAX,
});

/** The limit: a free list and a FIFO of parked borrowers, nothing else. */
class BareArrayPool {
  readonly #free: Res[] = [];
  readonly #parked: ((r: Res) => void)[] = [];
  #head = 0;
  constructor(n: number) {
    for (let i = 0; i < n; i++) this.#free.push({ id: ++made });
  }
  acquire(): Promise<Res> {
    const r = this.#free.pop();
    if (r !== undefined) return Promise.resolve(r);
    return new Promise((resolve) => this.#parked.push(resolve));
  }
  release(r: Res): void {
    if (this.#head < this.#parked.length) {
      const next = this.#parked[this.#head++]!;
      if (this.#head === this.#parked.length) {
        this.#parked.length = 0;
        this.#head = 0;
      }
      next(r);
    } else this.#free.push(r);
  }
}
const bare = new BareArrayPool(MAX);

// Warm every pool to MAX idle resources.
{
  const a = await Promise.all(Array.from({ length: MAX }, () => ours.borrow()));
  for (const l of a) l.release();
  const b = await Promise.all(
    Array.from({ length: MAX }, () => generic.acquire()),
  );
  for (const r of b) await generic.release(r);
  const c = await Promise.all(
    Array.from({ length: MAX }, () => tarn.acquire().promise),
  );
  for (const r of c) tarn.release(r);
  if (ours.stats.idle !== MAX) throw new Error("chanpool not warm");
}

// tarn's reaper interval and generic-pool's timers stop with their pools.
globalThis.addEventListener("unload", () => {
  tarn.destroy();
  generic.clear();
  ours.close();
});

function check(count: number, expected: number): void {
  if (count !== expected) throw new Error(`${count} borrows, not ${expected}`);
}

// -- sequential --

Deno.bench({
  name: "chanpool borrow + release",
  group: "sequential",
  baseline: true,
  async fn() {
    let n = 0;
    for (let i = 0; i < SEQUENTIAL; i++) {
      const lease = await ours.borrow();
      n += lease.resource.id > 0 ? 1 : 0;
      lease.release();
    }
    check(n, SEQUENTIAL);
  },
});

Deno.bench({
  name: "chanpool tryBorrow + release",
  group: "sequential",
  async fn() {
    let n = 0;
    for (let i = 0; i < SEQUENTIAL; i++) {
      const lease = ours.tryBorrow()!;
      n += lease.resource.id > 0 ? 1 : 0;
      lease.release();
    }
    await Promise.resolve();
    check(n, SEQUENTIAL);
  },
});

Deno.bench({
  name: "bare array (limit)",
  group: "sequential",
  async fn() {
    let n = 0;
    for (let i = 0; i < SEQUENTIAL; i++) {
      const r = await bare.acquire();
      n += r.id > 0 ? 1 : 0;
      bare.release(r);
    }
    check(n, SEQUENTIAL);
  },
});

Deno.bench({
  name: "generic-pool acquire + release",
  group: "sequential",
  async fn() {
    let n = 0;
    for (let i = 0; i < SEQUENTIAL; i++) {
      const r = await generic.acquire();
      n += r.id > 0 ? 1 : 0;
      await generic.release(r);
    }
    check(n, SEQUENTIAL);
  },
});

Deno.bench({
  name: "tarn acquire + release",
  group: "sequential",
  async fn() {
    let n = 0;
    for (let i = 0; i < SEQUENTIAL; i++) {
      const r = await tarn.acquire().promise;
      n += r.id > 0 ? 1 : 0;
      tarn.release(r);
    }
    check(n, SEQUENTIAL);
  },
});

// -- contention --
// Each pool in its own idiom, the same work: borrow, one microtask,
// release. (That no resource is lent twice is the tests' job.)

async function contend(task: () => Promise<number>) {
  const counts = await Promise.all(Array.from({ length: TASKS }, task));
  check(counts.reduce((a, b) => a + b, 0), TASKS * ROUNDS);
}

Deno.bench({
  name: "chanpool",
  group: "64 tasks contending",
  baseline: true,
  async fn() {
    await contend(async () => {
      let n = 0;
      for (let i = 0; i < ROUNDS; i++) {
        const lease = await ours.borrow();
        n += lease.resource.id > 0 ? 1 : 0;
        await Promise.resolve();
        lease.release();
      }
      return n;
    });
  },
});

Deno.bench({
  name: "bare array (limit)",
  group: "64 tasks contending",
  async fn() {
    await contend(async () => {
      let n = 0;
      for (let i = 0; i < ROUNDS; i++) {
        const r = await bare.acquire();
        n += r.id > 0 ? 1 : 0;
        await Promise.resolve();
        bare.release(r);
      }
      return n;
    });
  },
});

Deno.bench({
  name: "generic-pool",
  group: "64 tasks contending",
  async fn() {
    await contend(async () => {
      let n = 0;
      for (let i = 0; i < ROUNDS; i++) {
        const r = await generic.acquire();
        n += r.id > 0 ? 1 : 0;
        await Promise.resolve();
        await generic.release(r);
      }
      return n;
    });
  },
});

Deno.bench({
  name: "tarn",
  group: "64 tasks contending",
  async fn() {
    await contend(async () => {
      let n = 0;
      for (let i = 0; i < ROUNDS; i++) {
        const r = await tarn.acquire().promise;
        n += r.id > 0 ? 1 : 0;
        await Promise.resolve();
        tarn.release(r);
      }
      return n;
    });
  },
});

// -- use() --

Deno.bench({
  name: "chanpool use()",
  group: "use()",
  baseline: true,
  async fn() {
    let n = 0;
    for (let i = 0; i < SEQUENTIAL; i++) {
      n += await ours.use((r) => (r.id > 0 ? 1 : 0));
    }
    check(n, SEQUENTIAL);
  },
});

Deno.bench({
  name: "generic-pool use()",
  group: "use()",
  async fn() {
    let n = 0;
    for (let i = 0; i < SEQUENTIAL; i++) {
      n += await generic.use((r) => Promise.resolve(r.id > 0 ? 1 : 0));
    }
    check(n, SEQUENTIAL);
  },
});

Deno.bench({
  name: "tarn acquire/try/finally",
  group: "use()",
  async fn() {
    let n = 0;
    for (let i = 0; i < SEQUENTIAL; i++) {
      const r = await tarn.acquire().promise;
      try {
        n += await Promise.resolve(r.id > 0 ? 1 : 0);
      } finally {
        tarn.release(r);
      }
    }
    check(n, SEQUENTIAL);
  },
});
