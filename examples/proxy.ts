// Copyright 2026 the chanpool authors. MIT license.
// A proxy in front of a local echo server: upstream connections come
// pre-dialed from the pool (minIdle), so a client's first byte does not
// wait for a handshake; each upstream serves one session.
//
// Run: deno run --allow-net=127.0.0.1 examples/proxy.ts

import { serveProxy, TcpPool } from "../mod.ts";

// The upstream: an echo server that half-closes back at EOF.
const upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const echoing = (async () => {
  for await (const conn of upstream) {
    (async () => {
      const buf = new Uint8Array(16 * 1024);
      try {
        for (let n; (n = await conn.read(buf)) !== null;) {
          await conn.write(buf.subarray(0, n));
        }
        await conn.closeWrite();
        while (await conn.read(buf) !== null) { /* until the proxy closes */ }
      } catch { /* the proxy went away */ }
      conn.close();
    })();
  }
})();

{
  await using pool = new TcpPool({ port: upstream.addr.port, minIdle: 2 });
  await using proxy = serveProxy({ port: 0 }, pool, { idleTimeout: 5_000 });
  console.log(
    `proxy on 127.0.0.1:${proxy.addr.port} -> echo on 127.0.0.1:${upstream.addr.port}`,
  );
  for (let i = 1; i <= 3; i++) {
    const client = await Deno.connect({ port: proxy.addr.port });
    const start = performance.now();
    await client.write(new TextEncoder().encode(`hello #${i}`));
    await client.closeWrite();
    const reply = await new Response(client.readable).text();
    console.log(
      `session ${i}: "${reply}" in ${
        (performance.now() - start).toFixed(1)
      } ms`,
    );
  }
  // Wait for the last session to be counted.
  while (proxy.stats.active > 0) await new Promise((r) => setTimeout(r, 5));
  const s = proxy.stats;
  console.log(
    `sessions ${s.sessions}, errors ${s.errors}, bytes ${s.sent} up / ${s.received} down; upstream dials ${pool.stats.dials}`,
  );
}
upstream.close();
await echoing;
