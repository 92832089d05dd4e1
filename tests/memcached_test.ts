// Copyright 2026 the chanpool authors. MIT license.
// examples/memcached.ts against a real memcached (ignored, with a note,
// when memcached is not on the PATH).

import assert from "node:assert/strict";
import {
  ConnectionBrokenError,
  DialError,
  FrameReader,
  PoolClosedError,
  ProtocolError,
  TimeoutError,
} from "../mod.ts";
import {
  freePort,
  MemcachedClient,
  MemcachedError,
  type MetaReply,
  readMetaReply,
} from "../examples/memcached.ts";
import {
  HAVE_MEMCACHED,
  type MemcachedServer,
  startMemcached,
} from "./_memcached_server.ts";
import { mulberry32 } from "./_random.ts";

const ignore = !HAVE_MEMCACHED;
if (ignore) {
  console.log("memcached tests ignored: memcached is not on the PATH");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = (b: Uint8Array | null) =>
  b === null ? null : new TextDecoder().decode(b);

/** Waits until the server counts `open` connections (ours closed). */
async function settled(server: MemcachedServer, open: number) {
  const end = performance.now() + 2_000;
  let now = await server.connections();
  while (now.open !== open && performance.now() < end) {
    await sleep(20);
    now = await server.connections();
  }
  return now;
}

// -- Round trips --

Deno.test({
  name: "MemcachedClient: set, get, delete, miss, flags, TTL, CAS, modes",
  ignore,
  async fn() {
    await using server = await startMemcached();
    // Once the start-up probe's connection is gone at the server too.
    const base = await settled(server, 0);
    {
      await using mc = new MemcachedClient({ port: server.port, max: 2 });
      assert.equal(await mc.get("nope"), null);
      assert.equal(await mc.set("a", "one", { flags: 42, ttl: 100 }), true);
      assert.equal(text(await mc.get("a")), "one");
      assert.equal(await mc.getText("a"), "one");
      const item = await mc.gets("a");
      assert.ok(item !== null);
      assert.equal(text(item.value), "one");
      assert.equal(item.flags, 42);
      assert.ok(item.ttl > 90 && item.ttl <= 100, `ttl ${item.ttl}`);
      assert.equal(typeof item.cas, "bigint");
      assert.equal(await mc.cas("a", "two", item.cas + 1n), "exists");
      assert.equal(await mc.cas("a", "two", item.cas), "stored");
      assert.equal(await mc.cas("gone", "x", 1n), "not_found");
      assert.equal(await mc.getText("a"), "two");
      assert.equal(await mc.add("a", "x"), false);
      assert.equal(await mc.add("b", "bee"), true);
      assert.equal(await mc.replace("c", "x"), false);
      assert.equal(await mc.replace("b", "B"), true);
      assert.equal(await mc.append("b", "<"), true);
      assert.equal(await mc.prepend("b", ">"), true);
      assert.equal(await mc.append("c", "x"), false);
      assert.equal(await mc.getText("b"), ">B<");
      assert.equal(await mc.touch("b", 5), true);
      assert.equal((await mc.gets("b"))!.ttl <= 5, true);
      assert.equal(await mc.touch("c", 5), false);
      assert.equal(text((await mc.gets("b", { touch: 50 }))!.value), ">B<");
      assert.equal((await mc.gets("b"))!.ttl > 5, true);
      assert.equal(await mc.gets("c"), null);
      assert.equal(await mc.delete("a"), true);
      assert.equal(await mc.delete("a"), false);
      assert.equal(await mc.get("a"), null);
      // Counters: u64, decr stops at 0, initial on a miss.
      assert.equal(await mc.incr("n"), null);
      assert.equal(await mc.incr("n", 5, { initial: 10 }), 10n);
      assert.equal(await mc.incr("n", 5), 15n);
      assert.equal(await mc.decr("n", 100), 0n);
      assert.equal(await mc.incr("n", 2n ** 64n - 1n), 2n ** 64n - 1n);
      assert.equal(await mc.incr("n", 1), 0n);
      await mc.ping();
      // A non-numeric value: a typed error, and the connection lives on.
      const dials = mc.pool.stats.dials;
      const [bad, good] = await Promise.allSettled([
        mc.incr("b"),
        mc.getText("b"),
      ]);
      assert.ok(
        bad.status === "rejected" && bad.reason instanceof MemcachedError &&
          bad.reason.code === "CLIENT_ERROR",
      );
      assert.deepEqual(good, { status: "fulfilled", value: ">B<" });
      assert.equal(mc.pool.stats.dials, dials);
      assert.equal(mc.pool.stats.destroyed.broken, 0);
    }
    const after = await settled(server, base.open);
    assert.equal(after.open, base.open);
  },
});

Deno.test({
  name: "MemcachedClient: binary values (every byte, CRLF, reply lookalikes)",
  ignore,
  async fn() {
    await using server = await startMemcached();
    await using mc = new MemcachedClient({ port: server.port });
    const every = new Uint8Array(512).map((_, i) => i % 256);
    const lookalike = new TextEncoder().encode(
      "VA 3 O0\r\nabc\r\nEN O1\r\nHD O2.\r\nCLIENT_ERROR x\r\n",
    );
    const empty = new Uint8Array(0);
    await Promise.all([
      mc.set("every", every),
      mc.set("look", lookalike),
      mc.set("empty", empty),
    ]);
    const [a, b, c] = await Promise.all([
      mc.get("every"),
      mc.get("look"),
      mc.get("empty"),
    ]);
    assert.deepEqual(a, every);
    assert.deepEqual(b, lookalike);
    assert.deepEqual(c, empty);
    // UTF-8 keys and values.
    assert.equal(await mc.set("clé-ü", "välue ✓"), true);
    assert.equal(await mc.getText("clé-ü"), "välue ✓");
  },
});

Deno.test({
  name: "MemcachedClient: large values; one too large is a typed error",
  ignore,
  async fn() {
    await using server = await startMemcached();
    await using mc = new MemcachedClient({ port: server.port, max: 2 });
    const big = new Uint8Array(900 * 1024).map((_, i) => (i * 7) % 251);
    const small = "s".repeat(10);
    const [stored, smallStored] = await Promise.all([
      mc.set("big", big),
      mc.set("small", small),
    ]);
    assert.equal(stored, true);
    assert.equal(smallStored, true);
    const [gotBig, gotSmall] = await Promise.all([
      mc.get("big"),
      mc.getText("small"),
    ]);
    assert.deepEqual(gotBig, big);
    assert.equal(gotSmall, small);
    // Over memcached's 1 MiB item limit: SERVER_ERROR, matched by the fence;
    // the calls beside it are answered on the same connection.
    const dials = mc.pool.stats.dials;
    const results = await Promise.allSettled([
      mc.getText("small"),
      mc.set("huge", new Uint8Array(2 * 1024 * 1024)),
      mc.getText("small"),
    ]);
    assert.deepEqual(results[0], { status: "fulfilled", value: small });
    assert.ok(
      results[1].status === "rejected" &&
        results[1].reason instanceof MemcachedError &&
        results[1].reason.code === "SERVER_ERROR",
      String((results[1] as PromiseRejectedResult).reason),
    );
    assert.deepEqual(results[2], { status: "fulfilled", value: small });
    assert.equal(mc.pool.stats.dials, dials);
    assert.equal(mc.pool.stats.destroyed.broken, 0);
  },
});

// -- Bad arguments --

Deno.test({
  name: "MemcachedClient: bad arguments are typed, before any I/O",
  // No server: a free port nobody listens on; nothing may be dialed.
  async fn() {
    const port = await freePort();
    await using mc = new MemcachedClient({ port });
    const cases: [() => Promise<unknown>, ErrorConstructor, RegExp][] = [
      [() => mc.get(42 as unknown as string), TypeError, /key .*received 42/],
      [() => mc.get(""), RangeError, /key must be 1 to 250 bytes.*0 bytes/],
      [() => mc.get("k".repeat(251)), RangeError, /received 251 bytes/],
      [() => mc.get("é".repeat(126)), RangeError, /received 252 bytes/],
      [() => mc.get("a b"), RangeError, /spaces or control.*"a b"/],
      [() => mc.get("a\nb"), RangeError, /U\+000a/],
      [() => mc.get("a\x7fb"), RangeError, /U\+007f/],
      [() => mc.set("k", 5 as unknown as string), TypeError, /value .*5/],
      [() => mc.set("k", "v", { ttl: -1 }), RangeError, /ttl .*-1/],
      [() => mc.set("k", "v", { ttl: 1.5 }), RangeError, /ttl .*1\.5/],
      [
        () => mc.set("k", "v", { flags: 2 ** 32 }),
        RangeError,
        /flags .*4294967296/,
      ],
      [
        () => mc.set("k", "v", { flags: "1" as unknown as number }),
        TypeError,
        /flags .*"1"/,
      ],
      [() => mc.cas("k", "v", -1n), RangeError, /cas .*-1n/],
      [
        () => mc.cas("k", "v", 2n ** 64n),
        RangeError,
        /cas .*18446744073709551616n/,
      ],
      [() => mc.incr("k", -1), RangeError, /delta .*-1/],
      [() => mc.incr("k", 0.5), RangeError, /delta .*0\.5/],
      [() => mc.incr("k", "1" as unknown as number), TypeError, /delta .*"1"/],
      [() => mc.incr("k", 1, { initial: -2 }), RangeError, /initial .*-2/],
      [() => mc.incr("k", 1, { ttl: 5 }), TypeError, /ttl .*without initial/],
      [() => mc.touch("k", -5), RangeError, /ttl .*-5/],
      [() => mc.get("k", { timeout: -1 }), RangeError, /timeout/],
      [
        () => mc.get("k", { signal: "x" as unknown as AbortSignal }),
        TypeError,
        /signal .*"x"/,
      ],
      [
        () => mc.get("k", { idempotent: 1 as unknown as boolean }),
        TypeError,
        /idempotent .*1/,
      ],
    ];
    for (const [call, type, message] of cases) {
      await assert.rejects(call, (e: unknown) => {
        assert.ok(e instanceof type, `${call}: ${e}`);
        assert.match((e as Error).message, message);
        return true;
      });
    }
    assert.throws(
      () => new MemcachedClient({ port, timeout: -1 }),
      /timeout .*-1/,
    );
    assert.throws(
      () => new MemcachedClient({ port, pipeline: 1 as unknown as boolean }),
      TypeError,
    );
    assert.equal(mc.pool.stats.dials, 0);
  },
});

// -- Many tasks, timeouts and aborts --

Deno.test({
  name:
    "MemcachedClient: 64 tasks with random timeouts and aborts get no wrong value; sockets close",
  ignore,
  async fn() {
    const seed = Date.now() % 2 ** 31;
    console.log(`seed ${seed}`);
    const random = mulberry32(seed);
    await using server = await startMemcached();
    // Once the start-up probe's connection is gone at the server too.
    const base = await settled(server, 0);
    const tally = {
      ok: 0,
      misses: 0,
      wrong: 0,
      errors: new Map<string, number>(),
    };
    let dials = 0;
    let pipeline;
    {
      await using mc = new MemcachedClient({
        port: server.port,
        max: 4,
        pipeline: { maxInFlight: 32, orphanTimeout: 2_000 },
      });
      await Promise.all(Array.from({ length: 64 }, async (_, t) => {
        const mine = new Map<string, string>();
        // Every value ever sent for a key: a set given up on may still land
        // later, even after a newer set on another connection succeeded
        // (memcached runs connections in parallel), so its key's value is
        // known from then on only to be one of these.
        const sent = new Map<string, Set<string>>();
        const unsure = new Set<string>();
        for (let i = 0; i < 150; i++) {
          const key = `t${t}:${Math.floor(random() * 8)}`;
          const roll = random();
          const options: { timeout?: number; signal?: AbortSignal } = {};
          const ac = new AbortController();
          let setting = false;
          if (roll < 0.1) options.timeout = 1 + Math.floor(random() * 3);
          else if (roll < 0.2) {
            options.signal = ac.signal;
            const after = Math.floor(random() * 3);
            if (after === 0) queueMicrotask(() => ac.abort());
            else setTimeout(() => ac.abort(), after);
          }
          try {
            if (random() < 0.4) {
              const value = `${key}=${i}:${"x".repeat(random() * 2000)}`;
              if (!sent.has(key)) sent.set(key, new Set());
              sent.get(key)!.add(value);
              // A set whose outcome is unknown leaves the key unknown.
              mine.delete(key);
              setting = true;
              await mc.set(key, value, options);
              setting = false;
              mine.set(key, value);
            } else {
              const got = await mc.getText(key, options);
              if (got === null) tally.misses++;
              else if (!sent.get(key)?.has(got)) tally.wrong++;
              else if (!unsure.has(key) && got !== mine.get(key)) {
                tally.wrong++;
              } else tally.ok++;
            }
          } catch (error) {
            if (setting) unsure.add(key);
            const name = (error as Error)?.name ?? String(error);
            tally.errors.set(name, (tally.errors.get(name) ?? 0) + 1);
            if (
              !(error instanceof TimeoutError) &&
              !(error instanceof DOMException && error.name === "AbortError")
            ) {
              throw error;
            }
          } finally {
            ac.abort();
          }
        }
      }));
      dials = mc.pool.stats.dials;
      pipeline = mc.pool.stats.pipeline!;
    }
    console.log(
      `ok ${tally.ok}, misses ${tally.misses}, wrong ${tally.wrong}, errors ${
        JSON.stringify([...tally.errors])
      }, dials ${dials}, pipeline ${JSON.stringify(pipeline)}`,
    );
    assert.equal(tally.wrong, 0);
    assert.ok(tally.ok > 1000, `ok ${tally.ok}`);
    assert.ok(tally.errors.size > 0, "some calls timed out or were aborted");
    // Every connection the pool opened is closed at the server.
    const after = await settled(server, base.open);
    assert.equal(after.open, base.open);
    assert.equal(after.accepted - base.accepted, dials);
  },
});

// -- The server dies --

Deno.test({
  name:
    "MemcachedClient: memcached killed mid-flight: every call settles typed; gets work after a restart",
  ignore,
  async fn() {
    await using server = await startMemcached();
    await using mc = new MemcachedClient({
      port: server.port,
      max: 4,
      timeout: 3_000,
      connectTimeout: 500,
    });
    await mc.set("k", "v");
    const calls = Array.from(
      { length: 2000 },
      (_, i) => i % 4 === 0 ? mc.set(`k${i}`, "x".repeat(3000)) : mc.get("k"),
    );
    const all = Promise.allSettled(calls);
    // Let the first batches go out, then kill the server under them.
    await sleep(1);
    await server.stop("SIGKILL");
    const results = await all;
    const kinds = new Map<string, number>();
    for (const r of results) {
      let kind: string;
      if (r.status === "fulfilled") {
        kind = "ok";
        if (r.value instanceof Uint8Array) assert.equal(text(r.value), "v");
      } else {
        const e = r.reason;
        assert.ok(
          e instanceof ConnectionBrokenError || e instanceof DialError ||
            e instanceof TimeoutError,
          `untyped: ${e}`,
        );
        kind = e.name;
      }
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    console.log(`after the kill: ${JSON.stringify([...kinds])}`);
    assert.ok((kinds.get("ok") ?? 0) < calls.length, "the kill hit calls");
    await server.start();
    // Gets after the restart: a fresh server, so a miss, then a hit.
    const end = performance.now() + 3_000;
    while (true) {
      try {
        await mc.get("k", { timeout: 500 });
        break;
      } catch (error) {
        assert.ok(error instanceof DialError || error instanceof TimeoutError);
        if (performance.now() > end) throw error;
        await sleep(50);
      }
    }
    assert.equal(await mc.set("k", "again"), true);
    const gets = await Promise.all(
      Array.from({ length: 200 }, () => mc.getText("k")),
    );
    assert.ok(gets.every((g) => g === "again"));
  },
});

Deno.test({
  name:
    "MemcachedClient: a get written on a connection the server closes is sent again once",
  ignore,
  async fn() {
    await using server = await startMemcached();
    await using mc = new MemcachedClient({ port: server.port, max: 1 });
    await mc.set("k", "v");
    // memcached closes a connection on a line too long, before it reads
    // anything behind it: the gets batched after the bad request break
    // with it, and are sent again on a new connection.
    const pool = mc.pool;
    const bad = pool.exchange(
      () => new TextEncoder().encode("mg " + "k".repeat(4096) + " v\r\n"),
      async (reader) => await reader.readLine(),
      { idempotent: false, timeout: 2_000 },
    );
    const gets = Array.from({ length: 8 }, () => mc.getText("k"));
    const [badResult, ...getResults] = await Promise.allSettled([
      bad,
      ...gets,
    ]);
    assert.equal(badResult.status, "rejected");
    for (const r of getResults) {
      assert.deepEqual(r, { status: "fulfilled", value: "v" });
    }
    assert.ok(pool.stats.pipeline!.resent >= 1, JSON.stringify(pool.stats));
  },
});

Deno.test({
  name: "MemcachedClient: close() ends calls typed and closes every socket",
  ignore,
  async fn() {
    await using server = await startMemcached();
    // Once the start-up probe's connection is gone at the server too.
    const base = await settled(server, 0);
    const mc = new MemcachedClient({ port: server.port, max: 2 });
    await mc.set("k", "v");
    const calls = Array.from({ length: 100 }, () => mc.getText("k"));
    const closing = mc.close();
    const results = await Promise.allSettled(calls);
    await closing;
    for (const r of results) {
      assert.ok(
        r.status === "fulfilled"
          ? r.value === "v"
          : r.reason instanceof PoolClosedError,
        JSON.stringify(r),
      );
    }
    await assert.rejects(mc.get("k"), PoolClosedError);
    const after = await settled(server, base.open);
    assert.equal(after.open, base.open);
  },
});

Deno.test({
  name: "readMetaReply: an untagged reply with no fence is a ProtocolError",
  ignore,
  async fn() {
    // A fake server answering a miss with a bare EN (an older memcached).
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const served = (async () => {
      for await (const conn of listener) {
        const buf = new Uint8Array(1024);
        await conn.read(buf);
        await conn.write(new TextEncoder().encode("EN\r\n"));
        await conn.read(buf).catch(() => null);
        conn.close();
      }
    })();
    {
      await using mc = new MemcachedClient({
        port: listener.addr.port,
        timeout: 2_000,
      });
      await assert.rejects(
        mc.get("k", { idempotent: false }),
        (e: unknown) =>
          e instanceof ConnectionBrokenError &&
            e.cause instanceof ProtocolError &&
            /opaque/.test(e.cause.message) ||
          e instanceof ProtocolError,
      );
    }
    listener.close();
    await served.catch(() => {});
  },
});

// -- The reply parser --

/** A reader over `bytes`, served whole or a byte at a time. */
function replyReader(bytes: Uint8Array, whole: boolean): FrameReader {
  let at = 0;
  return new FrameReader({
    read(p) {
      if (at === bytes.length) return Promise.resolve(null);
      const n = whole ? Math.min(p.length, bytes.length - at) : 1;
      p.set(bytes.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  });
}

/** The reply or error, in a form deepEqual compares. */
async function parsed(reader: FrameReader) {
  try {
    const r = (await readMetaReply(reader)) as MetaReply;
    return {
      tag: r.tag,
      code: r.code,
      flags: { ...r.flags },
      value: r.value === null ? null : [...r.value],
      error: r.error === null ? null : [r.error.name, r.error.message],
      // What follows is read as the next reply: its own bytes were taken.
      next: ((await readMetaReply(reader)) as MetaReply).tag,
    };
  } catch (error) {
    return { threw: [(error as Error).name, (error as Error).message] };
  }
}

Deno.test(
  "readMetaReply: a reply whole in the buffer is parsed at once, as the same reply or error as one read a byte at a time",
  { permissions: "none" },
  async () => {
    const good = [
      "VA 3 O5\r\nabc\r\n",
      "VA 2 f7 c99 t-1 O12\r\nhi\r\n",
      "VA 0 O11\r\n\r\n",
      "VA 4 O4294967295\r\nVA 1\r\n",
      "HD O3\r\n",
      "EN O4\r\n",
      "NF  O6 \r\n",
      "HD O7.\r\n",
      "NS\r\nEN O8.\r\n",
      "EX\r\nHD O13.\r\n",
      "VA 2\r\n12\r\nHD O9.\r\n",
    ];
    const bad = [
      "CLIENT_ERROR bad data chunk\r\nHD O10.\r\n",
      "SERVER_ERROR out of memory\r\nEN O1.\r\n",
      "EN\r\n",
      "HD O1x\r\n",
      "HD O\r\n",
      "HD O12345678901\r\n",
      "XX O1\r\n",
      "HDX O1\r\n",
      "VA 3 O1\r\nabcd\r\n",
      "VA x O1\r\nabc\r\n",
      "HD\r\nHD O3\r\n",
      "NS\r\nVA 1 O3.\r\nx\r\n",
      "HD O1\n",
      "HD c\xe9 O1\r\n",
    ];
    const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
    for (const text of [...good, ...bad]) {
      const what = JSON.stringify(text);
      // A reply and the next one's bytes behind it: only its own are taken.
      const bytes = enc(text + "HD O77\r\n");
      if (good.includes(text)) {
        const whole = replyReader(bytes, true);
        await whole.prefetch(); // all of it buffered
        const r = readMetaReply(whole);
        assert.ok(!(r instanceof Promise), `${what}: not parsed at once`);
      }
      const whole = replyReader(bytes, true);
      await whole.prefetch();
      const fast = await parsed(whole);
      const slow = await parsed(replyReader(bytes, false));
      assert.deepEqual(fast, slow, what);
      if (good.includes(text)) assert.ok(!("threw" in slow), what);
    }
  },
);
