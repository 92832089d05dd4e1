// Copyright 2026 the chanpool authors. MIT license.
// Chaos for pipelined TcpPools, shared by tests/pipeline_chaos_test.ts and
// bench/pipeline_chaos.ts: many calls through a pipelined pool to the RPC
// server of tests/_rpc.ts (replies overlapping, delays at random), a share
// of them aborted or timed out at random moments. Each call's body is
// unique, and its reply must carry it back.
//
// What is counted:
// - wrong: a reply whose body is not the call's own (a reply that went to
//   another caller, or a later reply shifted by a timed-out one);
// - hangs: calls still pending `hangAfter` ms after they started (a
//   watchdog checks every 250 ms and ends the run at the first one);
// - expected errors: the call's own timeout (TimeoutError) and the call's
//   own signal's reason (the very object);
// - unexpected typed errors (ConnectionBrokenError, ProtocolError,
//   PoolClosedError, DialError, or a TimeoutError of a call that set no
//   timeout): none can happen here (no kills, no junk, every reply comes
//   within 5 ms, well inside orphanTimeout), so each one is a failure;
// - untyped errors: anything else (a TypeError, an AbortError that is not
//   the signal's reason, ...): a failure.

import {
  ConnectionBrokenError,
  DialError,
  PoolClosedError,
  ProtocolError,
  TcpPool,
  type TcpPoolStats,
  TimeoutError,
} from "../mod.ts";
import { mulberry32 } from "./_random.ts";
import { readRpc, rpc, startRpcServer, tagOf } from "./_rpc.ts";

/** The knobs of one chaos run. */
export interface ChaosOptions {
  match: "fifo" | "tagged";
  calls: number;
  seed: number;
  /** Server delay per request: 0 to this many ms. */
  maxDelay: number;
  /** Share of calls aborted (half) or given a short timeout (half). */
  chaos: number;
  /** Concurrent callers. */
  concurrency: number;
  /** The pool's `max`. */
  max: number;
  maxInFlight: number;
  /**
   * Tagged: the pool's `tagLimit`. `maxInFlight` reuses tags at once, so a
   * tag freed before its reply came would hand that reply to another call.
   */
  tagLimit?: number;
  /** A call pending this long is a hang (every reply is due within maxDelay
   * ms; a queued call waits for a few replies).  */
  hangAfter: number;
  /** Prints progress every this many calls (0: never). */
  progress?: number;
}

/**
 * The chaos of issue 20's acceptance: 5 % of calls given up, server delays
 * of 0–5 ms, 320 callers on 4 connections of 64 in flight, tags reused at
 * once; `calls` and `seed` as given.
 */
export function chaosOptions(
  match: "fifo" | "tagged",
  calls: number,
  seed: number,
): ChaosOptions {
  return {
    match,
    calls,
    seed,
    maxDelay: 5,
    chaos: 0.05,
    concurrency: 320,
    max: 4,
    maxInFlight: 64,
    tagLimit: 64,
    hangAfter: 3_000,
  };
}

/** What a chaos run saw. */
export interface ChaosReport {
  seed: number;
  calls: number;
  ok: number;
  wrong: number;
  hangs: number;
  timedOut: number;
  aborted: number;
  /** Calls given a timeout or an abort that were answered first. */
  answeredAnyway: number;
  unexpectedTyped: number;
  untyped: number;
  /** The first few unexpected or untyped errors, for the report. */
  samples: string[];
  ms: number;
  callsPerSecond: number;
  stats: TcpPoolStats;
  /** Server side: connections accepted, and still open after the grace. */
  accepted: number;
  openAfterClose: number;
}

class ChaosAbort extends Error {
  constructor(readonly call: number) {
    super(`chaos abort of call ${call}`);
    this.name = "ChaosAbort";
  }
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Runs the chaos; the server and pool are started and stopped here. */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  await using server = startRpcServer(o.match, { overlap: true });
  const pool = new TcpPool({
    hostname: "127.0.0.1",
    port: server.port,
    max: o.max,
    pipeline: o.match === "tagged"
      ? {
        match: "tagged",
        maxInFlight: o.maxInFlight,
        tagOf,
        tagLimit: o.tagLimit,
      }
      : { match: "fifo", maxInFlight: o.maxInFlight },
  });
  const random = mulberry32(o.seed);
  const report = {
    seed: o.seed,
    calls: 0,
    ok: 0,
    wrong: 0,
    hangs: 0,
    timedOut: 0,
    aborted: 0,
    answeredAnyway: 0,
    unexpectedTyped: 0,
    untyped: 0,
    samples: [] as string[],
  };
  const note = (i: number, kind: string, error: unknown) => {
    if (report.samples.length < 5) {
      report.samples.push(
        `call ${i}: ${kind}: ${
          error instanceof Error ? `${error.name}: ${error.message}` : error
        }`,
      );
    }
  };
  /** Start times of pending calls, by call number. */
  const pending = new Map<number, number>();
  let next = 0;
  let stop = false;
  let start = 0;

  const one = async (i: number) => {
    const body = new Uint8Array(12);
    const view = new DataView(body.buffer);
    view.setUint32(0, i);
    view.setUint32(4, o.seed);
    view.setUint32(8, (random() * 2 ** 32) >>> 0);
    const delay = Math.floor(random() * (o.maxDelay + 1));
    const roll = random();
    const when = random();
    const aborting = roll < o.chaos / 2;
    const timing = !aborting && roll < o.chaos;
    const timeout = timing ? 1 + Math.floor(when * o.maxDelay) : undefined;
    const controller = aborting ? new AbortController() : undefined;
    const reason = new ChaosAbort(i);
    const options = { timeout, signal: controller?.signal };
    const request = o.match === "tagged"
      ? pool.exchange((tag) => rpc(tag, delay, body), readRpc, options)
      : pool.exchange(rpc(0, delay, body), readRpc, options);
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (controller !== undefined) {
      // At once (queued or batched), after a microtask, or a while later.
      if (when < 1 / 3) controller.abort(reason);
      else if (when < 2 / 3) queueMicrotask(() => controller.abort(reason));
      else {
        timer = setTimeout(
          () => controller.abort(reason),
          Math.floor(random() * (o.maxDelay + 1)),
        );
      }
    }
    pending.set(i, performance.now());
    try {
      const reply = await request;
      if (reply !== null && same(reply.body, body)) {
        report.ok++;
        if (aborting || timing) report.answeredAnyway++;
      } else {
        report.wrong++;
        note(i, "wrong reply", "body differs");
      }
    } catch (error) {
      if (aborting && error === reason) {
        report.aborted++;
      } else if (timing && error instanceof TimeoutError) {
        report.timedOut++;
      } else if (
        error instanceof TimeoutError ||
        error instanceof ConnectionBrokenError ||
        error instanceof ProtocolError || error instanceof PoolClosedError ||
        error instanceof DialError
      ) {
        report.unexpectedTyped++;
        note(i, "unexpected typed error", error);
      } else {
        report.untyped++;
        note(i, "untyped error", error);
      }
    } finally {
      clearTimeout(timer);
      pending.delete(i);
      report.calls++;
      if (o.progress && report.calls % o.progress === 0) {
        const s = (performance.now() - start) / 1000;
        console.log(
          `  ${report.calls} calls settled, ${s.toFixed(1)} s, heap ${
            Math.round(Deno.memoryUsage().heapUsed / 2 ** 20)
          } MiB`,
        );
      }
    }
  };

  const worker = async () => {
    while (!stop && next < o.calls) await one(next++);
  };
  start = performance.now();
  const hung = Promise.withResolvers<void>();
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (const [i, at] of pending) {
      if (now - at > o.hangAfter) {
        report.hangs++;
        note(i, "hang", `pending for ${Math.round(now - at)} ms`);
      }
    }
    if (report.hangs > 0) hung.resolve();
  }, 250);
  const done = Promise.all(Array.from({ length: o.concurrency }, worker));
  try {
    await Promise.race([done, hung.promise]);
  } finally {
    clearInterval(watchdog);
  }
  const ms = performance.now() - start;
  stop = true;
  const stats = pool.stats;
  await pool.close();
  if (report.hangs > 0) {
    // The hung calls never settle: the server's end releases them, if
    // anything does.
    await server.stop();
    await Promise.race([done, new Promise((r) => setTimeout(r, 100))]);
  }
  let openAfterClose = 0;
  try {
    await server.drained(2_000);
  } catch {
    openAfterClose = server.open;
  }
  return {
    ...report,
    ms,
    callsPerSecond: Math.round(report.calls / (ms / 1000)),
    stats,
    accepted: server.accepted,
    openAfterClose,
  };
}

/** The report as lines of text. */
export function formatChaos(o: ChaosOptions, r: ChaosReport): string {
  return [
    `${o.match} chaos, seed ${r.seed}: ${r.calls} calls in ${
      Math.round(r.ms)
    } ms, ${r.callsPerSecond} calls/s (max ${o.max}, maxInFlight ${o.maxInFlight}, ${o.concurrency} callers, delays 0-${o.maxDelay} ms, ${
      o.chaos * 100
    } % aborted or timed out)`,
    `  ok ${r.ok} (of which answered before their abort/timeout: ${r.answeredAnyway}), timed out ${r.timedOut}, aborted ${r.aborted}`,
    ...(o.match === "tagged" ? [`  tagLimit ${o.tagLimit ?? "default"}`] : []),
    `  wrong replies ${r.wrong}, hangs ${r.hangs}, unexpected typed errors ${r.unexpectedTyped}, untyped errors ${r.untyped}`,
    `  pipeline stats: ${JSON.stringify(r.stats.pipeline)}`,
    `  server sockets: accepted ${r.accepted}, still open after close ${r.openAfterClose}`,
    ...r.samples.map((s) => `  ${s}`),
  ].join("\n");
}

/** Whether the run passed: no wrong reply, hang, stray error or socket. */
export function chaosPassed(r: ChaosReport): boolean {
  return r.wrong === 0 && r.hangs === 0 && r.unexpectedTyped === 0 &&
    r.untyped === 0 && r.openAfterClose === 0;
}
