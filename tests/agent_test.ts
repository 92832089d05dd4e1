// Copyright 2026 the chanpool authors. MIT license.
// TcpAgent: a pool per address, one cap for all, against local echo
// servers (many listeners on distinct ports of 127.0.0.1).

import assert from "node:assert/strict";
import { PoolClosedError, TcpAgent } from "../mod.ts";
import { mulberry32 } from "./_random.ts";

/** `n` echo listeners on 127.0.0.1 (length-prefixed frames come back). */
function echoServers(n: number): {
  ports: number[];
  accepted: () => number;
  open: () => number;
} & AsyncDisposable {
  const listeners: Deno.TcpListener[] = [];
  const conns = new Set<Deno.Conn>();
  let accepted = 0;
  const loops: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    let listener: Deno.TcpListener;
    try {
      listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    } catch (error) {
      // Out of file descriptors (a low `ulimit -n`): fewer servers.
      if (i < 100) throw error;
      console.log(`only ${i} listeners could be opened: ${error}`);
      break;
    }
    listeners.push(listener);
    loops.push((async () => {
      try {
        for await (const conn of listener) {
          accepted++;
          conns.add(conn);
          conn.readable.pipeTo(conn.writable).catch(() => {}).finally(() =>
            conns.delete(conn)
          );
        }
      } catch {
        // closed
      }
    })());
  }
  return {
    ports: listeners.map((l) => l.addr.port),
    accepted: () => accepted,
    open: () => conns.size,
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
    },
  };
}

const one = new Uint8Array([1]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test('TcpAgent: a pool per address, made on first use, by "host:port" or { hostname, port }', async () => {
  await using servers = echoServers(3);
  await using agent = new TcpAgent({ maxPerHost: 2 });
  for (const port of servers.ports) {
    assert.deepEqual(await agent.request(`127.0.0.1:${port}`, one), one);
    assert.deepEqual(await agent.request({ port }, one), one);
    assert.deepEqual(
      await agent.request({ hostname: "127.0.0.1", port }, one),
      one,
    );
  }
  assert.equal(agent.stats.keys, 3, "one pool per address, however named");
  assert.equal(agent.stats.open, 3);
  assert.equal(agent.statsFor({ port: servers.ports[0]! })?.open, 1);
  assert.equal(agent.statsFor({ port: 1 }), undefined);
  assert.deepEqual(
    agent.keys().sort(),
    servers.ports.map((p) => `127.0.0.1:${p}`).sort(),
  );
});

Deno.test("TcpAgent: at maxTotal, a borrow for an address with nothing idle closes the least recently idled connection of another address instead of waiting", async () => {
  await using servers = echoServers(3);
  await using agent = new TcpAgent({ maxTotal: 2 });
  const [a, b, c] = servers.ports.map((port) => ({ port }));
  await agent.request(a!, one); // a idle
  await agent.request(b!, one); // b idle, most recently
  assert.equal(agent.stats.open, 2);
  await agent.request(c!, one); // at the cap: a's idle connection goes
  assert.equal(agent.stats.open, 2);
  assert.equal(agent.stats.capEvictions, 1);
  assert.equal(agent.stats.capWaits, 0);
  assert.equal(agent.statsFor(a!)?.open, 0, "the least recently idled");
  assert.equal(agent.statsFor(b!)?.open, 1);
  // Nothing idle anywhere: a borrow waits, and the first release serves it.
  const held = [await agent.borrow(b!), await agent.borrow(c!)];
  let served = false;
  const waiting = agent.borrow(a!).then((conn) => {
    served = true;
    return conn;
  });
  await sleep(20);
  assert.equal(served, false);
  assert.equal(agent.stats.waitingForCap, 1);
  held[0]!.release(); // idle at b: closed for a
  const conn = await waiting;
  assert.equal(agent.stats.open, 2);
  assert.equal(agent.stats.capWaits, 1);
  conn.release();
  held[1]!.release();
});

Deno.test("TcpAgent({ maxPerHost: 2, maxTotal: 256 }): 10 000 addresses cycled by 64 workers: never more than 256 open or 2 per address, no wait while a connection is idle elsewhere; idle addresses are dropped and the heap comes back", async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  // 10 000 addresses (fewer only if the process may not open that many
  // files: 10 000 listeners, then up to 256 connections each way).
  await using servers = echoServers(10_000);
  const KEYS = servers.ports.length;
  // The least of several readings, each after a full collection and a
  // pause for the sweeper to free what it collected.
  const memory = async () => {
    let least = Infinity;
    for (let i = 0; i < 5; i++) {
      gc?.();
      await sleep(50);
      const m = Deno.memoryUsage();
      least = Math.min(least, m.heapUsed + m.external);
    }
    return least;
  };
  const options = { maxPerHost: 2, maxTotal: 256, idleTimeout: 1_000 };
  {
    // A warm-up, so that what the first run compiles and caches once is
    // in "before".
    await using warm = new TcpAgent(options);
    await Promise.all(
      servers.ports.slice(0, 512).map((port) =>
        warm.request({ port }, new Uint8Array([1]))
      ),
    );
  }
  const before = await memory();
  const agent = new TcpAgent(options);
  const seed = Date.now() % 1_000_000;
  const random = mulberry32(seed);
  let next = 0, maxOpen = 0, maxPerKey = 0, ops = 0;
  const payload = new Uint8Array([7, 7]);
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < 2 * KEYS) {
      // Every address once, then at random (some warm, most cold).
      const i = next < KEYS ? next : Math.floor(random() * KEYS);
      next++;
      const address = `127.0.0.1:${servers.ports[i]}`;
      const reply = await agent.request(address, payload, { timeout: 10_000 });
      assert.deepEqual(reply, payload);
      ops++;
      maxOpen = Math.max(maxOpen, agent.stats.open);
      maxPerKey = Math.max(maxPerKey, agent.statsFor(address)?.open ?? 0);
    }
  }));
  const s = agent.stats;
  console.log(
    `seed ${seed}: ${ops} requests over ${KEYS} addresses; max open ${maxOpen}, max per address ${maxPerKey}; ${s.capEvictions} idle connections closed for the cap, ${s.capWaits} waits`,
  );
  assert.ok(maxOpen <= 256, `${maxOpen} open`);
  assert.ok(maxPerKey <= 2, `${maxPerKey} open on one address`);
  // 64 workers hold at most 64 connections: at the cap, the rest are idle,
  // so no borrow ever waited for a place.
  assert.equal(s.capWaits, 0);
  assert.ok(s.capEvictions > 0);
  // The load stops: connections idle out (1 s), then their addresses go.
  const end = performance.now() + 5_000;
  while (agent.stats.keys > 0 && performance.now() < end) await sleep(100);
  assert.equal(agent.stats.keys, 0, "every idle address dropped");
  assert.equal(agent.stats.open, 0);
  await agent.close();
  const after = await memory();
  console.log(
    `heap + external: ${(before / 2 ** 20).toFixed(1)} MiB before, ${
      (after / 2 ** 20).toFixed(1)
    } MiB after`,
  );
  assert.ok(after <= before * 1.1, `${after} > ${before} + 10 %`);
});

Deno.test("TcpAgent: bad addresses and options are TypeError/RangeError naming them; a closed agent rejects with PoolClosedError", async () => {
  assert.throws(() => new TcpAgent({ maxTotal: 0 }), RangeError);
  assert.throws(
    () => new TcpAgent({ maxPerHost: "2" as never }),
    TypeError,
  );
  assert.throws(
    () => new TcpAgent({ port: 80 } as never),
    /port is the agent's to set/,
  );
  assert.throws(
    () => new TcpAgent({ whenExhausted: "overflow" }),
    RangeError,
  );
  const agent = new TcpAgent();
  await assert.rejects(agent.request("localhost", one), /host:port/);
  await assert.rejects(agent.request("127.0.0.1:0", one), RangeError);
  await assert.rejects(agent.request({ port: "1" } as never, one), TypeError);
  await assert.rejects(agent.request(5 as never, one), TypeError);
  assert.equal(agent.stats.keys, 0, "nothing made for a bad address");
  await agent.close();
  await assert.rejects(agent.request({ port: 1 }, one), PoolClosedError);
});

Deno.test("TcpAgent.drop closes an address's pool (waiters reject, a held connection closes on release) and its next use makes a new one", async () => {
  await using servers = echoServers(1);
  const address = `127.0.0.1:${servers.ports[0]}`;
  await using agent = new TcpAgent({ maxPerHost: 1 });
  const held = await agent.borrow(address);
  const waiting = agent.borrow(address, { timeout: 5_000 });
  const old = agent.pool(address);
  const dropped = agent.drop(address);
  await assert.rejects(waiting, PoolClosedError);
  assert.deepEqual(agent.keys(), []);
  assert.equal(agent.stats.open, 1, "the held connection, until released");
  held.release();
  await dropped;
  assert.equal(old.closed, true);
  assert.deepEqual([agent.stats.open, agent.stats.poolsDropped], [0, 1]);
  assert.notEqual(agent.pool(address), old, "a new pool on its next use");
  await agent.drop("127.0.0.1:1"); // no pool: nothing to do
  await assert.rejects(agent.drop("nonsense"), TypeError);
});
