// Copyright 2026 the chanpool authors. MIT license.
// The RPC server of tests/_rpc.ts in its own process, for the pipelining
// benches: its timers and writes do not share an event loop with the pool
// being measured.
//
//   deno run --allow-net=127.0.0.1 bench/_rpc_server.ts <fifo|tagged>
//
// A request is [u32 length][u32 tag][u32 delay ms][body]; the reply,
// [u32 length][u32 tag][body], goes `delay` ms after the request arrived
// (replies overlap; "fifo" keeps request order, "tagged" sends each when its
// delay runs out). TCP_NODELAY is on. Prints `{"port":N}` and exits when
// stdin closes.

import { startRpcServer } from "../tests/_rpc.ts";
import { announce } from "./_echo_server.ts";

if (import.meta.main) {
  const order = Deno.args[0];
  if (order !== "fifo" && order !== "tagged") {
    throw new TypeError(
      `Usage: _rpc_server.ts <fifo|tagged>, received ${JSON.stringify(order)}`,
    );
  }
  const server = startRpcServer(order, { overlap: true, noDelay: true });
  await announce(server.port, () => void server.stop());
}
