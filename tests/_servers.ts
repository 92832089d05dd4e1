// Copyright 2026 the chanpool authors. MIT license.
// Small servers for TcpPool tests: a line server whose replies a test
// scripts, a silent server that accepts and never answers (a TLS peer that
// never handshakes), and a TCP relay that can cut or stall what it relays.
// Every one listens on 127.0.0.1, port 0, and `stop()` closes everything.

/** A running test server. */
export interface Served extends AsyncDisposable {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now (the client has not closed them). */
  readonly open: number;
  /** Resolves once no accepted connection is open, or rejects after `ms`. */
  drained(ms: number): Promise<void>;
  /** Closes the listener and every connection, and waits for them. */
  stop(): Promise<void>;
}

/**
 * Accepts on `listener` and runs `handle` for each connection (tracked in
 * `conns`, numbered from 1); `stop` closes the listener, runs `onStop`,
 * closes every connection and waits for every handler.
 */
export function acceptAll(
  listener: Deno.TcpListener | Deno.TlsListener,
  conns: Set<Deno.Conn>,
  handle: (conn: Deno.Conn, id: number) => Promise<void>,
  onStop?: () => void,
): Served {
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        const task = handle(conn, ++accepted);
        tasks.add(task);
        task.finally(() => tasks.delete(task));
      }
    } catch {
      // listener closed
    }
  })();
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      listener.close();
      await accepting;
      onStop?.();
      for (const conn of conns) conn.close();
      conns.clear();
      await Promise.all(tasks);
    })();
  return {
    port: listener.addr.port,
    get accepted() {
      return accepted;
    },
    get open() {
      return conns.size;
    },
    async drained(ms: number) {
      const end = performance.now() + ms;
      while (conns.size > 0) {
        if (performance.now() > end) {
          throw new Error(`${conns.size} client sockets still open`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** What the line server does with one request line. */
export interface LineAction {
  /** Reply with this line (a `\n` is added); none if absent. */
  reply?: string;
  /** Reply after this many milliseconds. @default {0} */
  delay?: number;
  /** Close the connection instead of replying. */
  close?: boolean;
}

/** What the line server tells the script about a request. */
export interface LineRequest {
  /** The line, without its `\n`. */
  line: string;
  /** 1-based accept order of the connection. */
  conn: number;
  /** 1-based request count on this connection. */
  nth: number;
}

/** A running line server. */
export type LineServer = Served;

/**
 * Starts a server that reads `\n`-terminated lines and answers each as
 * `script` says (by default: echo the line at once).
 */
export function startLineServer(
  script: (request: LineRequest) => LineAction = ({ line }) => ({
    reply: line,
  }),
): LineServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const encoder = new TextEncoder();
  const serve = async (conn: Deno.Conn, id: number) => {
    const decoder = new TextDecoder();
    let text = "";
    let nth = 0;
    let writes = Promise.resolve();
    const buf = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += decoder.decode(buf.subarray(0, n), { stream: true });
        let nl;
        while ((nl = text.indexOf("\n")) !== -1) {
          const line = text.slice(0, nl).replace(/\r$/, "");
          text = text.slice(nl + 1);
          const action = script({ line, conn: id, nth: ++nth });
          const act = () => {
            if (!conns.has(conn)) return;
            if (action.close) {
              conns.delete(conn);
              conn.close();
              return;
            }
            if (action.reply === undefined) return;
            const bytes = encoder.encode(action.reply + "\n");
            writes = writes.then(() => conn.write(bytes)).then(
              () => {},
              () => {},
            );
          };
          if (action.delay) {
            const timer = setTimeout(() => {
              timers.delete(timer);
              act();
            }, action.delay);
            timers.add(timer);
          } else {
            act();
          }
        }
      }
    } catch {
      // reset, or closed by stop()
    } finally {
      await writes;
      if (conns.delete(conn)) conn.close();
    }
  };
  return acceptAll(listener, conns, serve, () => {
    for (const timer of timers) clearTimeout(timer);
  });
}

/** A running silent server (see {@linkcode startSilentServer}). */
export type SilentServer = Served;

/**
 * Accepts TCP connections and never writes a byte (a TLS server that never
 * handshakes); reads each until the client closes it, counting open ones.
 */
export function startSilentServer(): SilentServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const drain = async (conn: Deno.Conn) => {
    const buf = new Uint8Array(4096);
    try {
      while (await conn.read(buf) !== null) { /* ignore the ClientHello */ }
    } catch {
      // reset, or closed by stop()
    }
    if (conns.delete(conn)) conn.close();
  };
  return acceptAll(listener, conns, drain);
}

/** A running relay (see {@linkcode startRelay}). */
export interface Relay extends AsyncDisposable {
  readonly port: number;
  /** `"relay"`: pipe to the target; `"silent"`: accept and hold. */
  mode: "relay" | "silent";
  /**
   * When set, the next bytes any relayed client sends are dropped and both
   * sides of that connection closed (the server "had just closed it").
   */
  cutNext: boolean;
  stop(): Promise<void>;
}

/** A TCP relay in front of `targetPort` on 127.0.0.1. */
export function startRelay(targetPort: number): Relay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const closeBoth = (a: Deno.Conn, b?: Deno.Conn) => {
    for (const c of [a, b]) {
      if (c && conns.delete(c)) c.close();
    }
  };
  const pump = async (from: Deno.Conn, to: Deno.Conn, cut: boolean) => {
    const buf = new Uint8Array(16384);
    try {
      while (true) {
        const n = await from.read(buf);
        if (n === null) break;
        if (cut && relay.cutNext) {
          relay.cutNext = false;
          break;
        }
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch {
      // either side went away
    }
    closeBoth(from, to);
  };
  const hold = async (conn: Deno.Conn) => {
    const buf = new Uint8Array(4096);
    try {
      while (await conn.read(buf) !== null) { /* hold */ }
    } catch { /* closed */ }
    closeBoth(conn);
  };
  const serve = async (client: Deno.Conn) => {
    if (relay.mode === "silent") return hold(client);
    let target: Deno.Conn;
    try {
      target = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    } catch {
      closeBoth(client);
      return;
    }
    conns.add(target);
    await Promise.all([
      pump(client, target, true),
      pump(target, client, false),
    ]);
  };
  const { stop } = acceptAll(listener, conns, serve);
  const relay: Relay = {
    port: listener.addr.port,
    mode: "relay",
    cutNext: false,
    stop,
    [Symbol.asyncDispose]: stop,
  };
  return relay;
}

/**
 * A throwaway self-signed certificate for 127.0.0.1 (EC P-256, one day),
 * from `openssl` (`.ci/run` installs it): PEM key and certificate.
 */
export async function selfSignedCert(): Promise<{ cert: string; key: string }> {
  const { code, stdout, stderr } = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-keyout",
      "/dev/stdout",
      "-out",
      "/dev/stdout",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  if (code !== 0) {
    throw new Error(`openssl failed: ${new TextDecoder().decode(stderr)}`);
  }
  const key = text.match(
    /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/,
  )?.[0];
  const cert = text.match(
    /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/,
  )?.[0];
  if (!key || !cert) throw new Error("openssl printed no key or certificate");
  return { cert, key };
}
