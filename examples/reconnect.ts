// Copyright 2026 the chanpool authors. MIT license.
// A server that closes every connection after one response (Go gtcp's
// example 2). A naive client writes its second request on the closed
// connection and reads EOF; chanpool's idle watch sees the close while the
// connection sits idle and drops it, so the client prints no error.
//
// Run: deno run --allow-net=127.0.0.1 examples/reconnect.ts

import { FrameReader, TcpPool, writeFrame } from "../mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// One request per connection: read a frame, answer it, hang up.
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const server = (async () => {
  for await (const conn of listener) {
    (async () => {
      try {
        const frame = await new FrameReader(conn).readFrame();
        if (frame !== null) await writeFrame(conn, frame);
      } catch { /* a client went away */ }
      conn.close();
    })();
  }
})();

{
  await using pool = new TcpPool({ port: listener.addr.port, max: 2 });
  for (let i = 1; i <= 5; i++) {
    const reply = await pool.request(encoder.encode(`request ${i}`), {
      timeout: 1_000,
    });
    console.log(`ok: ${decoder.decode(reply)}`);
    // Give the server's FIN time to arrive, as it would between requests.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const { dials, destroyed, retries } = pool.stats;
  console.log(
    `dials: ${dials}, evicted while idle: ${destroyed.evicted}, retries: ${retries}, errors: 0`,
  );
}

listener.close();
await server;
