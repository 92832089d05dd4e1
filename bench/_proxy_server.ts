// Copyright 2026 the chanpool authors. MIT license.
// serveProxy in its own process, for bench/proxy_bench.ts and
// bench/proxy_haproxy.ts: the proxy does not share an event loop with the
// clients being measured.
//
//   deno run --allow-net=127.0.0.1 bench/_proxy_server.ts <upstream port>
//     [--max=N] [--module=URL | --plain]
//
// --max: the pool's `max` (default 16; a client that keeps more sessions
// open than that would wait for an upstream).
// --module: the chanpool module to load instead of ../mod.ts (a file: URL,
// e.g. another git worktree's mod.ts, to measure two versions in one run;
// the process then needs --allow-read for it).
// --plain: no chanpool at all: each client gets a fresh `Deno.connect`ed
// upstream and two plain read/write loops (TCP_NODELAY on both sides), the
// least a proxy written in JavaScript on Deno's TCP API does per chunk.
//
// Prints `{"port":N}` and exits when stdin closes.

import { announce } from "./_echo_server.ts";

/** A plain Deno copy loop: `from` to `to`, then a half-close. */
async function copy(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    const n = await from.read(buf);
    if (n === null) break;
    let off = 0;
    while (off < n) off += await to.write(buf.subarray(off, n));
  }
  await to.closeWrite();
}

/** The `--plain` proxy: no pool, no timers, no checks. */
function servePlain(upstream: number): Deno.TcpListener {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const down of listener) {
      (async () => {
        let up: Deno.TcpConn | undefined;
        try {
          down.setNoDelay(true);
          up = await Deno.connect({ hostname: "127.0.0.1", port: upstream });
          up.setNoDelay(true);
          await Promise.all([copy(down, up), copy(up, down)]);
        } catch {
          // a side went away
        } finally {
          for (const c of [down, up]) {
            try {
              c?.close();
            } catch { /* closed */ }
          }
        }
      })();
    }
  })().catch(() => {});
  return listener;
}

if (import.meta.main) {
  const port = Number(Deno.args[0]);
  const flag = (name: string) =>
    Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  if (Deno.args.includes("--plain")) {
    const listener = servePlain(port);
    await announce(listener.addr.port, () => listener.close());
  } else {
    const module = flag("module");
    const { serveProxy, TcpPool } = module === undefined
      ? await import("../mod.ts")
      : (await import(module)) as typeof import("../mod.ts");
    const pool = new TcpPool({
      port,
      max: Number(flag("max") ?? 16),
      minIdle: 4,
      readBufferSize: 64 * 1024,
    });
    const proxy = serveProxy({ port: 0 }, pool);
    await announce(proxy.addr.port, () => {});
  }
}
