// Copyright 2026 the chanpool authors. MIT license.
// The Redis client of examples/redis.ts on TcpPool, against a real
// redis-server (Debian's package; .ci/run installs it): idle timeouts, a
// heartbeat, killed clients, a server that sleeps, a server that restarts.
// Every key and value is unique, so a reply that reaches the wrong caller is
// seen and counted.

import assert from "node:assert/strict";
import {
  Channel,
  ConnectionBrokenError,
  DialError,
  FrameReader,
  PoolClosedError,
  PoolExhaustedError,
  ProtocolError,
  TimeoutError,
} from "../mod.ts";
import {
  encodeCommand,
  readReply,
  RedisClient,
  RedisError,
  type RedisOptions,
  redisPing,
  type RedisSession,
  type RedisValue,
  StatefulCommandError,
  type SubscribeOptions,
} from "../examples/redis.ts";
import { HAVE_REDIS, startRedis } from "./_redis_server.ts";
import { mulberry32 } from "./_random.ts";

const ignore = !HAVE_REDIS;
if (ignore) console.log("redis tests ignored: redis-server is not on the PATH");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * Lets the pipeline give its emptied connections back to the pool (it does
 * after each turn of the event loop), so pool counts can be read.
 */
const turn = () => sleep(1);

/** Tallies of a burst: what went right, what went wrong and how. */
class Tally {
  ok = 0;
  mismatches = 0;
  errors = new Map<string, number>();
  note(error: unknown): void {
    const name = error instanceof Error ? error.name : String(error);
    this.errors.set(name, (this.errors.get(name) ?? 0) + 1);
  }
  get errorCount(): number {
    let n = 0;
    for (const v of this.errors.values()) n += v;
    return n;
  }
}

/**
 * `total` SET-then-GET pairs (unique key and value each) from `tasks` tasks;
 * a GET that returns another value is a mismatch.
 */
async function burst(
  redis: RedisClient,
  tag: string,
  total: number,
  tasks: number,
  timeout = 2_000,
): Promise<Tally> {
  const tally = new Tally();
  let next = 0;
  await Promise.all(Array.from({ length: tasks }, async () => {
    while (next < total) {
      const i = next++;
      const key = `${tag}:${i}`;
      const value = `${tag}-${i}-${crypto.randomUUID()}`;
      try {
        await redis.set(key, value, { timeout });
        const got = await redis.get(key, { timeout });
        if (got === value) tally.ok++;
        else tally.mismatches++;
      } catch (error) {
        tally.note(error);
      }
    }
  }));
  return tally;
}

/** Opens `n` connections (holding `n` at once), each used for a PING. */
async function warm(redis: RedisClient, n: number): Promise<void> {
  const conns = await Promise.all(
    Array.from({ length: n }, () => redis.pool.borrow()),
  );
  for (const conn of conns) {
    await conn.exchange(
      new TextEncoder().encode("PING\r\n"),
      (r) => r.readLine(),
      { timeout: 1_000 },
    );
    conn.release();
  }
}

/**
 * A redis-server with `--timeout 1` and a client on it with a pool of 8 (plus
 * `options`), its 8 connections opened, then 2.5 s of quiet: the server has
 * closed every one of them. Disposing stops both.
 */
async function afterQuietSpell(
  options: RedisOptions = {},
): Promise<{ redis: RedisClient } & AsyncDisposable> {
  const server = await startRedis(["--timeout", "1"]);
  const redis = new RedisClient({ port: server.port, max: 8, ...options });
  const dispose = async () => {
    await redis.close();
    await server.stop();
  };
  try {
    await warm(redis, 8);
    assert.equal(redis.pool.stats.open, 8);
    await sleep(2_500);
  } catch (error) {
    await dispose();
    throw error;
  }
  return { redis, [Symbol.asyncDispose]: dispose };
}

Deno.test({
  name:
    "Redis: after the server's idle timeout closed every pooled connection, a burst of 1 000 commands has 0 errors and 0 mismatches",
  ignore,
  async fn() {
    await using quiet = await afterQuietSpell();
    const redis = quiet.redis;
    const tally = await burst(redis, "idle", 500, 16);
    const s = redis.pool.stats;
    console.log(
      `after 2.5 s idle: ${
        tally.ok * 2
      } commands ok, ${tally.errorCount} errors, ${tally.mismatches} mismatches; evicted while idle ${s.destroyed.evicted}, stale at borrow ${s.stale}, retried ${s.retries}`,
    );
    assert.equal(tally.errorCount, 0, JSON.stringify([...tally.errors]));
    assert.equal(tally.mismatches, 0);
    assert.equal(tally.ok, 500);
    assert.ok(
      s.destroyed.evicted + s.stale + s.retries >= 8,
      "the server did close the idle connections",
    );
  },
});

Deno.test({
  name:
    "Redis (control): without the idle watch and without retries, the same quiet spell fails one command per pooled connection",
  ignore,
  async fn() {
    // One command per connection, as the seed's client sent them (a
    // pipelined batch on a dead connection fails as a whole).
    await using quiet = await afterQuietSpell({
      idleWatch: false,
      pipeline: false,
    });
    const redis = quiet.redis;
    let errors = 0;
    await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      try {
        await redis.command(["SET", `control:${i}`, i], {
          timeout: 2_000,
          idempotent: false,
        });
      } catch (error) {
        assert.ok(error instanceof ConnectionBrokenError, String(error));
        errors++;
      }
    }));
    console.log(`control: ${errors} of 16 commands failed (pool of 8)`);
    // The seed's failure: what the first scenario's 0 is measured against.
    assert.ok(errors >= 1 && errors <= 8, `${errors} errors`);
  },
});

Deno.test({
  name:
    "Redis: with the idle watch off, a PING heartbeat every 500 ms keeps connections alive through a quiet spell",
  ignore,
  async fn() {
    await using quiet = await afterQuietSpell({
      idleWatch: false,
      heartbeat: { interval: 500, ping: redisPing },
    });
    const redis = quiet.redis;
    const tally = await burst(redis, "heartbeat", 500, 16);
    const s = redis.pool.stats;
    console.log(
      `heartbeat: ${
        tally.ok * 2
      } ok, ${tally.errorCount} errors, ${s.dials} dials, ${s.destroyed.heartbeat} failed pings, ${s.retries} retries`,
    );
    assert.equal(tally.errorCount, 0, JSON.stringify([...tally.errors]));
    assert.equal(tally.mismatches, 0);
    assert.equal(s.dials, 8, "no connection had to be replaced");
    assert.equal(s.retries, 0);
  },
});

Deno.test({
  name:
    "Redis: CLIENT KILL TYPE normal mid-burst fails no idempotent command; killed INCRs fail typed",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 8 });
    await warm(redis, 8);
    const incrErrors: unknown[] = [];
    let incrs = 0;
    const killer = (async () => {
      await sleep(30);
      return await server.send("CLIENT", "KILL", "TYPE", "normal");
    })();
    const [tally] = await Promise.all([
      burst(redis, "kill", 2_000, 16),
      (async () => {
        for (let i = 0; i < 400; i++) {
          try {
            await redis.incr("kill:counter", { timeout: 2_000 });
            incrs++;
          } catch (error) {
            incrErrors.push(error);
          }
        }
      })(),
    ]);
    const killed = await killer;
    const counter = Number(await redis.get("kill:counter"));
    console.log(
      `CLIENT KILL -> ${killed.trim()}; idempotent: ${
        tally.ok * 2
      } ok, ${tally.errorCount} errors; INCR: ${incrs} ok, ${incrErrors.length} failed, counter ${counter}; retries ${redis.pool.stats.retries} (pool), ${redis.retries} (pipelined)`,
    );
    assert.match(killed, /^:[1-9]/, "the kill hit pooled clients");
    assert.equal(tally.errorCount, 0, JSON.stringify([...tally.errors]));
    assert.equal(tally.mismatches, 0);
    assert.ok(incrErrors.length <= 8, "at most the in-flight ones");
    for (const e of incrErrors) assert.ok(e instanceof ConnectionBrokenError);
    // Every INCR that succeeded counted once; a failed one may or may not
    // have run (it was sent), never twice.
    assert.ok(counter >= incrs && counter <= incrs + incrErrors.length);
  },
});

Deno.test({
  name:
    "Redis: DEBUG SLEEP under 300 ms timeouts: calls in flight time out, and no later call ever gets an earlier reply",
  ignore,
  async fn() {
    await using server = await startRedis([
      "--enable-debug-command",
      "local",
    ]);
    await using redis = new RedisClient({ port: server.port, max: 8 });
    await warm(redis, 8);
    let stop = false;
    const tally = new Tally();
    const workers = Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const token = `w${w}-${i}-${crypto.randomUUID()}`;
        try {
          const echoed = await redis.command(["ECHO", token], { timeout: 300 });
          if (echoed === token) tally.ok++;
          else tally.mismatches++;
        } catch (error) {
          tally.note(error);
          if (!(error instanceof TimeoutError)) throw error;
        }
      }
    });
    await sleep(100);
    const slept = await server.send("DEBUG", "SLEEP", "1");
    await sleep(300); // calls after the sleep, on fresh connections
    stop = true;
    await Promise.all(workers);
    console.log(
      `DEBUG SLEEP 1 -> ${slept.trim()}; ${tally.ok} ok, ${tally.mismatches} mismatches, timeouts ${
        tally.errors.get("TimeoutError") ?? 0
      }; destroyed broken ${redis.pool.stats.destroyed.broken}`,
    );
    assert.equal(slept.trim(), "+OK");
    assert.ok((tally.errors.get("TimeoutError") ?? 0) >= 1);
    assert.equal(tally.mismatches, 0);
    assert.ok(tally.ok > 100);
  },
});

Deno.test({
  name:
    "Redis: server stopped 3 s and restarted on the same port, 64 tasks: calls fail typed (real dials) within one backoff step + connectTimeout, one probe at a time, and none made after the restart fails",
  ignore,
  async fn() {
    await using server = await startRedis();
    const connectTimeout = 1_000;
    await using redis = new RedisClient({
      port: server.port,
      max: 8,
      connectTimeout,
    });
    await warm(redis, 8);
    await server.stop();
    const dialsBefore = redis.pool.stats.dials;
    const kinds = new Map<string, number>();
    let slowest = 0;
    let restartedAt = Infinity;
    let firstAfter = Infinity;
    let afterOk = 0;
    let stop = false;
    const afterErrors: unknown[] = [];
    const tasks = Array.from({ length: 64 }, async (_, t) => {
      for (let i = 0; !stop; i++) {
        const start = performance.now();
        try {
          await redis.set(`down:${t}:${i}`, i, { timeout: 10_000 });
          if (start >= restartedAt) {
            afterOk++;
            firstAfter = Math.min(firstAfter, performance.now() - restartedAt);
          } else {
            // Made while down, it waited for a probe that found the server
            // back: served, as a call should be.
            kinds.set("waited", (kinds.get("waited") ?? 0) + 1);
          }
        } catch (error) {
          if (start >= restartedAt) afterErrors.push(error);
          else {
            assert.ok(
              error instanceof DialError ||
                error instanceof ConnectionBrokenError,
              String(error),
            );
            const name = (error as Error).name;
            kinds.set(name, (kinds.get(name) ?? 0) + 1);
            slowest = Math.max(slowest, performance.now() - start);
          }
          await sleep(1);
        }
      }
    });
    await sleep(3_000);
    const dials = redis.pool.stats.dials - dialsBefore;
    await server.start(); // resolves once it answers PING
    restartedAt = performance.now();
    const end = performance.now() + 10_000;
    while (afterOk < 640 && performance.now() < end) await sleep(10);
    stop = true;
    await Promise.all(tasks);
    const tally = await burst(redis, "back", 200, 16);
    console.log(
      `server down 3 s: ${
        JSON.stringify(Object.fromEntries(kinds))
      }, ${dials} dials, slowest failure ${
        Math.round(slowest)
      } ms; after the restart: first success ${
        Math.round(firstAfter)
      } ms, ${afterOk} ok, ${afterErrors.length} failed; then ${
        tally.ok * 2
      } ok, ${tally.errorCount} errors`,
    );
    assert.ok((kinds.get("DialError") ?? 0) >= 64, "callers failed typed");
    assert.ok(dials <= 10, `${dials} dials in a 3 s outage`);
    assert.ok(
      slowest <= 2_400 + connectTimeout,
      `slowest failure ${slowest} ms`,
    );
    assert.deepEqual(afterErrors, [], "no call made after the restart failed");
    assert.ok(afterOk >= 640, `${afterOk} calls after the restart`);
    assert.ok(firstAfter <= 2_500, `first success ${firstAfter} ms after`);
    assert.equal(tally.errorCount, 0);
    assert.equal(tally.mismatches, 0);
  },
});

Deno.test({
  name:
    "Redis: an exhausted pool waits, overflows to a short-lived connection, or fails typed",
  ignore,
  async fn() {
    await using server = await startRedis();
    for (const whenExhausted of ["wait", "overflow", "fail"] as const) {
      await using redis = new RedisClient({
        port: server.port,
        max: 1,
        whenExhausted,
      });
      const held = await redis.pool.borrow();
      const timer = setTimeout(() => held.release(), 100);
      try {
        const start = performance.now();
        const pong = redis.ping({ timeout: 1_000 });
        if (whenExhausted === "fail") {
          await assert.rejects(pong, PoolExhaustedError);
        } else {
          assert.equal(await pong, "PONG");
          const took = performance.now() - start;
          if (whenExhausted === "wait") assert.ok(took >= 80, `${took} ms`);
          else {
            assert.ok(took < 80, `${took} ms`);
            await turn();
            assert.equal(redis.pool.stats.destroyed.overflow, 1);
          }
        }
      } finally {
        clearTimeout(timer);
        held.release();
      }
    }
  },
});

Deno.test({
  name:
    "Redis: error replies are RedisError and leave the connection in service",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 1 });
    await redis.set("text", "abc");
    await assert.rejects(
      redis.incr("text"),
      (e) => e instanceof RedisError && e.code === "ERR",
    );
    assert.equal(await redis.get("text"), "abc");
    assert.equal(await redis.get("missing"), null);
    assert.deepEqual(
      await redis.command(["MGET", "text", "missing"]),
      ["abc", null],
    );
    assert.equal(await redis.del("text", "missing"), 1);
    assert.equal(redis.pool.stats.dials, 1);
    assert.equal(redis.pool.stats.destroyed.broken, 0);
  },
});

// -- Pipelining --

Deno.test({
  name:
    "Redis pipelining: 64 tasks, 2 000 unique SET/GET pairs, 0 mismatches, many commands per borrowed connection",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 8 });
    const tally = await burst(redis, "pipe", 2_000, 64);
    const s = redis.pool.stats;
    console.log(
      `pipelined: ${
        tally.ok * 2
      } ok, ${tally.mismatches} mismatches, ${s.borrows} borrows, ${s.dials} dials`,
    );
    assert.equal(tally.errorCount, 0, JSON.stringify([...tally.errors]));
    assert.equal(tally.mismatches, 0);
    assert.equal(tally.ok, 2_000);
    // One borrow per command without pipelining: 4 000. Pipelined, the 64
    // commands of a turn spread over the 8 connections, ~8 per batch.
    assert.ok(s.borrows <= 4_000 / 4, `${s.borrows} borrows`);
    assert.ok(s.dials <= 8);

    // The same burst, one command per borrowed connection.
    await using single = new RedisClient({
      port: server.port,
      max: 8,
      pipeline: false,
    });
    const one = await burst(single, "single", 200, 64);
    assert.equal(one.ok, 200);
    assert.equal(single.pool.stats.borrows, 400);
  },
});

Deno.test({
  name:
    "Redis pipelining: in one batch, a command's own shorter timeout or abort fails it alone; the batch, its other callers and its connection carry on",
  ignore,
  async fn() {
    await using server = await startRedis(["--enable-debug-command", "local"]);
    await using redis = new RedisClient({ port: server.port, max: 1 });
    await redis.set("p:k", "v");
    const dials = redis.pool.stats.dials;
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    const start = performance.now();
    // Issued in one turn: one batch, written at once.
    const sleep = redis.command(["DEBUG", "SLEEP", "0.3"], {
      timeout: 2_000,
      idempotent: false,
    });
    const short = redis.get("p:k", { timeout: 100 });
    const aborted = redis.get("p:k", { signal: controller.signal });
    const long = redis.get("p:k", { timeout: 2_000 });
    // All four on the one connection, in flight together.
    assert.deepEqual(
      [redis.pool.stats.pipeline?.conns, redis.pool.stats.pipeline?.inFlight],
      [1, 4],
    );
    setTimeout(() => controller.abort(reason), 50);
    // Handlers attached now: `aborted` rejects before `short` does.
    const abortedChecked = assert.rejects(aborted, (e) => e === reason);
    await assert.rejects(short, TimeoutError);
    const shortAt = performance.now() - start;
    await abortedChecked;
    assert.equal(await sleep, "OK");
    assert.equal(await long, "v");
    console.log(
      `short timeout after ${Math.round(shortAt)} ms; batch done after ${
        Math.round(performance.now() - start)
      } ms`,
    );
    assert.ok(shortAt < 250, `${shortAt} ms`);
    const s = redis.pool.stats;
    assert.equal(s.dials, dials, "the connection stayed");
    assert.equal(s.destroyed.broken, 0);
    assert.equal(await redis.get("p:k"), "v");
  },
});

Deno.test({
  name:
    "Redis: UTF-8 keys and values keep their byte lengths; long values round-trip",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 2 });
    const values = ["é😀", "日本語", "plain", "x".repeat(100_000), ""];
    await Promise.all(values.map((v, i) => redis.set(`u:${i}:ключ`, v)));
    const got = await Promise.all(
      values.map((_, i) => redis.get(`u:${i}:ключ`)),
    );
    assert.deepEqual(got, values);
    assert.equal(await redis.command(["STRLEN", "u:0:ключ"]), 6);
    assert.equal(await redis.command(["STRLEN", "u:2:ключ"]), 5);
  },
});

Deno.test({
  name:
    "Redis: a hostile reply (a 100 GB bulk length, garbage, OK for RESET or SUBSCRIBE) fails typed and costs one connection, not the client",
  ignore: false,
  async fn() {
    // A fake server: every command gets +OK, except after EVIL (a huge
    // bulk length) and JUNK (not RESP2).
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const conns: Deno.Conn[] = [];
    const serving = (async () => {
      for await (const conn of listener) {
        conns.push(conn);
        (async () => {
          const buf = new Uint8Array(4096);
          const enc = new TextEncoder();
          try {
            while (true) {
              const n = await conn.read(buf);
              if (n === null) break;
              const text = new TextDecoder().decode(buf.subarray(0, n));
              let reply = "";
              for (const cmd of text.split("*").slice(1)) {
                reply += cmd.includes("EVIL")
                  ? "$99999999999\r\n"
                  : cmd.includes("JUNK")
                  ? "?what\r\n"
                  : "+OK\r\n";
              }
              await conn.write(enc.encode(reply));
            }
          } catch {
            // closed by the client
          } finally {
            try {
              conn.close();
            } catch {
              // closed already
            }
          }
        })();
      }
    })();
    try {
      const { port } = listener.addr as Deno.NetAddr;
      await using redis = new RedisClient({ port, max: 2 });
      assert.equal(await redis.ping(), "OK");
      await assert.rejects(redis.command(["EVIL"]), ProtocolError);
      await assert.rejects(redis.command(["JUNK"]), ProtocolError);
      assert.equal(await redis.ping(), "OK");
      const s = redis.pool.stats;
      assert.equal(s.destroyed.broken + s.destroyed.dirty, 2);
      assert.equal(s.open, 1);
      // A session's RESET answered with something other than RESET, and a
      // SUBSCRIBE answered with something other than its confirmation:
      // each connection is destroyed, not given back.
      await turn();
      assert.equal(await redis.session((s) => s.ping()), "OK");
      assert.equal(redis.pool.stats.destroyed.destroyed, 1);
      assert.equal(redis.pool.stats.open, 0);
      await assert.rejects(redis.subscribe("c"), ProtocolError);
      assert.equal(redis.pool.stats.destroyed.destroyed, 2);
      assert.equal(redis.pool.stats.open, 0);
    } finally {
      listener.close();
      await serving.catch(() => {});
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // closed already
        }
      }
    }
  },
});

Deno.test({
  name:
    "Redis pipelining: close() fails queued and in-flight commands typed, and leaves no timer behind",
  ignore,
  async fn() {
    await using server = await startRedis();
    const redis = new RedisClient({ port: server.port, max: 1 });
    await redis.ping();
    // The only connection is held: the first batch waits for it, and the
    // commands after it queue (with deadlines: the sweep timer is armed).
    const held = await redis.pool.borrow();
    const first = redis.get("c:1", { timeout: 5_000 });
    await sleep(10);
    const queued = [
      redis.get("c:2", { timeout: 5_000 }),
      redis.set("c:3", "x", { timeout: 5_000 }),
    ];
    const all = [first, ...queued].map((p) =>
      p.then(() => "ok", (e) => (e as Error).name)
    );
    const closing = redis.close();
    held.release();
    await closing;
    const outcomes = await Promise.all(all);
    for (const o of outcomes) assert.equal(o, "PoolClosedError");
    await assert.rejects(
      redis.ping(),
      (e) => (e as Error).name === "PoolClosedError",
    );
  },
});

// -- Commands that change a connection's state --

/**
 * A 64-task burst of 2 000 unique SET/GET pairs; after the 200th GET's reply,
 * its task sends `stateful` through `redis.command` without waiting, in the
 * same turn as the other tasks' next commands (so it lands inside a batch on
 * one of the shared connections). What it did to the other callers, and how
 * it was answered.
 */
async function burstWith(
  redis: RedisClient,
  tag: string,
  stateful: readonly string[],
): Promise<{ tally: Tally; outcome: Promise<unknown> }> {
  const tally = new Tally();
  let next = 0;
  let outcome: Promise<unknown> = Promise.resolve("not sent");
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < 2_000) {
      const i = next++;
      const key = `${tag}:${i}`;
      const value = `${tag}-${i}-${crypto.randomUUID()}`;
      try {
        await redis.set(key, value, { timeout: 1_000 });
        const got = await redis.get(key, { timeout: 1_000 });
        if (got === value) tally.ok++;
        else tally.mismatches++;
      } catch (error) {
        tally.note(error);
      }
      if (i === 200) {
        outcome = redis.command(stateful, { timeout: 1_000 }).then(
          (reply) => ({ reply }),
          (error) => error,
        );
      }
    }
  }));
  return { tally, outcome };
}

for (
  const [stateful, command] of [
    [["MULTI"], "MULTI"],
    [["SELECT", "1"], "SELECT"],
    [["CLIENT", "REPLY", "SKIP"], "CLIENT REPLY"],
  ] as const
) {
  Deno.test({
    name: `Redis: ${
      stateful.join(" ")
    } through redis.command mid-burst is refused; 64 tasks' SET/GET pairs get 0 wrong replies`,
    ignore,
    async fn() {
      await using server = await startRedis();
      await using redis = new RedisClient({ port: server.port, max: 8 });
      await warm(redis, 8);
      const { tally, outcome: answered } = await burstWith(
        redis,
        stateful.join("-"),
        stateful,
      );
      const outcome = await answered;
      console.log(
        `${stateful.join(" ")} mid-burst -> ${
          outcome instanceof Error
            ? outcome.name
            : JSON.stringify((outcome as { reply: unknown }).reply)
        }; ${tally.ok} pairs ok, ${tally.mismatches} wrong replies, errors ${
          JSON.stringify(Object.fromEntries(tally.errors))
        }`,
      );
      assert.ok(outcome instanceof StatefulCommandError, String(outcome));
      assert.equal(outcome.command, command);
      assert.equal(tally.mismatches, 0);
      assert.equal(tally.errorCount, 0);
      assert.equal(tally.ok, 2_000);
    },
  });
}

Deno.test({
  name:
    "Redis: CLIENT REPLY SKIP in a pipelined batch is refused; the batch's other commands get their own replies",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 1 });
    await redis.set("skip:a", "value of a");
    // One turn, one connection: one batch. The last two give up first, so
    // the replies read by then are handed out by position.
    const skip = redis.command(["client", "reply", "skip"], { timeout: 600 })
      .then((reply) => ({ reply }), (error) => error);
    const got = Promise.allSettled([
      redis.command(["ECHO", "first"], { timeout: 600 }),
      redis.get("skip:a", { timeout: 600 }),
      redis.command(["ECHO", "second"], { timeout: 200 }),
      redis.command(["ECHO", "third"], { timeout: 200 }),
    ]);
    const outcome = await skip;
    const replies = (await got).map((r) =>
      r.status === "fulfilled" ? r.value : (r.reason as Error).name
    );
    console.log(
      `batch [CLIENT REPLY SKIP, ECHO first, GET a, ECHO second, ECHO third] -> ${
        outcome instanceof Error ? outcome.name : JSON.stringify(outcome)
      }, ${JSON.stringify(replies)}`,
    );
    assert.ok(outcome instanceof StatefulCommandError, String(outcome));
    assert.equal(outcome.command, "CLIENT REPLY");
    assert.deepEqual(replies, ["first", "value of a", "second", "third"]);
    assert.equal(redis.pool.stats.destroyed.broken, 0);
  },
});

/** Commands refused on the shared path, and the alternative each names. */
const REFUSED: [args: (string | number)[], command: string, instead: RegExp][] =
  [
    [["MULTI"], "MULTI", /redis\.session\(/],
    [["exec"], "EXEC", /redis\.session\(/],
    [["Discard"], "DISCARD", /redis\.session\(/],
    [["WATCH", "k"], "WATCH", /redis\.session\(/],
    [["unwatch"], "UNWATCH", /redis\.session\(/],
    [["SELECT", 1], "SELECT", /redis\.session\(/],
    [["CLIENT", "REPLY", "OFF"], "CLIENT REPLY", /redis\.session\(/],
    [["client", "reply", "skip"], "CLIENT REPLY", /redis\.session\(/],
    [["CLIENT", "tracking", "on"], "CLIENT TRACKING", /redis\.session\(/],
    [["CLIENT", "CACHING", "yes"], "CLIENT CACHING", /redis\.session\(/],
    [["CLIENT", "SETNAME", "x"], "CLIENT SETNAME", /redis\.session\(/],
    [["CLIENT", "NO-EVICT", "on"], "CLIENT NO-EVICT", /redis\.session\(/],
    [["SUBSCRIBE", "c"], "SUBSCRIBE", /redis\.subscribe\(/],
    [["psubscribe", "p*"], "PSUBSCRIBE", /redis\.psubscribe\(/],
    [["SSUBSCRIBE", "c"], "SSUBSCRIBE", /redis\.subscribe\(/],
    [["UNSUBSCRIBE"], "UNSUBSCRIBE", /redis\.subscribe\(/],
    [["PUNSUBSCRIBE"], "PUNSUBSCRIBE", /redis\.subscribe\(/],
    [["SUNSUBSCRIBE"], "SUNSUBSCRIBE", /redis\.subscribe\(/],
    [["MONITOR"], "MONITOR", /redis\.pool\.borrow\(/],
    [["BLPOP", "k", 0], "BLPOP", /redis\.session\(/],
    [["brpop", "k", 0], "BRPOP", /redis\.session\(/],
    [["BLMOVE", "a", "b", "LEFT", "RIGHT", 0], "BLMOVE", /redis\.session\(/],
    [["BRPOPLPUSH", "a", "b", 0], "BRPOPLPUSH", /redis\.session\(/],
    [["BLMPOP", 0, 1, "k", "LEFT"], "BLMPOP", /redis\.session\(/],
    [["BZPOPMIN", "z", 0], "BZPOPMIN", /redis\.session\(/],
    [["BZPOPMAX", "z", 0], "BZPOPMAX", /redis\.session\(/],
    [["BZMPOP", 0, 1, "z", "MIN"], "BZMPOP", /redis\.session\(/],
    [
      ["XREAD", "COUNT", 1, "block", 0, "STREAMS", "s", "$"],
      "XREAD BLOCK",
      /redis\.session\(/,
    ],
    [
      ["xreadgroup", "GROUP", "g", "c", "BLOCK", 0, "STREAMS", "s", ">"],
      "XREADGROUP BLOCK",
      /redis\.session\(/,
    ],
    [["WAIT", 0, 0], "WAIT", /redis\.session\(/],
    [["WAITAOF", 0, 0, 0], "WAITAOF", /redis\.session\(/],
    [["RESET"], "RESET", /redis\.session\(/],
    [["AUTH", "secret"], "AUTH", /redis\.session\(/],
    [["HELLO", 2], "HELLO", /redis\.session\(/],
    [["READONLY"], "READONLY", /redis\.session\(/],
    [["READWRITE"], "READWRITE", /redis\.session\(/],
    [["ASKING"], "ASKING", /redis\.session\(/],
    [["QUIT"], "QUIT", /redis\.close\(/],
    [["SYNC"], "SYNC", /redis\.pool\.borrow\(/],
    [["PSYNC", "?", -1], "PSYNC", /redis\.pool\.borrow\(/],
  ];

for (const pipeline of [true, false]) {
  Deno.test({
    name:
      `Redis (pipeline: ${pipeline}): every stateful command is refused typed before it is sent, naming the alternative; the commands around it and their connection are unaffected`,
    ignore,
    async fn() {
      await using server = await startRedis();
      await using redis = new RedisClient({
        port: server.port,
        max: 2,
        pipeline,
      });
      await redis.set("r:k", "v");
      // In one turn: each refused command between two allowed ones.
      // (Bounded: unrefused, BLPOP 0 or SUBSCRIBE would never answer.)
      const timeout = 1_000;
      const outcome = (p: Promise<unknown>) =>
        p.then((reply) => ({ reply }), (error) => error);
      const outcomes = REFUSED.map(([args]) => [
        outcome(redis.get("r:k", { timeout })),
        outcome(redis.command(args, { timeout })),
        outcome(redis.command(["ECHO", String(args[0])], { timeout })),
      ]);
      // Allowed: other subcommands and XREAD without BLOCK (a group named
      // BLOCK is not the option).
      const allowed = await Promise.allSettled([
        redis.command(["CLIENT", "ID"], { timeout }),
        redis.command(["client", "getname"], { timeout }),
        redis.command(["XREAD", "COUNT", 1, "STREAMS", "r:s", "0"], {
          timeout,
        }),
        redis.command([
          "XREADGROUP",
          "GROUP",
          "BLOCK",
          "c",
          "STREAMS",
          "r:s",
          ">",
        ], { timeout }),
        redis.command(["LPOP", "r:list"], { timeout }),
      ]);
      for (let i = 0; i < REFUSED.length; i++) {
        const [args, command, instead] = REFUSED[i]!;
        const [before, refused, after] = outcomes[i]!;
        const e = await refused;
        assert.ok(
          e instanceof StatefulCommandError,
          `${args.join(" ")} -> ${
            e instanceof Error ? e.name : JSON.stringify(e)
          }`,
        );
        assert.deepEqual(await before, { reply: "v" });
        assert.deepEqual(await after, { reply: String(args[0]) });
        assert.equal(e.command, command);
        assert.match(
          e.message,
          new RegExp(`^Cannot send ${command} on a shared connection: it `),
        );
        assert.match(e.message, instead);
      }
      assert.equal(
        typeof (allowed[0] as PromiseFulfilledResult<unknown>).value,
        "number",
      );
      assert.equal((allowed[1] as PromiseFulfilledResult<unknown>).value, null);
      assert.equal((allowed[2] as PromiseFulfilledResult<unknown>).value, null);
      const nogroup = (allowed[3] as PromiseRejectedResult).reason;
      assert.ok(
        nogroup instanceof RedisError &&
          /NOGROUP|no such key/i.test(nogroup.message),
        String(nogroup),
      );
      assert.equal((allowed[4] as PromiseFulfilledResult<unknown>).value, null);
      // None of them reached the server, and the connections are as new.
      const stats = String(await redis.command(["INFO", "commandstats"]));
      const ran = [...stats.matchAll(/^cmdstat_([a-z|-]+):/gm)].map((m) => m[1])
        .sort();
      assert.deepEqual(ran, [
        "client|getname",
        "client|id",
        "echo",
        "get",
        "lpop",
        "ping", // startRedis's
        "set",
        "xread",
        "xreadgroup",
      ]);
      const info = String(await redis.command(["CLIENT", "INFO"]));
      assert.match(info, / db=0 /);
      assert.match(info, / multi=-1 /);
      assert.match(info, / flags=N /);
      const s = redis.pool.stats;
      assert.equal(s.destroyed.broken + s.destroyed.dirty, 0);
    },
  });
}

// -- Sessions --

/** `field=value` of CLIENT INFO / CLIENT LIST text. */
function clientField(info: unknown, field: string): string | undefined {
  return new RegExp(`(?:^| )${field}=(\\S*)`).exec(String(info))?.[1];
}

Deno.test({
  name:
    "Redis session: WATCH, MULTI/EXEC, SELECT and BLPOP on a connection of its own; left in MULTI and db 1, it comes back RESET: the next shared command runs in db 0, not QUEUED",
  ignore,
  async fn() {
    await using server = await startRedis();
    // One connection: the session's is the one the shared path reuses.
    await using redis = new RedisClient({ port: server.port, max: 1 });
    await redis.set("s:k", "db0");
    const id = await redis.command(["CLIENT", "ID"]);
    const pushed = sleep(50).then(() => server.send("RPUSH", "s:list", "x"));
    const result = await redis.session(async (s) => {
      assert.equal(await s.command(["CLIENT", "ID"]), id);
      // WATCH: a write from elsewhere aborts the transaction.
      await s.command(["WATCH", "s:k"]);
      await server.send("SET", "s:k", "db0");
      await s.command(["MULTI"]);
      assert.equal(await s.command(["INCR", "s:n"]), "QUEUED");
      assert.equal(await s.command(["EXEC"]), null);
      await s.command(["MULTI"]);
      assert.equal(await s.command(["INCR", "s:n"]), "QUEUED");
      assert.equal(await s.command(["SET", "s:t", "v"]), "QUEUED");
      const exec = await s.command(["EXEC"]);
      // A blocking pop, answered by a push from another connection.
      const popped = await s.command(["BLPOP", "s:list", 2]);
      await s.command(["SELECT", 1]);
      await s.set("s:k", "db1");
      assert.equal(await s.get("s:k"), "db1");
      // Left in a transaction, in db 1.
      await s.command(["MULTI"]);
      assert.equal(await s.command(["SET", "s:k", "queued"]), "QUEUED");
      return { exec, popped };
    });
    await pushed;
    assert.deepEqual(result, { exec: [1, "OK"], popped: ["s:list", "x"] });
    // The same connection, reset: db 0, no transaction, the queued SET
    // discarded.
    assert.equal(await redis.get("s:k"), "db0");
    const info = await redis.command(["CLIENT", "INFO"]);
    assert.equal(clientField(info, "id"), String(id));
    assert.equal(clientField(info, "db"), "0");
    assert.equal(clientField(info, "multi"), "-1");
    assert.equal(clientField(info, "flags"), "N");
    const s = redis.pool.stats;
    assert.equal(s.dials, 1);
    assert.equal(s.open, 1);
    // db 1 kept what the session wrote there.
    assert.equal(
      await redis.session(async (s) => {
        await s.command(["SELECT", 1]);
        return await s.get("s:k");
      }),
      "db1",
    );
  },
});

Deno.test({
  name:
    "Redis session: returns the callback's result, propagates its error (connection reset and kept), serializes concurrent commands, and is unusable afterwards",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 1 });
    let kept: RedisSession | undefined;
    // Commands issued in one turn run one after another, in order.
    const values = await redis.session((s) => {
      kept = s;
      return Promise.all(
        Array.from({ length: 50 }, (_, i) => s.command(["ECHO", `e${i}`])),
      );
    });
    assert.deepEqual(values, Array.from({ length: 50 }, (_, i) => `e${i}`));
    await assert.rejects(kept!.get("x"), TypeError);
    await assert.rejects(
      kept!.command(["PING"]),
      { name: "TypeError", message: "Cannot send command: the session ended" },
    );
    // A throw with nothing in flight: the error comes out, the connection
    // is reset and kept.
    const failure = new Error("callback failed");
    await assert.rejects(
      redis.session(async (s) => {
        await s.command(["SELECT", 2]);
        throw failure;
      }),
      (e) => e === failure,
    );
    // A command whose time ran out while queued behind another is not
    // sent; the session carries on.
    const late = await redis.session(async (s) => {
      const slow = s.command(["BLPOP", "s:nothing", "0.2"]);
      const queued = s.get("s:k", { timeout: 50 });
      await assert.rejects(queued, TimeoutError);
      assert.equal(await slow, null);
      return await s.command(["ECHO", "after"]);
    });
    assert.equal(late, "after");
    assert.equal(
      clientField(await redis.command(["CLIENT", "INFO"]), "db"),
      "0",
    );
    const s = redis.pool.stats;
    assert.equal(s.dials, 1, "the connection was kept throughout");
    assert.equal(s.destroyed.broken + s.destroyed.dirty, 0);
  },
});

Deno.test({
  name:
    "Redis session: a callback that throws while BLPOP is in flight destroys the connection; the BLPOP fails typed and the server sees the client gone",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 2 });
    await redis.ping();
    await turn();
    let pop: Promise<unknown> | undefined;
    const failure = new Error("callback failed");
    await assert.rejects(
      redis.session(async (s) => {
        pop = s.command(["BLPOP", "s:never", 0]).then(
          (reply) => ({ reply }),
          (error) => error,
        );
        await sleep(50);
        throw failure;
      }),
      (e) => e === failure,
    );
    const outcome = await pop;
    assert.ok(outcome instanceof ConnectionBrokenError, String(outcome));
    let s = redis.pool.stats;
    assert.equal(s.open, 0, "the session's connection is gone");
    assert.equal(s.destroyed.destroyed, 1);
    // Server side: no client is left blocked in BLPOP.
    const end = performance.now() + 2_000;
    let list = "";
    while (performance.now() < end) {
      list = await server.send("CLIENT", "LIST");
      if (!list.includes("cmd=blpop")) break;
      await sleep(10);
    }
    assert.ok(!list.includes("cmd=blpop"), list);
    // Returning with a command still in flight destroys it as well.
    let echo: Promise<unknown> | undefined;
    await redis.session((s) => {
      echo = s.command(["BLPOP", "s:never", 0]).catch((error) => error);
    });
    assert.ok(await echo instanceof ConnectionBrokenError);
    s = redis.pool.stats;
    assert.equal(s.destroyed.destroyed, 2);
    assert.equal(await redis.ping(), "PONG");
  },
});

Deno.test({
  name:
    "Redis session: a RESET that times out or a connection the server killed is destroyed, not given back",
  ignore,
  async fn() {
    await using server = await startRedis(["--enable-debug-command", "local"]);
    await using redis = new RedisClient({ port: server.port, max: 1 });
    await redis.ping();
    // The server sleeps through the session's RESET.
    let sleeping: Promise<string> | undefined;
    let woke = false;
    await redis.session(async (s) => {
      await s.command(["SELECT", 3]);
      sleeping = server.send("DEBUG", "SLEEP", "0.4");
      void sleeping.then(() => woke = true);
      await sleep(50);
    }, { resetTimeout: 100 });
    assert.equal(woke, false, "the session gave up on RESET first");
    let s = redis.pool.stats;
    assert.equal(s.open, 0);
    assert.equal(s.destroyed.destroyed, 1);
    assert.equal(await sleeping, "+OK\r\n");
    // Killed by the server while the callback ran.
    await redis.session(async (s) => {
      const id = await s.command(["CLIENT", "ID"]);
      await server.send("CLIENT", "KILL", "ID", String(id));
    });
    s = redis.pool.stats;
    assert.equal(s.open, 0);
    assert.equal(s.destroyed.destroyed, 2);
    assert.equal(s.dials, 2);
    assert.equal(
      clientField(await redis.command(["CLIENT", "INFO"]), "db"),
      "0",
    );
  },
});

Deno.test({
  name:
    "Redis session: commands that do not answer once per command are refused typed, unsent; CLIENT NO-EVICT (kept by RESET) costs the connection",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 1 });
    await redis.ping();
    await redis.session(async (s) => {
      for (
        const [args, command, instead] of [
          [["CLIENT", "REPLY", "OFF"], "CLIENT REPLY OFF", /replies on/],
          [["client", "reply", "skip"], "CLIENT REPLY SKIP", /replies on/],
          [["SUBSCRIBE", "c"], "SUBSCRIBE", /redis\.subscribe\(/],
          [["UNSUBSCRIBE"], "UNSUBSCRIBE", /redis\.subscribe\(/],
          [["SSUBSCRIBE", "c"], "SSUBSCRIBE", /redis\.subscribe\(/],
          [["SUNSUBSCRIBE"], "SUNSUBSCRIBE", /redis\.subscribe\(/],
          [["psubscribe", "c*"], "PSUBSCRIBE", /redis\.psubscribe\(/],
          [["PUNSUBSCRIBE"], "PUNSUBSCRIBE", /redis\.psubscribe\(/],
          [["MONITOR"], "MONITOR", /redis\.pool\.borrow\(/],
          [["HELLO", 3], "HELLO", /HELLO 2/],
        ] as const
      ) {
        await assert.rejects(
          s.command(args),
          (e) =>
            e instanceof StatefulCommandError && e.command === command &&
            e.message.startsWith(`Cannot send ${command} in a session: it `) &&
            instead.test(e.message),
        );
      }
      // Allowed: what the shared path refuses and answers once.
      assert.equal(await s.command(["CLIENT", "REPLY", "ON"]), "OK");
      assert.ok(Array.isArray(await s.command(["HELLO", 2])));
      assert.equal(await s.command(["CLIENT", "SETNAME", "mine"]), "OK");
      assert.equal(await s.command(["ECHO", "still in step"]), "still in step");
    });
    // RESET cleared the name; the connection was kept.
    assert.equal(await redis.command(["CLIENT", "GETNAME"]), null);
    assert.equal(redis.pool.stats.dials, 1);
    const stats = String(await redis.command(["INFO", "commandstats"]));
    assert.doesNotMatch(stats, /cmdstat_(p|s)?(un)?subscribe|cmdstat_monitor/);
    // NO-EVICT survives RESET on Redis 7.0: the connection is destroyed.
    await redis.session(async (s) => {
      await s.command(["CLIENT", "NO-EVICT", "on"]);
    });
    assert.equal(redis.pool.stats.open, 0);
    assert.equal(
      clientField(await redis.command(["CLIENT", "INFO"]), "flags"),
      "N",
    );
  },
});

Deno.test({
  name:
    "Redis session: bad arguments are TypeError/RangeError before any borrow",
  ignore: false,
  async fn() {
    await using redis = new RedisClient({ port: 1, max: 1 });
    const run = (_s: RedisSession) => 1;
    await assert.rejects(
      redis.session("no" as unknown as typeof run),
      { name: "TypeError", message: /fn must be a function, received string/ },
    );
    await assert.rejects(
      redis.session(run, { timeout: -1 }),
      { name: "RangeError", message: /timeout must be ≥ 0 ms, received -1/ },
    );
    await assert.rejects(
      redis.session(run, { resetTimeout: "1" as unknown as number }),
      { name: "TypeError", message: /resetTimeout must be a number/ },
    );
    await assert.rejects(
      redis.session(run, { signal: {} as AbortSignal }),
      { name: "TypeError", message: /signal must be an AbortSignal/ },
    );
    assert.equal(redis.pool.stats.borrows, 0);
    assert.equal(redis.pool.stats.dials, 0);
  },
});

// -- Subscriptions --

/** Polls `probe` until it returns true, for at most `ms`; returns its last. */
async function eventually(
  probe: () => Promise<boolean>,
  ms = 2_000,
): Promise<boolean> {
  const end = performance.now() + ms;
  while (true) {
    if (await probe()) return true;
    if (performance.now() > end) return false;
    await sleep(10);
  }
}

/** Subscribers the server counts for `channel` (PUBSUB NUMSUB). */
async function subscribers(
  server: { send(...args: string[]): Promise<string> },
  channel: string,
): Promise<number> {
  const reply = await server.send("PUBSUB", "NUMSUB", channel);
  return Number(/:(\d+)\r\n$/.exec(reply)?.[1]);
}

Deno.test({
  name:
    "Redis subscribe: 500 messages on two channels arrive once, in order; close() ends the loop and destroys the connection, server side too",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 4 });
    const sub = await redis.subscribe(["p:a", "p:b"], { capacity: 8 });
    assert.ok(sub instanceof Channel);
    assert.deepEqual(sub.channels, ["p:a", "p:b"]);
    assert.equal(sub.capacity, 8);
    assert.equal(await subscribers(server, "p:a"), 1);
    const n = 500;
    const sent: string[] = [];
    const publishing = (async () => {
      for (let i = 0; i < n; i++) {
        const channel = i % 3 === 0 ? "p:b" : "p:a";
        const message = `${channel}/${i}/${crypto.randomUUID()}`;
        sent.push(`${channel} ${message}`);
        assert.equal(await redis.command(["PUBLISH", channel, message]), 1);
      }
    })();
    const got: string[] = [];
    for await (const m of sub) {
      assert.equal(m.pattern, undefined);
      got.push(`${m.channel} ${m.message}`);
      if (got.length === n) sub.close();
    }
    await publishing;
    await sub.finished;
    assert.deepEqual(got, sent);
    // The PUBLISHes' pipelined connection goes back after the turn.
    await turn();
    const s = redis.pool.stats;
    assert.equal(s.destroyed.destroyed, 1, "its connection was destroyed");
    assert.equal(s.inUse, 0);
    assert.ok(
      await eventually(async () =>
        await subscribers(server, "p:a") === 0 &&
        await subscribers(server, "p:b") === 0
      ),
      "the server closed the subscriber",
    );
    // Closing again is a no-op; sending to it is refused.
    sub.close();
    await assert.rejects(sub.send({ channel: "x", message: "y" }));
  },
});

Deno.test({
  name:
    "Redis psubscribe: messages carry the pattern; closing while the reader waits on a full buffer or on the socket leaves nothing behind",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 4 });
    {
      await using events = await redis.psubscribe(["ev:*", "other:*"]);
      assert.equal(events.pattern, true);
      await redis.command(["PUBLISH", "ev:1", "one"]);
      await redis.command(["PUBLISH", "other:2", "two"]);
      assert.deepEqual(await events.receive(), {
        pattern: "ev:*",
        channel: "ev:1",
        message: "one",
      });
      assert.deepEqual(await events.receive(), {
        pattern: "other:*",
        channel: "other:2",
        message: "two",
      });
      // The reader now waits on the socket; `await using` closes it.
    }
    {
      // capacity 0: the reader waits in `send` for a receiver.
      await using full = await redis.subscribe("full", { capacity: 0 });
      for (let i = 0; i < 5; i++) {
        await redis.command(["PUBLISH", "full", `m${i}`]);
      }
      assert.deepEqual(await full.receive(), {
        channel: "full",
        message: "m0",
      });
    }
    await turn();
    const s = redis.pool.stats;
    assert.equal(s.destroyed.destroyed, 2);
    assert.equal(s.inUse, 0);
    assert.ok(
      await eventually(async () =>
        !(await server.send("CLIENT", "LIST")).includes("cmd=psubscribe") &&
        await subscribers(server, "full") === 0
      ),
    );
  },
});

Deno.test({
  name:
    "Redis subscribe: a connection killed by the server closes the channel with ConnectionBrokenError after the buffered messages",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 2 });
    const sub = await redis.subscribe("k:c");
    await redis.command(["PUBLISH", "k:c", "before"]);
    assert.ok(await eventually(() => Promise.resolve(sub.size === 1)));
    assert.match(
      await server.send("CLIENT", "KILL", "TYPE", "pubsub"),
      /^:1/,
    );
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of sub) got.push(m.message);
      })(),
      ConnectionBrokenError,
    );
    assert.deepEqual(got, ["before"]);
    await sub.finished;
    assert.equal(sub.closed, true);
    await turn();
    assert.equal(redis.pool.stats.inUse, 0);
    assert.equal(await redis.ping(), "PONG");
  },
});

Deno.test({
  name:
    "Redis subscribe: a consumer that never receives stops the reader; Redis's pubsub output-buffer limit then closes the connection and the subscription ends typed",
  ignore,
  async fn() {
    await using server = await startRedis([
      "--client-output-buffer-limit",
      "pubsub 256kb 128kb 0",
    ]);
    await using redis = new RedisClient({ port: server.port, max: 2 });
    const sub = await redis.subscribe("bp", { capacity: 1 });
    const chunk = "x".repeat(64 * 1024);
    // Up to 32 MiB published; nothing received meanwhile. PUBLISH answers
    // 0 once Redis has dropped the subscriber.
    let delivered = 0;
    for (let i = 0; i < 512; i++) {
      const n = Number(await redis.command(["PUBLISH", "bp", chunk]));
      if (n === 0) break;
      delivered += n;
    }
    assert.equal(sub.size, 1, "the buffer is full");
    assert.equal(sub.closed, false, "the reader is not reading: no EOF yet");
    // Now drain: what reached the socket, then the end, typed.
    let got = 0;
    const error = await (async () => {
      for await (const m of sub) {
        assert.equal(m.message, chunk);
        got++;
      }
    })().then(() => null, (e) => e);
    await sub.finished;
    console.log(
      `never received: ${delivered} of 512 PUBLISHes of 64 KiB reached the subscriber before Redis dropped it at its 256 KiB pubsub limit; drained ${got}, then ${
        (error as Error)?.name
      }`,
    );
    assert.ok(error instanceof ConnectionBrokenError, String(error));
    assert.ok(got >= 1 && got <= delivered, `${got} of ${delivered}`);
    assert.ok(delivered < 512, "the server gave up on the subscriber");
  },
});

Deno.test({
  name:
    "Redis subscribe: bad arguments are TypeError/RangeError before any borrow; a timeout or an abort before the confirmation destroys the connection",
  ignore,
  async fn() {
    await using server = await startRedis(["--enable-debug-command", "local"]);
    await using redis = new RedisClient({ port: server.port, max: 2 });
    for (
      const [channels, options, error] of [
        [[], {}, /channels must be a string or a non-empty array/],
        [[1], {}, /channels must be a string or a non-empty array/],
        ["c", { capacity: -1 }, /capacity must be a non-negative integer/],
        ["c", { capacity: 1.5 }, /capacity must be a non-negative integer/],
        ["c", { capacity: "2" }, /capacity must be a number/],
        ["c", { timeout: NaN }, /timeout must be ≥ 0 ms, received NaN/],
        ["c", { signal: "s" }, /signal must be an AbortSignal/],
      ] as const
    ) {
      await assert.rejects(
        redis.subscribe(
          channels as unknown as string[],
          options as SubscribeOptions,
        ),
        (e) =>
          (e instanceof TypeError || e instanceof RangeError) &&
          error.test(e.message),
      );
    }
    assert.equal(redis.pool.stats.borrows, 0);
    // The server sleeps: no confirmation within 100 ms.
    const sleeping = server.send("DEBUG", "SLEEP", "0.3");
    await sleep(20);
    await assert.rejects(
      redis.subscribe("late", { timeout: 100 }),
      (e) =>
        e instanceof TimeoutError &&
        /not confirmed within 100 ms/.test(e.message),
    );
    const controller = new AbortController();
    const reason = new Error("gave up");
    setTimeout(() => controller.abort(reason), 50);
    await assert.rejects(
      redis.subscribe("late", { signal: controller.signal }),
      (e) => e === reason,
    );
    await sleeping;
    await turn();
    const s = redis.pool.stats;
    assert.equal(s.destroyed.destroyed, 2);
    assert.equal(s.inUse, 0);
    assert.equal(await subscribers(server, "late"), 0);
  },
});

Deno.test({
  name:
    "Redis: close() ends open subscriptions (PoolClosedError as the reason) and closes every connection",
  ignore,
  async fn() {
    await using server = await startRedis();
    const redis = new RedisClient({ port: server.port, max: 2 });
    const sub = await redis.subscribe("cl");
    const loop = (async () => {
      for await (const _ of sub) {
        // nothing is published
      }
    })();
    const ended = assert.rejects(loop, PoolClosedError);
    await redis.close();
    await ended;
    assert.equal(redis.pool.stats.open, 0);
    await assert.rejects(redis.subscribe("cl"), PoolClosedError);
    await assert.rejects(redis.session(() => 1), PoolClosedError);
    assert.ok(
      await eventually(async () => await subscribers(server, "cl") === 0),
    );
  },
});

Deno.test({
  name:
    "Redis: 64 tasks of shared GET/SET beside sessions running MULTI/EXEC and SELECT and a subscription receiving PUBLISHes: 0 wrong replies, every message once and in order",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({ port: server.port, max: 8 });
    const sub = await redis.subscribe("mix:news", { capacity: 16 });
    const published: string[] = [];
    const received: string[] = [];
    const receiving = (async () => {
      for await (const m of sub) received.push(m.message);
    })();
    let stop = false;
    const sessions = { multi: 0, select: 0, leftOpen: 0, wrong: 0 };
    const workers = [
      // Publishes, one after another: their order is the order to receive.
      (async () => {
        for (let i = 0; !stop; i++) {
          const message = `news-${i}-${crypto.randomUUID()}`;
          published.push(message);
          await redis.command(["PUBLISH", "mix:news", message]);
        }
      })(),
      // Transactions in sessions.
      ...Array.from({ length: 2 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const key = `mix:tx:${w}:${i}`;
          const exec = await redis.session(async (s) => {
            await s.command(["MULTI"]);
            await s.command(["INCR", "mix:counter"]);
            await s.command(["SET", key, "tx"]);
            return await s.command(["EXEC"]);
          });
          const ok = Array.isArray(exec) && typeof exec[0] === "number" &&
            exec[1] === "OK";
          if (ok) sessions.multi++;
          else sessions.wrong++;
        }
      }),
      // SELECT 1 in sessions; every third one leaves it selected, in a
      // transaction, for RESET to undo.
      ...Array.from({ length: 2 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const key = `mix:db1:${w}:${i}`;
          const got = await redis.session(async (s) => {
            await s.command(["SELECT", 1]);
            await s.set(key, "in db 1");
            const got = await s.get(key);
            if (i % 3 === 0) {
              await s.command(["MULTI"]);
              await s.command(["SET", "mix:leak", "queued"]);
              sessions.leftOpen++;
            }
            return got;
          });
          if (got === "in db 1") sessions.select++;
          else sessions.wrong++;
        }
      }),
    ];
    const tally = await burst(redis, "mix", 4_000, 64);
    stop = true;
    await Promise.all(workers);
    // Every published message was received before the subscription closes.
    assert.ok(
      await eventually(() =>
        Promise.resolve(received.length >= published.length)
      ),
      `${received.length} of ${published.length} received`,
    );
    sub.close();
    await receiving;
    await sub.finished;
    // Nothing of the sessions leaked onto the shared path.
    const leak = await redis.get("mix:leak");
    const db1InDb0 = await redis.get("mix:db1:0:0");
    console.log(
      `mixed: ${tally.ok} shared pairs ok, ${tally.mismatches} wrong replies, ${tally.errorCount} errors; sessions: ${sessions.multi} MULTI/EXEC, ${sessions.select} SELECT (${sessions.leftOpen} left in db 1 and MULTI), ${sessions.wrong} wrong; ${received.length} of ${published.length} messages received in order; pool: ${redis.pool.stats.dials} dials, ${redis.pool.stats.destroyed.destroyed} destroyed`,
    );
    assert.equal(tally.errorCount, 0, JSON.stringify([...tally.errors]));
    assert.equal(tally.mismatches, 0);
    assert.equal(tally.ok, 4_000);
    assert.equal(sessions.wrong, 0);
    assert.ok(sessions.multi >= 1 && sessions.select >= 1);
    assert.ok(sessions.leftOpen >= 1);
    assert.deepEqual(received, published);
    assert.ok(published.length >= 10);
    assert.equal(leak, null, "a queued SET left in MULTI never ran");
    assert.equal(db1InDb0, null, "db 1's keys are not in db 0");
    assert.equal(Number(await redis.get("mix:counter")), sessions.multi);
    // Only the subscription's connection was destroyed: sessions' were
    // reset and reused.
    assert.equal(redis.pool.stats.destroyed.destroyed, 1);
    assert.equal(redis.pool.stats.destroyed.broken, 0);
  },
});

// -- The parser and the pipeline --

Deno.test({
  name:
    "readReply: replies split at random points read the same whether buffered whole (synchronous) or not",
  permissions: "none",
  async fn() {
    const seed = Date.now() >>> 0;
    console.log(`seed ${seed}`);
    const random = mulberry32(seed);
    const pick = <T>(xs: readonly T[]): T =>
      xs[Math.floor(random() * xs.length)]!;
    const bulk = (t: string) =>
      `$${new TextEncoder().encode(t).length}\r\n${t}\r\n`;
    // A reply as bytes, and the value readReply returns for it.
    const make = (depth: number): [string, RedisValue | RedisError] => {
      switch (Math.floor(random() * (depth > 0 ? 7 : 8))) {
        case 0:
          return ["+OK\r\n", "OK"];
        case 1: {
          const t = pick(["ERR x", "WRONGTYPE é", "E".repeat(100)]);
          return [`-${t}\r\n`, new RedisError(t)];
        }
        case 2: {
          const n = pick([0, -1, 42, -9_007_199_254_740_991, 123456789]);
          return [`:${n}\r\n`, n];
        }
        case 3:
          return ["$-1\r\n", null];
        case 4: {
          const t = pick([
            "",
            "v",
            "日本語😀",
            "x".repeat(70),
            "y".repeat(5000),
          ]);
          return [bulk(t), t];
        }
        case 5:
          return ["*-1\r\n", null];
        case 6:
          return [`+${"s".repeat(80)}\r\n`, "s".repeat(80)];
        default: {
          const items = Array.from(
            { length: Math.floor(random() * 4) },
            () => make(depth + 1),
          );
          return [
            `*${items.length}\r\n${items.map(([b]) => b).join("")}`,
            items.map(([, v]) => v instanceof RedisError ? v.message : v),
          ];
        }
      }
    };
    const replies = Array.from({ length: 2_000 }, () => make(0));
    const bytes = new TextEncoder().encode(replies.map(([b]) => b).join(""));
    let off = 0;
    const reader = new FrameReader({
      read(p) {
        if (off === bytes.length) return Promise.resolve(null);
        const n = Math.min(
          p.length,
          bytes.length - off,
          1 + Math.floor(random() * 300),
        );
        p.set(bytes.subarray(off, off + n));
        off += n;
        return Promise.resolve(n);
      },
    });
    let sync = 0;
    for (const [, want] of replies) {
      const got = readReply(reader);
      if (!(got instanceof Promise)) sync++;
      assert.deepEqual(await got, want);
    }
    assert.equal(await readReply(reader), null);
    console.log(`${sync} of ${replies.length} parsed synchronously`);
    assert.ok(sync > 0 && sync < replies.length);
  },
});

Deno.test({
  name:
    "Redis pipelining: 64 tasks with random timeouts and aborts mid-burst: commands given up on never shift a later reply (0 wrong replies)",
  ignore,
  async fn() {
    const seed = Date.now() >>> 0;
    console.log(`seed ${seed}`);
    const random = mulberry32(seed);
    await using server = await startRedis(["--enable-debug-command", "local"]);
    await using redis = new RedisClient({ port: server.port, max: 4 });
    let wrong = 0, ok = 0, gaveUp = 0;
    const others: unknown[] = [];
    let stop = false;
    const tasks = Array.from({ length: 64 }, async (_, t) => {
      for (let i = 0; !stop; i++) {
        const token = `t${t}-${i}-${crypto.randomUUID()}`;
        // A third get 1-5 ms, a sixth an abort after 0-3 ms, the rest 2 s.
        const r = random();
        const controller = new AbortController();
        const options = r < 0.33
          ? { timeout: 1 + random() * 4 }
          : r < 0.5
          ? { timeout: 2_000, signal: controller.signal }
          : { timeout: 2_000 };
        if (r >= 0.33 && r < 0.5) {
          setTimeout(
            () => controller.abort(new Error("gave up")),
            random() * 3,
          );
        }
        const kind = Math.floor(random() * 3);
        try {
          if (kind === 0) {
            if (await redis.command(["ECHO", token], options) === token) ok++;
            else wrong++;
          } else if (kind === 1) {
            const reply = await redis.command(["SET", token, token], options);
            if (reply === "OK") ok++;
            else wrong++;
          } else {
            // A key set by nobody: nil, or another command's reply.
            const reply = await redis.command(
              ["GET", `none:${token}`],
              options,
            );
            if (reply === null) ok++;
            else wrong++;
          }
        } catch (error) {
          if (
            error instanceof TimeoutError ||
            (error as Error).message === "gave up"
          ) gaveUp++;
          else others.push(error);
        }
      }
    });
    // Replies held back now and then, so calls give up while in flight.
    for (let i = 0; i < 5; i++) {
      await sleep(40);
      await server.send("DEBUG", "SLEEP", "0.02");
    }
    stop = true;
    await Promise.all(tasks);
    const p = redis.pool.stats.pipeline!;
    console.log(
      `${ok} right, ${wrong} wrong, ${gaveUp} gave up (${p.orphans} after they were written), others ${others.length}; ${redis.pool.stats.dials} dials`,
    );
    assert.equal(wrong, 0);
    assert.deepEqual(others, []);
    assert.ok(p.orphans > 0, "some calls gave up in flight");
    assert.ok(ok > 1_000, `${ok} right`);
    // The connections are still in step.
    assert.equal(await redis.command(["ECHO", "last"]), "last");
  },
});

Deno.test({
  name:
    "Redis pipelining: redis-server stopped mid-flight: every pending command settles typed at once; after a restart idempotent commands succeed on new connections",
  ignore,
  async fn() {
    await using server = await startRedis();
    await using redis = new RedisClient({
      port: server.port,
      max: 4,
      connectTimeout: 1_000,
    });
    await warm(redis, 4);
    const dials = redis.pool.stats.dials;
    let stop = false;
    let stoppedAt = Infinity;
    let wrong = 0;
    let latest = 0;
    const kinds = new Map<string, number>();
    const tasks = Array.from({ length: 64 }, async (_, t) => {
      for (let i = 0; !stop; i++) {
        const token = `k${t}-${i}`;
        try {
          const incr = i % 4 === 3;
          const reply = incr
            ? await redis.incr("k:counter", { timeout: 10_000 })
            : await redis.command(["ECHO", token], { timeout: 10_000 });
          if (!incr && reply !== token) wrong++;
        } catch (error) {
          const name = (error as Error).name;
          kinds.set(name, (kinds.get(name) ?? 0) + 1);
          latest = Math.max(latest, performance.now() - stoppedAt);
          assert.ok(
            error instanceof ConnectionBrokenError ||
              error instanceof DialError,
            String(error),
          );
          await sleep(5);
        }
      }
    });
    await sleep(50);
    stoppedAt = performance.now();
    await server.stop();
    await sleep(300);
    const settledBy = performance.now() - stoppedAt;
    const inFlight = redis.pool.stats.pipeline!.inFlight;
    await server.start();
    // After the restart: every idempotent command succeeds.
    const after = await Promise.allSettled(
      Array.from(
        { length: 200 },
        (_, i) => redis.command(["ECHO", `after${i}`], { timeout: 5_000 }),
      ),
    );
    stop = true;
    await Promise.all(tasks);
    const failed = after.filter((r) => r.status === "rejected");
    console.log(
      `stopped mid-flight: failures ${
        JSON.stringify(Object.fromEntries(kinds))
      }, ${wrong} wrong; in flight 300 ms after the stop: ${inFlight}; after the restart ${
        after.length - failed.length
      } ok, ${failed.length} failed; ${redis.pool.stats.dials - dials} dials`,
    );
    assert.equal(wrong, 0);
    assert.ok((kinds.get("ConnectionBrokenError") ?? 0) >= 1, "INCRs cut");
    assert.equal(inFlight, 0, "nothing waits on a dead connection");
    assert.ok(settledBy < 1_000);
    assert.deepEqual(failed, []);
    assert.ok(
      after.every((r, i) =>
        (r as PromiseFulfilledResult<unknown>).value === `after${i}`
      ),
    );
    assert.ok(redis.pool.stats.dials > dials, "new connections");
  },
});

Deno.test({
  name:
    "encodeCommand: RESP2 arrays of bulk strings with UTF-8 byte lengths; earlier commands' bytes stay as they were",
  permissions: "none",
  fn() {
    const seed = Date.now() >>> 0;
    console.log(`seed ${seed}`);
    const random = mulberry32(seed);
    const enc = new TextEncoder();
    const pieces = [
      "a",
      "é",
      "日本",
      "😀",
      "\ud800",
      "x".repeat(70),
      "\r\n",
      "",
    ];
    const made: [Uint8Array, string][] = [];
    for (let n = 0; n < 5_000; n++) {
      const args = Array.from(
        { length: 1 + Math.floor(random() * 5) },
        () =>
          random() < 0.2 ? Math.floor(random() * 1e6) - 500 : Array.from(
            { length: Math.floor(random() * 6) },
            () => pieces[Math.floor(random() * pieces.length)]!,
          ).join(""),
      );
      let text = `*${args.length}\r\n`;
      for (const a of args) {
        text += `$${enc.encode(String(a)).length}\r\n${a}\r\n`;
      }
      made.push([encodeCommand(args), text]);
    }
    // A command of more than a slab.
    const big = "z".repeat(100_000);
    made.push([
      encodeCommand(["SET", "k", big]),
      `*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n${big}\r\n`,
    ]);
    for (const [bytes, text] of made) assert.deepEqual(bytes, enc.encode(text));
  },
});
