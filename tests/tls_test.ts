// Copyright 2026 the chanpool authors. MIT license.
// TLS reads over node:tls (_socket.ts): large replies followed by the
// server's close or half-close reach the reader whole and then EOF, read fast
// or slowly, straight or through serveProxy; a damaged record mid-reply
// gives the bytes before it and then an error, not EOF; a slow reader holds a
// bounded number of bytes, not the reply. Every read is bounded by a per-test
// deadline, so a lost EOF fails the test instead of hanging the suite.

import assert from "node:assert/strict";
import { ConnectionBrokenError, serveProxy, TcpPool } from "../mod.ts";
import { dialTls, NodeSocket, SocketError } from "../_socket.ts";
import { acceptAll, selfSignedCert, type Served } from "./_servers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1 << 20;
/** How long one whole test may take; every read is bounded by what is left. */
const TEST_MS = 20_000;

/** Byte `i` of every reply. */
const byteAt = (i: number) => (i * 7 + (i >>> 11)) & 0xff;

/** Checks, chunk by chunk, that the bytes read are the reply's, in order. */
class ReplyCheck {
  received = 0;
  add(chunk: Uint8Array): void {
    for (let k = 0; k < chunk.length; k++) {
      if (chunk[k] !== byteAt(this.received + k)) {
        assert.fail(`byte ${this.received + k} is wrong`);
      }
    }
    this.received += chunk.length;
  }
}

/** A per-test deadline: how many ms a step may still take. */
function deadline(ms = TEST_MS): () => number {
  const end = performance.now() + ms;
  return () => {
    const left = Math.floor(end - performance.now());
    if (left <= 0) throw new Error(`Test deadline of ${ms} ms passed`);
    return left;
  };
}

/**
 * Settles as `p` does, or, after `ms`, runs `onExpire` (which must make `p`
 * settle: it closes what `p` waits on) and rejects saying what hung.
 */
async function within<T>(
  what: string,
  p: Promise<T>,
  ms: number,
  onExpire: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onExpire();
      reject(new Error(`${what} did not settle within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** How the TLS server ends each connection once its reply is written. */
type Ending = "close" | "closeWrite";

/**
 * A TLS server that, on each connection, writes `size` bytes of the reply
 * pattern at once and then closes, or half-closes and waits for the client
 * to close.
 */
function tlsSender(
  cert: string,
  key: string,
  size: number,
  ending: Ending,
): Served {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert,
    key,
  });
  const conns = new Set<Deno.Conn>();
  const reply = new Uint8Array(size);
  for (let i = 0; i < size; i++) reply[i] = byteAt(i);
  return acceptAll(listener, conns, async (conn) => {
    try {
      let off = 0;
      while (off < size) off += await conn.write(reply.subarray(off));
      if (ending === "closeWrite") {
        await conn.closeWrite();
        const buf = new Uint8Array(1024);
        while (await conn.read(buf) !== null) { /* until the client closes */ }
      }
    } catch {
      // the client went away, or stop()
    }
    if (conns.delete(conn)) conn.close();
  });
}

/** Reads `conn` with `read` until EOF; `slow`: a short sleep after each read. */
async function readAll(
  conn: { read(p: Uint8Array, o: { timeout: number }): Promise<number | null> },
  left: () => number,
  slow: boolean,
): Promise<ReplyCheck> {
  const check = new ReplyCheck();
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    const n = await conn.read(buf, { timeout: left() });
    if (n === null) return check;
    check.add(buf.subarray(0, n));
    if (slow) await sleep(1);
  }
}

for (const ending of ["close", "closeWrite"] as const) {
  for (const size of [MiB, 16 * MiB]) {
    for (const slow of [false, true]) {
      const name = `${size / MiB} MiB, then ${
        ending === "close" ? "the server closes" : "the server half-closes"
      }: conn.read ${slow ? "slowly" : "fast"} gets every byte, then EOF`;
      Deno.test(`TcpPool over TLS: ${name}`, async () => {
        const left = deadline();
        const { cert, key } = await selfSignedCert();
        await using server = tlsSender(cert, key, size, ending);
        {
          await using pool = new TcpPool({
            hostname: "127.0.0.1",
            port: server.port,
            tls: { caCerts: [cert] },
          });
          await using conn = await pool.borrow();
          const check = await readAll(conn, left, slow);
          assert.equal(check.received, size);
          // EOF stays EOF.
          assert.equal(await conn.read(new Uint8Array(16)), null);
        }
        await server.drained(2_000);
        assert.equal(server.accepted, 1);
      });
    }
  }
}

Deno.test("TcpPool over TLS: 16 MiB, then the server closes: conn.readable read slowly ends after every byte", async () => {
  const left = deadline();
  const { cert, key } = await selfSignedCert();
  await using server = tlsSender(cert, key, 16 * MiB, "close");
  {
    await using pool = new TcpPool({
      hostname: "127.0.0.1",
      port: server.port,
      tls: { caCerts: [cert] },
    });
    await using conn = await pool.borrow();
    const reader = conn.readable.getReader();
    const check = new ReplyCheck();
    let sinceSleep = 0;
    while (true) {
      const { done, value } = await within(
        "a read of conn.readable",
        reader.read(),
        left(),
        () => conn.destroy(),
      );
      if (done) break;
      check.add(value);
      // Slower than the server: a sleep every 64 KiB.
      if ((sinceSleep += value.length) >= 64 * 1024) {
        sinceSleep = 0;
        await sleep(1);
      }
    }
    assert.equal(check.received, 16 * MiB);
  }
  await server.drained(2_000);
});

/**
 * A TCP relay in front of `target` that flips one byte of what the server
 * sends, `at` bytes into its stream (into an encrypted record: the client's
 * TLS layer fails there), and relays everything else.
 */
function corruptingRelay(target: number, at: number): Served {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const pump = async (from: Deno.Conn, to: Deno.Conn, flip: number) => {
    const buf = new Uint8Array(64 * 1024);
    let offset = 0;
    try {
      let n;
      while ((n = await from.read(buf)) !== null) {
        if (flip >= offset && flip < offset + n) buf[flip - offset]! ^= 0xff;
        offset += n;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch {
      // either side went away
    }
    for (const c of [from, to]) if (conns.delete(c)) c.close();
  };
  return acceptAll(listener, conns, async (client) => {
    let server: Deno.Conn;
    try {
      server = await Deno.connect({ hostname: "127.0.0.1", port: target });
    } catch {
      if (conns.delete(client)) client.close();
      return;
    }
    conns.add(server);
    await Promise.all([pump(client, server, -1), pump(server, client, at)]);
  });
}

for (const slow of [false, true]) {
  Deno.test(
    `TcpPool over TLS: a record corrupted 4 MiB into a 16 MiB reply, read ${
      slow ? "slowly" : "fast"
    }: the bytes before it, then a ConnectionBrokenError, not EOF`,
    async () => {
      const left = deadline();
      const { cert, key } = await selfSignedCert();
      await using server = tlsSender(cert, key, 16 * MiB, "close");
      await using relay = corruptingRelay(server.port, 4 * MiB);
      {
        await using pool = new TcpPool({
          hostname: "127.0.0.1",
          port: relay.port,
          tls: { caCerts: [cert] },
        });
        await using conn = await pool.borrow();
        const check = new ReplyCheck();
        const buf = new Uint8Array(64 * 1024);
        const error = await (async () => {
          try {
            while (true) {
              const n = await conn.read(buf, { timeout: left() });
              if (n === null) return null;
              check.add(buf.subarray(0, n));
              if (slow) await sleep(1);
            }
          } catch (e) {
            return e;
          }
        })();
        assert.ok(error instanceof ConnectionBrokenError, String(error));
        assert.ok(error.cause instanceof SocketError, String(error.cause));
        // Everything up to the damaged record (less what the TLS layer had
        // decrypted alongside it), nothing after it.
        assert.ok(
          check.received > 3 * MiB && check.received < 4 * MiB,
          `${check.received} bytes before the error`,
        );
      }
      await relay.drained(2_000);
    },
  );
}

Deno.test("TLS socket: a 16 MiB reply read slowly is never held whole: at most HIGH_WATER and one read's worth wait in the queue", async () => {
  const left = deadline();
  const { cert, key } = await selfSignedCert();
  await using server = tlsSender(cert, key, 16 * MiB, "close");
  const socket = await dialTls(
    "127.0.0.1",
    server.port,
    { caCerts: [cert] },
    new AbortController().signal,
    true,
    false,
  );
  try {
    assert.ok(socket instanceof NodeSocket);
    const check = new ReplyCheck();
    const buf = new Uint8Array(16 * 1024);
    let reads = 0;
    while (true) {
      const n = await within(
        "a socket read",
        socket.read(buf),
        left(),
        () => socket.close(),
      );
      if (n === null) break;
      check.add(buf.subarray(0, n));
      // Slower than the server: a sleep every 64 KiB.
      if (++reads % 4 === 0) await sleep(1);
    }
    assert.equal(check.received, 16 * MiB);
    console.log(`peak queued: ${socket.peakQueued} bytes`);
    // 256 KiB of HIGH_WATER plus what one socket read decrypts (64 KiB);
    // holding the reply (as pause() did) is 16 MiB.
    assert.ok(
      socket.peakQueued <= 512 * 1024,
      `${socket.peakQueued} bytes were queued at once`,
    );
  } finally {
    socket.close();
  }
  await server.drained(2_000);
});

Deno.test("TLS socket: close() while reading is held back closes the socket at once", async () => {
  const { cert, key } = await selfSignedCert();
  await using server = tlsSender(cert, key, 16 * MiB, "close");
  const socket = await dialTls(
    "127.0.0.1",
    server.port,
    { caCerts: [cert] },
    new AbortController().signal,
    true,
    false,
  );
  assert.ok(socket instanceof NodeSocket);
  // Read nothing until the queue is over HIGH_WATER (reading held back).
  const left = deadline(5_000);
  while (socket.queued < 256 * 1024) {
    left();
    await sleep(5);
  }
  socket.close();
  // The server's write fails or it sees EOF: the socket is gone.
  await server.drained(2_000);
});

for (const size of [MiB, 16 * MiB]) {
  Deno.test(
    `serveProxy over a TLS upstream that sends ${
      size / MiB
    } MiB and closes: the client gets every byte, then EOF; the session ends`,
    async () => {
      const left = deadline();
      const { cert, key } = await selfSignedCert();
      await using upstream = tlsSender(cert, key, size, "close");
      {
        await using pool = new TcpPool({
          hostname: "127.0.0.1",
          port: upstream.port,
          tls: { caCerts: [cert] },
        });
        const errors: unknown[] = [];
        await using proxy = serveProxy(
          { hostname: "127.0.0.1", port: 0 },
          pool,
          {
            onError: (e) => errors.push(e),
          },
        );
        const client = await Deno.connect({
          hostname: "127.0.0.1",
          port: proxy.addr.port,
        });
        const check = new ReplyCheck();
        try {
          const buf = new Uint8Array(64 * 1024);
          while (true) {
            const n = await within(
              "a client read",
              client.read(buf),
              left(),
              () => client.close(),
            );
            if (n === null) break;
            check.add(buf.subarray(0, n));
          }
        } finally {
          try {
            client.close();
          } catch {
            // closed by the deadline
          }
        }
        assert.equal(check.received, size);
        while (proxy.stats.active > 0) {
          left();
          await sleep(5);
        }
        assert.deepEqual(errors, []);
        const s = proxy.stats;
        assert.equal(s.sessions, 1);
        assert.equal(s.errors, 0);
        assert.equal(s.received, size);
        assert.equal(s.sent, 0);
      }
      await upstream.drained(2_000);
    },
  );
}
