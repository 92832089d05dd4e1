// Copyright 2026 the chanpool authors. MIT license.
// serveProxy in its own process, for bench/proxy_bench.ts: the proxy does
// not share an event loop with the clients being measured.
//
//   deno run --allow-net=127.0.0.1 bench/_proxy_server.ts <upstream port>
//
// Prints `{"port":N}` and exits when stdin closes.

import { serveProxy, TcpPool } from "../mod.ts";
import { announce } from "./_echo_server.ts";

if (import.meta.main) {
  const pool = new TcpPool({
    port: Number(Deno.args[0]),
    max: 16,
    minIdle: 4,
    readBufferSize: 64 * 1024,
  });
  const proxy = serveProxy({ port: 0 }, pool);
  await announce(proxy.addr.port, () => {});
}
