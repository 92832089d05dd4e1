// Copyright 2026 the chanpool authors. MIT license.
// A worker pool in Go style: three workers take jobs from a channel, report
// results on another, and stop when the quit channel is closed. Run with
// `deno task example:channel`.

import { Channel, select } from "../mod.ts";

const jobs = new Channel<number>({ capacity: 4 });
const results = new Channel<string>({ capacity: 4 });
const quit = new Channel<void>();

async function worker(id: number): Promise<number> {
  let done = 0;
  while (true) {
    // case n := <-jobs / case <-quit
    const r = await select([{ receive: jobs }, { receive: quit }]);
    if (r.index === 1 || !r.ok) return done; // quit, or jobs closed
    const n = r.value;
    await new Promise((resolve) => setTimeout(resolve, 5 * (n % 3)));
    await results.send(`worker ${id}: ${n}² = ${n * n}`);
    done++;
  }
}

const workers = [1, 2, 3].map(worker);

// Feed 9 jobs; send() waits whenever the 4-slot buffer is full.
const feeding = (async () => {
  for (let n = 1; n <= 9; n++) await jobs.send(n);
})();

for (let i = 0; i < 9; i++) console.log(await results.receive());
await feeding;

quit.close(); // every worker's select sees the closed channel: ok: false
const counts = await Promise.all(workers);
console.log(
  `jobs per worker: ${counts.join(", ")} (total ${
    counts.reduce((a, b) => a + b)
  })`,
);
jobs.close();
results.close();
