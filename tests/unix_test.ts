// Copyright 2026 the chanpool authors. MIT license.
// TcpPool over Unix domain sockets ({ path }): a Deno echo listener, and a
// real redis-server's `unixsocket`. Sockets live in one folder the test
// task may read and write: /tmp/chanpool-tests.

import assert from "node:assert/strict";
import { DialError, TcpPool } from "../mod.ts";
import { RedisClient } from "../examples/redis.ts";
import { HAVE_REDIS, startRedis } from "./_redis_server.ts";

const DIR = "/tmp/chanpool-tests";

/**
 * The socket path `name` in DIR (the folder is made on first use, a file
 * left by an earlier run removed). Names are fixed: the test task allows
 * net access to each by name (`--allow-net=unix:...`), as Deno requires.
 */
async function socketPath(name: "a" | "b" | "redis"): Promise<string> {
  await Deno.mkdir(DIR, { recursive: true });
  const path = `${DIR}/${name}.sock`;
  await Deno.remove(path).catch(() => {});
  return path;
}

function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

/** A Unix listener that echoes every byte back, until stopped. */
async function unixEcho(): Promise<
  { path: string; accepted: () => number } & AsyncDisposable
> {
  const path = await socketPath("a");
  const listener = Deno.listen({ transport: "unix", path });
  const conns = new Set<Deno.Conn>();
  let accepted = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      conns.add(conn);
      conn.readable.pipeTo(conn.writable).catch(() => {}).finally(() =>
        conns.delete(conn)
      );
    }
  })();
  return {
    path,
    accepted: () => accepted,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving;
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // closed already
        }
      }
      await Deno.remove(path).catch(() => {});
    },
  };
}

Deno.test("TcpPool({ path }): requests over a Unix socket, one connection reused, named unix:path", async () => {
  await using server = await unixEcho();
  await using pool = new TcpPool({ path: server.path, max: 2 });
  assert.equal(pool.address, `unix:${server.path}`);
  for (let i = 0; i < 5; i++) {
    const reply = await pool.request(new Uint8Array([i, 1, 2]), {
      timeout: 2_000,
    });
    assert.deepEqual(reply, new Uint8Array([i, 1, 2]));
  }
  assert.equal(server.accepted(), 1, "one connection, reused");
  await using conn = await pool.borrow();
  assert.equal(conn.remoteAddr.transport, "unix");
  await conn.write(frame(new Uint8Array([9])));
  assert.deepEqual(
    await conn.readFrame({ timeout: 2_000 }),
    new Uint8Array([9]),
  );
});

Deno.test("TcpPool({ path }): a socket nobody listens on is a DialError that names it; the pool serves once it listens", async () => {
  const path = await socketPath("b");
  await using pool = new TcpPool({ path, max: 1 });
  await assert.rejects(
    pool.request(new Uint8Array([1])),
    (e) =>
      e instanceof DialError &&
      e.message.startsWith(`Cannot dial unix:${path}: `),
  );
  const listener = Deno.listen({ transport: "unix", path });
  const served = (async () => {
    const conn = await listener.accept();
    await conn.readable.pipeTo(conn.writable).catch(() => {});
  })();
  // Waits for the next probe (the last dial failed), then is served.
  assert.deepEqual(
    await pool.request(new Uint8Array([2]), { timeout: 5_000 }),
    new Uint8Array([2]),
  );
  await pool.close();
  listener.close();
  await served;
  await Deno.remove(path).catch(() => {});
});

Deno.test({
  name:
    "RedisClient({ path }) over redis-server's unixsocket: commands, pipelined, and the idle watch",
  ignore: !HAVE_REDIS,
  async fn() {
    const path = await socketPath("redis");
    await using _server = await startRedis([
      "--unixsocket",
      path,
      "--unixsocketperm",
      "700",
    ]);
    await using redis = new RedisClient({ path, max: 4 });
    assert.equal(redis.pool.address, `unix:${path}`);
    await redis.set("unix:greeting", "hello");
    assert.equal(await redis.get("unix:greeting"), "hello");
    const values = await Promise.all(
      Array.from({ length: 64 }, () => redis.incr("unix:counter")),
    );
    assert.deepEqual(
      values.sort((a, b) => a - b),
      Array.from({ length: 64 }, (_, i) => i + 1),
    );
    const s = redis.pool.stats;
    assert.ok(s.dials <= 4, `${s.dials} dials`);
    assert.equal(s.dialErrors, 0);
  },
});
