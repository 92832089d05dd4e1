// Copyright 2026 the chanpool authors. MIT license.
// GET/SET through chanpool's Redis client (examples/redis.ts, a pool of 8:
// pipelined on the core pipeline, many commands in flight per connection;
// and with `pipeline: false`, one command per borrowed connection), against
// `npm:ioredis` (one connection, `enableAutoPipelining: true`: the commands
// of a turn are written at once and the replies matched in order) and a
// client that connects per command, at
// 1, 8 and 64 concurrent tasks, in one `deno bench` run against one local
// redis-server. Each iteration is 256 commands (SET then GET of one key,
// alternating); every GET's reply is checked.
//
// Before the groups run, `redis-benchmark -c N -n 20000 -t get,set` (C, the
// limit on this machine) is run against the same server and its
// requests/second are printed, for the same concurrencies, and
// `redis-benchmark -P 16 -c 64` (16 commands in flight per connection).
//
// Run: deno bench --allow-net=127.0.0.1 --allow-run --allow-env bench/redis_bench.ts
// (--allow-env: ioredis reads its environment.)

// deno-lint-ignore-file no-import-prefix
import { Redis } from "npm:ioredis@5.4.1";
import { FrameReader } from "../mod.ts";
import { encodeCommand, readReply, RedisClient } from "../examples/redis.ts";
import { startRedis } from "../tests/_redis_server.ts";

const OPS = 256;

// Started on a free port, answering PING before the bench goes on.
const server = await startRedis();
const port = server.port;
const ours = new RedisClient({ port, max: 8 });
const single = new RedisClient({ port, max: 8, pipeline: false });
const io = new Redis({
  port,
  host: "127.0.0.1",
  enableAutoPipelining: true,
});
await io.ping();

globalThis.addEventListener("unload", () => {
  io.disconnect();
  void ours.close();
  void single.close();
  void server.stop();
});

// The C limit, same server, same concurrencies; then pipelined.
for (
  const [c, p, n] of [[1, 1, 20_000], [8, 1, 20_000], [64, 1, 20_000], [
    64,
    16,
    1_000_000,
  ]] as const
) {
  const out = new Deno.Command("redis-benchmark", {
    args: [
      "-p",
      String(port),
      "-c",
      String(c),
      "-P",
      String(p),
      "-n",
      String(n),
      "-t",
      "get,set",
      "-q",
    ],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const text = new TextDecoder().decode(out.stdout).replace(/\r/g, "\n");
  const rates = [...text.matchAll(/^(SET|GET): ([\d.]+) requests per second/gm)]
    .map((m) => `${m[1]} ${Math.round(Number(m[2]))}/s`);
  console.log(`redis-benchmark -P ${p} -c ${c}: ${rates.join(", ")}`);
}

/** Connects, sends one command, reads its reply, closes. */
async function perCommand(args: (string | number)[]): Promise<unknown> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    const bytes = encodeCommand(args);
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    return await readReply(new FrameReader(conn));
  } finally {
    conn.close();
  }
}

type Client = {
  set(key: string, value: string): Promise<unknown>;
  get(key: string): Promise<unknown>;
};

const clients: [string, Client][] = [
  ["chanpool RedisClient (pool of 8, pipelined)", {
    set: (k, v) => ours.set(k, v),
    get: (k) => ours.get(k),
  }],
  ["chanpool RedisClient (pipeline: false)", {
    set: (k, v) => single.set(k, v),
    get: (k) => single.get(k),
  }],
  ["ioredis (1 connection, enableAutoPipelining)", {
    set: (k, v) => io.set(k, v),
    get: (k) => io.get(k),
  }],
  ["connect per command", {
    set: (k, v) => perCommand(["SET", k, v]),
    get: (k) => perCommand(["GET", k]),
  }],
];

/** OPS commands from `tasks` tasks: SET k v, then GET k (checked). */
async function run(client: Client, tasks: number, tag: string): Promise<void> {
  let left = OPS / 2;
  await Promise.all(Array.from({ length: tasks }, async (_, t) => {
    while (left > 0) {
      const i = left--;
      const key = `${tag}:${t}:${i}`;
      await client.set(key, key);
      if (await client.get(key) !== key) throw new Error("wrong reply");
    }
  }));
}

for (const tasks of [1, 8, 64]) {
  const group = `GET/SET, ${tasks} task${tasks > 1 ? "s" : ""}`;
  for (const [name, client] of clients) {
    Deno.bench({
      name,
      group,
      baseline: name.includes("pipelined)"),
      async fn() {
        await run(client, tasks, name.replace(/\W+/g, ""));
      },
    });
  }
}
