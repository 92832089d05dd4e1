// Copyright 2026 the chanpool authors. MIT license.
// What events and histograms cost a borrow: bench/pool_bench.ts's
// sequential and contended loops on pools that are the same but for
// - nobody listening (the default),
// - a counting listener on every event type,
// - `histograms: true` (two precise clock reads per borrow),
// and, when CHANPOOL_BEFORE names a mod.ts of the code before events
// (e.g. `git worktree add /tmp/before <commit>`), that code's pool in the
// same run: the cost of the event checks when nobody listens.
//
// Run: deno bench --allow-env=CHANPOOL_BEFORE --allow-read bench/events_bench.ts
//   CHANPOOL_BEFORE=/tmp/before/mod.ts deno bench --allow-env=CHANPOOL_BEFORE \
//     --allow-read bench/events_bench.ts

import { Pool, POOL_EVENT_TYPES } from "../mod.ts";

const MAX = 10;
const SEQUENTIAL = 1_000;
const TASKS = 64;
const ROUNDS = 16;

interface Res {
  id: number;
}
interface AnyPool {
  borrow(): Promise<{ resource: Res; release(): void }>;
  close(): Promise<void>;
  stats: { idle: number };
}

let made = 0;
const create = () => Promise.resolve<Res>({ id: ++made });

const plain = new Pool<Res>(create, { max: MAX });
const counted = new Pool<Res>(create, { max: MAX });
const timed = new Pool<Res>(create, { max: MAX, histograms: true });
let events = 0;
for (const type of POOL_EVENT_TYPES) counted.on(type, () => void events++);

const beforePath = Deno.env.get("CHANPOOL_BEFORE");
const before: AnyPool | null = beforePath === undefined
  ? null
  : new (await import(beforePath)).Pool(create, { max: MAX });

const pools: [string, AnyPool][] = [
  ["chanpool, nobody listening", plain],
  ["chanpool, a counting listener on every event", counted],
  ["chanpool, histograms: true", timed],
];
if (before !== null) pools.unshift(["chanpool before events", before]);

for (const [, pool] of pools) {
  const a = await Promise.all(Array.from({ length: MAX }, () => pool.borrow()));
  for (const l of a) l.release();
  if (pool.stats.idle !== MAX) throw new Error("not warm");
}

globalThis.addEventListener("unload", () => {
  for (const [, pool] of pools) void pool.close();
});

for (const [name, pool] of pools) {
  Deno.bench({
    name,
    group: "sequential borrow + release",
    baseline: pool === plain,
    async fn() {
      let n = 0;
      for (let i = 0; i < SEQUENTIAL; i++) {
        const lease = await pool.borrow();
        n += lease.resource.id > 0 ? 1 : 0;
        lease.release();
      }
      if (n !== SEQUENTIAL) throw new Error(`${n} borrows`);
    },
  });
}

for (const [name, pool] of pools) {
  Deno.bench({
    name,
    group: "64 tasks contending",
    baseline: pool === plain,
    async fn() {
      const counts = await Promise.all(
        Array.from({ length: TASKS }, async () => {
          let n = 0;
          for (let i = 0; i < ROUNDS; i++) {
            const lease = await pool.borrow();
            n += lease.resource.id > 0 ? 1 : 0;
            await Promise.resolve();
            lease.release();
          }
          return n;
        }),
      );
      const n = counts.reduce((a, b) => a + b, 0);
      if (n !== TASKS * ROUNDS) throw new Error(`${n} borrows`);
    },
  });
}
