// Copyright 2026 the chanpool authors. MIT license.
// TcpCluster against real processes: redis-servers started on free ports,
// killed (SIGKILL) and restarted on the same port; and, where nothing has
// to be killed, in-process servers. Each acceptance line of issue 19 is a
// test here; every figure a reader needs is printed on one line.

import assert from "node:assert/strict";
import {
  ConnectionBrokenError,
  DialError,
  type FrameReader,
  PoolClosedError,
  ProtocolError,
  serveProxy,
  TcpCluster,
  type TcpClusterEvent,
  TimeoutError,
} from "../mod.ts";
import { freePort, spawnRedisServer } from "../examples/redis.ts";
import { HAVE_REDIS } from "./_redis_server.ts";
import { startFaultServer } from "./_fault_server.ts";

const ignore = !HAVE_REDIS;
const enc = new TextEncoder();

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(
  predicate: () => boolean,
  what: string,
  limit = 5_000,
): Promise<void> {
  const end = performance.now() + limit;
  while (!predicate()) {
    if (performance.now() > end) throw new Error(`Timed out waiting: ${what}`);
    await sleep(2);
  }
}

/** `work`, or a rejection if it has not settled within `ms`. */
function settlesWithin<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`not settled within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** A RESP command. */
function command(...args: string[]): Uint8Array {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${enc.encode(a).length}\r\n${a}\r\n`;
  return enc.encode(out);
}

/** Reads one RESP reply of a simple kind: status, integer, bulk string. */
async function reply(reader: FrameReader): Promise<string | null> {
  const line = await reader.readLine();
  if (line === null) return null;
  if (line[0] === "-") throw new Error(`redis: ${line}`);
  if (line[0] !== "$") return line.slice(1);
  if (Number(line.slice(1)) < 0) return null;
  return await reader.readLine();
}

/** Every redis-server holds its own port under "id": GET id says who answered. */
const GET_ID = command("GET", "id");

/** One command on a connection of its own; its reply's first line. */
async function send(port: number, ...args: string[]): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(command(...args));
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    conn.close();
  }
}

/** A redis-server process: SIGKILL it, start it again on its port. */
interface Redis extends AsyncDisposable {
  readonly port: number;
  /** SIGKILL, then wait for the process to be gone. */
  kill(): Promise<void>;
  /** Starts it on the same port; resolves once it answers (and set its id). */
  start(): Promise<void>;
}

/** `n` distinct free ports (all held open together while they are chosen). */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => l.addr.port);
  for (const l of listeners) l.close();
  return ports;
}

async function startRedis(port: number): Promise<Redis> {
  let child: Deno.ChildProcess | null = null;
  const start = async () => {
    child = spawnRedisServer(port);
    const end = performance.now() + 5_000;
    while (true) {
      try {
        if ((await send(port, "SET", "id", String(port))).startsWith("+OK")) {
          return;
        }
      } catch {
        // not listening yet
      }
      if (performance.now() > end) throw new Error("redis-server not up");
      await sleep(5);
    }
  };
  const kill = async () => {
    const c = child;
    if (c === null) return;
    child = null;
    try {
      c.kill("SIGKILL");
    } catch {
      // exited already
    }
    await c.status;
  };
  await start();
  return { port, kill, start, [Symbol.asyncDispose]: kill };
}

async function redisFleet(n: number): Promise<Redis[] & AsyncDisposable> {
  const fleet = await Promise.all(freePorts(n).map(startRedis));
  return Object.assign(fleet, {
    async [Symbol.asyncDispose]() {
      await Promise.all(fleet.map((r) => r.kill()));
    },
  });
}

/** Shares of a tally, in percent, in `ports` order. */
function shares(tally: Map<string, number>, ports: number[]): number[] {
  let total = 0;
  for (const v of tally.values()) total += v;
  return ports.map((p) => 100 * (tally.get(String(p)) ?? 0) / total);
}

/** `calls` GET id calls by `workers` at once; who answered, by port. */
async function spread(
  cluster: TcpCluster,
  calls: number,
  workers: number,
): Promise<Map<string, number>> {
  const tally = new Map<string, number>();
  let left = calls;
  await Promise.all(Array.from({ length: workers }, async () => {
    while (left > 0) {
      left--;
      const id = await cluster.exchange(GET_ID, reply, { timeout: 10_000 });
      tally.set(id!, (tally.get(id!) ?? 0) + 1);
    }
  }));
  return tally;
}

const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join("/");

// -- Balance --

Deno.test({
  name:
    "TcpCluster: 30 000 calls on 3 equal redis-servers: each gets 1/3 ± 3 %, p2c one call at a time and round-robin under 64 workers (and p2c under 64 workers, printed)",
  ignore,
  fn: async () => {
    await using fleet = await redisFleet(3);
    const ports = fleet.map((r) => r.port);
    const results: string[] = [];
    for (
      const [balance, workers] of [
        ["p2c", 1],
        ["round-robin", 64],
        ["p2c", 64],
      ] as const
    ) {
      await using cluster = new TcpCluster({
        hosts: ports.map((port) => ({ port })),
        balance,
        maxPerHost: 64,
      });
      const got = shares(await spread(cluster, 30_000, workers), ports);
      results.push(`${balance} × ${workers}: ${fmt(got)} %`);
      assert.equal(cluster.stats.calls, 30_000);
      assert.equal(cluster.stats.retries, 0);
      // Under load p2c also follows the hosts' speed: on a loaded machine
      // one redis-server answers more slowly and gets less (by design).
      const within = balance === "p2c" && workers > 1 ? 10 : 3;
      for (const s of got) assert.ok(Math.abs(s - 100 / 3) <= within, fmt(got));
    }
    console.log(`equal hosts: ${results.join("; ")}`);
  },
});

Deno.test({
  name:
    "TcpCluster: weights 3:1:1 give 60/20/20 ± 3 % of 30 000 calls: round-robin under 64 workers, p2c one call at a time (and p2c under 64 workers, printed)",
  ignore,
  fn: async () => {
    await using fleet = await redisFleet(3);
    const ports = fleet.map((r) => r.port);
    const hosts = ports.map((port, i) => ({ port, weight: i === 0 ? 3 : 1 }));
    const want = [60, 20, 20];
    const results: string[] = [];
    for (
      const [balance, workers] of [
        ["round-robin", 64],
        ["p2c", 1],
        ["p2c", 64],
      ] as const
    ) {
      await using cluster = new TcpCluster({ hosts, balance, maxPerHost: 64 });
      const got = shares(await spread(cluster, 30_000, workers), ports);
      results.push(`${balance} × ${workers}: ${fmt(got)} %`);
      if (balance === "p2c" && workers > 1) {
        // Under load p2c follows the hosts' speed too (the README says
        // why): on a busy 2-core machine one redis-server can be slowed
        // enough to take the heavy host's share, so this is printed only.
        continue;
      }
      got.forEach((s, i) => assert.ok(Math.abs(s - want[i]!) <= 3, fmt(got)));
    }
    console.log(`weights 3:1:1: ${results.join("; ")}`);
  },
});

// -- A host killed --

/** 64 workers calling until `stop()`; what they saw. */
function load(
  cluster: TcpCluster,
  idempotent: boolean,
): {
  ok: Map<string, number>;
  failures: unknown[];
  firstFrom: (port: number, after: number) => number;
  stop: () => Promise<void>;
} {
  const ok = new Map<string, number>();
  const failures: unknown[] = [];
  // When each port first answered after a time: [time, port] in order.
  const answered: [number, string][] = [];
  let stopped = false;
  const workers = Array.from({ length: 64 }, async () => {
    while (!stopped) {
      try {
        const id = await cluster.exchange(GET_ID, reply, {
          timeout: 5_000,
          idempotent,
        });
        ok.set(id!, (ok.get(id!) ?? 0) + 1);
        answered.push([performance.now(), id!]);
      } catch (error) {
        failures.push(error);
        await sleep(1);
      }
    }
  });
  return {
    ok,
    failures,
    firstFrom: (port, after) =>
      answered.find(([t, id]) => t >= after && id === String(port))?.[0] ??
        Infinity,
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
  };
}

Deno.test({
  name:
    "TcpCluster: a redis-server killed under 64 workers: no idempotent call fails, it is ejected at once, gets no calls while ejected, and serves again ≤ 1.5 s after it is back (baseEjectionTime 1 000)",
  ignore,
  fn: async () => {
    await using fleet = await redisFleet(3);
    const ports = fleet.map((r) => r.port);
    await using cluster = new TcpCluster({
      hosts: ports.map((port) => ({ port })),
      outlier: { baseEjectionTime: 1_000 },
    });
    const victim = fleet[2]!;
    const address = `127.0.0.1:${victim.port}`;
    const info = () => cluster.hosts.find((h) => h.address === address)!;
    const events: (TcpClusterEvent & { at: number; calls: number })[] = [];
    cluster.on("statechange", (e) => {
      if (e.address === address && e.change !== "state") {
        events.push({ ...e, at: performance.now(), calls: info().calls });
      }
    });
    const run = load(cluster, true);
    await sleep(300);
    const killedAt = performance.now();
    await victim.kill();
    await until(() => info().ejected, "the killed host ejected");
    const ejected = events.find((e) => e.change === "ejected")!;
    const callsAtEjection = ejected.calls;
    // Down for 1.2 s: past its first ejection time, its probes failing.
    await sleep(1_200 - (performance.now() - killedAt));
    assert.equal(info().calls, callsAtEjection, "no calls while ejected");
    await victim.start();
    const backAt = performance.now();
    await until(() => run.firstFrom(victim.port, backAt) < Infinity, "served");
    const servedAfter = run.firstFrom(victim.port, backAt) - backAt;
    const returned = events.find((e) => e.change === "returned")!;
    await sleep(200);
    await run.stop();
    console.log(
      `killed: ejected ${
        (ejected.at - killedAt).toFixed(1)
      } ms after the kill (${
        ejected.error instanceof DialError ? "refused dial" : "failures"
      }), ${
        (returned.at - backAt).toFixed(0)
      } ms from back to returned, first reply ${
        servedAfter.toFixed(0)
      } ms after it was back; ${run.failures.length} failures, ${cluster.stats.retries} retries of ${cluster.stats.calls} calls`,
    );
    assert.deepEqual(run.failures, []);
    assert.ok(ejected.at - killedAt <= 1_000, "ejected soon after the kill");
    assert.equal(returned.calls, callsAtEjection, "no calls while ejected");
    assert.ok(servedAfter <= 1_500, `served ${servedAfter} ms after back`);
    assert.ok(cluster.stats.retries > 0, "calls were retried");
  },
});

Deno.test({
  name:
    "TcpCluster: idempotent: false, a redis-server killed under 64 workers: caller-visible failures ≤ the calls in flight on it at the kill",
  ignore,
  fn: async () => {
    await using fleet = await redisFleet(3);
    const ports = fleet.map((r) => r.port);
    await using cluster = new TcpCluster({
      hosts: ports.map((port) => ({ port })),
    });
    const victim = fleet[1]!;
    const address = `127.0.0.1:${victim.port}`;
    const info = () => cluster.hosts.find((h) => h.address === address)!;
    const run = load(cluster, false);
    await sleep(300);
    const inFlight = info().inFlight;
    const killing = victim.kill(); // the signal is sent now
    await killing;
    await until(() => info().ejected, "the killed host ejected");
    await sleep(300);
    await run.stop();
    const broken = run.failures.filter((e) =>
      e instanceof ConnectionBrokenError
    )
      .length;
    console.log(
      `idempotent: false: ${run.failures.length} failures (${broken} ConnectionBrokenError), ${inFlight} calls in flight on it at the kill, ${cluster.stats.retries} retries`,
    );
    assert.ok(inFlight > 0);
    assert.ok(
      run.failures.length <= inFlight,
      `${run.failures.length} failures > ${inFlight} in flight`,
    );
    for (const e of run.failures) {
      assert.ok(e instanceof ConnectionBrokenError, String(e));
    }
  },
});

// -- Outlier detection --

function id(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

Deno.test("TcpCluster: a host that accepts and hangs up is ejected at its 5th failure in a row (not before), gets no calls while ejected, is ejected twice as long the next time, and the count decays while it is healthy", async () => {
  await using good = startFaultServer();
  await using bad = startFaultServer({ mode: { closeBeforeResponse: true } });
  const base = 200;
  await using cluster = new TcpCluster({
    hosts: [{ port: good.port }, { port: bad.port }],
    balance: "round-robin",
    outlier: { baseEjectionTime: base },
  });
  const address = `127.0.0.1:${bad.port}`;
  const info = () => cluster.hosts.find((h) => h.address === address)!;
  let seen = 0; // failures the caller saw
  const ejections: { at: number; seen: number; time: number }[] = [];
  const returns: number[] = [];
  cluster.on("statechange", (e) => {
    if (e.address !== address) return;
    const now = performance.now();
    if (e.change === "ejected") {
      ejections.push({ at: now, seen, time: info().ejectedUntil! - now });
    }
    if (e.change === "returned") returns.push(now);
  });
  let n = 0;
  const call = async () => {
    try {
      await cluster.request(id(n++), { idempotent: false, timeout: 2_000 });
    } catch (error) {
      assert.ok(error instanceof ConnectionBrokenError, String(error));
      seen++;
      return performance.now();
    }
    return undefined;
  };
  // Round-robin alternates: the 5th failure comes with the 10th call.
  let fifth = 0;
  while (ejections.length === 0) {
    const failedAt = await call();
    if (failedAt !== undefined && seen === 5) fifth = failedAt;
    assert.ok(n <= 10, "ejected by the 10th call");
  }
  const [first] = ejections;
  assert.equal(first!.seen, 4, "ejected with the 5th failure, not before");
  assert.equal(seen, 5);
  assert.ok(first!.at <= fifth + 50);
  // Ejected: every call goes to the good host.
  const requests = bad.stats.requests;
  while (info().ejected) {
    assert.equal(await call(), undefined);
  }
  assert.equal(bad.stats.requests, requests, "no calls while ejected");
  // Back after its time; five failures later, ejected for twice as long.
  while (ejections.length === 1) await call();
  assert.equal(seen, 10);
  assert.ok(returns[0]! - first!.at >= base);
  // Healthy for > 2 × base: the count decays to 0, the next ejection is base.
  await until(() => !info().ejected, "returned");
  bad.setMode("echo");
  const healthyFrom = performance.now();
  while (performance.now() - healthyFrom < 2.5 * base) {
    assert.equal(await call(), undefined);
    await sleep(5);
  }
  bad.setMode({ closeBeforeResponse: true });
  while (ejections.length === 2) await call();
  const times = ejections.map((e) => Math.round(e.time));
  console.log(
    `outlier: ejected ${
      (first!.at - fifth).toFixed(1)
    } ms after its 5th failure; ejection times ${times.join(", ")} ms`,
  );
  assert.ok(Math.abs(times[0]! - base) <= 20, `${times}`);
  assert.ok(Math.abs(times[1]! - 2 * base) <= 20, `${times}`);
  assert.ok(Math.abs(times[2]! - base) <= 20, `${times}`);
  assert.equal(cluster.stats.ejections, 3);
});

Deno.test("TcpCluster: a call that broke is retried once on another host if idempotent; idempotent: false, a TimeoutError, a ProtocolError are not; a retry gets what is left of the call's timeout", async () => {
  await using bad = startFaultServer({ mode: { closeBeforeResponse: true } });
  await using good = startFaultServer();
  const hosts = [{ port: bad.port }, { port: good.port }];
  {
    // Round-robin starts with the first host: every other call tries it.
    await using cluster = new TcpCluster({ hosts, balance: "round-robin" });
    for (let i = 0; i < 8; i++) {
      const reply = await cluster.request(id(i), { timeout: 2_000 });
      assert.deepEqual(reply, id(i));
    }
    assert.equal(bad.stats.requests, 4, "4 first tries on the bad host");
    assert.equal(cluster.stats.retries, 4);
  }
  {
    await using cluster = new TcpCluster({ hosts, balance: "round-robin" });
    await assert.rejects(
      cluster.request(id(0), { idempotent: false, timeout: 2_000 }),
      ConnectionBrokenError,
    );
    assert.equal(cluster.stats.retries, 0);
  }
  bad.setMode({ delay: 1_000 });
  {
    await using cluster = new TcpCluster({ hosts, balance: "round-robin" });
    await assert.rejects(cluster.request(id(0), { timeout: 50 }), TimeoutError);
    await assert.rejects(
      cluster.request(id(1), { timeout: 2_000, verify: () => false }),
      ProtocolError,
    );
    assert.equal(cluster.stats.retries, 0);
    assert.equal(good.stats.requests, 8 + 1, "the verified one only");
  }
  // The first try is refused at once; the retry has the rest of 200 ms,
  // and the host it goes to answers in 1 s.
  good.setMode({ delay: 1_000 });
  {
    await using cluster = new TcpCluster({
      hosts: [{ port: await freePort() }, { port: good.port }],
      balance: "round-robin",
    });
    const start = performance.now();
    await assert.rejects(cluster.request(id(0), { timeout: 200 }), (e) => {
      assert.ok(e instanceof TimeoutError, String(e));
      assert.ok(e.timeout <= 200);
      return true;
    });
    const took = performance.now() - start;
    assert.ok(took >= 150 && took < 600, `${took} ms`);
    assert.equal(cluster.stats.retries, 1);
  }
});

Deno.test("TcpCluster: never ejects below one host, nor more than maxEjectionPercent; with none healthy, calls go to every host", async () => {
  // Three ports nothing listens on: every dial is refused.
  const ports = freePorts(3);
  await using cluster = new TcpCluster({
    hosts: ports.map((port) => ({ port })),
    outlier: { maxEjectionPercent: 100 },
    failFast: true, // no wait for the next probe of a host that is down
  });
  for (let i = 0; i < 12; i++) {
    await assert.rejects(cluster.request(id(i), { timeout: 2_000 }), DialError);
  }
  assert.equal(cluster.stats.ejected, 2, "all but one");
  assert.ok(cluster.stats.panics > 0);
  assert.ok(cluster.hosts.every((h) => h.calls > 0), "every host tried");
  await using half = new TcpCluster({
    hosts: ports.map((port) => ({ port })),
    failFast: true,
  });
  for (let i = 0; i < 12; i++) {
    await assert.rejects(half.request(id(i), { timeout: 2_000 }), DialError);
  }
  assert.equal(half.stats.ejected, 1, "50 % of 3");
});

// -- undici #4839 --

Deno.test({
  name:
    "TcpCluster: undici #4839: 2 redis-servers down 5 s, one comes back: ≥ 99 % of calls succeed within 2 s of its return",
  ignore,
  fn: async () => {
    await using fleet = await redisFleet(2);
    await using cluster = new TcpCluster({
      hosts: fleet.map((r) => ({ port: r.port })),
    });
    await spread(cluster, 200, 16); // both pools in use
    const downAt = performance.now();
    await Promise.all(fleet.map((r) => r.kill()));
    // 16 workers call all along; each call may take 2 s.
    const calls: { start: number; end: number; ok: boolean }[] = [];
    let stopped = false;
    const workers = Array.from({ length: 16 }, async () => {
      while (!stopped) {
        const start = performance.now();
        let ok = true;
        try {
          await cluster.exchange(GET_ID, reply, { timeout: 2_000 });
        } catch {
          ok = false;
        }
        calls.push({ start, end: performance.now(), ok });
        if (!ok) await sleep(1);
      }
    });
    await sleep(5_000 - (performance.now() - downAt));
    // The one that comes back is the ejected one, its ejection (30 s) not
    // over: it is back because no other host is healthy.
    const back = fleet.find((r) =>
      cluster.hosts.find((h) => h.address === `127.0.0.1:${r.port}`)!.ejected
    )!;
    assert.ok(back, "one host ejected");
    await back.start();
    const backAt = performance.now();
    await sleep(3_000);
    stopped = true;
    await Promise.all(workers);
    const after = calls.filter((c) => c.start >= backAt);
    const okAfter = after.filter((c) => c.ok);
    const within = okAfter.filter((c) => c.end - backAt <= 2_000);
    let firstOk = Infinity;
    let lastFailure = -Infinity;
    let slowest = 0;
    for (const c of calls) {
      if (!c.ok) lastFailure = Math.max(lastFailure, c.end - backAt);
      else if (c.start >= backAt) {
        firstOk = Math.min(firstOk, c.end - backAt);
        slowest = Math.max(slowest, c.end - c.start);
      }
    }
    // The calls made in the first 2 s after its return.
    const early = after.filter((c) => c.start - backAt <= 2_000);
    const earlyOk = early.filter((c) => c.ok && c.end - backAt <= 2_000);
    console.log(
      `undici #4839: of ${after.length} calls made after the return, ${okAfter.length} succeeded (${
        (100 * okAfter.length / after.length).toFixed(2)
      } %); of the ${early.length} made in its first 2 s, ${earlyOk.length} succeeded within them (${
        (100 * earlyOk.length / early.length).toFixed(2)
      } %); first success ${firstOk.toFixed(0)} ms, last failure ${
        lastFailure.toFixed(0)
      } ms after it; slowest ${slowest.toFixed(0)} ms`,
    );
    assert.ok(okAfter.length >= 0.99 * after.length);
    assert.ok(earlyOk.length >= 0.99 * early.length);
    assert.ok(within.length > 0 && firstOk <= 2_000);
  },
});

// -- Hash routing --

/** `n` line servers that answer every line with their own port. */
function portServers(n: number): { ports: number[] } & AsyncDisposable {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const conns = new Set<Deno.Conn>();
  const loops = listeners.map(async (l) => {
    const answer = enc.encode(`${l.addr.port}\n`);
    for await (const conn of l) {
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(4096);
        try {
          while (true) {
            const got = await conn.read(buf);
            if (got === null) break;
            for (let i = 0; i < got; i++) {
              if (buf[i] === 0x0a) await conn.write(answer);
            }
          }
        } catch {
          // the client went away
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch {
            // closed
          }
        }
      })();
    }
  });
  return {
    ports: listeners.map((l) => l.addr.port),
    async [Symbol.asyncDispose]() {
      for (const l of listeners) l.close();
      await Promise.all(loops);
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // closed
        }
      }
      await until(() => conns.size === 0, "server conns closed");
    },
  };
}

const WHICH = enc.encode("which?\n");

Deno.test("TcpCluster: hash routing: removing 1 of 5 hosts remaps only the keys that were on it (≤ 22 % of 10 000), and each host had its share", async () => {
  await using servers = portServers(5);
  let list = servers.ports.map((port) => ({ port }));
  await using cluster = new TcpCluster({
    hosts: () => Promise.resolve(list),
    balance: { hash: (call) => call.key! },
    refreshInterval: 0,
  });
  const route = async () => {
    const out: string[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < 10_000) {
        const key = next++;
        out[key] = (await cluster.exchange(WHICH, (r) => r.readLine(), {
          key: `user:${key}`,
          timeout: 5_000,
        }))!;
      }
    }));
    return out;
  };
  const before = await route();
  const counts = servers.ports.map((p) =>
    before.filter((x) => x === String(p)).length
  );
  const gone = String(servers.ports[2]);
  list = list.filter((h) => String(h.port) !== gone);
  const removed: string[] = [];
  cluster.on("statechange", (e) => {
    if (e.change === "removed") removed.push(e.address);
  });
  await cluster.refresh();
  assert.deepEqual(removed, [`127.0.0.1:${gone}`]);
  const after = await route();
  const moved = before.filter((x, i) => x !== after[i]);
  console.log(
    `rendezvous: keys per host ${
      counts.join("/")
    }; ${moved.length} of 10 000 moved when one host left`,
  );
  for (const c of counts) assert.ok(Math.abs(c - 2_000) <= 200, `${counts}`);
  assert.ok(moved.every((x) => x === gone), "only the gone host's keys move");
  assert.equal(moved.length, before.filter((x) => x === gone).length);
  assert.ok(moved.length <= 2_200);
  // It comes back: every key goes home again.
  list = servers.ports.map((port) => ({ port }));
  await cluster.refresh();
  assert.deepEqual(await route(), before);
});

// -- Hosts from a function --

Deno.test("TcpCluster: a hosts function: calls wait for its first list; a failed run keeps the list and is reported; a removed host's pool is closed", async () => {
  await using servers = portServers(2);
  const [a, b] = servers.ports as [number, number];
  let next: () => Promise<unknown> = () =>
    Promise.resolve([`127.0.0.1:${a}`, `127.0.0.1:${b}`]);
  await using cluster = new TcpCluster({
    hosts: () => next() as Promise<string[]>,
    refreshInterval: 0,
  });
  const line = () =>
    cluster.exchange(WHICH, (r) => r.readLine(), { timeout: 1_000 });
  assert.ok([String(a), String(b)].includes((await line())!));
  const errors: unknown[] = [];
  cluster.on("refresherror", (e) => errors.push(e));
  const boom = new Error("DNS is down");
  next = () => Promise.reject(boom);
  await assert.rejects(cluster.refresh(), (e) => e === boom);
  assert.equal(cluster.refreshError, boom);
  next = () => Promise.resolve([]);
  await assert.rejects(cluster.refresh(), RangeError);
  next = () => Promise.resolve([`127.0.0.1:${a}`, `127.0.0.1:${a}`]);
  await assert.rejects(cluster.refresh(), /lists 127\.0\.0\.1:\d+ twice/);
  assert.deepEqual(errors.length, 3);
  assert.equal(cluster.hosts.length, 2, "the list is kept");
  assert.equal(cluster.stats.refreshErrors, 3);
  // b leaves while a call holds one of its connections.
  await using held = await cluster.borrow({ key: "x" });
  const heldPort = (held.remoteAddr as Deno.NetAddr).port;
  const stays = heldPort === a ? b : a;
  next = () => Promise.resolve([{ port: stays }]);
  await cluster.refresh();
  assert.equal(cluster.refreshError, undefined);
  assert.deepEqual(cluster.hosts.map((h) => h.address), [
    `127.0.0.1:${stays}`,
  ]);
  for (let i = 0; i < 20; i++) assert.equal(await line(), String(stays));
  // The removed host's pool closes once its connection is released.
  assert.equal(cluster.stats.agent.keys, 1);
  held.release();
  await until(() => cluster.stats.agent.open === 1, "the held one closed");
});

Deno.test("TcpCluster: close({ force: true }) also closes a removed host's connection still in use", async () => {
  await using servers = portServers(2);
  let list = servers.ports.map((port) => ({ port }));
  const cluster = new TcpCluster({
    hosts: () => Promise.resolve(list),
    refreshInterval: 0,
  });
  const held = await cluster.borrow({ timeout: 1_000 });
  const port = (held.remoteAddr as Deno.NetAddr).port;
  list = list.filter((h) => h.port !== port);
  await cluster.refresh();
  let closed = false;
  const closing = cluster.close({ force: true }).then(() => closed = true);
  await until(() => closed, "close({ force: true }) resolved", 2_000);
  await closing;
  await assert.rejects(held.write(WHICH), PoolClosedError);
  held.release();
});

Deno.test("TcpCluster: a call waiting for a hosts function's first list keeps its own timeout and signal", async () => {
  await using servers = portServers(1);
  let deliver = () => {};
  const delivered = new Promise<void>((r) => deliver = r);
  await using cluster = new TcpCluster({
    hosts: async () => {
      await delivered;
      return [{ port: servers.ports[0]! }];
    },
    refreshInterval: 0,
  });
  const ask = (options: { timeout?: number; signal?: AbortSignal }) =>
    cluster.exchange(WHICH, (r) => r.readLine(), options);
  const start = performance.now();
  await assert.rejects(settlesWithin(ask({ timeout: 100 }), 2_000), (e) => {
    assert.ok(e instanceof TimeoutError, String(e));
    assert.match(e.message, /waiting for the hosts/);
    return true;
  });
  const took = performance.now() - start;
  const reason = new Error("caller gave up");
  const aborting = ask({ signal: AbortSignal.abort(reason) });
  await assert.rejects(aborting, (e) => e === reason);
  const waiting = ask({ timeout: 5_000 });
  deliver();
  assert.equal(await waiting, String(servers.ports[0]));
  assert.ok(took >= 90 && took < 1_000, `${took} ms`);
  assert.equal(cluster.stats.calls, 1, "only the last one was sent");
});

Deno.test("TcpCluster: close() ends the wait of calls for a hosts function that never settles", async () => {
  const cluster = new TcpCluster({
    hosts: () => new Promise<never>(() => {}), // ignores its signal
    refreshInterval: 0,
  });
  const waiting = settlesWithin(cluster.request(new Uint8Array(1)), 2_000);
  await cluster.close();
  await assert.rejects(waiting, PoolClosedError);
});

Deno.test("TcpCluster: a hosts function that fails at first: calls reject with DialError (its error as cause) until a run succeeds", async () => {
  await using servers = portServers(1);
  let fail = true;
  await using cluster = new TcpCluster({
    hosts: () =>
      fail
        ? Promise.reject(new Error("no such name"))
        : Promise.resolve([{ port: servers.ports[0]! }]),
    refreshInterval: 0,
  });
  await assert.rejects(cluster.request(new Uint8Array(1)), (e) => {
    assert.ok(e instanceof DialError);
    assert.equal((e.cause as Error).message, "no such name");
    return true;
  });
  fail = false;
  await cluster.refresh();
  assert.equal(
    await cluster.exchange(WHICH, (r) => r.readLine(), { timeout: 1_000 }),
    String(servers.ports[0]),
  );
});

// -- serveProxy --

Deno.test("serveProxy over a TcpCluster: sessions spread over its hosts, a host that is gone is skipped", async () => {
  await using servers = portServers(3);
  const dead = await freePort();
  await using cluster = new TcpCluster({
    hosts: [...servers.ports.map((port) => ({ port })), { port: dead }],
  });
  const errors: unknown[] = [];
  await using server = serveProxy({ hostname: "127.0.0.1", port: 0 }, cluster, {
    onError: (e) => errors.push(e),
  });
  const seen = new Map<string, number>();
  for (let i = 0; i < 60; i++) {
    const client = await Deno.connect({ port: server.addr.port });
    await client.write(WHICH);
    await client.closeWrite();
    const text = (await new Response(client.readable).text()).trim();
    seen.set(text, (seen.get(text) ?? 0) + 1);
  }
  console.log(`proxy over a cluster: sessions per host ${[...seen.values()]}`);
  assert.deepEqual(errors, []);
  assert.deepEqual(
    [...seen.keys()].sort(),
    servers.ports.map(String).sort(),
  );
  const gone = cluster.hosts.find((h) => h.address === `127.0.0.1:${dead}`)!;
  assert.equal(gone.ejected, true);
  await until(() => cluster.hosts.every((h) => h.inFlight === 0), "released");
});

// -- Arguments --

Deno.test("TcpCluster: arguments are checked first (TypeError/RangeError naming the option)", async () => {
  const hosts = ["127.0.0.1:1"];
  const bad: [unknown, RegExp, ErrorConstructor][] = [
    [undefined, /options must be an object/, TypeError],
    [{ hosts: "127.0.0.1:1" }, /hosts must be a list/, TypeError],
    [{ hosts: [] }, /hosts is an empty list/, RangeError],
    [{ hosts: ["nope"] }, /hosts\[0\].*address must be/, TypeError],
    [{ hosts: [{ port: 70_000 }] }, /hosts\[0\].*port/, RangeError],
    [{ hosts: [{ port: 1, weight: 0 }] }, /hosts\[0\]\.weight/, RangeError],
    [{ hosts: [{ port: 1, weight: "2" }] }, /hosts\[0\]\.weight/, TypeError],
    [{ hosts: ["127.0.0.1:1", { port: 1 }] }, /twice/, RangeError],
    [{ hosts, balance: "random" }, /balance must be/, TypeError],
    [{ hosts, balance: { hash: 1 } }, /balance must be/, TypeError],
    [{ hosts, outlier: 5 }, /outlier must be an object/, TypeError],
    [
      { hosts, outlier: { consecutiveFailures: 0 } },
      /outlier\.consecutiveFailures/,
      RangeError,
    ],
    [
      { hosts, outlier: { baseEjectionTime: -1 } },
      /outlier\.baseEjectionTime/,
      RangeError,
    ],
    [
      { hosts, outlier: { baseEjectionTime: 10, maxEjectionTime: 5 } },
      /outlier\.maxEjectionTime/,
      RangeError,
    ],
    [
      { hosts, outlier: { maxEjectionPercent: 101 } },
      /outlier\.maxEjectionPercent/,
      RangeError,
    ],
    [{ hosts, refreshInterval: -1 }, /refreshInterval/, RangeError],
    [{ hosts, refreshInterval: "1" }, /refreshInterval/, TypeError],
    [{ hosts, maxTotal: 0 }, /maxTotal/, RangeError],
    [{ hosts, port: 1 }, /port is the agent's/, TypeError],
    [{ hosts, backoff: { max: -1 } }, /backoff/, RangeError],
  ];
  for (const [options, message, type] of bad) {
    assert.throws(
      () => new TcpCluster(options as never),
      (e) => e instanceof type && message.test((e as Error).message),
      JSON.stringify(options),
    );
  }
  let hashed = 0;
  await using cluster = new TcpCluster({
    hosts,
    balance: {
      hash: (call) => {
        hashed++;
        return call.key as string;
      },
    },
  });
  const calls: [() => Promise<unknown>, RegExp, ErrorConstructor][] = [
    [() => cluster.request("x" as never, { key: "k" }), /payload/, TypeError],
    [
      () => cluster.exchange(new Uint8Array(1), 1 as never, { key: "k" }),
      /read must be a function/,
      TypeError,
    ],
    [
      () => cluster.request(new Uint8Array(1), { key: "k", timeout: -1 }),
      /timeout/,
      RangeError,
    ],
    [
      () =>
        cluster.request(new Uint8Array(1), {
          key: "k",
          idempotent: 1 as never,
        }),
      /idempotent/,
      TypeError,
    ],
    [
      () => cluster.request(new Uint8Array(1), { key: 5 as never }),
      /key must be a string/,
      TypeError,
    ],
    [
      () => cluster.request(new Uint8Array(5 * 1024 * 1024), { key: "k" }),
      /maxFrameSize/,
      RangeError,
    ],
    [
      () => cluster.request(new Uint8Array(1)),
      /balance\.hash must return a string/,
      TypeError,
    ],
    [
      () => cluster.borrow({ key: "k", fresh: 1 as never }),
      /fresh/,
      TypeError,
    ],
  ];
  for (const [call, message, type] of calls) {
    await assert.rejects(
      call(),
      (e) => e instanceof type && message.test((e as Error).message),
    );
  }
  assert.equal(cluster.hosts[0]!.calls, 0, "nothing was sent anywhere");
  assert.equal(cluster.stats.calls, 0);
  assert.ok(hashed <= 1, "hash runs after the other checks");
  assert.throws(() => cluster.on("nope" as never, () => {}), TypeError);
  await assert.rejects(cluster.close({ force: 1 } as never), TypeError);
  await cluster.close();
  await assert.rejects(
    cluster.request(new Uint8Array(1), { key: "k" }),
    PoolClosedError,
  );
});
