// Copyright 2026 the chanpool authors. MIT license.
// serveProxy against HAProxy in front of the same redis-server, driven by
// redis-benchmark, in one run with interleaved rounds (issue 19).
//
// Starts, all on 127.0.0.1 and free ports:
// - redis-server (no persistence);
// - HAProxy in TCP mode (`mode tcp`, one frontend, one backend: the redis
//   port), `nbthread 1`: one thread, as the proxy has one JavaScript thread
//   (config written to a temporary directory, `haproxy -db` in the
//   foreground);
// - serveProxy in its own Deno process (bench/_proxy_server.ts: a TcpPool
//   with `max` 64, `minIdle` 4, no reuse: the proxy's defaults), so it
//   shares no event loop with this script.
// Then, round after round, `redis-benchmark -c 20 -t get,set -n N --csv`
// against each proxy in turn (the order rotates every round), and prints
// each round's requests per second (SET, GET, and both together: 2N over
// the time of both tests), chanpool's throughput as a percentage of
// HAProxy's, the proxy process's CPU time per request (from /proc, where
// readable), and the medians over rounds. Bar: chanpool ≥ 95 % of HAProxy.
// Every process it started is stopped at the end; it skips with a note when
// haproxy, redis-server or redis-benchmark is missing.
//
// Run: deno task bench:haproxy
//   (deno run --allow-net=127.0.0.1 --allow-run --allow-env
//    --allow-read --allow-write bench/proxy_haproxy.ts; --allow-write for
//    the temporary directory of HAProxy's config)
//
// Environment (all optional):
//   PROXY_BENCH_ROUNDS    rounds (default 5)
//   PROXY_BENCH_REQUESTS  requests per test, -n (default 100000)
//   PROXY_BENCH_PLAIN=1   adds a plain Deno copy loop (no chanpool) as a
//                         third proxy: the floor of a proxy on Deno's TCP API
//   PROXY_BENCH_BASELINE  paths of other chanpool trees, separated by `:`
//                         (e.g. `git archive` of older commits): each one's
//                         serveProxy runs as one more proxy, named by its
//                         directory, to compare versions in one run
//   PROXY_BENCH_PROF      a directory: the chanpool proxy runs with
//                         --cpu-prof and writes its profile there
//
// Named without `_bench`: `deno bench` would load it as a bench module.

import { freePort, spawnRedisServer } from "../examples/redis.ts";
import { spawnServer } from "./_echo_server.ts";

const CLIENTS = 20;

/** Whether `command` runs here (`--version`-like `args`). */
function have(command: string, args: string[]): boolean {
  try {
    return new Deno.Command(command, { args, stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

function envNumber(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    throw new RangeError(
      `Cannot run the bench: ${name} must be a positive integer, received ${raw}`,
    );
  }
  return n;
}

/**
 * One RESP command on a new connection; resolves with the reply's text
 * (empty if none came within a second: the connection is then closed).
 */
async function command(port: number, ...args: string[]): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed */ }
  }, 1_000);
  try {
    const enc = new TextEncoder();
    let out = `*${args.length}\r\n`;
    for (const a of args) out += `$${enc.encode(a).length}\r\n${a}\r\n`;
    await conn.write(enc.encode(out));
    const buf = new Uint8Array(1024);
    const n = await conn.read(buf);
    return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/** Waits until a PING through `port` answers PONG (5 s at most). */
async function ready(port: number, what: string): Promise<void> {
  const end = performance.now() + 5_000;
  while (true) {
    try {
      if ((await command(port, "PING")).startsWith("+PONG")) return;
    } catch {
      // not listening yet
    }
    if (performance.now() > end) {
      throw new Error(`Cannot run the bench: ${what} did not answer PING`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Stops a child: `signal`, then SIGKILL after 2 s; waits for its exit. */
async function stop(
  child: Deno.ChildProcess,
  signal: Deno.Signal = "SIGTERM",
): Promise<void> {
  try {
    child.kill(signal);
  } catch {
    // exited already
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 2_000);
  try {
    await child.status;
  } finally {
    clearTimeout(timer);
  }
}

/** A minimal TCP-mode HAProxy config: `port` to the redis `upstream`. */
function haproxyConfig(port: number, upstream: number): string {
  return [
    "global",
    "  nbthread 1",
    "  maxconn 4096",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "frontend fe",
    `  bind 127.0.0.1:${port}`,
    "  default_backend be",
    "backend be",
    `  server redis 127.0.0.1:${upstream}`,
    "",
  ].join("\n");
}

/**
 * Process CPU time in ms, user and system, from /proc (read with `cat`:
 * Deno grants /proc only with --allow-all); NaN where unreadable.
 */
function cpuMs(pid: number): { user: number; system: number } {
  try {
    const out = new Deno.Command("cat", {
      args: [`/proc/${pid}/stat`],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (!out.success) return { user: NaN, system: NaN };
    const stat = new TextDecoder().decode(out.stdout);
    // the fields after the command name, which is in parentheses
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime, stime: fields 14 and 15 of proc_pid_stat(5), in clock ticks
    // (USER_HZ, 100 on Linux)
    return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 };
  } catch {
    return { user: NaN, system: NaN };
  }
}

/** One proxy under test. */
interface Contender {
  name: string;
  port: number;
  pid: number;
}

/** What one redis-benchmark run through a proxy measured. */
interface Run {
  set: number;
  get: number;
  /** Both tests together: 2N requests over the time of both. */
  both: number;
  /** The proxy's CPU time per request, in µs (NaN: /proc unreadable). */
  cpu: number;
  /** Of which in user space (the rest is the kernel's: syscalls, TCP). */
  user: number;
}

async function benchmark(
  c: Contender,
  requests: number,
): Promise<Run> {
  const before = cpuMs(c.pid);
  const out = await new Deno.Command("redis-benchmark", {
    args: [
      "-h",
      "127.0.0.1",
      "-p",
      String(c.port),
      "-c",
      String(CLIENTS),
      "-t",
      "get,set",
      "-n",
      String(requests),
      "--csv",
    ],
    stdout: "piped",
    stderr: "piped",
    // a proxy that stops answering fails the run instead of hanging it
    signal: AbortSignal.timeout(600_000),
  }).output();
  const after = cpuMs(c.pid);
  const perRequest = (ms: number) => ms * 1_000 / (2 * requests);
  const user = perRequest(after.user - before.user);
  const cpu = user + perRequest(after.system - before.system);
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `Cannot run the bench: redis-benchmark through ${c.name} failed: ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  const rps = (test: string) => {
    const line = text.split("\n").find((l) => l.startsWith(`"${test}"`));
    const value = Number(line?.split(",")[1]?.replaceAll('"', ""));
    if (!(value > 0)) {
      throw new Error(
        `Cannot run the bench: no ${test} figure from redis-benchmark through ${c.name}: ${
          JSON.stringify(text)
        }`,
      );
    }
    return value;
  };
  const set = rps("SET"), get = rps("GET");
  return { set, get, both: 2 / (1 / set + 1 / get), cpu, user };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const k = (rps: number) => `${(rps / 1000).toFixed(1)}k`;
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const us = (x: number) => Number.isNaN(x) ? "n/a" : `${x.toFixed(1)} µs`;

async function main(): Promise<void> {
  const missing = [
    ["haproxy", ["-v"]],
    ["redis-server", ["--version"]],
    ["redis-benchmark", ["--version"]],
  ].filter(([cmd, args]) => !have(cmd as string, args as string[]))
    .map(([cmd]) => cmd);
  if (missing.length > 0) {
    console.log(
      `proxy_haproxy: skipped: ${
        missing.join(", ")
      } not found (Debian: apt-get install haproxy redis-server redis-tools)`,
    );
    return;
  }
  const rounds = envNumber("PROXY_BENCH_ROUNDS", 5);
  const requests = envNumber("PROXY_BENCH_REQUESTS", 100_000);
  const baseline = Deno.env.get("PROXY_BENCH_BASELINE");
  const prof = Deno.env.get("PROXY_BENCH_PROF");

  const stops: (() => Promise<void>)[] = [];
  try {
    const redisPort = await freePort();
    const redis = spawnRedisServer(redisPort);
    stops.push(() => stop(redis));
    await ready(redisPort, "redis-server");

    const dir = await Deno.makeTempDir({ prefix: "chanpool_haproxy_" });
    stops.push(() => Deno.remove(dir, { recursive: true }));
    const hapPort = await freePort();
    const config = `${dir}/haproxy.cfg`;
    await Deno.writeTextFile(config, haproxyConfig(hapPort, redisPort));
    const haproxy = new Deno.Command("haproxy", {
      args: ["-db", "-f", config],
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    stops.push(() => stop(haproxy));
    await ready(hapPort, "haproxy");

    const script = new URL("./_proxy_server.ts", import.meta.url).href;
    const start = async (name: string, args: string[], flags: string[]) => {
      const server = await spawnServer(
        script,
        [String(redisPort), "--max=64", ...args],
        flags,
      );
      stops.push(() => server.close());
      await ready(server.port, name);
      return { name, port: server.port, pid: server.pid };
    };
    const contenders: Contender[] = [
      { name: "haproxy", port: hapPort, pid: haproxy.pid },
      await start(
        "chanpool",
        [],
        prof === undefined ? [] : [`--cpu-prof`, `--cpu-prof-dir=${prof}`],
      ),
    ];
    if (Deno.env.get("PROXY_BENCH_PLAIN") === "1") {
      contenders.push(await start("plain loop", ["--plain"], []));
    }
    for (const path of (baseline ?? "").split(":").filter((p) => p !== "")) {
      const root = await Deno.realPath(path);
      contenders.push(
        await start(
          root.slice(root.lastIndexOf("/") + 1),
          [`--module=file://${root}/mod.ts`],
          [`--allow-read=${root}`],
        ),
      );
    }

    console.log(
      `redis-benchmark -c ${CLIENTS} -t get,set -n ${requests}, ${rounds} rounds; ` +
        `proxies: ${contenders.map((c) => c.name).join(", ")}`,
    );
    // a warm-up run each, not counted
    for (const c of contenders) await benchmark(c, Math.min(requests, 20_000));

    const runs = new Map<string, Run[]>(contenders.map((c) => [c.name, []]));
    for (let r = 0; r < rounds; r++) {
      const order = contenders.map((_, i) =>
        contenders[(i + r) % contenders.length]!
      );
      for (const c of order) {
        runs.get(c.name)!.push(await benchmark(c, requests));
      }
      const hap = runs.get("haproxy")![r]!;
      const row = contenders.map((c) => {
        const run = runs.get(c.name)![r]!;
        const ratio = c.name === "haproxy"
          ? ""
          : ` = ${pct(run.both / hap.both)}`;
        return `${c.name} ${k(run.set)} set / ${k(run.get)} get / ${
          k(run.both)
        } both${ratio} (cpu ${us(run.cpu)}/req, user ${us(run.user)})`;
      });
      console.log(`round ${r + 1}: ${row.join("; ")}`);
    }
    const hap = runs.get("haproxy")!;
    for (const c of contenders) {
      const mine = runs.get(c.name)!;
      const ratios = mine.map((run, i) => run.both / hap[i]!.both);
      console.log(
        `${c.name.padEnd(10)} median ${
          k(median(mine.map((x) => x.both)))
        } rps` +
          ` (set ${k(median(mine.map((x) => x.set)))}, get ${
            k(median(mine.map((x) => x.get)))
          }), cpu ${us(median(mine.map((x) => x.cpu)))}/req (user ${
            us(median(mine.map((x) => x.user)))
          })` +
          (c.name === "haproxy"
            ? ""
            : `; of haproxy per round: ${
              ratios.map((x) => (x * 100).toFixed(1)).join(", ")
            } %, median ${pct(median(ratios))}`),
      );
    }
  } finally {
    for (const s of stops.reverse()) await s().catch(() => {});
  }
}

if (import.meta.main) await main();
