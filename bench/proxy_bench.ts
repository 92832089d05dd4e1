// Copyright 2026 the chanpool authors. MIT license.
// proxy.ts against a direct connection, the echo upstream in another Deno
// process (bench/_echo_server.ts: echoes 4-byte length-prefixed frames), in
// one `deno bench` run:
//
// - "1 MiB each way": one client sends one 1 MiB frame and reads it back,
//   directly, and through serveProxy running in a third process
//   (bench/_proxy_server.ts: a warm pool, one upstream per session). Bar: the proxy at least 70 % of the direct throughput.
// - "time to first byte": a new client session sends 16 bytes and waits for
//   the first byte back, through a proxy whose pool keeps upstreams dialed
//   ahead (minIdle 4), and through one that dials an upstream per session.
//   Bar: the warm proxy at most 60 % of the dialing one.
//
// - "time to first byte, TLS upstream": the same two proxies in front of a
//   TLS echo server (node:tls in this process, certificate from openssl): the
//   handshake is what a warm pool takes off the critical path.
//
// Run: deno bench --allow-net=127.0.0.1 --allow-run bench/proxy_bench.ts

import { createServer as createTlsServer } from "node:tls";
import { serveProxy, TcpPool } from "../mod.ts";
import {
  frame,
  spawnEchoServer,
  spawnServer,
  transfer,
} from "./_echo_server.ts";
import { selfSignedCert } from "../tests/_servers.ts";

const echo = await spawnEchoServer();
// The throughput proxy runs in a process of its own, as a deployed one would.
const outProxy = await spawnServer(
  new URL("./_proxy_server.ts", import.meta.url).href,
  [String(echo.port)],
);

// 64 KiB reads upstream, as the proxy's own client side reads.
const readBufferSize = 64 * 1024;
const warmPool = new TcpPool({
  port: echo.port,
  max: 16,
  minIdle: 4,
  readBufferSize,
});
const coldPool = new TcpPool({ port: echo.port, max: 16, readBufferSize });
const warmProxy = serveProxy({ port: 0 }, warmPool);
const coldProxy = serveProxy({ port: 0 }, coldPool);

// A TLS echo upstream with a throwaway self-signed certificate.
const { cert, key } = await selfSignedCert();
// node:tls, so the server side can turn Nagle off: Deno's TLS listener
// cannot, and its first reply would wait 40 ms for a delayed ACK.
const tlsServer = createTlsServer({ cert, key }, (socket) => {
  socket.setNoDelay(true);
  socket.on("error", () => {});
  socket.pipe(socket);
});
await new Promise<void>((r) => tlsServer.listen(0, "127.0.0.1", r));
const tlsPort = (tlsServer.address() as { port: number }).port;
const tlsOptions = { caCerts: [cert] };
const warmTlsPool = new TcpPool({
  port: tlsPort,
  tls: tlsOptions,
  max: 16,
  minIdle: 4,
});
const coldTlsPool = new TcpPool({
  port: tlsPort,
  tls: tlsOptions,
  max: 16,
});
const warmTlsProxy = serveProxy({ port: 0 }, warmTlsPool);
const coldTlsProxy = serveProxy({ port: 0 }, coldTlsPool);

globalThis.addEventListener("unload", () => {
  void warmTlsProxy.close().then(() => warmTlsPool.close());
  void coldTlsProxy.close().then(() => coldTlsPool.close());
  tlsServer.close();
  void warmProxy.close().then(() => warmPool.close());
  void coldProxy.close().then(() => coldPool.close());
  void outProxy.close();
  void echo.close();
});

const BIG = frame(1 << 20);
const SMALL = frame(12);

// Warm every pool's first connection.
for (const p of [warmProxy, coldProxy, warmTlsProxy, coldTlsProxy]) {
  await transfer(p.addr.port, SMALL, 1);
}

Deno.bench({
  name: "direct",
  group: "1 MiB each way",
  baseline: true,
  async fn() {
    await transfer(echo.port, BIG, BIG.length);
  },
});

Deno.bench({
  name: "through serveProxy (its own process)",
  group: "1 MiB each way",
  async fn() {
    await transfer(outProxy.port, BIG, BIG.length);
  },
});

Deno.bench({
  name: "proxy, warm pool (minIdle 4)",
  group: "time to first byte",
  baseline: true,
  async fn(b) {
    // Let the pool dial its replacement outside the measured part, as it
    // would between clients.
    await new Promise((r) => setTimeout(r, 1));
    b.start();
    await transfer(warmProxy.addr.port, SMALL, 1);
    b.end();
  },
});

Deno.bench({
  name: "proxy dialing per session",
  group: "time to first byte",
  async fn(b) {
    await new Promise((r) => setTimeout(r, 1));
    b.start();
    await transfer(coldProxy.addr.port, SMALL, 1);
    b.end();
  },
});

Deno.bench({
  name: "proxy, warm pool (minIdle 4)",
  group: "time to first byte, TLS upstream",
  baseline: true,
  async fn(b) {
    await new Promise((r) => setTimeout(r, 2));
    b.start();
    await transfer(warmTlsProxy.addr.port, SMALL, 1);
    b.end();
  },
});

Deno.bench({
  name: "proxy dialing per session",
  group: "time to first byte, TLS upstream",
  async fn(b) {
    await new Promise((r) => setTimeout(r, 2));
    b.start();
    await transfer(coldTlsProxy.addr.port, SMALL, 1);
    b.end();
  },
});
