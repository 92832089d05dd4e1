// Copyright 2026 the chanpool authors. MIT license.
// A small RESP2 Redis client on TcpPool, and a demo against a local
// redis-server started on a free port (skipped, with a note, when
// redis-server is not on the PATH).
//
// What the pool gives it: a connection the server closed while idle
// (`timeout N` in redis.conf) is evicted by the idle watch; a command cut
// off by a dead connection is sent again once, on a freshly dialed one,
// when it is idempotent (IDEMPOTENT, or `idempotent: true`).
//
// Pipelining (the default): the client's TcpPool runs with
// `pipeline: { match: "fifo" }`, and each command is one `pool.exchange`:
// commands issued in the same turn of the event loop go out in one write,
// many in flight per connection, and Redis answers in order, so position
// is identity. A command that times out or is aborted after it was written
// rejects at once; its reply is still read, and dropped, so it never shifts
// a later caller's. `pipeline: false`: one command per borrowed connection.
//
// Shared connections carry everybody's commands, so a command that changes
// its connection's state (MULTI, SELECT, CLIENT REPLY, SUBSCRIBE...) or
// blocks it (BLPOP...) would change the replies of the commands sent after
// it by other callers: `command` refuses them, before sending anything, with
// StatefulCommandError. They have a connection of their own instead:
// `redis.session(async (s) => ...)` lends one for a callback and RESETs it
// before it goes back (or destroys it), and `redis.subscribe(...)` reads
// pub/sub messages into a Channel until it is closed (the connection is then
// destroyed, never given back subscribed).
//
// Run: deno run --allow-net=127.0.0.1 --allow-run=redis-server examples/redis.ts

import {
  Channel,
  ConnectionBrokenError,
  type FrameReader,
  PoolClosedError,
  type PooledConn,
  PoolExhaustedError,
  ProtocolError,
  TcpPool,
  type TcpPoolOptions,
  TimeoutError,
} from "../mod.ts";

/** A RESP2 reply: `null` is nil; errors are thrown as RedisError. */
export type RedisValue = string | number | null | RedisValue[];

/** An error reply from the server (`-ERR ...`): the connection is fine. */
export class RedisError extends Error {
  /** The error's first word: `ERR`, `WRONGTYPE`, `MOVED`... */
  readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = "RedisError";
    this.code = message.split(" ", 1)[0] ?? "";
  }
}

/** Options of one command. */
export interface CommandOptions {
  /**
   * Bounds the whole command (wait, dial, write, read, retry), in ms; `0`
   * or `Infinity`: no limit.
   */
  timeout?: number;
  signal?: AbortSignal;
  /**
   * Whether to retry once on a fresh connection if a reused one died before
   * any reply byte. Default: `true` for the commands in IDEMPOTENT.
   */
  idempotent?: boolean;
}

/** Commands that may run twice without harm (no counters, no lists). */
export const IDEMPOTENT: ReadonlySet<string> = new Set([
  "GET",
  "MGET",
  "SET",
  "DEL",
  "EXISTS",
  "PING",
  "ECHO",
  "STRLEN",
  "TTL",
  "PTTL",
  "TYPE",
  "HGET",
  "HGETALL",
  "SMEMBERS",
  "LRANGE",
]);

// -- Commands that change their connection's state --

/**
 * A command refused because of what it does to its connection: it would
 * change the replies of the commands sent after it on the same connection.
 * Thrown (as a rejection) before anything is sent; nothing else is affected.
 *
 * On the client's shared connections the commands refused are the ones that
 * change the connection's state (`MULTI`, `EXEC`, `DISCARD`, `WATCH`,
 * `UNWATCH`, `SELECT`, `CLIENT REPLY`, `CLIENT TRACKING`, `CLIENT CACHING`,
 * `CLIENT SETNAME`, `CLIENT SETINFO`, `CLIENT NO-EVICT`, `CLIENT NO-TOUCH`,
 * `RESET`, `AUTH`, `HELLO`, `READONLY`, `READWRITE`, `ASKING`, `QUIT`), the
 * pub/sub commands, `MONITOR`, `SYNC`, `PSYNC`, and the blocking ones (`BLPOP`,
 * `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP`, `BZPOPMIN`, `BZPOPMAX`,
 * `BZMPOP`, `XREAD`/`XREADGROUP` with `BLOCK`, `WAIT`, `WAITAOF`). In a
 * {@linkcode RedisClient.session}, only those whose replies are not one
 * reply per command: the pub/sub commands, `MONITOR`, `SYNC`, `PSYNC`,
 * `CLIENT REPLY OFF`/`SKIP`, and `HELLO` with a protocol other than 2.
 * Command names are matched case-insensitively.
 *
 * @example Usage
 * ```ts
 * import { RedisClient, StatefulCommandError } from "./redis.ts";
 * import assert from "node:assert/strict";
 *
 * // Refused before anything is sent: no server is needed to see it.
 * await using redis = new RedisClient({ port: 6379 });
 * await assert.rejects(redis.command(["multi"]), (e) =>
 *   e instanceof StatefulCommandError && e.command === "MULTI" &&
 *   /redis\.session\(/.test(e.message));
 * assert.equal(redis.pool.stats.dials, 0);
 * ```
 */
export class StatefulCommandError extends Error {
  /**
   * The command, upper case, with the subcommand or option that makes it
   * stateful: `MULTI`, `CLIENT REPLY`, `XREAD BLOCK`.
   */
  readonly command: string;

  /**
   * Makes the error.
   *
   * @param command The command refused (see {@linkcode StatefulCommandError.command}).
   * @param message Why, and what to use instead.
   * @param options `cause`.
   */
  constructor(command: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StatefulCommandError";
    this.command = command;
  }
}

/** What a refused command would do, and what to use instead. */
interface Refusal {
  readonly does: string;
  readonly instead: string;
}

const SESSION = "use redis.session(...)";
const STATE: Refusal = {
  does: "changes the connection's state for the commands sent after it",
  instead: SESSION,
};
const BLOCKING: Refusal = {
  does:
    "blocks its connection, and the commands pipelined behind it, until it returns",
  instead: SESSION,
};
const AUTHENTICATES: Refusal = {
  does:
    "changes how the connection is authenticated or spoken to (this client has no AUTH support)",
  instead: SESSION,
};
const RESETS: Refusal = {
  does: "resets the connection's state",
  instead: "use redis.session(...), which resets its connection when it ends",
};
const SUBSCRIBES: Refusal = {
  does: "turns the connection into a subscriber",
  instead: "use redis.subscribe(...)",
};
const PSUBSCRIBES: Refusal = {
  does: "turns the connection into a subscriber",
  instead: "use redis.psubscribe(...)",
};
const UNSUBSCRIBES: Refusal = {
  does: "belongs to a subscription",
  instead: "close the Subscription that redis.subscribe(...) returned",
};
const STREAMS: Refusal = {
  does: "turns the connection into a stream of replies",
  instead:
    "this client does not read that stream; borrow a connection of your own with redis.pool.borrow()",
};
const QUITS: Refusal = {
  does: "closes the connection",
  instead: "use redis.close()",
};

/** A table entry: a refusal, or a check of the arguments. */
type Rule =
  | Refusal
  | ((args: readonly (string | number)[]) => [string, Refusal] | undefined);

function upper(arg: string | number | undefined): string {
  return String(arg ?? "").toUpperCase();
}

/** `CLIENT <sub>` refused when `sub` is in `subs`. */
function clientRule(subs: ReadonlyMap<string, Refusal>): Rule {
  return (args) => {
    const sub = upper(args[1]);
    const refusal = subs.get(sub);
    return refusal === undefined ? undefined : [`CLIENT ${sub}`, refusal];
  };
}

/**
 * `XREAD`/`XREADGROUP` with a `BLOCK` option: the options come before
 * `STREAMS`; `GROUP` takes two arguments, `COUNT` and `BLOCK` one.
 */
function xreadRule(
  args: readonly (string | number)[],
): [string, Refusal] | undefined {
  for (let i = 1; i < args.length;) {
    const word = upper(args[i]);
    if (word === "STREAMS") return undefined;
    if (word === "BLOCK") return [`${upper(args[0])} BLOCK`, BLOCKING];
    i += word === "GROUP" ? 3 : word === "COUNT" ? 2 : 1;
  }
  return undefined;
}

/** Refused on the shared (pipelined or `pipeline: false`) connections. */
const SHARED_RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ...["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT"].map((
    n,
  ) => [n, STATE] as const),
  ...["READONLY", "READWRITE", "ASKING"].map((n) => [n, STATE] as const),
  ...["AUTH", "HELLO"].map((n) => [n, AUTHENTICATES] as const),
  ["RESET", RESETS],
  ["QUIT", QUITS],
  ["SUBSCRIBE", SUBSCRIBES],
  ["SSUBSCRIBE", SUBSCRIBES],
  ["PSUBSCRIBE", PSUBSCRIBES],
  ...["UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"].map((
    n,
  ) => [n, UNSUBSCRIBES] as const),
  ...["MONITOR", "SYNC", "PSYNC"].map((n) => [n, STREAMS] as const),
  ...[
    "BLPOP",
    "BRPOP",
    "BLMOVE",
    "BRPOPLPUSH",
    "BLMPOP",
    "BZPOPMIN",
    "BZPOPMAX",
    "BZMPOP",
    "WAIT",
    "WAITAOF",
  ].map((n) => [n, BLOCKING] as const),
  ["XREAD", xreadRule],
  ["XREADGROUP", xreadRule],
  [
    "CLIENT",
    clientRule(
      new Map(
        [
          "REPLY",
          "TRACKING",
          "CACHING",
          "SETNAME",
          "SETINFO",
          "NO-EVICT",
          "NO-TOUCH",
        ].map((n) => [n, STATE]),
      ),
    ),
  ],
]);

const STREAM_OF_MESSAGES =
  "its replies are a stream of messages, not one reply";

/**
 * Refused in a session: commands whose replies are not one per command (a
 * session reads exactly one reply per command).
 */
const SESSION_RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ...["SUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "SUNSUBSCRIBE"].map((n) =>
    [n, {
      does: STREAM_OF_MESSAGES,
      instead: "use redis.subscribe(...)",
    }] as const
  ),
  ...["PSUBSCRIBE", "PUNSUBSCRIBE"].map((n) =>
    [n, {
      does: STREAM_OF_MESSAGES,
      instead: "use redis.psubscribe(...)",
    }] as const
  ),
  ...["MONITOR", "SYNC", "PSYNC"].map((n) => [n, STREAMS] as const),
  ["CLIENT", (args) => {
    const sub = upper(args[1]);
    const mode = upper(args[2]);
    if (sub !== "REPLY" || (mode !== "OFF" && mode !== "SKIP")) {
      return undefined;
    }
    return [`CLIENT REPLY ${mode}`, {
      does: "suppresses replies, and a session waits for one reply per command",
      instead: "leave replies on",
    }];
  }],
  [
    "HELLO",
    (args) =>
      args.length < 2 || String(args[1]) === "2" ? undefined : ["HELLO", {
        does:
          "switches the connection to RESP3, which this client does not read",
        instead: "use HELLO 2 or none",
      }],
  ],
]);

/**
 * `CLIENT` subcommands whose effect RESET may not undo (Redis 7.0's RESET
 * keeps NO-EVICT; NO-TOUCH came in 7.2): a session that sent one destroys
 * its connection.
 */
const NOT_RESET: ReadonlySet<string> = new Set(["NO-EVICT", "NO-TOUCH"]);

/** The error for `args` if `rules` refuse it, else `undefined`. */
function refused(
  rules: ReadonlyMap<string, Rule>,
  name: string,
  args: readonly (string | number)[],
  where: string,
): StatefulCommandError | undefined {
  const rule = rules.get(name);
  if (rule === undefined) return undefined;
  const hit: [string, Refusal] | undefined = typeof rule === "function"
    ? rule(args)
    : [name, rule];
  if (hit === undefined) return undefined;
  const [command, { does, instead }] = hit;
  return new StatefulCommandError(
    command,
    `Cannot send ${command} ${where}: it ${does}; ${instead}`,
  );
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How many bytes `s` takes in UTF-8 (as TextEncoder writes it). */
function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (
      c >= 0xd800 && c <= 0xdbff && i + 1 < s.length &&
      (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00
    ) {
      n += 2; // a pair: 4 bytes for 2 code units
      i++;
    } else n += 2; // 3 bytes (a lone surrogate becomes U+FFFD)
  }
  return n;
}

/** Where commands are encoded: views of it are handed out, never reused. */
let slab = new Uint8Array(0);
let slabAt = 0;
const SLAB_SIZE = 64 * 1024;

/**
 * A command as a RESP2 array of bulk strings (lengths in UTF-8 bytes). Its
 * bytes are a view into a shared 64 KiB slab (a fresh array past that), as
 * Node's `Buffer` pool does: no allocation per command but the view.
 */
export function encodeCommand(args: readonly (string | number)[]): Uint8Array {
  // At most 3 bytes per UTF-16 unit, plus each header's digits and CRLFs.
  let most = 16;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    most += (typeof a === "string" ? a.length * 3 : 24) + 16;
  }
  if (slab.length - slabAt < most) {
    slab = new Uint8Array(Math.max(SLAB_SIZE, most));
    slabAt = 0;
  }
  const out = slab;
  const start = slabAt;
  out[start] = 42; // *
  let at = decimal(out, start + 1, args.length);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const s = typeof arg === "string" ? arg : String(arg);
    at = put(out, at, s);
  }
  slabAt = at;
  return out.subarray(start, at);
}

/** Writes `$<bytes>\r\n<s>\r\n` at `at`; returns the end. */
function put(out: Uint8Array, at: number, s: string): number {
  const n = s.length;
  if (n < 64) {
    // Short ASCII in JS: the length is known before the bytes.
    let i = 0;
    while (i < n && s.charCodeAt(i) < 0x80) i++;
    if (i === n) {
      out[at] = 36; // $
      at = decimal(out, at + 1, n);
      for (let j = 0; j < n; j++) out[at++] = s.charCodeAt(j);
      out[at] = 13;
      out[at + 1] = 10;
      return at + 2;
    }
  }
  const len = utf8Length(s);
  out[at] = 36;
  at = decimal(out, at + 1, len);
  at += encoder.encodeInto(s, out.subarray(at)).written;
  out[at] = 13;
  out[at + 1] = 10;
  return at + 2;
}

/** Writes `n` (≥ 0) in decimal and CRLF at `at`; returns the end. */
function decimal(out: Uint8Array, at: number, n: number): number {
  if (n < 10) out[at++] = 48 + n;
  else {
    const digits = String(n);
    for (let i = 0; i < digits.length; i++) {
      out[at++] = digits.charCodeAt(i);
    }
  }
  out[at] = 13;
  out[at + 1] = 10;
  return at + 2;
}

/** The longest bulk string read (Redis's own proto-max-bulk-len default). */
const MAX_BULK = 512 * 1024 * 1024;

/** A bulk string's text: short ASCII without a call into the decoder. */
function bulkText(bytes: Uint8Array, n: number): string {
  if (n <= 64) {
    let out = "";
    for (let i = 0; i < n; i++) {
      const b = bytes[i]!;
      if (b >= 0x80) return decoder.decode(bytes.subarray(0, n));
      out += String.fromCharCode(b);
    }
    return out;
  }
  return decoder.decode(bytes.subarray(0, n));
}

/** A value read where a reply should be; RedisError is a value here. */
type Reply = RedisValue | RedisError;

/**
 * Reads one RESP2 reply. Returns `null` at EOF before it (the pool turns
 * that into ConnectionBrokenError); throws ProtocolError on bytes that are
 * not RESP2 (the connection is then destroyed). A reply already buffered
 * whole is parsed synchronously, with no promise (the pipeline's read loop
 * calls this once per reply).
 */
export function readReply(reader: FrameReader): Reply | Promise<Reply> {
  const bytes = reader.peek();
  at = 0;
  const reply = parse(bytes);
  if (reply === INCOMPLETE) return readReplyAsync(reader);
  reader.skip(at);
  return reply;
}

/** Not all there, or not plainly RESP2: the async reader decides. */
const INCOMPLETE: unique symbol = Symbol("incomplete");

/** The synchronous parser's position in the bytes it was given. */
let at = 0;

/** Longest header line parsed synchronously (longer ones: async). */
const SHORT_LINE = 64;

/**
 * One whole reply from `bytes` at `at` (moved past it), or INCOMPLETE
 * (`at` then means nothing). Only what readReplyAsync would return the
 * same for; any doubt is INCOMPLETE.
 */
function parse(bytes: Uint8Array): Reply | typeof INCOMPLETE {
  const start = at;
  const len = bytes.length;
  if (start >= len) return INCOMPLETE;
  const type = bytes[start]!;
  // The header line: start + 1 up to \r\n.
  let end = start + 1;
  const stop = Math.min(len - 1, start + SHORT_LINE);
  while (end < stop && bytes[end] !== 13) end++;
  if (end >= stop || bytes[end + 1] !== 10) return INCOMPLETE;
  at = end + 2;
  if (type === 43 || type === 45) { // + -
    const text = ascii(bytes, start + 1, end);
    if (text === null) return INCOMPLETE;
    return type === 43 ? text : new RedisError(text);
  }
  const n = digits(bytes, start + 1, end);
  if (n === null) return INCOMPLETE;
  if (type === 58) return n; // :
  if (type === 36) { // $
    if (n === -1) return null;
    if (n < 0) return INCOMPLETE;
    const from = at;
    if (len - from < n + 2) return INCOMPLETE;
    if (bytes[from + n] !== 13 || bytes[from + n + 1] !== 10) {
      return INCOMPLETE;
    }
    at = from + n + 2;
    return ascii(bytes, from, from + n) ??
      decoder.decode(bytes.subarray(from, from + n));
  }
  if (type === 42) { // *
    if (n === -1) return null;
    if (n < 0 || n > len - at) return INCOMPLETE;
    const items: RedisValue[] = [];
    for (let i = 0; i < n; i++) {
      const item = parse(bytes);
      if (item === INCOMPLETE) return INCOMPLETE;
      items.push(item instanceof RedisError ? item.message : item);
    }
    return items;
  }
  return INCOMPLETE;
}

/** `bytes[from, to)` as text if it is short ASCII, else `null`. */
function ascii(bytes: Uint8Array, from: number, to: number): string | null {
  if (to - from > SHORT_TEXT) return null;
  let out = "";
  for (let i = from; i < to; i++) {
    const b = bytes[i]!;
    if (b >= 0x80) return null;
    out += String.fromCharCode(b);
  }
  return out;
}

/** Short ASCII is decoded in JS, without a call into the decoder. */
const SHORT_TEXT = 64;

/** A plain decimal integer (`-` allowed) of at most 15 digits, or `null`. */
function digits(bytes: Uint8Array, from: number, to: number): number | null {
  let i = from;
  const negative = bytes[i] === 45;
  if (negative) i++;
  if (i === to || to - i > 15) return null;
  let n = 0;
  for (; i < to; i++) {
    const d = bytes[i]! - 48;
    if (d < 0 || d > 9) return null;
    n = n * 10 + d;
  }
  return negative ? -n : n;
}

/** readReply once the reply is not all buffered: reads as it comes. */
async function readReplyAsync(reader: FrameReader): Promise<Reply> {
  const line = await reader.readLine();
  if (line === null) return null;
  const rest = line.slice(1);
  switch (line[0]) {
    case "+":
      return rest;
    case "-":
      return new RedisError(rest);
    case ":":
      return integer(rest);
    case "$": {
      const n = integer(rest);
      if (n === -1) return null;
      if (n < 0 || n > MAX_BULK) {
        throw new ProtocolError(`Redis: bad bulk string length ${n}`);
      }
      // A view into the reader's buffer, decoded before the next read.
      const bytes = await reader.readExactView(n + 2);
      if (bytes === null || bytes[n] !== 13 || bytes[n + 1] !== 10) {
        throw new ProtocolError(`Redis: bad bulk string of ${n} bytes`);
      }
      return bulkText(bytes, n);
    }
    case "*": {
      const n = integer(rest);
      if (n === -1) return null;
      if (n < 0) throw new ProtocolError(`Redis: bad array length ${n}`);
      const items: RedisValue[] = [];
      for (let i = 0; i < n; i++) {
        const item = await readReply(reader);
        // An error inside an array (EXEC) stays a value.
        items.push(item instanceof RedisError ? item.message : item);
      }
      return items;
    }
    default:
      throw new ProtocolError(
        `Redis: not a RESP2 reply: ${JSON.stringify(line.slice(0, 40))}`,
      );
  }
}

function integer(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) {
    throw new ProtocolError(`Redis: bad integer ${JSON.stringify(text)}`);
  }
  return n;
}

/**
 * Options of a {@linkcode RedisClient}: TcpPool's, `port` defaulting to 6379
 * (or `path` for redis-server's `unixsocket`).
 */
export type RedisOptions =
  & Omit<TcpPoolOptions, "port" | "frame" | "pipeline">
  & {
    port?: number;
    /**
     * Pipeline the commands on the pool's connections (default `true`):
     * many in flight per connection, replies matched in order; `false`:
     * one command per borrowed connection, each waiting for its reply.
     */
    pipeline?: boolean;
  };

/** The longest finite timeout the runtime's timers take, in ms (2^31 − 1). */
const MAX_DELAY = 2_147_483_647;

function commandOptions(options: unknown): {
  timeout: number;
  signal: AbortSignal | undefined;
  idempotent: boolean | undefined;
} {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot send command: options must be an object, received ${
        String(options)
      }`,
    );
  }
  const { timeout = Infinity, signal, idempotent } = options as CommandOptions;
  if (typeof timeout !== "number") {
    throw new TypeError(
      `Cannot send command: timeout must be a number, received ${typeof timeout}`,
    );
  }
  if (!(timeout >= 0)) {
    throw new RangeError(
      `Cannot send command: timeout must be ≥ 0 ms, received ${timeout}`,
    );
  }
  if (timeout > MAX_DELAY && timeout !== Infinity) {
    throw new RangeError(
      `Cannot send command: timeout must be at most ${MAX_DELAY} ms or Infinity, received ${timeout}`,
    );
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(
      "Cannot send command: signal must be an AbortSignal",
    );
  }
  if (idempotent !== undefined && typeof idempotent !== "boolean") {
    throw new TypeError(
      `Cannot send command: idempotent must be a boolean, received ${typeof idempotent}`,
    );
  }
  // 0, like Infinity, is no limit.
  return { timeout: timeout || Infinity, signal, idempotent };
}

/** A command's options when none are given. */
const NO_OPTIONS = {
  timeout: Infinity,
  signal: undefined,
  idempotent: undefined,
} as const;
/** The exchange options of a command with no timeout and no signal. */
const IDEMPOTENT_CALL = { idempotent: true } as const;
const ONCE_CALL = { idempotent: false } as const;

/** A reply as the command's outcome: a RedisError rejects. */
function unwrap(reply: Reply): RedisValue {
  if (reply instanceof RedisError) throw reply;
  return reply;
}

/**
 * The helpers of {@linkcode RedisClient} and {@linkcode RedisSession}: each
 * is one {@linkcode RedisCommands.command}.
 *
 * @example Usage
 * ```ts
 * import { type RedisCommands, RedisClient } from "./redis.ts";
 * import assert from "node:assert/strict";
 *
 * // Code that takes RedisCommands runs on the client or in a session.
 * async function bump(redis: RedisCommands, key: string): Promise<number> {
 *   return await redis.incr(key);
 * }
 * assert.equal(typeof bump, "function");
 * assert.equal(typeof RedisClient.prototype.session, "function");
 * ```
 */
export abstract class RedisCommands {
  /**
   * Sends one command and waits for its reply.
   *
   * @param args The command and its arguments.
   * @param options `timeout`, `signal`, `idempotent`.
   * @returns The reply.
   * @throws {RedisError} If the server answered with an error.
   * @throws {StatefulCommandError} If the command is refused here.
   */
  abstract command(
    args: readonly (string | number)[],
    options?: CommandOptions,
  ): Promise<RedisValue>;

  /**
   * `GET key`.
   *
   * @param key The key.
   * @param options `timeout`, `signal`.
   * @returns The value, or `null` if there is none.
   */
  get(key: string, options?: CommandOptions): Promise<string | null> {
    return this.command(["GET", key], options) as Promise<string | null>;
  }

  /**
   * `SET key value`.
   *
   * @param key The key.
   * @param value The value.
   * @param options `timeout`, `signal`.
   */
  async set(
    key: string,
    value: string | number,
    options?: CommandOptions,
  ): Promise<void> {
    await this.command(["SET", key, value], options);
  }

  /**
   * `DEL key...`.
   *
   * @param keys The keys.
   * @returns How many existed.
   */
  del(...keys: string[]): Promise<number> {
    return this.command(["DEL", ...keys]) as Promise<number>;
  }

  /**
   * `INCR key`.
   *
   * @param key The key.
   * @param options `timeout`, `signal`.
   * @returns The new value.
   */
  incr(key: string, options?: CommandOptions): Promise<number> {
    return this.command(["INCR", key], options) as Promise<number>;
  }

  /**
   * `PING`.
   *
   * @param options `timeout`, `signal`.
   * @returns `"PONG"`.
   */
  ping(options?: CommandOptions): Promise<string> {
    return this.command(["PING"], options) as Promise<string>;
  }
}

/** Options of {@linkcode RedisClient.session}. */
export interface SessionOptions {
  /**
   * How long to wait for a connection, in milliseconds; `0` or `Infinity`:
   * no limit.
   *
   * @default {the pool's acquireTimeout}
   */
  timeout?: number | undefined;
  /** Cancels the wait for a connection (not the callback). */
  signal?: AbortSignal | undefined;
  /**
   * How long the `RESET` that cleans the connection after the callback may
   * take, in milliseconds; past it the connection is destroyed instead.
   * `0` or `Infinity`: no limit.
   *
   * @default {1000}
   */
  resetTimeout?: number | undefined;
}

/** Options of {@linkcode RedisClient.subscribe}. */
export interface SubscribeOptions {
  /**
   * Messages the subscription buffers before its reader stops reading the
   * socket (a non-negative integer): a consumer that falls further behind
   * slows the reading down (see {@linkcode Subscription}).
   *
   * @default {64}
   */
  capacity?: number | undefined;
  /**
   * Bounds the wait for a connection and the server's confirmations, in
   * milliseconds; `0` or `Infinity`: no limit.
   *
   * @default {the pool's acquireTimeout for the connection; no bound on the confirmations}
   */
  timeout?: number | undefined;
  /** Cancels the subscribe call until it resolves. */
  signal?: AbortSignal | undefined;
}

/** A message received by a {@linkcode Subscription}. */
export interface RedisMessage {
  /** The channel it was published to. */
  channel: string;
  /** What was published. */
  message: string;
  /** The pattern that matched, for a pattern subscription's messages. */
  pattern?: string;
}

function durationOption(
  what: string,
  name: string,
  value: unknown,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${what}: ${name} must be a number of milliseconds, received ${typeof value}`,
    );
  }
  if (!(value >= 0)) {
    throw new RangeError(
      `Cannot ${what}: ${name} must be ≥ 0 ms, received ${value}`,
    );
  }
  if (value > MAX_DELAY && value !== Infinity) {
    throw new RangeError(
      `Cannot ${what}: ${name} must be at most ${MAX_DELAY} ms or Infinity, received ${value}`,
    );
  }
  // Every duration option here is a timeout: 0, like Infinity, is no limit.
  return value || Infinity;
}

function signalOption(what: string, value: unknown): AbortSignal | undefined {
  if (value !== undefined && !(value instanceof AbortSignal)) {
    throw new TypeError(`Cannot ${what}: signal must be an AbortSignal`);
  }
  return value;
}

function optionsObject(
  what: string,
  options: unknown,
): Record<string, unknown> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot ${what}: options must be an object, received ${String(options)}`,
    );
  }
  return options as Record<string, unknown>;
}

/** A pooled Redis client; pipelined by default (see the top of this file). */
export class RedisClient extends RedisCommands implements AsyncDisposable {
  readonly pool: TcpPool;
  /** Open subscriptions, closed with the client. */
  readonly #subscriptions = new Set<Subscription>();
  #closed = false;

  constructor(options: RedisOptions = {}) {
    super();
    const { pipeline = true, ...rest } = options;
    if (typeof pipeline !== "boolean") {
      throw new TypeError(
        `Cannot create RedisClient: pipeline must be a boolean, received ${typeof pipeline}`,
      );
    }
    const port = rest.path === undefined ? options.port ?? 6379 : options.port;
    this.pool = new TcpPool({
      ...rest,
      port,
      ...(pipeline ? { pipeline: { match: "fifo" } } : {}),
    } as TcpPoolOptions);
  }

  /** Pipelined commands sent again after their connection broke. */
  get retries(): number {
    return this.pool.stats.pipeline?.resent ?? 0;
  }

  /**
   * Sends one command on the shared connections; resolves with its reply,
   * rejects with RedisError. Commands that change or block their
   * connection are refused (see {@linkcode StatefulCommandError}).
   *
   * @param args The command and its arguments.
   * @param options `timeout`, `signal`, `idempotent`.
   * @returns The reply.
   * @throws {RedisError} If the server answered with an error.
   * @throws {StatefulCommandError} If the command would change or block a
   *   shared connection (nothing is sent).
   */
  override command(
    args: readonly (string | number)[],
    options?: CommandOptions,
  ): Promise<RedisValue> {
    let reply: Promise<Reply>;
    try {
      const checked = options === undefined
        ? NO_OPTIONS
        : commandOptions(options);
      const name = upper(args[0]);
      const refusal = SHARED_RULES.has(name)
        ? refused(SHARED_RULES, name, args, "on a shared connection")
        : undefined;
      if (refusal !== undefined) throw refusal;
      const idempotent = checked.idempotent ?? IDEMPOTENT.has(name);
      const { timeout, signal } = checked;
      reply = this.pool.exchange(
        encodeCommand(args),
        readReply,
        signal === undefined
          ? timeout === Infinity
            ? idempotent ? IDEMPOTENT_CALL : ONCE_CALL
            : { timeout, idempotent }
          : { timeout, signal, idempotent },
      );
    } catch (error) {
      return Promise.reject(error);
    }
    return reply.then(unwrap);
  }

  /**
   * Runs `fn` with a connection of its own, borrowed from the pool for the
   * callback: its commands go one after another on that connection, never
   * pipelined with other callers', so MULTI/EXEC, WATCH, SELECT and the
   * blocking commands work there. When the callback ends the connection
   * gets `RESET` (Redis ≥ 6.2); it goes back to the pool only if the reply
   * is `RESET` and nothing is left unread. It is destroyed instead if a
   * command of the session is still in flight or queued (the callback
   * returned or threw without awaiting it: it then fails), if the
   * connection broke or timed out, if `RESET` failed or took longer than
   * `resetTimeout`, or after `CLIENT NO-EVICT` or `NO-TOUCH` (Redis 7.0's
   * `RESET` keeps NO-EVICT). `RESET` also de-authenticates: the client itself
   * has no AUTH support, so an `AUTH` in a session lasts for that session.
   *
   * A session reads one reply per command, so commands that suppress or
   * multiply replies are refused with {@linkcode StatefulCommandError}:
   * `CLIENT REPLY OFF`/`SKIP`, the pub/sub commands (use
   * {@linkcode RedisClient.subscribe}), `MONITOR`, `SYNC`, `PSYNC`, `HELLO 3`.
   *
   * The session holds one of the pool's `max` connections for as long as the
   * callback runs; {@linkcode RedisClient.close} waits for running sessions.
   *
   * @example A transaction
   * ```ts
   * import { RedisClient } from "./redis.ts";
   * import { HAVE_REDIS, startRedis } from "../tests/_redis_server.ts";
   * import assert from "node:assert/strict";
   *
   * if (HAVE_REDIS) {
   *   await using server = await startRedis();
   *   await using redis = new RedisClient({ port: server.port });
   *   const replies = await redis.session(async (s) => {
   *     await s.command(["MULTI"]);
   *     await s.command(["INCR", "visits"]); // "QUEUED"
   *     await s.command(["SET", "seen", "yes"]); // "QUEUED"
   *     return await s.command(["EXEC"]);
   *   });
   *   assert.deepEqual(replies, [1, "OK"]);
   * }
   * ```
   *
   * @typeParam T What the callback returns.
   * @param fn The callback; its session is unusable once it ends.
   * @param options `timeout`, `signal` (both for the borrow), `resetTimeout`.
   * @returns What `fn` returned.
   * @throws {TypeError} If `fn` is not a function or an option is wrong.
   * @throws {RangeError} If a duration is negative or NaN.
   * @throws {PoolTimeoutError} If no connection came within `timeout`.
   * @throws {PoolClosedError} If the client is closed.
   * @throws What `fn` threw.
   */
  async session<T>(
    fn: (session: RedisSession) => T | Promise<T>,
    options: SessionOptions = {},
  ): Promise<T> {
    const what = "start session";
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot ${what}: fn must be a function, received ${typeof fn}`,
      );
    }
    const o = optionsObject(what, options);
    const timeout = durationOption(what, "timeout", o.timeout);
    const signal = signalOption(what, o.signal);
    const resetTimeout = durationOption(what, "resetTimeout", o.resetTimeout) ??
      1_000;
    const conn = await this.pool.borrow({
      ...(timeout === undefined ? {} : { timeout }),
      ...(signal === undefined ? {} : { signal }),
    });
    const session = new RedisSession(conn);
    let result: T;
    try {
      result = await fn(session);
    } catch (error) {
      await endSession(session, resetTimeout);
      throw error;
    }
    await endSession(session, resetTimeout);
    return result;
  }

  /**
   * Subscribes to `channels` on a connection of its own, borrowed from the
   * pool, and resolves once the server confirmed every channel: a message
   * published after that is received. See {@linkcode Subscription}.
   *
   * @example Usage
   * ```ts
   * import { RedisClient } from "./redis.ts";
   * import { HAVE_REDIS, startRedis } from "../tests/_redis_server.ts";
   * import assert from "node:assert/strict";
   *
   * if (HAVE_REDIS) {
   *   await using server = await startRedis();
   *   await using redis = new RedisClient({ port: server.port });
   *   await using news = await redis.subscribe(["news"]);
   *   await redis.command(["PUBLISH", "news", "hello"]);
   *   for await (const { channel, message } of news) {
   *     assert.deepEqual([channel, message], ["news", "hello"]);
   *     break; // the subscription stays open until closed
   *   }
   * }
   * ```
   *
   * @param channels A channel, or several.
   * @param options `capacity`, `timeout`, `signal`.
   * @returns The subscription: a channel of messages.
   * @throws {TypeError} If `channels` is not a string or a non-empty array of
   *   strings, or an option is wrong.
   * @throws {RangeError} If `capacity` or `timeout` is out of range.
   * @throws {TimeoutError} If no connection or confirmation came within
   *   `timeout`.
   * @throws {RedisError} If the server refused the subscription.
   * @throws {ConnectionBrokenError} If the connection failed first.
   * @throws {PoolClosedError} If the client is closed.
   */
  subscribe(
    channels: string | readonly string[],
    options?: SubscribeOptions,
  ): Promise<Subscription> {
    return this.#subscribe(false, channels, options);
  }

  /**
   * Subscribes to channels matching `patterns` (`PSUBSCRIBE`); messages
   * carry the `pattern` that matched. Otherwise as
   * {@linkcode RedisClient.subscribe}.
   *
   * @example Usage
   * ```ts
   * import { RedisClient } from "./redis.ts";
   * import { HAVE_REDIS, startRedis } from "../tests/_redis_server.ts";
   * import assert from "node:assert/strict";
   *
   * if (HAVE_REDIS) {
   *   await using server = await startRedis();
   *   await using redis = new RedisClient({ port: server.port });
   *   await using events = await redis.psubscribe("events:*");
   *   await redis.command(["PUBLISH", "events:login", "ada"]);
   *   assert.deepEqual(await events.receive(), {
   *     pattern: "events:*",
   *     channel: "events:login",
   *     message: "ada",
   *   });
   * }
   * ```
   *
   * @param patterns A glob-style pattern, or several.
   * @param options `capacity`, `timeout`, `signal`.
   * @returns The subscription.
   * @throws {TypeError} If `patterns` is not a string or a non-empty array
   *   of strings, or an option is wrong.
   * @throws {RangeError} If `capacity` or `timeout` is out of range.
   * @throws {TimeoutError} If no connection or confirmation came within
   *   `timeout`.
   * @throws {RedisError} If the server refused the subscription.
   * @throws {ConnectionBrokenError} If the connection failed first.
   * @throws {PoolClosedError} If the client is closed.
   */
  psubscribe(
    patterns: string | readonly string[],
    options?: SubscribeOptions,
  ): Promise<Subscription> {
    return this.#subscribe(true, patterns, options);
  }

  async #subscribe(
    pattern: boolean,
    names: string | readonly string[],
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    const what = pattern ? "psubscribe" : "subscribe";
    const list = typeof names === "string" ? [names] : names;
    if (
      !Array.isArray(list) || list.length === 0 ||
      !list.every((n) => typeof n === "string")
    ) {
      throw new TypeError(
        `Cannot ${what}: ${
          pattern ? "patterns" : "channels"
        } must be a string or a non-empty array of strings, received ${
          Array.isArray(list) ? `an array of ${list.length}` : typeof list
        }`,
      );
    }
    const o = optionsObject(what, options);
    const capacity = o.capacity ?? 64;
    if (typeof capacity !== "number") {
      throw new TypeError(
        `Cannot ${what}: capacity must be a number, received ${typeof capacity}`,
      );
    }
    if (!Number.isSafeInteger(capacity) || capacity < 0) {
      throw new RangeError(
        `Cannot ${what}: capacity must be a non-negative integer, received ${capacity}`,
      );
    }
    const timeout = durationOption(what, "timeout", o.timeout);
    const signal = signalOption(what, o.signal);
    signal?.throwIfAborted();
    if (this.#closed) {
      throw new PoolClosedError(`Cannot ${what}: the client is closed`);
    }
    const at = timeout === undefined ? Infinity : performance.now() + timeout;
    const conn = await this.pool.borrow({
      ...(timeout === undefined ? {} : { timeout }),
      ...(signal === undefined ? {} : { signal }),
    });
    if (this.#closed) {
      conn.release();
      throw new PoolClosedError(`Cannot ${what}: the client is closed`);
    }
    const sub = new Subscription([...list], pattern, capacity);
    this.#subscriptions.add(sub);
    const confirmed = runSubscription(sub, conn);
    void sub.finished.then(() => this.#subscriptions.delete(sub));
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (at !== Infinity) {
      timer = setTimeout(
        () =>
          sub.close(
            new TimeoutError(
              `Cannot ${what}: not confirmed within ${timeout} ms`,
              timeout!,
            ),
          ),
        Math.max(0, at - performance.now()),
      );
    }
    const abort = () => sub.close(signal!.reason);
    signal?.addEventListener("abort", abort, { once: true });
    try {
      await confirmed;
    } catch (error) {
      await sub.finished;
      throw error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
    }
    return sub;
  }

  /**
   * Closes the client: open subscriptions end (their channels close with a
   * PoolClosedError as the reason), then the pool closes: commands queued
   * or in flight fail, typed, and running sessions are waited for.
   *
   * @returns When every connection is closed.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const reason = new PoolClosedError("Cannot receive: the client closed");
    const subscriptions = [...this.#subscriptions];
    for (const sub of subscriptions) sub.close(reason); // destroys its conn
    // At once: a command waiting for a connection fails typed rather than
    // going out.
    const closing = this.pool.close();
    await Promise.all(subscriptions.map((sub) => sub.finished));
    await closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// -- Sessions and subscriptions --

const RESET_COMMAND = encodeCommand(["RESET"]);
const noop = () => {};

// Bound in RedisSession's and Subscription's static blocks.
let endSession: (session: RedisSession, resetTimeout: number) => Promise<void>;
let runSubscription: (sub: Subscription, conn: PooledConn) => Promise<void>;

/**
 * A connection of its own, lent to a {@linkcode RedisClient.session}
 * callback: `command` and the helpers, one command after another on that
 * connection (commands issued together wait for each other, in order).
 * Unusable once the callback ended: every call then rejects with a
 * `TypeError`.
 *
 * @example Usage
 * ```ts
 * import { RedisClient, type RedisSession } from "./redis.ts";
 * import { HAVE_REDIS, startRedis } from "../tests/_redis_server.ts";
 * import assert from "node:assert/strict";
 *
 * if (HAVE_REDIS) {
 *   await using server = await startRedis();
 *   await using redis = new RedisClient({ port: server.port });
 *   let kept: RedisSession | undefined;
 *   const value = await redis.session(async (s) => {
 *     kept = s;
 *     await s.command(["SELECT", 1]); // undone by RESET at the end
 *     await s.set("in-db-1", "x");
 *     return await s.get("in-db-1");
 *   });
 *   assert.equal(value, "x");
 *   assert.equal(await redis.get("in-db-1"), null); // db 0
 *   await assert.rejects(kept!.ping(), TypeError);
 * }
 * ```
 */
export class RedisSession extends RedisCommands {
  #conn: PooledConn | null;
  /** Settles when the last command issued has settled; never rejects. */
  #tail: Promise<unknown> = Promise.resolve();
  /** Commands issued and not settled (queued or in flight). */
  #pending = 0;
  /** `false` once a command RESET does not undo was sent. */
  #resettable = true;

  /**
   * Made by {@linkcode RedisClient.session}; not public API.
   *
   * @ignore
   * @param conn The session's connection.
   */
  constructor(conn: PooledConn) {
    super();
    this.#conn = conn;
  }

  static {
    endSession = (session, resetTimeout) => session.#end(resetTimeout);
  }

  /**
   * Sends one command on the session's connection, after the ones issued
   * before it. `timeout` counts from this call: a command whose time ran
   * out while it waited for earlier ones fails with TimeoutError, unsent;
   * one that times out or is aborted once sent breaks the connection (the
   * session's later commands fail with ConnectionBrokenError). Nothing is
   * retried (`idempotent` is ignored).
   *
   * @param args The command and its arguments.
   * @param options `timeout`, `signal`.
   * @returns The reply.
   * @throws {TypeError} If the session ended, or an option is wrong.
   * @throws {RedisError} If the server answered with an error.
   * @throws {StatefulCommandError} If its replies are not one per command
   *   (nothing is sent).
   * @throws {ConnectionBrokenError} If the connection failed.
   * @throws {TimeoutError} If `timeout` ran out.
   */
  override command(
    args: readonly (string | number)[],
    options: CommandOptions = {},
  ): Promise<RedisValue> {
    const conn = this.#conn;
    if (conn === null) {
      return Promise.reject(
        new TypeError("Cannot send command: the session ended"),
      );
    }
    let payload: Uint8Array, checked;
    try {
      checked = commandOptions(options);
      const name = upper(args[0]);
      const refusal = refused(SESSION_RULES, name, args, "in a session");
      if (refusal !== undefined) throw refusal;
      payload = encodeCommand(args);
      if (name === "CLIENT" && NOT_RESET.has(upper(args[1]))) {
        this.#resettable = false;
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const { timeout, signal } = checked;
    const at = timeout === Infinity ? Infinity : performance.now() + timeout;
    this.#pending++;
    const run = this.#tail.then(() =>
      this.#send(conn, payload, at, timeout, signal)
    ).finally(() => {
      this.#pending--;
    });
    this.#tail = run.catch(noop);
    return run;
  }

  async #send(
    conn: PooledConn,
    payload: Uint8Array,
    at: number,
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<RedisValue> {
    if (this.#conn !== conn) {
      throw new TypeError("Cannot send command: the session ended");
    }
    signal?.throwIfAborted();
    const left = at === Infinity ? Infinity : at - performance.now();
    if (left <= 0) {
      throw new TimeoutError(
        `Cannot send command: timed out after ${
          Math.round(timeout)
        } ms, waiting for the session's earlier commands`,
        timeout,
      );
    }
    const reply = await conn.exchange(payload, readReply, {
      timeout: left,
      ...(signal === undefined ? {} : { signal }),
    });
    if (reply instanceof RedisError) throw reply;
    return reply;
  }

  /** The callback ended: RESET and release, or destroy. */
  async #end(resetTimeout: number): Promise<void> {
    const conn = this.#conn;
    if (conn === null) return;
    this.#conn = null;
    if (this.#pending > 0) {
      conn.destroy(
        new Error("The session ended with a command in flight"),
      );
      return;
    }
    if (!this.#resettable || conn.broken) {
      conn.destroy(new Error("The session's connection cannot be reset"));
      return;
    }
    try {
      const reply = await conn.exchange(RESET_COMMAND, readReply, {
        timeout: resetTimeout,
      });
      if (reply === "RESET") conn.release(); // destroyed if not clean
      else {
        conn.destroy(
          new ProtocolError(
            `Redis: RESET answered ${JSON.stringify(reply).slice(0, 80)}`,
          ),
        );
      }
    } catch (error) {
      conn.destroy(error);
    }
  }
}

/**
 * A pub/sub subscription from {@linkcode RedisClient.subscribe} or
 * {@linkcode RedisClient.psubscribe}: a {@linkcode Channel} of
 * {@linkcode RedisMessage}s, consumed with `for await` or `receive`, fed by
 * a reader on a connection of its own.
 *
 * - Backpressure: the reader hands each message over with `await send`, so
 *   once `capacity` messages wait unreceived it stops reading the socket;
 *   the kernel's buffers fill, then Redis keeps the rest in the
 *   connection's output buffer, up to its `client-output-buffer-limit
 *   pubsub` (32 MB, or 8 MB for 60 s, by default), past which Redis closes
 *   the connection and the subscription ends with ConnectionBrokenError.
 * - {@linkcode Subscription.close} ends it: the connection is destroyed,
 *   never given back to the pool subscribed. Messages already buffered stay
 *   receivable. Breaking out of `for await` leaves it open: close it, or
 *   hold it with `await using` (which also waits for its reader to stop).
 * - If the connection breaks, the channel is closed with the error
 *   (ConnectionBrokenError; ProtocolError for bytes that are not pub/sub
 *   messages) as its reason: `for await` throws it after the buffered
 *   messages.
 * - It holds one of the pool's `max` connections until it ends;
 *   {@linkcode RedisClient.close} ends it with a PoolClosedError reason.
 *
 * @example Usage
 * ```ts
 * import { RedisClient } from "./redis.ts";
 * import { HAVE_REDIS, startRedis } from "../tests/_redis_server.ts";
 * import assert from "node:assert/strict";
 *
 * if (HAVE_REDIS) {
 *   await using server = await startRedis();
 *   await using redis = new RedisClient({ port: server.port });
 *   const sub = await redis.subscribe(["a", "b"], { capacity: 16 });
 *   await redis.command(["PUBLISH", "a", "1"]);
 *   await redis.command(["PUBLISH", "b", "2"]);
 *   const seen: string[] = [];
 *   for await (const { channel, message } of sub) {
 *     seen.push(`${channel}=${message}`);
 *     if (seen.length === 2) sub.close(); // ends the loop
 *   }
 *   assert.deepEqual(seen, ["a=1", "b=2"]);
 *   await sub.finished;
 *   assert.equal(redis.pool.stats.open, 1); // the publisher's connection
 * }
 * ```
 */
export class Subscription extends Channel<RedisMessage> {
  /** The channels (or patterns) subscribed to, as given. */
  readonly channels: readonly string[];
  /** `true` for a pattern subscription ({@linkcode RedisClient.psubscribe}). */
  readonly pattern: boolean;
  #conn: PooledConn | null = null;
  #stopped = false;
  #finished: Promise<void> = Promise.resolve();
  readonly #confirmed = Promise.withResolvers<void>();

  /**
   * Made by {@linkcode RedisClient.subscribe}; not public API.
   *
   * @ignore
   * @param channels The channels or patterns.
   * @param pattern Whether they are patterns.
   * @param capacity The channel's buffer.
   */
  constructor(channels: string[], pattern: boolean, capacity: number) {
    super({ capacity });
    this.channels = channels;
    this.pattern = pattern;
    this.#confirmed.promise.catch(noop);
  }

  static {
    runSubscription = (sub, conn) => {
      sub.#conn = conn;
      sub.#finished = sub.#run(conn);
      return sub.#confirmed.promise;
    };
  }

  /**
   * Settles once the reader has stopped and the connection is closed
   * (after {@linkcode Subscription.close}, or a failure). Never rejects.
   *
   * @returns A promise of the end.
   */
  get finished(): Promise<void> {
    return this.#finished;
  }

  /** Ends the subscription: its connection is destroyed. Idempotent. */
  override close(): void;
  /**
   * Ends the subscription; receivers get `reason` after the buffered
   * messages.
   *
   * @param reason What later receivers reject with.
   */
  override close(reason: unknown): void;
  override close(...args: [reason?: unknown]): void {
    if (args.length === 0) super.close();
    else super.close(args[0]);
    if (this.#stopped) return;
    this.#stopped = true;
    this.#confirmed.reject(
      args.length === 0
        ? new TypeError("Cannot subscribe: closed before confirmation")
        : args[0],
    );
    this.#conn?.destroy(new Error("The subscription was closed"));
  }

  /**
   * Closes it and waits for its reader to stop, for `await using`.
   *
   * @returns When the connection is closed.
   */
  override [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return this.#finished;
  }

  async #run(conn: PooledConn): Promise<void> {
    const kind = this.pattern ? "psubscribe" : "subscribe";
    try {
      await conn.exchange(
        encodeCommand([kind.toUpperCase(), ...this.channels]),
        async (reader) => {
          for (const name of this.channels) {
            const reply = await next(reader);
            if (
              !Array.isArray(reply) || reply[0] !== kind || reply[1] !== name
            ) {
              throw new ProtocolError(
                `Redis: expected the ${kind} confirmation of ${
                  JSON.stringify(name)
                }, received ${JSON.stringify(reply).slice(0, 80)}`,
              );
            }
          }
          this.#confirmed.resolve();
          while (true) await super.send(message(await next(reader)));
        },
      );
    } catch (error) {
      if (!this.#stopped) this.close(error);
    } finally {
      this.#conn = null;
      conn.destroy(new Error("The subscription ended"));
    }
  }
}

/** The next reply of a subscription's connection. */
async function next(reader: FrameReader): Promise<RedisValue> {
  let reply: Reply;
  try {
    reply = await readReply(reader);
  } catch (error) {
    // Cut off mid-message (UnexpectedEofError, or a bulk string whose end
    // never came): the connection broke.
    if (reader.eof && !(error instanceof ConnectionBrokenError)) {
      throw new ConnectionBrokenError(
        "Cannot receive: the server closed the subscription's connection mid-message",
        { cause: error },
      );
    }
    throw error;
  }
  if (reply === null && reader.eof) {
    throw new ConnectionBrokenError(
      "Cannot receive: the server closed the subscription's connection",
    );
  }
  if (reply instanceof RedisError) throw reply;
  return reply;
}

/** A pushed `message` or `pmessage` as a RedisMessage. */
function message(reply: RedisValue): RedisMessage {
  if (Array.isArray(reply)) {
    const [kind, a, b, c] = reply;
    if (
      kind === "message" && reply.length === 3 && typeof a === "string" &&
      typeof b === "string"
    ) return { channel: a, message: b };
    if (
      kind === "pmessage" && reply.length === 4 && typeof a === "string" &&
      typeof b === "string" && typeof c === "string"
    ) return { pattern: a, channel: b, message: c };
  }
  throw new ProtocolError(
    `Redis: not a pub/sub message: ${JSON.stringify(reply).slice(0, 80)}`,
  );
}

/** A heartbeat for TcpPool's `heartbeat` option: `PING`, expecting `PONG`. */
export async function redisPing(
  conn: PooledConn,
  signal: AbortSignal,
): Promise<boolean> {
  return await conn.exchange(encodeCommand(["PING"]), readReply, { signal }) ===
    "PONG";
}

// -- A local redis-server (the demo's, the tests' and the bench's) --

/** A free port on 127.0.0.1 (the OS picks it). */
export async function freePort(): Promise<number> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  await Promise.resolve();
  return port;
}

/**
 * Starts redis-server on 127.0.0.1:`port` without persistence (`--save ""
 * --appendonly no`), plus `args`; the caller waits until it answers and
 * kills it.
 */
export function spawnRedisServer(
  port: number,
  args: readonly string[] = [],
): Deno.ChildProcess {
  return new Deno.Command("redis-server", {
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      ...args,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

// -- The demo --

function onPath(command: string): boolean {
  try {
    new Deno.Command(command, { args: ["--version"], stdout: "null" })
      .outputSync();
    return true;
  } catch {
    return false;
  }
}

async function demo(): Promise<void> {
  if (!onPath("redis-server")) {
    console.log("example:redis skipped: redis-server is not on the PATH");
    return;
  }
  const port = await freePort();
  // `timeout 1`: the server closes connections idle for a second, as many
  // production configurations do.
  const server = spawnRedisServer(port, ["--timeout", "1"]);
  try {
    await using redis = new RedisClient({ port, max: 4 });
    for (let i = 0;; i++) {
      try {
        await redis.ping({ timeout: 500 });
        break;
      } catch (error) {
        if (i > 50) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    console.log(`redis-server on 127.0.0.1:${port} (timeout 1)`);
    await redis.set("greeting", "hello");
    console.log(`GET greeting -> ${await redis.get("greeting")}`);
    console.log(`INCR visits -> ${await redis.incr("visits")}`);
    try {
      await redis.command(["INCR", "greeting"]);
    } catch (error) {
      console.log(`INCR greeting -> ${(error as RedisError).code} (typed)`);
    }

    // State-changing commands: refused on the shared connections, at home
    // in a session or a subscription.
    try {
      await redis.command(["MULTI"]);
    } catch (error) {
      console.log(`MULTI -> ${(error as Error).message}`);
    }
    const exec = await redis.session(async (s) => {
      await s.command(["MULTI"]);
      await s.command(["INCR", "visits"]);
      await s.command(["GET", "greeting"]);
      return await s.command(["EXEC"]);
    });
    console.log(`session MULTI/INCR/GET/EXEC -> ${JSON.stringify(exec)}`);
    {
      await using news = await redis.subscribe("news", { capacity: 16 });
      for (const m of ["one", "two", "three"]) {
        await redis.command(["PUBLISH", "news", m]);
      }
      const got: string[] = [];
      for await (const { message } of news) {
        got.push(message);
        if (got.length === 3) break;
      }
      console.log(`subscribe news -> ${got.join(", ")}`);
    }

    // The seed's scenario: a quiet spell longer than the server's timeout,
    // then a burst. Every pooled connection was closed by the server; the
    // idle watch evicted them, so the burst dials fresh ones.
    await Promise.all(Array.from({ length: 4 }, (_, i) => redis.get(`k${i}`)));
    console.log("idle for 2.5 s (the server closes idle connections)...");
    await new Promise((r) => setTimeout(r, 2_500));
    let errors = 0;
    await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      try {
        await redis.set(`burst:${i}`, i, { timeout: 2_000 });
        if (await redis.get(`burst:${i}`) !== String(i)) errors++;
      } catch {
        errors++;
      }
    }));
    const s = redis.pool.stats;
    console.log(
      `burst of 400 commands: ${errors} errors; evicted while idle: ${s.destroyed.evicted}, retried: ${redis.retries}`,
    );

    // Three answers to an exhausted pool (max 1, the connection held).
    for (const whenExhausted of ["wait", "overflow", "fail"] as const) {
      await using small = new RedisClient({ port, max: 1, whenExhausted });
      const held = await small.pool.borrow();
      setTimeout(() => held.release(), 50);
      const start = performance.now();
      try {
        await small.ping({ timeout: 1_000 });
        console.log(
          `whenExhausted "${whenExhausted}": PONG after ${
            Math.round(performance.now() - start)
          } ms (${
            whenExhausted === "wait"
              ? "queued for the held connection"
              : "on a short-lived extra connection"
          })`,
        );
      } catch (error) {
        console.log(
          `whenExhausted "${whenExhausted}": ${
            error instanceof PoolExhaustedError ? "PoolExhaustedError" : error
          } at once`,
        );
      }
      await new Promise((r) => setTimeout(r, 60));
    }
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
}

if (import.meta.main) await demo();
