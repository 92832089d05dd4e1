// Copyright 2026 the chanpool authors. MIT license.
/**
 * chanpool: pooled TCP connections for Deno, built on a Go-like
 * {@linkcode Channel} with {@linkcode select}.
 *
 * @example Usage
 * ```ts
 * import { Channel, select } from "@chanpool/chanpool";
 * import assert from "node:assert/strict";
 *
 * const results = new Channel<number>({ capacity: 1 });
 * const r = await select([{ send: results, value: 42 }]);
 * assert.equal(r.index, 0);
 * assert.equal(await results.receive(), 42);
 * ```
 *
 * @module
 */

export * from "./channel.ts";
export * from "./pool.ts";
export * from "./framing.ts";
export * from "./tcp.ts";
export * from "./proxy.ts";
export * from "./agent.ts";
export * from "./cluster.ts";
