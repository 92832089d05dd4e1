// Copyright 2026 the chanpool authors. MIT license.
// A pooled client talking to an echo server: every request goes out on the
// same connection, so the local port printed each time is the same.
//
// Run: deno run --allow-net=127.0.0.1 examples/basic.ts

import { TcpPool } from "../mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// An echo server: whatever a client sends comes straight back.
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const server = (async () => {
  for await (const conn of listener) {
    conn.readable.pipeTo(conn.writable).catch(() => {});
  }
})();
console.log(`echo server on 127.0.0.1:${listener.addr.port}`);

{
  await using pool = new TcpPool({ port: listener.addr.port, max: 4 });
  for (let i = 1; i <= 5; i++) {
    await using conn = await pool.borrow();
    // request(): one 4-byte length-prefixed frame out, one frame back.
    const reply = await conn.request(encoder.encode(`hello #${i}`), {
      timeout: 1_000,
    });
    console.log(
      `request ${i}: local port ${
        (conn.localAddr as Deno.NetAddr).port
      }, reused: ${conn.reused}, reply: ${decoder.decode(reply)}`,
    );
  }
  const { open, dials, borrows } = pool.stats;
  console.log(`open: ${open}, dials: ${dials}, borrows: ${borrows}`);
}

listener.close();
await server;
