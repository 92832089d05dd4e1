// Copyright 2026 the chanpool authors. MIT license.
// A slow reply times out; its connection is destroyed rather than pooled,
// so the late reply reaches nobody and the next request gets its own.
//
// Run: deno run --allow-net=127.0.0.1 examples/timeout.ts

import { FrameReader, TcpPool, TimeoutError, writeFrame } from "../mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Echoes frames, but takes 300 ms over any frame that starts with "slow".
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const timers = new Set<ReturnType<typeof setTimeout>>();
const server = (async () => {
  for await (const conn of listener) {
    (async () => {
      const reader = new FrameReader(conn);
      try {
        let frame;
        while ((frame = await reader.readFrame()) !== null) {
          if (decoder.decode(frame).startsWith("slow")) {
            await new Promise((resolve) => {
              const id = setTimeout(() => {
                timers.delete(id);
                resolve(undefined);
              }, 300);
              timers.add(id);
            });
          }
          await writeFrame(conn, frame);
        }
      } catch { /* the client hung up on us */ }
      conn.close();
    })();
  }
})();

{
  await using pool = new TcpPool({ port: listener.addr.port, max: 1 });
  try {
    await pool.request(encoder.encode("slow: first"), { timeout: 100 });
  } catch (error) {
    if (!(error instanceof TimeoutError)) throw error;
    console.log(`first request: ${error.message} (as expected)`);
  }
  const reply = await pool.request(encoder.encode("second"), {
    timeout: 1_000,
  });
  console.log(`second request got: ${decoder.decode(reply)}`);
  console.log(`destroyed as broken: ${pool.stats.destroyed.broken}`);
}

// Let the slow handler finish before the server goes.
while (timers.size > 0) await new Promise((r) => setTimeout(r, 50));
listener.close();
await server;
