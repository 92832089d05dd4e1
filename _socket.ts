// Copyright 2026 the chanpool authors. MIT license.
// The byte pipe a pooled connection owns: a `Deno.TcpConn`, or a TLS
// connection dialed with `node:tls` behind the same small interface.
//
// Why not `Deno.connectTls`/`Deno.startTls`: in Deno 2.9 a `TlsConn` whose
// handshake never completes cannot be closed: `close()` interrupts the
// pending ops but the socket stays open until the peer acts (Deno finishes
// the handshake before it shuts a TLS stream down), so a dial timeout
// against a silent peer leaks one socket per dial for as long as the peer
// lives. `node:tls` keeps the TCP handle apart from the TLS state, and
// `destroy()` closes it at once, handshake or not (tests/tcp_test.ts,
// "silent TLS server").
//
// How the TLS socket is read, and why. In Deno 2.9.6 the TLS layer under a
// `node:tls` socket is a native TLSWrap (ext/node/ops/tls_wrap.rs) fed by
// the raw TCP handle (ext/node/polyfills/internal_binding/tls_wrap.ts,
// `installNativeOnread`). Two things in it rule out Node's own flow control:
//
// - Its `readStop` (what `pause()`, and a full `'readable'` buffer, call)
//   only stops delivering cleartext: the TCP handle keeps reading, and
//   everything it decrypts piles up in `pending_clear_out`. A paused socket
//   still takes in the whole reply (16 MiB sent, 16 MiB held).
// - Its `readStart` hands that pile over as one chunk from inside `_read`;
//   the stream buffers it, finds itself over its high-water mark and calls
//   `readStop` again, and only then tries to deliver an EOF that arrived
//   while paused (`pending_eof`, already cleared) to the callback
//   `readStop` just removed: the EOF is dropped. So a reply of more than the
//   stream's buffer, read by a reader that once fell behind, got every
//   byte and never its end (issue 17: `read()` hung, a proxy never ended).
//   Reading in paused mode (`'readable'` + `read()`) goes through the same
//   `readStop`/`readStart` and loses the EOF the same way.
//
// So the TLS socket always flows (no `pause()`, no `'readable'`): every
// chunk, the EOF and errors reach the `'data'`/`'end'`/`'error'` handlers
// below in order, and wait in our queue for `read`. Backpressure is applied
// one level down: above HIGH_WATER queued bytes, the raw TCP handle stops
// reading (`_handle._nativeTcpHandle.readStop()`, Deno's own field; it is
// what the TLS layer reads from), so the kernel's window fills and the peer
// waits; below LOW_WATER it reads again. At most HIGH_WATER plus one TCP
// read's worth (64 KiB) is queued. Where that field is missing (another
// runtime or version), reading is simply never held back: the bytes and
// the EOF still arrive, only the memory bound is lost (tests/tls_test.ts
// measures it).

import { connect as tlsConnect } from "node:tls";
import type { TLSSocket } from "node:tls";
import { isIP } from "node:net";

/** What a pooled connection needs from its socket. */
export interface Socket {
  readonly localAddr: Deno.Addr;
  readonly remoteAddr: Deno.Addr;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  /** Closes the write side (a FIN to the peer); reads go on. */
  closeWrite(): Promise<void>;
  /** Closes the socket now; pending reads and writes reject. */
  close(): void;
}

/** TLS settings, as `Deno.ConnectTlsOptions` spells them. */
export interface TlsSettings {
  caCerts?: string[] | undefined;
  alpnProtocols?: string[] | undefined;
  unsafelyDisableHostnameVerification?: boolean | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** An error of the socket itself (reset, refused, TLS failure...). */
export class SocketError extends Error {
  /** `code` of the underlying error, when it has one (`ECONNRESET`...). */
  readonly code: string | undefined;

  constructor(
    message: string,
    options: ErrorOptions & { code?: string | undefined },
  ) {
    super(message, options);
    this.name = "SocketError";
    this.code = options.code;
  }
}

function socketError(error: unknown): SocketError {
  if (error instanceof SocketError) return error;
  const e = error as { message?: unknown; code?: unknown };
  const code = typeof e?.code === "string" ? e.code : undefined;
  const message = typeof e?.message === "string" ? e.message : String(error);
  return new SocketError(message, { cause: error, code });
}

/**
 * How long a TCP connect may stay pending after its dial was given up, in
 * ms, before Deno is asked to cancel it (see {@linkcode connectTcp}).
 */
const LATE_CANCEL = 1_000;

/**
 * `Deno.connect` for a pooled connection, raced against `signal` rather
 * than handed it: in Deno 2.9.6, a connect whose signal aborts just as it
 * succeeds can drop the new connection without closing it (issue 17: 16–40
 * sockets of 2 400 left open by pools closed mid-dial). When `signal`
 * aborts, this rejects at once with its reason; a connection that lands
 * later is closed; a connect still pending LATE_CANCEL ms later (a host
 * that drops SYNs) is cancelled then, when no connection can be landing.
 * The connect's own settlement (late close included) is added to
 * `inFlight` until it happens, so a pool's close can wait for it.
 */
export function connectTcp(
  hostname: string,
  port: number,
  signal: AbortSignal,
  inFlight: Set<Promise<void>>,
): Promise<Deno.TcpConn> {
  return raced(
    (cancel) => Deno.connect({ hostname, port, signal: cancel }),
    signal,
    inFlight,
  );
}

/** {@linkcode connectTcp} for a Unix domain socket at `path`. */
export function connectUnix(
  path: string,
  signal: AbortSignal,
  inFlight: Set<Promise<void>>,
): Promise<Deno.UnixConn> {
  // A local connect: it succeeds or fails at once (Deno takes no signal
  // for it); raced all the same, so an abort is answered at once.
  return raced(
    () => Deno.connect({ transport: "unix", path }),
    signal,
    inFlight,
  );
}

/** A connect raced against `signal` (see {@linkcode connectTcp}). */
function raced<C extends Deno.Conn>(
  connect: (cancel: AbortSignal) => Promise<C>,
  signal: AbortSignal,
  inFlight: Set<Promise<void>>,
): Promise<C> {
  signal.throwIfAborted();
  const cancel = new AbortController();
  const connecting = connect(cancel.signal);
  const { promise, resolve, reject } = Promise.withResolvers<C>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    reject(signal.reason);
    timer = setTimeout(() => cancel.abort(signal.reason), LATE_CANCEL);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  const settled: Promise<void> = connecting.then((conn) => {
    if (signal.aborted) conn.close(); // landed after the dial gave up
    else resolve(conn);
  }, reject).finally(() => {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    inFlight.delete(settled);
  });
  inFlight.add(settled);
  return promise;
}

/** Stop reading from the socket while this many bytes wait to be read. */
const HIGH_WATER = 256 * 1024;
/** Once held back, read again when no more than this many bytes wait. */
const LOW_WATER = 64 * 1024;

/** The TCP handle a `node:tls` socket reads through (Deno's polyfill). */
interface TcpReader {
  readStart(): unknown;
  readStop(): unknown;
}

/**
 * The raw TCP handle under `socket`'s TLS layer, if this runtime exposes it
 * (Deno 2.9: `socket._handle._nativeTcpHandle`); `null` otherwise, or once
 * the socket is destroyed.
 */
function tcpReader(socket: TLSSocket): TcpReader | null {
  const wrap = (socket as unknown as { _handle?: unknown })._handle as
    | { _nativeTcpHandle?: unknown }
    | null
    | undefined;
  const tcp = wrap?._nativeTcpHandle as Partial<TcpReader> | null | undefined;
  return typeof tcp?.readStart === "function" &&
      typeof tcp.readStop === "function"
    ? tcp as TcpReader
    : null;
}

/**
 * Dials TLS and resolves once the handshake is done and the certificate
 * verified. When `signal` aborts first, the socket is destroyed at once and
 * the promise rejects with `signal.reason`.
 */
export function dialTls(
  hostname: string,
  port: number,
  settings: TlsSettings,
  signal: AbortSignal,
  noDelay: boolean,
  keepAlive: boolean,
): Promise<Socket> {
  signal.throwIfAborted();
  // Passed as node:tls's `ca` as they are: adding `rootCertificates` would
  // need `--allow-sys=ca`.
  const ca = settings.caCerts;
  const socket = tlsConnect({
    host: hostname,
    port,
    // SNI carries host names only (RFC 6066); an IP is checked against the
    // certificate's IP addresses all the same.
    ...(isIP(hostname) === 0 ? { servername: hostname } : {}),
    ...(ca === undefined ? {} : { ca }),
    ...(settings.alpnProtocols === undefined
      ? {}
      : { ALPNProtocols: settings.alpnProtocols }),
    ...(settings.cert === undefined
      ? {}
      : { cert: settings.cert, key: settings.key }),
    ...(settings.unsafelyDisableHostnameVerification
      ? { checkServerIdentity: () => undefined }
      : {}),
  });
  // Before the handshake too: with Nagle on, its small writes wait for
  // delayed ACKs (a 40 ms stall per dial on Linux).
  if (noDelay) socket.setNoDelay(true);
  const { promise, resolve, reject } = Promise.withResolvers<Socket>();
  const done = () => {
    socket.off("secureConnect", onConnect);
    socket.off("error", onError);
    socket.off("close", onClose);
    signal.removeEventListener("abort", onAbort);
  };
  const onConnect = () => {
    done();
    if (noDelay) socket.setNoDelay(true);
    if (keepAlive) socket.setKeepAlive(true);
    resolve(new NodeSocket(socket));
  };
  const onError = (error: unknown) => {
    done();
    socket.destroy();
    reject(socketError(error));
  };
  const onClose = () => {
    done();
    reject(
      new SocketError("the server closed the connection during the handshake", {
        code: "ECONNRESET",
      }),
    );
  };
  const onAbort = () => {
    done();
    socket.destroy();
    reject(signal.reason);
  };
  socket.on("secureConnect", onConnect);
  socket.on("error", onError);
  socket.on("close", onClose);
  signal.addEventListener("abort", onAbort, { once: true });
  return promise;
}

/**
 * A `node:tls` socket as a pull-based {@linkcode Socket}: bytes that arrive
 * wait in a queue for `read` (above HIGH_WATER the TCP handle under it stops
 * reading; see the top of this file), EOF and errors are remembered in order
 * behind them.
 */
export class NodeSocket implements Socket {
  readonly #socket: TLSSocket;
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #peak = 0;
  /** The TCP handle was told to stop reading. */
  #held = false;
  #ended = false;
  #error: SocketError | null = null;
  #waiter: (() => void) | null = null;
  readonly localAddr: Deno.NetAddr;
  readonly remoteAddr: Deno.NetAddr;

  constructor(socket: TLSSocket) {
    this.#socket = socket;
    this.localAddr = {
      transport: "tcp",
      hostname: socket.localAddress ?? "",
      port: socket.localPort ?? 0,
    };
    this.remoteAddr = {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "",
      port: socket.remotePort ?? 0,
    };
    // Flowing mode, never paused: see the top of this file.
    socket.on("data", (chunk: Uint8Array) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued > this.#peak) this.#peak = this.#queued;
      if (this.#queued >= HIGH_WATER && !this.#held) this.#hold();
      this.#wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("error", (error: unknown) => {
      this.#error ??= socketError(error);
      this.#wake();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wake();
    });
  }

  /** Bytes received and not read yet. */
  get queued(): number {
    return this.#queued;
  }

  /** The most bytes that ever waited at once (tests check the bound). */
  get peakQueued(): number {
    return this.#peak;
  }

  /** Stops the TCP handle reading: the peer waits once the window fills. */
  #hold(): void {
    const tcp = tcpReader(this.#socket);
    if (tcp === null) return;
    tcp.readStop();
    this.#held = true;
  }

  /** Lets the TCP handle read again, unless the stream is over. */
  #unhold(): void {
    this.#held = false;
    if (this.#ended || this.#socket.destroyed) return;
    tcpReader(this.#socket)?.readStart();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#queue.length === 0) {
      if (this.#error !== null) throw this.#error;
      if (this.#ended || this.#socket.destroyed) return null;
      if (this.#waiter !== null) {
        throw new SocketError("a read is already pending", {});
      }
      await new Promise<void>((resolve) => this.#waiter = resolve);
    }
    // As much as `p` holds, from every chunk queued: bytes that already
    // came are never left behind a full read of an earlier chunk (a reply's
    // last read must bring what arrived after it).
    let n = 0;
    while (n < p.length && this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const take = Math.min(head.length, p.length - n);
      p.set(take === head.length ? head : head.subarray(0, take), n);
      if (take === head.length) this.#queue.shift();
      else this.#queue[0] = head.subarray(take);
      n += take;
    }
    this.#queued -= n;
    if (this.#held && this.#queued <= LOW_WATER) this.#unhold();
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#socket.destroyed || this.#socket.writableEnded) {
      return Promise.reject(
        new SocketError("the connection is closed", { code: "EPIPE" }),
      );
    }
    // The callback runs once `p` was handed on (encrypted and written):
    // only then may the caller reuse it, as FrameWriter does.
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#socket.write(p, (error) => {
      if (error) reject(socketError(error));
      else resolve(p.length);
    });
    return promise;
  }

  closeWrite(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    if (this.#socket.destroyed || this.#socket.writableEnded) resolve();
    else this.#socket.end(() => resolve());
    return promise;
  }

  close(): void {
    if (this.#socket.destroyed) return;
    this.#socket.destroy();
    this.#error ??= new SocketError("the connection was closed", {
      code: "ECONNABORTED",
    });
    this.#wake();
  }
}
