// Copyright 2026 the chanpool authors. MIT license.
// Chaos for a tagged pipelined TcpPool (issue 20): 1 000 000 calls, 5 %
// aborted or timed out at random moments, server delays 0-5 ms, replies
// out of order. See tests/_chaos.ts for what is counted. Prints calls/s and
// exits non-zero on any wrong reply, hang, unexpected or untyped error, or
// server socket left open after the pool closed.
//
//   deno task bench:chaos [-- --seed=N --calls=N --match=fifo|tagged]
//
// The server runs in this process (its sockets are counted), so calls/s
// includes its work.

import {
  type ChaosOptions,
  chaosOptions,
  chaosPassed,
  formatChaos,
  runChaos,
} from "../tests/_chaos.ts";

function arg(name: string): string | undefined {
  const prefix = `--${name}=`;
  return Deno.args.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

const seed = Number(arg("seed") ?? (Math.random() * 2 ** 32) >>> 0);
const match = arg("match") ?? "tagged";
if (match !== "fifo" && match !== "tagged") {
  throw new TypeError(`--match must be fifo or tagged, received ${match}`);
}
const options: ChaosOptions = {
  ...chaosOptions(match, Number(arg("calls") ?? 1_000_000), seed),
  progress: 100_000,
};
console.log(`pipeline chaos: seed ${seed} (rerun: --seed=${seed})`);
const report = await runChaos(options);
console.log(formatChaos(options, report));
if (!chaosPassed(report)) {
  console.error("FAILED");
  Deno.exit(1);
}
console.log("passed");
