// Copyright 2026 the chanpool authors. MIT license.
// The 1 MiB transfer of bench/proxy_bench.ts, as a distribution: 300
// transfers direct and 300 through serveProxy (each in its own process, as
// in the bench), alternating, then the median and quartiles of each and the
// ratio of the medians. deno bench prints means, which carry the scheduling
// and GC outliers of three processes on two cores.
//
// Run: deno run --allow-net=127.0.0.1 --allow-run bench/proxy_transfers.ts

import {
  frame,
  spawnEchoServer,
  spawnServer,
  transfer,
} from "./_echo_server.ts";

const ROUNDS = 300;

const BIG = frame(1 << 20);

/** One transfer of BIG to `port` and back, in ms. */
async function timed(port: number): Promise<number> {
  const start = performance.now();
  await transfer(port, BIG, BIG.length);
  return performance.now() - start;
}

function quartiles(xs: number[]): [number, number, number] {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.floor(q * (s.length - 1))]!;
  return [at(0.25), at(0.5), at(0.75)];
}

if (import.meta.main) {
  const echo = await spawnEchoServer();
  const proxy = await spawnServer(
    new URL("./_proxy_server.ts", import.meta.url).href,
    [String(echo.port)],
  );
  try {
    for (let i = 0; i < 30; i++) {
      await timed(echo.port);
      await timed(proxy.port);
    }
    const direct: number[] = [], proxied: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      direct.push(await timed(echo.port));
      proxied.push(await timed(proxy.port));
    }
    const d = quartiles(direct), p = quartiles(proxied);
    const ms = (q: number[]) => q.map((x) => x.toFixed(2)).join(" / ");
    console.log(`direct   p25 / median / p75: ${ms(d)} ms`);
    console.log(`proxied  p25 / median / p75: ${ms(p)} ms`);
    console.log(
      `proxy throughput at ${
        Math.round(d[1] / p[1] * 100)
      } % of direct (medians of ${ROUNDS} transfers each)`,
    );
  } finally {
    await proxy.close();
    await echo.close();
  }
}
