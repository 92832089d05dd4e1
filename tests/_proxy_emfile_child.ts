// Copyright 2026 the chanpool authors. MIT license.
// serveProxy in a process of its own, for the EMFILE test in proxy_test.ts
// (its soft limit is lowered to 40 with `prlimit --pid`). Argument: the upstream's port.
// Prints the proxy's port; once stdin closes, closes the proxy and the
// pool and prints the proxy's stats as JSON.

import { serveProxy, TcpPool } from "../mod.ts";

// Deno sets up its signal handling (a pipe and a thread) the first time a
// signal is listened for, and panics if that happens at EMFILE (it may, on
// the runtime's own account, while the burst holds every descriptor): set
// it up now, while descriptors are free.
const noop = () => {};
Deno.addSignalListener("SIGUSR2", noop);
Deno.removeSignalListener("SIGUSR2", noop);

const pool = new TcpPool({ port: Number(Deno.args[0]), max: 100 });
const server = serveProxy({ port: 0 }, pool, { idleTimeout: 10_000 });
console.log(server.addr.port);
for await (const _ of Deno.stdin.readable) {
  // nothing is sent: this waits for the parent to close stdin
}
await server.close();
await pool.close();
console.log(JSON.stringify(server.stats));
