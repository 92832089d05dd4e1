// Copyright 2026 the chanpool authors. MIT license.
// JS heap per idle connection: N bare `Deno.TcpConn`s, each with one read
// pending (what any idle watch needs at least), against a TcpPool holding N
// idle connections (each with its idle-watch read pending). The server runs
// in another process. Prints a Markdown table.
//
// Run: deno run --allow-net=127.0.0.1 --allow-run --v8-flags=--expose-gc bench/tcp_heap.ts

import { TcpPool } from "../mod.ts";
import { spawnEchoServer } from "./_echo_server.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

async function heap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return Deno.memoryUsage().heapUsed;
}

await using server = await spawnEchoServer();
const { hostname, port } = server;

async function bare(n: number): Promise<number> {
  const before = await heap();
  const conns: Deno.TcpConn[] = [];
  const reads: Promise<unknown>[] = [];
  for (let i = 0; i < n; i += 200) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(200, n - i) },
        () => Deno.connect({ hostname, port }),
      ),
    );
    for (const conn of batch) {
      conn.setNoDelay(true);
      conns.push(conn);
      reads.push(conn.read(new Uint8Array(8192)).catch(() => null));
    }
  }
  const after = await heap();
  for (const conn of conns) conn.close();
  await Promise.all(reads);
  return (after - before) / n;
}

async function pooled(n: number): Promise<number> {
  const before = await heap();
  const pool = new TcpPool({ hostname, port, max: n, maxDialing: 200 });
  const leases = await Promise.all(
    Array.from({ length: n }, () => pool.borrow()),
  );
  for (const lease of leases) lease.release();
  leases.length = 0;
  if (pool.stats.idle !== n) throw new Error(`idle ${pool.stats.idle} ≠ ${n}`);
  const after = await heap();
  await pool.close();
  return (after - before) / n;
}

console.log(
  "| connections | bare conn + pending read | pooled idle conn | pooled − bare |",
);
console.log("| ---: | ---: | ---: | ---: |");
for (const n of [1_000, 10_000]) {
  const b = await bare(n);
  const p = await pooled(n);
  const fmt = (x: number) => `${(x / 1024).toFixed(2)} KiB`;
  console.log(`| ${n} | ${fmt(b)} | ${fmt(p)} | ${fmt(p - b)} |`);
}
