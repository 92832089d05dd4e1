// Copyright 2026 the chanpool authors. MIT license.
// A pool of 5 fake connections shared by 10 workers: 5 borrow at once, the
// other 5 visibly wait until a connection is released, first come, first
// served. Times are milliseconds since the start.
//
// Run: deno run examples/pool.ts

import { Pool } from "../mod.ts";

const start = performance.now();
const t = () =>
  `${String(Math.round(performance.now() - start)).padStart(4)} ms`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let made = 0;
await using pool = new Pool(
  async () => {
    await sleep(20); // dialing takes a while
    return { id: ++made };
  },
  {
    max: 5,
    maxDialing: 5,
    close: (conn) => console.log(`${t()}  close conn ${conn.id}`),
  },
);

async function worker(name: string): Promise<void> {
  for (let job = 1; job <= 2; job++) {
    const asked = performance.now();
    await using lease = await pool.borrow({ timeout: 2_000 });
    const waited = Math.round(performance.now() - asked);
    console.log(
      `${t()}  ${name} job ${job}: conn ${lease.resource.id}${
        lease.reused
          ? ` (waited ${waited} ms for a release)`
          : " (freshly dialed)"
      }`,
    );
    await sleep(50); // the work
  } // released here: the next waiter gets it at once
}

await Promise.all(
  Array.from({ length: 10 }, (_, i) => worker(`worker ${i + 1}`.padEnd(9))),
);
const { open, borrows, waits, dials } = pool.stats;
console.log(
  `${t()}  stats: open ${open}, dials ${dials}, borrows ${borrows}, waits ${waits}`,
);
