// Copyright 2026 the chanpool authors. MIT license.
// The cost of events, A/B against the code before them, each variant in a
// process of its own: in one process (as in bench/events_bench.ts) pools of
// one class with and without listeners share the JIT's type feedback, which
// slows the pool nobody listens to by as much as the checks being measured.
//
// Each child process runs the pool before events and the variant in turns
// (15 rounds of 100 000 sequential borrow + release of an idle resource,
// and 15 rounds of 64 tasks × 1 000 contending for 10 resources) and prints
// the median time of each; this script prints the variant/before ratios.
//
// Run: git worktree add /tmp/before <commit before events>
//      deno run --allow-run --allow-read --allow-env=CHANPOOL_BEFORE \
//        bench/events_ab.ts /tmp/before/mod.ts

import { Pool, POOL_EVENT_TYPES } from "../mod.ts";

const VARIANTS = [
  "nobody listening",
  "a counting listener on borrow",
  "a counting listener on every event",
  "histograms",
];

interface AnyPool {
  borrow(): Promise<{ release(): void }>;
}

async function sequential(pool: AnyPool): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < 100_000; i++) (await pool.borrow()).release();
  return performance.now() - t;
}

async function contended(pool: AnyPool): Promise<number> {
  const t = performance.now();
  await Promise.all(Array.from({ length: 64 }, async () => {
    for (let i = 0; i < 1_000; i++) {
      const lease = await pool.borrow();
      await Promise.resolve();
      lease.release();
    }
  }));
  return performance.now() - t;
}

const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;

async function child(before: string, variant: string): Promise<void> {
  const create = () => Promise.resolve({});
  const old = new (await import(before)).Pool(create, { max: 10 }) as AnyPool;
  const now = new Pool(create, {
    max: 10,
    histograms: variant === "histograms",
  });
  let n = 0;
  if (variant === "a counting listener on borrow") now.on("borrow", () => n++);
  if (variant === "a counting listener on every event") {
    for (const type of POOL_EVENT_TYPES) now.on(type, () => void n++);
  }
  const out: Record<string, number> = {};
  for (
    const [name, run] of [["sequential", sequential], [
      "contended",
      contended,
    ]] as const
  ) {
    const a: number[] = [];
    const b: number[] = [];
    await run(old);
    await run(now);
    for (let r = 0; r < 15; r++) {
      a.push(await run(old));
      b.push(await run(now));
    }
    out[name] = median(b) / median(a);
  }
  console.log(JSON.stringify(out));
  Deno.exit(0);
}

if (Deno.args[1] !== undefined) {
  await child(Deno.args[0]!, Deno.args[1]);
} else {
  const before = Deno.args[0] ?? Deno.env.get("CHANPOOL_BEFORE");
  if (before === undefined) {
    console.log("usage: events_ab.ts <mod.ts of the code before events>");
    Deno.exit(2);
  }
  const self = new URL(import.meta.url).pathname;
  for (const variant of VARIANTS) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", self, before, variant],
      stderr: "inherit",
    }).output();
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    console.log(
      `${variant}: sequential ${r.sequential.toFixed(3)}x, contended ${
        r.contended.toFixed(3)
      }x the code before events`,
    );
  }
}
