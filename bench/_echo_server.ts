// Copyright 2026 the chanpool authors. MIT license.
// A fast framed echo server for benchmarks, run in its own process so its
// work does not share an event loop with the code under measurement.
//
//   deno run --allow-net=127.0.0.1 bench/_echo_server.ts
//
// Listens on 127.0.0.1, port 0, and prints `{"port":12345}` as the first line
// on stdout. Frames are a 4-byte big-endian length, then the payload; each
// frame is echoed unchanged. All complete frames from one read go back in one
// write, so pipelined requests cost one syscall per batch. Exits when stdin
// closes, or on SIGTERM/SIGINT.
//
// Also the benches' shared helpers for it: spawnEchoServer/spawnServer (a
// server in its own process), frame() and transfer() (a client's round).

const HEADER = 4;
const READ_SIZE = 64 * 1024;
const MAX_FRAME = 64 * 1024 * 1024;

/** A length-prefixed frame of `size` payload bytes (a byte pattern). */
export function frame(size: number): Uint8Array {
  const out = new Uint8Array(4 + size);
  new DataView(out.buffer).setUint32(0, size);
  for (let i = 4; i < out.length; i++) out[i] = i & 0xff;
  return out;
}

/**
 * Sends `request` on a new connection to `port` while reading `want` bytes
 * back, then closes it.
 */
export async function transfer(
  port: number,
  request: Uint8Array,
  want: number,
): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    const writing = (async () => {
      let off = 0;
      while (off < request.length) {
        off += await conn.write(request.subarray(off));
      }
    })();
    const buf = new Uint8Array(64 * 1024);
    let got = 0;
    while (got < want) {
      const n = await conn.read(buf);
      if (n === null) throw new Error(`EOF after ${got} of ${want} bytes`);
      got += n;
    }
    await writing;
  } finally {
    conn.close();
  }
}

/** A running echo server process; see {@linkcode spawnEchoServer}. */
export interface EchoServerProcess extends AsyncDisposable {
  /** Always "127.0.0.1". */
  readonly hostname: string;
  readonly port: number;
  /** The child's process id. */
  readonly pid: number;
  /** Closes the child's stdin and waits for it to exit. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts this file as a child Deno process and resolves once it listens.
 *
 * The caller needs `--allow-run` for `Deno.execPath()` (and
 * `--allow-net=127.0.0.1` to talk to it); the child gets only
 * `--allow-net=127.0.0.1`. Disposing closes the child's stdin, which makes it
 * exit; if it has not exited after 2 s it is killed.
 *
 * @example Usage
 * ```ts ignore
 * await using server = await spawnEchoServer();
 * using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
 * ```
 */
export function spawnEchoServer(): Promise<EchoServerProcess> {
  return spawnServer(import.meta.url);
}

/**
 * Starts the script at `url` (with `args`) as a child Deno process with
 * `--allow-net=127.0.0.1` (plus `flags` for `deno run`), and resolves once
 * it printed `{"port":N}`; it exits when its stdin closes (see this file's
 * `main`).
 */
export async function spawnServer(
  url: string,
  args: string[] = [],
  flags: string[] = [],
): Promise<EchoServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    // a file: URL, so the path works on every platform
    args: ["run", "--quiet", "--allow-net=127.0.0.1", ...flags, url, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = child.stdin.getWriter();
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await stdin.close().catch(() => {});
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already exited */ }
      }, 2_000);
      try {
        await child.status;
      } finally {
        clearTimeout(timer);
      }
    })();
    return closing;
  };
  let port: number;
  try {
    port = await readPort(child.stdout);
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await close();
    throw error;
  }
  return {
    hostname: "127.0.0.1",
    port,
    pid: child.pid,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Reads the first stdout line, parses the port, cancels the rest. */
async function readPort(stdout: ReadableStream<Uint8Array>): Promise<number> {
  const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const line = text.split("\n")[0] ?? "";
  const port = (() => {
    try {
      return (JSON.parse(line) as { port?: unknown }).port;
    } catch {
      return undefined;
    }
  })();
  if (typeof port !== "number") {
    throw new Error(
      `Cannot start the echo server: expected {"port":N} on stdout, got ${
        JSON.stringify(line)
      }`,
    );
  }
  return port;
}

/** Echoes every complete frame back, one write per read batch. */
async function serveConn(conn: Deno.TcpConn): Promise<void> {
  try {
    conn.setNoDelay(true);
    let buf = new Uint8Array(READ_SIZE * 4);
    let view = new DataView(buf.buffer);
    // unread bytes live in buf[start, end); frames before `start` are echoed
    let start = 0;
    let end = 0;
    while (true) {
      if (buf.length - end < READ_SIZE) {
        const used = end - start;
        if (start > 0 && buf.length - used >= READ_SIZE) {
          buf.copyWithin(0, start, end);
        } else {
          const next = new Uint8Array(
            Math.max(buf.length * 2, used + READ_SIZE),
          );
          next.set(buf.subarray(start, end));
          buf = next;
          view = new DataView(buf.buffer);
        }
        start = 0;
        end = used;
      }
      const n = await conn.read(buf.subarray(end));
      if (n === null) return;
      end += n;
      // find the end of the last complete frame
      let cut = start;
      while (end - cut >= HEADER) {
        const length = view.getUint32(cut);
        if (length > MAX_FRAME) return; // not our protocol: hang up
        if (end - cut < HEADER + length) break;
        cut += HEADER + length;
      }
      if (cut === start) continue;
      // echo = the same bytes: write the whole batch of frames at once
      let off = start;
      while (off < cut) off += await conn.write(buf.subarray(off, cut));
      start = cut;
      if (start === end) start = end = 0;
    }
  } catch {
    // the client went away
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

/**
 * The child's side of {@linkcode spawnServer}: prints `{"port":N}` and exits
 * when stdin closes or on SIGTERM/SIGINT (after `stop`).
 */
export async function announce(port: number, stop: () => void): Promise<void> {
  const exit = () => {
    try {
      stop();
    } catch { /* stopped */ }
    Deno.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    try {
      Deno.addSignalListener(signal, exit);
    } catch { /* not supported on this platform */ }
  }
  // the parent stops us by closing stdin
  (async () => {
    const buf = new Uint8Array(256);
    try {
      while (await Deno.stdin.read(buf) !== null) { /* ignore input */ }
    } catch { /* stdin gone */ }
    exit();
  })();
  const line = JSON.stringify({ port }) + "\n";
  await Deno.stdout.write(new TextEncoder().encode(line));
}

async function main(): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await announce(listener.addr.port, () => listener.close());
  for await (const conn of listener) serveConn(conn);
}

if (import.meta.main) await main();
