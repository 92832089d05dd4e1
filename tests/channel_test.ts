// Copyright 2026 the chanpool authors. MIT license.
// Tests for channel.ts: Channel, select, trySelect and ChannelClosedError.
//
// Ordering beats wall-clock: a test starts an operation, lets a macrotask
// turn pass with tick(), and checks with track() whether it has settled.

import assert from "node:assert/strict";
import {
  Channel,
  ChannelClosedError,
  type ReceiveCase,
  select,
  trySelect,
} from "../channel.ts";
import { internals, type Waiting } from "../_internal.ts";
import { mulberry32 } from "./_random.ts";

const NONE = { permissions: "none" } as const;

/** Set to a number to replay a failing run of the randomized test. */
const CONSERVATION_SEED: number | undefined = undefined;

/** Lets every queued microtask run and one macrotask turn pass. */
function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A promise with its outcome recorded as it settles. */
interface Tracked<T> {
  settled: boolean;
  fulfilled: boolean;
  rejected: boolean;
  value: T | undefined;
  error: unknown;
  promise: Promise<T>;
}

/** Watches a promise (and handles its rejection at once). */
function track<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = {
    settled: false,
    fulfilled: false,
    rejected: false,
    value: undefined,
    error: undefined,
    promise,
  };
  promise.then((value) => {
    t.settled = t.fulfilled = true;
    t.value = value;
  }, (error) => {
    t.settled = t.rejected = true;
    t.error = error;
  });
  return t;
}

/** How many operations are parked on `ch`, by side. */
function waitingOn<T>(ch: Channel<T>): Waiting {
  return internals.waiting(ch as Channel<unknown>);
}

const IDLE: Waiting = { senders: 0, receivers: 0 };

/** Asserts that each share of `wins` is within `tolerance` of a third. */
function assertThirds(wins: number[], total: number, tolerance: number) {
  for (const [i, w] of wins.entries()) {
    const share = w / total;
    assert.ok(
      Math.abs(share - 1 / 3) <= tolerance,
      `case ${i} won ${(share * 100).toFixed(2)} % of ${total} (${wins})`,
    );
  }
}

// -- Rendezvous --

Deno.test(
  "Channel.receive() on an unbuffered channel waits for a sender, then takes its value",
  NONE,
  async () => {
    const ch = new Channel<string>();
    const received = track(ch.receive());
    await tick();
    assert.equal(received.settled, false);
    assert.deepEqual(waitingOn(ch), { senders: 0, receivers: 1 });

    const sent = track(ch.send("hello"));
    await tick();
    assert.equal(sent.fulfilled, true);
    assert.equal(received.fulfilled, true);
    assert.equal(received.value, "hello");
    assert.equal(ch.size, 0);
    assert.deepEqual(waitingOn(ch), IDLE);
    ch.close();
  },
);

Deno.test(
  "Channel.send() on an unbuffered channel waits for a receiver, then hands over its value",
  NONE,
  async () => {
    const ch = new Channel<string>();
    const sent = track(ch.send("hello"));
    await tick();
    assert.equal(sent.settled, false);
    assert.equal(ch.size, 0);
    assert.deepEqual(waitingOn(ch), { senders: 1, receivers: 0 });

    const received = track(ch.receive());
    await tick();
    assert.equal(received.fulfilled, true);
    assert.equal(received.value, "hello");
    assert.equal(sent.fulfilled, true);
    assert.deepEqual(waitingOn(ch), IDLE);
    ch.close();
  },
);

// -- FIFO order --

Deno.test(
  "Channel.receive() returns buffered values in the order they were sent",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 100 });
    for (let i = 0; i < 100; i++) await ch.send(i);
    const got: number[] = [];
    for (let i = 0; i < 100; i++) got.push(await ch.receive());
    assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
    ch.close();
  },
);

Deno.test(
  "Channel.send() serves waiting senders first come, first served",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const done: number[] = [];
    const sends = [0, 1, 2, 3, 4].map((n) =>
      track(
        ch.send(n).then(() => {
          done.push(n);
        }),
      )
    );
    await tick();
    assert.ok(sends.every((s) => !s.settled));
    for (let n = 0; n < 5; n++) {
      assert.equal(await ch.receive(), n);
      await tick();
      assert.deepEqual(
        sends.map((s) => s.settled),
        [0, 1, 2, 3, 4].map((k) => k <= n),
      );
    }
    assert.deepEqual(done, [0, 1, 2, 3, 4]);
    ch.close();
  },
);

Deno.test(
  "Channel.receive() serves waiting receivers first come, first served",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 2 });
    const receivers = [0, 1, 2, 3, 4].map(() => track(ch.receive()));
    await tick();
    assert.ok(receivers.every((r) => !r.settled));
    for (let n = 0; n < 5; n++) {
      assert.equal(ch.trySend(n * 10), true);
      await tick();
      assert.deepEqual(
        receivers.map((r) => r.settled),
        [0, 1, 2, 3, 4].map((k) => k <= n),
      );
    }
    assert.deepEqual(receivers.map((r) => r.value), [0, 10, 20, 30, 40]);
    assert.equal(ch.size, 0);
    ch.close();
  },
);

Deno.test(
  "Channel.receive() queues plain receivers and selects in one first-come, first-served line",
  NONE,
  async () => {
    const ch = new Channel<string>();
    const other = new Channel<string>();
    const first = track(ch.receive());
    const second = track(select([{ receive: other }, { receive: ch }]));
    const third = track(ch.receive());
    await tick();
    assert.deepEqual(waitingOn(ch), { senders: 0, receivers: 3 });
    assert.equal(ch.trySend("a"), true);
    assert.equal(ch.trySend("b"), true);
    assert.equal(ch.trySend("c"), true);
    await tick();
    assert.equal(first.value, "a");
    assert.deepEqual(second.value, { index: 1, value: "b", ok: true });
    assert.equal(third.value, "c");
    assert.deepEqual(waitingOn(other), IDLE);
    ch.close();
    other.close();
  },
);

// -- Backpressure --

Deno.test("Channel.send() waits while the buffer is full", NONE, async () => {
  const ch = new Channel<number>({ capacity: 2 });
  await ch.send(1);
  await ch.send(2);
  const third = track(ch.send(3));
  await tick();
  assert.equal(third.settled, false);
  assert.equal(ch.size, 2);
  assert.deepEqual(waitingOn(ch), { senders: 1, receivers: 0 });

  assert.equal(await ch.receive(), 1);
  await tick();
  assert.equal(third.fulfilled, true);
  assert.equal(ch.size, 2);
  assert.equal(await ch.receive(), 2);
  assert.equal(await ch.receive(), 3);
  ch.close();
});

Deno.test(
  "Channel.send() resumes waiting senders in order as receives make room",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 1 });
    assert.equal(ch.trySend(0), true);
    const sends = [1, 2, 3].map((n) => track(ch.send(n)));
    await tick();
    assert.ok(sends.every((s) => !s.settled));
    for (let k = 0; k < 3; k++) {
      assert.equal(await ch.receive(), k);
      await tick();
      assert.deepEqual(
        sends.map((s) => s.settled),
        [0, 1, 2].map((i) => i <= k),
      );
      assert.equal(ch.size, 1);
    }
    assert.equal(await ch.receive(), 3);
    assert.equal(ch.size, 0);
    ch.close();
  },
);

Deno.test(
  "Channel.tryReceive() makes room for a waiting sender",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 1 });
    ch.trySend(1);
    const second = track(ch.send(2));
    await tick();
    assert.equal(second.settled, false);
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 1 });
    assert.equal(ch.size, 1);
    await tick();
    assert.equal(second.fulfilled, true);
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 2 });
    ch.close();
  },
);

// -- undefined and null --

Deno.test(
  "Channel.send() and Channel.receive() carry undefined and null as ordinary values",
  NONE,
  async () => {
    for (const capacity of [0, 2]) {
      const ch = new Channel<undefined | null>({ capacity });
      // Receivers first.
      const got1 = track(ch.receive());
      const got2 = track(ch.receive());
      await tick();
      assert.equal(got1.settled, false);
      await ch.send(undefined);
      await ch.send(null);
      await tick();
      assert.equal(got1.fulfilled, true);
      assert.equal(got1.value, undefined);
      assert.equal(got2.fulfilled, true);
      assert.equal(got2.value, null);
      // Senders first.
      const s1 = track(ch.send(undefined));
      const s2 = track(ch.send(null));
      assert.equal(await ch.receive(), undefined);
      assert.equal(await ch.receive(), null);
      await tick();
      assert.equal(s1.fulfilled && s2.fulfilled, true);
      // Nothing is left: an undefined value is not mistaken for one.
      const pending = track(ch.receive());
      await tick();
      assert.equal(pending.settled, false, `capacity ${capacity}`);
      ch.close();
      await tick();
      assert.ok(pending.error instanceof ChannelClosedError);
    }
  },
);

Deno.test(
  "Channel.tryReceive() returns undefined and null as ok values",
  NONE,
  async () => {
    const ch = new Channel<undefined | null>({ capacity: 2 });
    assert.equal(ch.trySend(undefined), true);
    assert.equal(ch.trySend(null), true);
    const first = ch.tryReceive();
    assert.deepEqual(first, { state: "ok", value: undefined });
    assert.ok("value" in first);
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: null });
    assert.deepEqual(ch.tryReceive(), { state: "empty" });

    const unbuffered = new Channel<undefined>();
    const sent = track(unbuffered.send(undefined));
    await tick();
    assert.deepEqual(unbuffered.tryReceive(), {
      state: "ok",
      value: undefined,
    });
    await tick();
    assert.equal(sent.fulfilled, true);
    ch.close();
    unbuffered.close();
  },
);

Deno.test(
  "select() receives and sends undefined and null as values with ok: true",
  NONE,
  async () => {
    const ch = new Channel<undefined | null>({ capacity: 2 });
    ch.trySend(undefined);
    ch.trySend(null);
    assert.deepEqual(await select([{ receive: ch }]), {
      index: 0,
      value: undefined,
      ok: true,
    });
    assert.deepEqual(trySelect([{ receive: ch }]), {
      index: 0,
      value: null,
      ok: true,
    });

    // A send case delivers undefined to a parked receiver.
    const u = new Channel<undefined>();
    const got = track(u.receive());
    await tick();
    assert.deepEqual(await select([{ send: u, value: undefined }]), {
      index: 0,
      value: undefined,
      ok: true,
    });
    await tick();
    assert.equal(got.fulfilled, true);
    assert.equal(got.value, undefined);

    // A parked select receives undefined.
    const parked = track(select([{ receive: u }]));
    await tick();
    assert.equal(parked.settled, false);
    assert.equal(u.trySend(undefined), true);
    await tick();
    assert.deepEqual(parked.value, { index: 0, value: undefined, ok: true });

    // A send case with a null value lands in the buffer as null.
    assert.deepEqual(trySelect([{ send: ch, value: null }]), {
      index: 0,
      value: undefined,
      ok: true,
    });
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: null });
    ch.close();
    u.close();
  },
);

// -- trySend and tryReceive --

Deno.test(
  'Channel.tryReceive() returns { state: "ok", value } for a buffered value',
  NONE,
  () => {
    const ch = new Channel<number>({ capacity: 2 });
    ch.trySend(7);
    ch.trySend(8);
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 7 });
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 8 });
    assert.equal(ch.size, 0);
    ch.close();
  },
);

Deno.test(
  'Channel.tryReceive() returns the shared frozen { state: "empty" } while open with nothing ready',
  NONE,
  () => {
    const a = new Channel<number>();
    const b = new Channel<number>({ capacity: 4 });
    const empty = a.tryReceive();
    assert.deepEqual(empty, { state: "empty" });
    assert.ok(Object.isFrozen(empty));
    assert.equal(a.tryReceive(), empty);
    assert.equal(b.tryReceive(), empty);
    assert.deepEqual(waitingOn(a), IDLE);
    a.close();
    b.close();
  },
);

Deno.test(
  'Channel.tryReceive() returns the shared frozen { state: "closed" } once closed and drained',
  NONE,
  () => {
    const a = new Channel<number>({ capacity: 1 });
    const b = new Channel<number>();
    a.trySend(1);
    a.close(new Error("with a reason"));
    b.close();
    // Closed but not drained: the value first.
    assert.deepEqual(a.tryReceive(), { state: "ok", value: 1 });
    const closed = a.tryReceive();
    assert.deepEqual(closed, { state: "closed" });
    assert.ok(Object.isFrozen(closed));
    assert.equal(a.tryReceive(), closed);
    assert.equal(b.tryReceive(), closed);
    assert.notEqual(closed, new Channel<number>().tryReceive());
  },
);

Deno.test(
  "Channel.tryReceive() takes the value of a waiting sender and completes its send",
  NONE,
  async () => {
    const ch = new Channel<string>();
    const sent = track(ch.send("x"));
    await tick();
    assert.equal(sent.settled, false);
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: "x" });
    await tick();
    assert.equal(sent.fulfilled, true);
    assert.deepEqual(waitingOn(ch), IDLE);
    assert.deepEqual(ch.tryReceive(), { state: "empty" });
    ch.close();
  },
);

Deno.test(
  "Channel.trySend() returns false when the buffer is full",
  NONE,
  () => {
    const ch = new Channel<number>({ capacity: 2 });
    assert.equal(ch.trySend(1), true);
    assert.equal(ch.trySend(2), true);
    assert.equal(ch.trySend(3), false);
    assert.equal(ch.size, 2);
    assert.deepEqual(waitingOn(ch), IDLE);
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 1 });
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 2 });
    assert.deepEqual(ch.tryReceive(), { state: "empty" });
    ch.close();
  },
);

Deno.test(
  "Channel.trySend() returns false on an unbuffered channel with no receiver",
  NONE,
  () => {
    const ch = new Channel<number>();
    assert.equal(ch.trySend(1), false);
    assert.equal(ch.size, 0);
    assert.deepEqual(waitingOn(ch), IDLE);
    assert.deepEqual(ch.tryReceive(), { state: "empty" });
    ch.close();
  },
);

Deno.test(
  "Channel.trySend() returns false once the channel is closed",
  NONE,
  () => {
    const ch = new Channel<number>({ capacity: 4 });
    ch.close();
    assert.equal(ch.trySend(1), false);
    assert.equal(ch.size, 0);
    assert.deepEqual(ch.tryReceive(), { state: "closed" });
  },
);

Deno.test(
  "Channel.trySend() hands the value to a waiting receiver on an unbuffered channel",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const got = track(ch.receive());
    await tick();
    assert.equal(ch.trySend(5), true);
    await tick();
    assert.equal(got.value, 5);
    assert.deepEqual(waitingOn(ch), IDLE);
    assert.equal(ch.trySend(6), false);
    ch.close();
  },
);

// -- Close --

Deno.test(
  "Channel.close() keeps buffered values receivable, then receive() rejects with ChannelClosedError",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 3 });
    ch.trySend(1);
    ch.trySend(2);
    ch.close();
    assert.equal(ch.closed, true);
    assert.equal(ch.size, 2);
    assert.equal(await ch.receive(), 1);
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 2 });
    await assert.rejects(ch.receive(), (e: unknown) => {
      assert.ok(e instanceof ChannelClosedError);
      assert.equal(e.name, "ChannelClosedError");
      assert.ok(!("value" in e));
      return true;
    });
  },
);

Deno.test(
  "Channel.close() rejects waiting receivers with ChannelClosedError",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const receivers = [track(ch.receive()), track(ch.receive())];
    await tick();
    assert.ok(receivers.every((r) => !r.settled));
    ch.close();
    await tick();
    for (const r of receivers) {
      assert.equal(r.rejected, true);
      assert.ok(r.error instanceof ChannelClosedError);
      assert.ok(!("value" in r.error));
    }
    assert.deepEqual(waitingOn(ch), IDLE);
  },
);

Deno.test(
  "Channel.close() rejects waiting receivers with the reason given",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 1 });
    const receivers = [track(ch.receive()), track(ch.receive())];
    await tick();
    const reason = new Error("producer failed");
    ch.close(reason);
    await tick();
    for (const r of receivers) {
      assert.equal(r.rejected, true);
      assert.equal(r.error, reason);
    }
    assert.deepEqual(waitingOn(ch), IDLE);
  },
);

Deno.test(
  "Channel.close() rejects waiting senders with ChannelClosedError carrying the unsent value and the reason as cause",
  NONE,
  async () => {
    const ch = new Channel<{ id: number }>({ capacity: 1 });
    const kept = { id: 0 };
    ch.trySend(kept);
    const v1 = { id: 1 };
    const v2 = { id: 2 };
    const s1 = track(ch.send(v1));
    const s2 = track(ch.send(v2));
    await tick();
    assert.equal(s1.settled || s2.settled, false);
    const reason = new Error("shutting down");
    ch.close(reason);
    await tick();
    for (const [s, v] of [[s1, v1], [s2, v2]] as const) {
      assert.equal(s.rejected, true);
      assert.ok(s.error instanceof ChannelClosedError);
      assert.equal(s.error.value, v);
      assert.equal(s.error.cause, reason);
    }
    assert.deepEqual(waitingOn(ch), IDLE);
    // The buffered value stays; the unsent ones never arrive.
    assert.equal(ch.tryReceive().state, "ok");
    assert.deepEqual(ch.tryReceive(), { state: "closed" });
    assert.equal(kept.id, 0);
  },
);

Deno.test(
  "Channel.close() without a reason rejects waiting senders with no cause",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const sent = track(ch.send(9));
    await tick();
    ch.close();
    await tick();
    assert.ok(sent.error instanceof ChannelClosedError);
    assert.equal(sent.error.value, 9);
    assert.ok(!("cause" in sent.error));
  },
);

Deno.test(
  "Channel.receive() rejects with the close reason once the channel drains",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 2 });
    ch.trySend(1);
    const reason = { code: "EOF" };
    ch.close(reason);
    assert.equal(await ch.receive(), 1);
    for (let i = 0; i < 3; i++) {
      await assert.rejects(ch.receive(), (e: unknown) => e === reason);
    }
    assert.deepEqual(ch.tryReceive(), { state: "closed" });
  },
);

Deno.test(
  "Channel.close() is idempotent and the first reason wins",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const parked = track(ch.receive());
    await tick();
    const first = new Error("first");
    ch.close(first);
    ch.close(new Error("second"));
    ch.close();
    assert.equal(ch.closed, true);
    await tick();
    assert.equal(parked.error, first);
    await assert.rejects(ch.receive(), (e: unknown) => e === first);
    await assert.rejects(ch.send(1), (e: unknown) => {
      assert.ok(e instanceof ChannelClosedError);
      assert.equal(e.cause, first);
      return true;
    });

    // A reason-less first close is not upgraded by a later reason.
    const plain = new Channel<number>();
    plain.close();
    plain.close(new Error("late"));
    await assert.rejects(plain.receive(), ChannelClosedError);
  },
);

Deno.test(
  "Channel.close(undefined) counts as a reason",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 1 });
    ch.trySend(1);
    const parkedSend = track(ch.send(2));
    await tick();
    ch.close(undefined);
    await tick();
    assert.ok(parkedSend.error instanceof ChannelClosedError);
    assert.equal(parkedSend.error.value, 2);
    assert.ok("cause" in parkedSend.error);
    assert.equal(parkedSend.error.cause, undefined);
    assert.equal(await ch.receive(), 1);
    // Receivers reject with the reason, undefined, not a ChannelClosedError.
    const later = track(ch.receive());
    await tick();
    assert.equal(later.rejected, true);
    assert.equal(later.error, undefined);
  },
);

Deno.test(
  "Channel.send() rejects with ChannelClosedError carrying the value after close",
  NONE,
  async () => {
    const ch = new Channel<object | undefined>({ capacity: 4 });
    ch.close();
    const value = {};
    await assert.rejects(ch.send(value), (e: unknown) => {
      assert.ok(e instanceof ChannelClosedError);
      assert.equal(e.name, "ChannelClosedError");
      assert.equal(e.value, value);
      assert.ok(!("cause" in e));
      return true;
    });
    await assert.rejects(ch.send(undefined), (e: unknown) => {
      assert.ok(e instanceof ChannelClosedError);
      assert.ok("value" in e);
      assert.equal(e.value, undefined);
      return true;
    });
    assert.equal(ch.size, 0);

    const reason = new Error("gone");
    const unbuffered = new Channel<number>();
    unbuffered.close(reason);
    await assert.rejects(unbuffered.send(3), (e: unknown) => {
      assert.ok(e instanceof ChannelClosedError);
      assert.equal(e.value, 3);
      assert.equal(e.cause, reason);
      return true;
    });
  },
);

// -- Abort --

Deno.test(
  "Channel.receive() rejects with the signal's reason when aborted and leaves no waiter",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const ac = new AbortController();
    const got = track(ch.receive({ signal: ac.signal }));
    await tick();
    assert.equal(got.settled, false);
    const reason = { why: "caller gave up" };
    ac.abort(reason);
    await tick();
    assert.equal(got.rejected, true);
    assert.equal(got.error, reason);
    assert.deepEqual(waitingOn(ch), IDLE);
    // Nothing is consumed on its behalf.
    assert.equal(ch.trySend(1), false);
    ch.close();
  },
);

Deno.test(
  "Channel.send() rejects with the signal's reason when aborted and never delivers",
  NONE,
  async () => {
    for (const capacity of [0, 1]) {
      const ch = new Channel<string>({ capacity });
      if (capacity > 0) ch.trySend("kept");
      const ac = new AbortController();
      const sent = track(ch.send("lost", { signal: ac.signal }));
      await tick();
      assert.equal(sent.settled, false);
      ac.abort();
      await tick();
      assert.equal(sent.rejected, true);
      assert.equal(sent.error, ac.signal.reason);
      assert.ok(sent.error instanceof DOMException);
      assert.deepEqual(waitingOn(ch), IDLE);
      if (capacity > 0) {
        assert.deepEqual(ch.tryReceive(), { state: "ok", value: "kept" });
      }
      assert.deepEqual(ch.tryReceive(), { state: "empty" });
      const r = track(ch.receive());
      await tick();
      assert.equal(r.settled, false);
      ch.close();
      await tick();
      assert.ok(r.error instanceof ChannelClosedError);
    }
  },
);

Deno.test(
  "Channel.send() and Channel.receive() reject at once with an already aborted signal when they must wait",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const reason = new Error("already");
    const signal = AbortSignal.abort(reason);
    const sent = ch.send(1, { signal });
    const got = ch.receive({ signal });
    assert.deepEqual(waitingOn(ch), IDLE);
    await assert.rejects(sent, (e: unknown) => e === reason);
    await assert.rejects(got, (e: unknown) => e === reason);
    ch.close();
  },
);

Deno.test(
  "Channel.send() and Channel.receive() complete with an already aborted signal when they need not wait",
  NONE,
  async () => {
    const signal = AbortSignal.abort(new Error("ignored"));
    const ch = new Channel<number>({ capacity: 1 });
    await ch.send(1, { signal });
    assert.equal(await ch.receive({ signal }), 1);

    const unbuffered = new Channel<number>();
    const got = track(unbuffered.receive());
    await tick();
    await unbuffered.send(2, { signal });
    await tick();
    assert.equal(got.value, 2);
    const sent = track(unbuffered.send(3));
    await tick();
    assert.equal(await unbuffered.receive({ signal }), 3);
    await tick();
    assert.equal(sent.fulfilled, true);
    ch.close();
    unbuffered.close();
  },
);

Deno.test(
  "Channel.receive() keeps the other waiters in order when one in the middle is aborted",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const ac = new AbortController();
    const r0 = track(ch.receive());
    const r1 = track(ch.receive({ signal: ac.signal }));
    const r2 = track(ch.receive());
    await tick();
    ac.abort();
    await tick();
    assert.equal(r1.rejected, true);
    assert.deepEqual(waitingOn(ch), { senders: 0, receivers: 2 });
    assert.equal(ch.trySend(0), true);
    assert.equal(ch.trySend(2), true);
    assert.equal(ch.trySend(9), false);
    await tick();
    assert.equal(r0.value, 0);
    assert.equal(r2.value, 2);
    ch.close();
  },
);

// -- Async iteration --

Deno.test(
  "Channel[Symbol.asyncIterator]() yields every value, then ends once the channel is closed and drained",
  NONE,
  async () => {
    for (const capacity of [0, 2]) {
      const ch = new Channel<number>({ capacity });
      const seen: number[] = [];
      const loop = track((async () => {
        for await (const v of ch) seen.push(v);
      })());
      for (let i = 0; i < 10; i++) await ch.send(i);
      await tick();
      // Empty but open: the loop waits.
      assert.equal(loop.settled, false);
      ch.close();
      await tick();
      assert.equal(loop.fulfilled, true);
      assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
  },
);

Deno.test(
  "Channel[Symbol.asyncIterator]() leaves the channel open and the rest of the values in place on break",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 5 });
    for (const n of [1, 2, 3, 4, 5]) ch.trySend(n);
    const seen: number[] = [];
    for await (const v of ch) {
      seen.push(v);
      if (seen.length === 2) break;
    }
    assert.deepEqual(seen, [1, 2]);
    assert.equal(ch.closed, false);
    assert.equal(ch.size, 3);
    assert.deepEqual(waitingOn(ch), IDLE);
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 3 });
    // A second loop picks up where the first stopped.
    ch.close();
    assert.deepEqual(await Array.fromAsync(ch), [4, 5]);
  },
);

Deno.test(
  "Channel[Symbol.asyncIterator]() throws the close reason",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 1 });
    ch.trySend(1);
    const reason = new Error("producer failed");
    ch.close(reason);
    const seen: number[] = [];
    await assert.rejects(async () => {
      for await (const v of ch) seen.push(v);
    }, (e: unknown) => e === reason);
    assert.deepEqual(seen, [1]);

    // undefined is a reason too: the loop throws undefined.
    const u = new Channel<number>();
    u.close(undefined);
    let threw = false;
    let thrown: unknown = "nothing";
    try {
      for await (const _ of u) { /* nothing to see */ }
    } catch (e) {
      threw = true;
      thrown = e;
    }
    assert.equal(threw, true);
    assert.equal(thrown, undefined);
  },
);

// -- Streams --

Deno.test(
  "Channel.toReadableStream() yields the values and closes when the channel closes",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 3 });
    for (const n of [1, 2, 3]) ch.trySend(n);
    ch.close();
    assert.deepEqual(await Array.fromAsync(ch.toReadableStream()), [1, 2, 3]);

    const live = new Channel<number>();
    const reader = live.toReadableStream().getReader();
    const first = track(reader.read());
    await tick();
    assert.equal(first.settled, false);
    assert.equal(live.trySend(7), true);
    await tick();
    assert.deepEqual(first.value, { value: 7, done: false });
    const end = track(reader.read());
    await tick();
    assert.equal(end.settled, false);
    live.close();
    await tick();
    assert.deepEqual(end.value, { value: undefined, done: true });
    reader.releaseLock();
  },
);

Deno.test(
  "Channel.toReadableStream() errors with the close reason",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 1 });
    ch.trySend(1);
    const reason = new Error("upstream failed");
    ch.close(reason);
    const reader = ch.toReadableStream().getReader();
    assert.deepEqual(await reader.read(), { value: 1, done: false });
    await assert.rejects(reader.read(), (e: unknown) => e === reason);
  },
);

Deno.test(
  "Channel.toReadableStream() closes the channel when cancelled",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const reader = ch.toReadableStream().getReader();
    const pending = track(reader.read());
    await tick();
    assert.deepEqual(waitingOn(ch), { senders: 0, receivers: 1 });
    const reason = new Error("consumer gone");
    await reader.cancel(reason);
    await tick();
    assert.deepEqual(pending.value, { value: undefined, done: true });
    assert.equal(ch.closed, true);
    assert.deepEqual(waitingOn(ch), IDLE);
    await assert.rejects(ch.receive(), (e: unknown) => e === reason);

    // Without a reason: a reason-less close.
    const plain = new Channel<number>();
    await plain.toReadableStream().cancel();
    assert.equal(plain.closed, true);
    await assert.rejects(plain.receive(), ChannelClosedError);
  },
);

Deno.test(
  "Channel.toReadableStream() takes a value only when read",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 2 });
    ch.trySend(1);
    ch.trySend(2);
    const reader = ch.toReadableStream().getReader();
    await tick();
    assert.equal(ch.size, 2);
    assert.deepEqual(await reader.read(), { value: 1, done: false });
    await tick();
    assert.equal(ch.size, 1);
    reader.releaseLock();
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 2 });
    ch.close();
  },
);

// -- Disposal and getters --

Deno.test(
  "Channel[Symbol.dispose]() closes the channel for using",
  NONE,
  async () => {
    let outer: Channel<number> | undefined;
    let pending: Tracked<number> | undefined;
    {
      using ch = new Channel<number>();
      outer = ch;
      pending = track(ch.receive());
      await tick();
      assert.equal(ch.closed, false);
    }
    assert.equal(outer.closed, true);
    await tick();
    assert.ok(pending.error instanceof ChannelClosedError);
  },
);

Deno.test(
  "Channel[Symbol.asyncDispose]() closes the channel for await using",
  NONE,
  async () => {
    let outer: Channel<number> | undefined;
    let pending: Tracked<void> | undefined;
    {
      await using ch = new Channel<number>();
      outer = ch;
      pending = track(ch.send(1));
      await tick();
      assert.equal(ch.closed, false);
    }
    assert.equal(outer.closed, true);
    await tick();
    assert.ok(pending.error instanceof ChannelClosedError);
    assert.equal(pending.error.value, 1);
  },
);

Deno.test(
  "Channel.size, Channel.capacity and Channel.closed report the channel's state",
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 2 });
    assert.equal(ch.capacity, 2);
    assert.equal(ch.size, 0);
    assert.equal(ch.closed, false);
    ch.trySend(1);
    assert.equal(ch.size, 1);
    ch.trySend(2);
    assert.equal(ch.size, 2);
    const parked = track(ch.send(3));
    await tick();
    assert.equal(ch.size, 2, "waiting senders are not counted");
    assert.equal(await ch.receive(), 1);
    assert.equal(ch.size, 2);
    ch.close();
    assert.equal(ch.closed, true);
    assert.equal(ch.size, 2);
    assert.equal(ch.capacity, 2);
    await tick();
    assert.equal(parked.fulfilled, true);

    assert.equal(new Channel().capacity, 0);
    assert.equal(new Channel({}).capacity, 0);
    assert.equal(new Channel({ capacity: undefined }).capacity, 0);
    assert.equal(new Channel({ capacity: Infinity }).capacity, Infinity);
  },
);

// -- LIFO order --

Deno.test(
  'Channel with order "lifo" hands out the newest value first',
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 4, order: "lifo" });
    for (const n of [1, 2, 3]) ch.trySend(n);
    assert.equal(await ch.receive(), 3);
    ch.trySend(4);
    ch.trySend(5);
    const got: number[] = [];
    for (let i = 0; i < 4; i++) got.push(await ch.receive());
    assert.deepEqual(got, [5, 4, 2, 1]);
    ch.close();
  },
);

Deno.test(
  'Channel with order "lifo" refills from waiting senders in their arrival order',
  NONE,
  async () => {
    const ch = new Channel<number>({ capacity: 2, order: "lifo" });
    ch.trySend(1);
    ch.trySend(2);
    const s3 = track(ch.send(3));
    const s4 = track(ch.send(4));
    await tick();
    assert.equal(await ch.receive(), 2);
    await tick();
    assert.equal(s3.fulfilled, true);
    assert.equal(s4.settled, false);
    assert.equal(ch.size, 2);
    assert.equal(await ch.receive(), 3);
    await tick();
    assert.equal(s4.fulfilled, true);
    assert.equal(await ch.receive(), 4);
    assert.equal(await ch.receive(), 1);
    assert.equal(ch.size, 0);
    ch.close();
  },
);

Deno.test(
  'Channel with order "lifo" serves waiting receivers first come, first served',
  NONE,
  async () => {
    const ch = new Channel<string>({ capacity: 2, order: "lifo" });
    const r0 = track(ch.receive());
    const r1 = track(ch.receive());
    await tick();
    ch.trySend("a");
    ch.trySend("b");
    await tick();
    assert.equal(r0.value, "a");
    assert.equal(r1.value, "b");
    ch.close();
  },
);

// -- Unbounded --

Deno.test(
  "Channel with capacity Infinity grows past 1024 values and keeps FIFO order",
  NONE,
  () => {
    const ch = new Channel<number>({ capacity: Infinity });
    for (let i = 0; i < 700; i++) assert.equal(ch.trySend(i), true);
    // Move the head so that the growth happens on a wrapped ring.
    for (let i = 0; i < 500; i++) {
      assert.deepEqual(ch.tryReceive(), { state: "ok", value: i });
    }
    for (let i = 700; i < 5000; i++) assert.equal(ch.trySend(i), true);
    assert.equal(ch.size, 4500);
    for (let i = 500; i < 5000; i++) {
      const r = ch.tryReceive();
      assert.ok(r.state === "ok" && r.value === i, `expected ${i}`);
    }
    assert.deepEqual(ch.tryReceive(), { state: "empty" });
    ch.close();
  },
);

Deno.test(
  'Channel with capacity Infinity and order "lifo" grows past 1024 values and keeps LIFO order',
  NONE,
  () => {
    const ch = new Channel<number>({ capacity: Infinity, order: "lifo" });
    for (let i = 0; i < 3000; i++) assert.equal(ch.trySend(i), true);
    assert.equal(ch.size, 3000);
    for (let i = 2999; i >= 0; i--) {
      const r = ch.tryReceive();
      assert.ok(r.state === "ok" && r.value === i, `expected ${i}`);
    }
    assert.deepEqual(ch.tryReceive(), { state: "empty" });
    ch.close();
  },
);

// -- Select --

Deno.test("select() commits a ready receive case", NONE, async () => {
  const a = new Channel<number>({ capacity: 1 });
  const b = new Channel<string>({ capacity: 1 });
  b.trySend("x");
  assert.deepEqual(await select([{ receive: a }, { receive: b }]), {
    index: 1,
    value: "x",
    ok: true,
  });
  assert.equal(b.size, 0);
  assert.deepEqual(waitingOn(a), IDLE);

  // A waiting sender on an unbuffered channel makes the case ready.
  const u = new Channel<number>();
  const sent = track(u.send(4));
  await tick();
  assert.deepEqual(await select([{ receive: a }, { receive: u }]), {
    index: 1,
    value: 4,
    ok: true,
  });
  await tick();
  assert.equal(sent.fulfilled, true);
  a.close();
  b.close();
  u.close();
});

Deno.test("select() commits a ready send case", NONE, async () => {
  const a = new Channel<number>();
  const b = new Channel<number>({ capacity: 1 });
  assert.deepEqual(
    await select([{ send: a, value: 1 }, { send: b, value: 2 }]),
    { index: 1, value: undefined, ok: true },
  );
  assert.deepEqual(b.tryReceive(), { state: "ok", value: 2 });
  assert.deepEqual(waitingOn(a), IDLE);

  // A waiting receiver on an unbuffered channel makes the case ready.
  const got = track(a.receive());
  await tick();
  assert.deepEqual(await select([{ send: a, value: 3 }]), {
    index: 0,
    value: undefined,
    ok: true,
  });
  await tick();
  assert.equal(got.value, 3);
  a.close();
  b.close();
});

Deno.test(
  "select() takes the default clause with index -1 when no case is ready",
  NONE,
  async () => {
    const a = new Channel<number>();
    const b = new Channel<number>({ capacity: 1 });
    b.trySend(0);
    const r = await select([{ receive: a }, { send: b, value: 1 }], {
      default: true,
    });
    assert.deepEqual(r, { index: -1, value: undefined, ok: false });
    assert.deepEqual(waitingOn(a), IDLE);
    assert.deepEqual(waitingOn(b), IDLE);
    assert.equal(b.size, 1);
    assert.deepEqual(b.tryReceive(), { state: "ok", value: 0 });
    a.close();
    b.close();
  },
);

Deno.test(
  "select() does not take the default clause when a case is ready",
  NONE,
  async () => {
    const empty = new Channel<number>();
    const ready = new Channel<number>({ capacity: 1 });
    for (let i = 0; i < 200; i++) {
      ready.trySend(i);
      const r = await select([{ receive: empty }, { receive: ready }], {
        default: true,
      });
      assert.deepEqual(r, { index: 1, value: i, ok: true });
    }
    // A receive case on a closed channel is ready too.
    const closed = new Channel<number>();
    closed.close();
    assert.deepEqual(
      await select([{ receive: empty }, { receive: closed }], {
        default: true,
      }),
      { index: 1, value: undefined, ok: false },
    );
    empty.close();
    ready.close();
  },
);

Deno.test("select() never chooses null or undefined cases", NONE, async () => {
  const ready = new Channel<number>({ capacity: 1 });
  for (let i = 0; i < 300; i++) {
    ready.trySend(i);
    const r = await select([null, { receive: ready }, undefined]);
    assert.equal(r.index, 1);
  }
  assert.deepEqual(await select([null, undefined], { default: true }), {
    index: -1,
    value: undefined,
    ok: false,
  });
  assert.equal(trySelect([null, undefined]), undefined);

  // With nothing ready it waits on the real cases only.
  const empty = new Channel<number>();
  const parked = track(select([null, { receive: empty }, undefined]));
  await tick();
  assert.equal(parked.settled, false);
  assert.deepEqual(waitingOn(empty), { senders: 0, receivers: 1 });
  empty.trySend(5);
  await tick();
  assert.deepEqual(parked.value, { index: 1, value: 5, ok: true });
  ready.close();
  empty.close();
});

Deno.test(
  "select() treats a receive case on a closed, drained channel as ready with ok: false",
  NONE,
  async () => {
    const closed = new Channel<number>({ capacity: 2 });
    closed.trySend(1);
    closed.close(new Error("a reason does not make it reject"));
    const open = new Channel<number>();
    assert.deepEqual(await select([{ receive: open }, { receive: closed }]), {
      index: 1,
      value: 1,
      ok: true,
    });
    for (let i = 0; i < 3; i++) {
      const r = await select([{ receive: open }, { receive: closed }]);
      assert.deepEqual(r, { index: 1, value: undefined, ok: false });
      assert.ok("value" in r);
    }
    assert.deepEqual(trySelect([{ receive: closed }]), {
      index: 0,
      value: undefined,
      ok: false,
    });
    assert.deepEqual(waitingOn(open), IDLE);
    open.close();
  },
);

Deno.test(
  "select() rejects with ChannelClosedError only when a send case on a closed channel is chosen",
  NONE,
  async () => {
    const reason = new Error("closed for good");
    const closed = new Channel<number>();
    closed.close(reason);
    const ready = new Channel<number>({ capacity: 1 });
    let received = 0;
    let rejected = 0;
    for (let i = 0; i < 200; i++) {
      if (ready.size === 0) ready.trySend(i);
      try {
        const r = await select([{ receive: ready }, {
          send: closed,
          value: i,
        }]);
        assert.equal(r.index, 0);
        assert.equal(r.ok, true);
        received++;
      } catch (e) {
        assert.ok(e instanceof ChannelClosedError);
        assert.equal(e.value, i);
        assert.equal(e.cause, reason);
        assert.equal(ready.size, 1, "the losing receive consumed nothing");
        rejected++;
      }
    }
    assert.ok(received > 0, "the ready receive case was never chosen");
    assert.ok(rejected > 0, "the closed send case was never chosen");
    ready.close();
  },
);

Deno.test(
  "select() rejects a parked send case with ChannelClosedError when its channel closes",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const other = new Channel<number>();
    const parked = track(select([{ receive: other }, { send: ch, value: 42 }]));
    await tick();
    assert.equal(parked.settled, false);
    const reason = new Error("bye");
    ch.close(reason);
    await tick();
    assert.ok(parked.error instanceof ChannelClosedError);
    assert.equal(parked.error.value, 42);
    assert.equal(parked.error.cause, reason);
    assert.deepEqual(waitingOn(other), IDLE);
    other.close();
  },
);

Deno.test(
  "select() resolves a parked receive case with ok: false when its channel closes",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const other = new Channel<number>();
    const parked = track(select([{ receive: other }, { receive: ch }]));
    await tick();
    ch.close(new Error("reason"));
    await tick();
    assert.deepEqual(parked.value, { index: 1, value: undefined, ok: false });
    assert.deepEqual(waitingOn(other), IDLE);
    other.close();
  },
);

Deno.test(
  "trySelect() returns a result synchronously, or undefined when no case is ready",
  NONE,
  async () => {
    const a = new Channel<number>({ capacity: 1 });
    assert.equal(trySelect([{ receive: a }]), undefined);
    assert.deepEqual(waitingOn(a), IDLE);
    a.trySend(3);
    const r = trySelect([{ receive: a }]);
    assert.ok(!(r instanceof Promise));
    assert.deepEqual(r, { index: 0, value: 3, ok: true });
    assert.deepEqual(trySelect([{ send: a, value: 4 }]), {
      index: 0,
      value: undefined,
      ok: true,
    });
    assert.equal(trySelect([{ send: a, value: 5 }]), undefined);
    assert.deepEqual(a.tryReceive(), { state: "ok", value: 4 });

    // A waiting sender's value is taken, and its send completes.
    const u = new Channel<number>();
    const sent = track(u.send(9));
    await tick();
    assert.deepEqual(trySelect([{ receive: a }, { receive: u }]), {
      index: 1,
      value: 9,
      ok: true,
    });
    await tick();
    assert.equal(sent.fulfilled, true);

    // A chosen send case on a closed channel throws synchronously.
    const closed = new Channel<number>();
    closed.close();
    assert.throws(
      () => trySelect([{ send: closed, value: 1 }]),
      (e: unknown) => {
        assert.ok(e instanceof ChannelClosedError);
        assert.equal(e.value, 1);
        return true;
      },
    );
    a.close();
    u.close();
  },
);

Deno.test(
  "trySelect() chooses each of three ready cases a third of the time",
  NONE,
  () => {
    const chans = [0, 1, 2].map(() => new Channel<number>({ capacity: 1 }));
    for (const c of chans) c.trySend(0);
    const cases = chans.map((c) => ({ receive: c }));
    const N = 30_000;
    const wins = [0, 0, 0];
    for (let i = 0; i < N; i++) {
      const r = trySelect(cases);
      assert.ok(r !== undefined && r.ok);
      wins[r.index]!++;
      assert.equal(chans[r.index]!.trySend(i), true); // refill the winner
    }
    assertThirds(wins, N, 0.03);
    for (const c of chans) c.close();
  },
);

Deno.test(
  "select() chooses each of three ready cases a third of the time",
  NONE,
  async () => {
    const a = new Channel<number>({ capacity: 1 });
    const b = new Channel<number>({ capacity: 1 }); // a send case: kept empty
    const c = new Channel<number>({ capacity: 1 });
    a.trySend(0);
    c.trySend(0);
    const N = 30_000;
    const wins = [0, 0, 0];
    for (let i = 0; i < N; i++) {
      const r = await select([{ receive: a }, { send: b, value: i }, {
        receive: c,
      }]);
      wins[r.index]!++;
      if (r.index === 0) a.trySend(i);
      else if (r.index === 1) {
        assert.deepEqual(b.tryReceive(), { state: "ok", value: i });
      } else c.trySend(i);
    }
    assertThirds(wins, N, 0.03);
    a.close();
    b.close();
    c.close();
  },
);

Deno.test(
  "select() never consumes a value with a losing receive case, nor delivers one with a losing send case",
  NONE,
  async () => {
    const chans = [0, 1, 2].map(() => new Channel<number>({ capacity: 4 }));
    const [c0, c1, c2] = chans as [
      Channel<number>,
      Channel<number>,
      Channel<number>,
    ];
    const sink = new Channel<number>({ capacity: Infinity });
    const sent = [0, 0, 0];
    const received = [0, 0, 0];
    const sinkRounds: number[] = [];
    const rand = mulberry32(12345);
    for (let round = 0; round < 6000; round++) {
      // Random fill levels, so cases lose both when ready and when not.
      for (const [i, c] of chans.entries()) {
        if (rand() < 0.4 && c.size < 4) {
          assert.equal(c.trySend(sent[i]!++), true);
        }
      }
      const cases = [{ receive: c0 }, { receive: c1 }, { receive: c2 }, {
        send: sink,
        value: round,
      }] as const;
      const r = round % 2 === 0 ? trySelect(cases) : await select(cases);
      assert.ok(r !== undefined);
      if (r.index === 3) {
        sinkRounds.push(round);
      } else {
        assert.equal(r.ok, true);
        // Values from one channel arrive as 0, 1, 2, ...: none skipped.
        assert.equal(r.value, received[r.index]);
        received[r.index]!++;
      }
    }
    for (const [i, c] of chans.entries()) {
      assert.equal(c.size, sent[i]! - received[i]!);
      assert.ok(received[i]! > 0);
    }
    assert.ok(sinkRounds.length > 0);
    sink.close();
    assert.deepEqual(await Array.fromAsync(sink), sinkRounds);
    for (const c of chans) c.close();
  },
);

Deno.test(
  "select() with an aborted send case never delivers its value",
  NONE,
  async () => {
    for (const capacity of [0, 1]) {
      const ch = new Channel<string>({ capacity });
      if (capacity > 0) ch.trySend("kept");
      const other = new Channel<string>();
      const ac = new AbortController();
      const parked = track(
        select([{ send: ch, value: "lost" }, { receive: other }], {
          signal: ac.signal,
        }),
      );
      await tick();
      assert.equal(parked.settled, false);
      const reason = new Error("timeout");
      ac.abort(reason);
      await tick();
      assert.equal(parked.error, reason);
      assert.deepEqual(waitingOn(ch), IDLE);
      assert.deepEqual(waitingOn(other), IDLE);
      if (capacity > 0) {
        assert.deepEqual(ch.tryReceive(), { state: "ok", value: "kept" });
      }
      const got = track(ch.receive());
      await tick();
      assert.equal(got.settled, false, "the aborted value arrived");
      assert.equal(ch.trySend("fresh"), true);
      await tick();
      assert.equal(got.value, "fresh");
      assert.equal(other.trySend("x"), false);
      ch.close();
      other.close();
    }
  },
);

Deno.test("select() consumes nothing when aborted", NONE, async () => {
  const a = new Channel<number>();
  const b = new Channel<number>({ capacity: 1 });
  const ac = new AbortController();
  const parked = track(select([{ receive: a }, { receive: b }], {
    signal: ac.signal,
  }));
  await tick();
  assert.deepEqual(waitingOn(a), { senders: 0, receivers: 1 });
  ac.abort();
  await tick();
  assert.equal(parked.rejected, true);
  assert.deepEqual(waitingOn(a), IDLE);
  assert.deepEqual(waitingOn(b), IDLE);
  assert.equal(a.trySend(1), false, "an aborted select still took a value");
  assert.equal(b.trySend(2), true);
  assert.equal(b.size, 1);
  assert.deepEqual(b.tryReceive(), { state: "ok", value: 2 });
  a.close();
  b.close();
});

Deno.test(
  "select() rejects with the signal's reason, unchanged",
  NONE,
  async () => {
    const ch = new Channel<number>();
    for (const reason of [new Error("e"), { custom: true }, "text", 0, null]) {
      const ac = new AbortController();
      const parked = track(select([{ receive: ch }], { signal: ac.signal }));
      await tick();
      ac.abort(reason);
      await tick();
      assert.equal(parked.rejected, true);
      assert.equal(parked.error, reason);
    }
    // With no reason given, the signal's own DOMException, the same object.
    const ac = new AbortController();
    const parked = track(
      select([{ send: ch, value: 1 }], { signal: ac.signal }),
    );
    await tick();
    ac.abort();
    await tick();
    assert.equal(parked.error, ac.signal.reason);
    assert.ok(parked.error instanceof DOMException);
    assert.deepEqual(waitingOn(ch), IDLE);
    ch.close();
  },
);

Deno.test(
  "select() completes a ready case even with an already aborted signal",
  NONE,
  async () => {
    const signal = AbortSignal.abort(new Error("too late"));
    const ch = new Channel<number>({ capacity: 1 });
    const empty = new Channel<number>();
    ch.trySend(1);
    assert.deepEqual(
      await select([{ receive: empty }, { receive: ch }], { signal }),
      { index: 1, value: 1, ok: true },
    );
    assert.deepEqual(
      await select([{ receive: empty }, { send: ch, value: 2 }], { signal }),
      { index: 1, value: undefined, ok: true },
    );
    assert.equal(ch.size, 1);
    ch.close();
    empty.close();
  },
);

Deno.test(
  "select() rejects at once with an already aborted signal when no case is ready",
  NONE,
  async () => {
    const reason = new Error("already aborted");
    const signal = AbortSignal.abort(reason);
    const a = new Channel<number>();
    const b = new Channel<number>({ capacity: 1 });
    b.trySend(0);
    const p = select([{ receive: a }, { send: b, value: 1 }], { signal });
    // Nothing was parked, not even for a moment.
    assert.deepEqual(waitingOn(a), IDLE);
    assert.deepEqual(waitingOn(b), IDLE);
    await assert.rejects(p, (e: unknown) => e === reason);
    assert.equal(b.size, 1);
    a.close();
    b.close();
  },
);

Deno.test(
  "select() pairs with another parked select on an unbuffered channel",
  NONE,
  async () => {
    // A waits to receive; B arrives with a send.
    const ch = new Channel<string>();
    const x = new Channel<string>();
    const y = new Channel<string>();
    const a = track(select([{ receive: x }, { receive: ch }]));
    await tick();
    assert.equal(a.settled, false);
    const b = track(select([{ receive: y }, { send: ch, value: "from B" }]));
    await tick();
    assert.deepEqual(a.value, { index: 1, value: "from B", ok: true });
    assert.deepEqual(b.value, { index: 1, value: undefined, ok: true });
    for (const c of [ch, x, y]) assert.deepEqual(waitingOn(c), IDLE);

    // A waits to send; B arrives with a receive.
    const a2 = track(select([{ send: ch, value: "from A" }, { receive: x }]));
    await tick();
    assert.equal(a2.settled, false);
    const b2 = track(select([{ receive: y }, { receive: ch }]));
    await tick();
    assert.deepEqual(a2.value, { index: 0, value: undefined, ok: true });
    assert.deepEqual(b2.value, { index: 1, value: "from A", ok: true });
    for (const c of [ch, x, y]) {
      assert.deepEqual(waitingOn(c), IDLE);
      c.close();
    }
  },
);

Deno.test(
  "select() does not pair a send case with its own receive case on one unbuffered channel",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const s1 = track(select([{ send: ch, value: 1 }, { receive: ch }]));
    await tick();
    assert.equal(s1.settled, false);
    assert.deepEqual(waitingOn(ch), { senders: 1, receivers: 1 });
    // A partner completes exactly one of its cases.
    assert.equal(ch.trySend(2), true);
    await tick();
    assert.deepEqual(s1.value, { index: 1, value: 2, ok: true });
    assert.deepEqual(waitingOn(ch), IDLE);

    const s2 = track(select([{ send: ch, value: 3 }, { receive: ch }]));
    await tick();
    assert.equal(s2.settled, false);
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 3 });
    await tick();
    assert.deepEqual(s2.value, { index: 0, value: undefined, ok: true });
    assert.deepEqual(waitingOn(ch), IDLE);
    ch.close();
  },
);

Deno.test(
  "select() delivers every value exactly once to 100 tasks over 3 channels",
  NONE,
  async () => {
    const TOTAL = 10_000;
    const chans = [
      new Channel<number>(),
      new Channel<number>({ capacity: 1 }),
      new Channel<number>({ capacity: 16 }),
    ];
    const seen = new Uint16Array(TOTAL);
    const all: number[] = [];
    const tasks = Array.from({ length: 100 }, async () => {
      const cases: (ReceiveCase<number> | null)[] = chans.map((c) => ({
        receive: c,
      }));
      let n = 0;
      while (cases.some((c) => c !== null)) {
        const r = await select(cases);
        if (r.ok) {
          seen[r.value]!++;
          all.push(r.value);
          n++;
        } else {
          cases[r.index] = null; // closed and drained: switch the case off
        }
      }
      return n;
    });
    const producers = Array.from({ length: 10 }, async (_, p) => {
      for (let i = p; i < TOTAL; i += 10) await chans[i % 3]!.send(i);
    });
    await Promise.all(producers);
    for (const c of chans) c.close();
    const counts = await Promise.all(tasks);
    assert.equal(counts.reduce((s, n) => s + n, 0), TOTAL);
    assert.equal(all.length, TOTAL);
    assert.equal(new Set(all).size, TOTAL);
    for (let v = 0; v < TOTAL; v++) assert.equal(seen[v], 1, `value ${v}`);
    for (const c of chans) assert.deepEqual(waitingOn(c), IDLE);
  },
);

// -- Cleanup --

Deno.test(
  "Channel operations completed by a partner leave no listener on a long-lived signal",
  NONE,
  async () => {
    const ac = new AbortController();
    const signal = ac.signal;
    const live = new Set<unknown>();
    let added = 0;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((
      type: string,
      listener: EventListenerOrEventListenerObject,
      options?: boolean | AddEventListenerOptions,
    ) => {
      if (type === "abort") {
        added++;
        live.add(listener);
      }
      add(type, listener, options);
    }) as typeof signal.addEventListener;
    signal.removeEventListener = ((
      type: string,
      listener: EventListenerOrEventListenerObject,
      options?: boolean | EventListenerOptions,
    ) => {
      if (type === "abort") live.delete(listener);
      remove(type, listener, options);
    }) as typeof signal.removeEventListener;

    const ch = new Channel<number>();
    const other = new Channel<number>();
    const N = 10_000;
    for (let i = 0; i < N; i++) {
      switch (i % 4) {
        case 0: {
          const p = ch.receive({ signal });
          assert.equal(ch.trySend(i), true);
          assert.equal(await p, i);
          break;
        }
        case 1: {
          const p = ch.send(i, { signal });
          assert.deepEqual(ch.tryReceive(), { state: "ok", value: i });
          await p;
          break;
        }
        case 2: {
          const p = select([{ receive: other }, { receive: ch }], { signal });
          assert.equal(ch.trySend(i), true);
          assert.deepEqual(await p, { index: 1, value: i, ok: true });
          break;
        }
        default: {
          const p = select([{ send: ch, value: i }, { receive: other }], {
            signal,
          });
          assert.equal(await ch.receive(), i);
          assert.equal((await p).index, 0);
        }
      }
    }
    assert.equal(added, N, "every operation waited with the signal");
    assert.equal(live.size, 0, `${live.size} abort listeners left behind`);
    assert.deepEqual(waitingOn(ch), IDLE);
    assert.deepEqual(waitingOn(other), IDLE);
    ch.close();
    other.close();
  },
);

Deno.test(
  "Aborted operations and selects leave no waiter in any queue",
  NONE,
  async () => {
    const a = new Channel<number>();
    const b = new Channel<number>();
    const full = new Channel<number>({ capacity: 1 });
    full.trySend(-1);
    const reason = new Error("abort");
    const rand = mulberry32(99);
    const N = 10_000;
    const BATCH = 100;
    for (let start = 0; start < N; start += BATCH) {
      const controllers: AbortController[] = [];
      const ops: Tracked<unknown>[] = [];
      for (let i = start; i < start + BATCH; i++) {
        const ac = new AbortController();
        const signal = ac.signal;
        controllers.push(ac);
        switch (i % 5) {
          case 0:
            ops.push(track(a.receive({ signal })));
            break;
          case 1:
            ops.push(track(a.send(i, { signal })));
            break;
          case 2:
            ops.push(track(full.send(i, { signal })));
            break;
          case 3:
            ops.push(
              track(select([{ receive: a }, { receive: b }], { signal })),
            );
            break;
          default:
            ops.push(track(select([{ send: b, value: i }, { receive: a }, {
              send: full,
              value: i,
            }], { signal })));
        }
      }
      // Some senders and receivers of a pair up as they arrive; abort the
      // rest in random order, so waiters leave from the middle of queues.
      for (let i = controllers.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [controllers[i], controllers[j]] = [controllers[j]!, controllers[i]!];
      }
      for (const ac of controllers) ac.abort(reason);
      await tick();
      for (const op of ops) {
        assert.equal(op.settled, true);
        if (op.rejected) assert.equal(op.error, reason);
      }
    }
    assert.deepEqual(waitingOn(a), IDLE);
    assert.deepEqual(waitingOn(b), IDLE);
    assert.deepEqual(waitingOn(full), IDLE);
    assert.equal(a.trySend(1), false);
    assert.equal(b.trySend(1), false);
    assert.deepEqual(full.tryReceive(), { state: "ok", value: -1 });
    assert.deepEqual(full.tryReceive(), { state: "empty" });
    a.close();
    b.close();
    full.close();
  },
);

// -- Conservation --

interface ConservationStats {
  abortedSends: number;
  abortedReceives: number;
  delivered: number;
}

/**
 * Producers and consumers run a random mix of operations on two channels of
 * `capacity`, all on microtasks (no timers). Consumers never wait without a
 * signal that some other task aborts, so nothing can hang; they stop once
 * the producers are done and every delivered value has been received.
 */
async function runConservation(
  capacity: number,
  rand: () => number,
  stats: ConservationStats,
): Promise<void> {
  const PRODUCERS = 4;
  const CONSUMERS = 4;
  const PER_PRODUCER = 300;
  const int = (n: number) => Math.floor(rand() * n);
  const a = new Channel<number>({ capacity });
  const b = new Channel<number>({ capacity });
  const pick = () => (rand() < 0.5 ? a : b);
  const ABORT = new Error("random abort");
  const STOP = new Error("stop");
  const delivered = new Set<number>(); // the send (or send case) resolved
  const undelivered = new Set<number>(); // trySend false, aborted, or lost the select
  const received: number[] = [];
  const aborters: Promise<void>[] = [];
  const live = new Set<AbortController>();
  let producersDone = false;
  let finished = false;

  function abortLater(ac: AbortController): void {
    const turns = int(12);
    aborters.push((async () => {
      for (let i = 0; i < turns; i++) await null;
      ac.abort(ABORT);
    })());
  }

  /** No signal, an aborted one, or one aborted a few microtasks later. */
  function producerSignal(): AbortSignal | undefined {
    const roll = int(4);
    if (roll === 0) return undefined;
    const ac = new AbortController();
    if (roll === 1) ac.abort(ABORT);
    else abortLater(ac);
    return ac.signal;
  }

  /** Always aborted sooner or later: by the random abort or by the stop. */
  function consumerSignal(): AbortController {
    const ac = new AbortController();
    if (int(6) === 0) ac.abort(ABORT);
    else abortLater(ac);
    live.add(ac);
    return ac;
  }

  function got(value: number): void {
    received.push(value);
  }

  function checkDone(): void {
    if (!finished && producersDone && received.length === delivered.size) {
      finished = true;
      for (const ac of live) ac.abort(STOP);
    }
  }

  async function producer(p: number): Promise<void> {
    for (let i = 0; i < PER_PRODUCER; i++) {
      const v = p * 1_000_000 + i;
      const ch = pick();
      const other = ch === a ? b : a;
      try {
        switch (int(5)) {
          case 0:
            await ch.send(v);
            delivered.add(v);
            break;
          case 1:
            await ch.send(v, { signal: producerSignal() });
            delivered.add(v);
            break;
          case 2:
            if (ch.trySend(v)) delivered.add(v);
            else undelivered.add(v);
            await null;
            break;
          case 3:
            await select([{ send: a, value: v }, { send: b, value: v }], {
              signal: producerSignal(),
            });
            delivered.add(v);
            break;
          default: {
            const r = await select([{ send: ch, value: v }, {
              receive: other,
            }], { signal: producerSignal() });
            if (r.index === 0) {
              delivered.add(v);
            } else {
              assert.ok(r.ok);
              undelivered.add(v);
              got(r.value);
            }
          }
        }
      } catch (e) {
        if (e !== ABORT) throw e;
        undelivered.add(v);
        stats.abortedSends++;
      }
    }
  }

  async function consumer(): Promise<void> {
    let budget = 100_000;
    while (!finished && budget-- > 0) {
      let ac: AbortController | undefined;
      try {
        switch (int(5)) {
          case 0: {
            const r = pick().tryReceive();
            assert.notEqual(r.state, "closed");
            if (r.state === "ok") got(r.value);
            else await null;
            break;
          }
          case 1:
            ac = consumerSignal();
            got(await pick().receive({ signal: ac.signal }));
            break;
          case 2: {
            ac = consumerSignal();
            const r = await select([{ receive: a }, { receive: b }], {
              signal: ac.signal,
            });
            assert.ok(r.ok);
            got(r.value);
            break;
          }
          case 3: {
            const r = trySelect([{ receive: a }, { receive: b }]);
            if (r === undefined) {
              await null;
            } else {
              assert.ok(r.ok);
              got(r.value);
            }
            break;
          }
          default: {
            const r = await select([{ receive: b }, { receive: a }], {
              default: true,
            });
            if (r.index === -1) {
              await null;
            } else {
              assert.ok(r.ok);
              got(r.value);
            }
          }
        }
      } catch (e) {
        if (e === ABORT) stats.abortedReceives++;
        else if (e !== STOP) throw e;
      } finally {
        if (ac !== undefined) live.delete(ac);
      }
      checkDone();
    }
  }

  const consumers = Array.from({ length: CONSUMERS }, consumer);
  await Promise.all(Array.from({ length: PRODUCERS }, (_, p) => producer(p)));
  producersDone = true;
  checkDone();
  await Promise.all(consumers);
  await Promise.all(aborters);

  const where = `capacity ${capacity}`;
  assert.equal(finished, true, `${where}: delivered values went missing`);
  assert.equal(
    delivered.size + undelivered.size,
    PRODUCERS * PER_PRODUCER,
    where,
  );
  for (const v of delivered) assert.ok(!undelivered.has(v), where);
  assert.equal(received.length, delivered.size, where);
  assert.equal(new Set(received).size, received.length, `${where}: duplicates`);
  for (const v of received) {
    assert.ok(delivered.has(v), `${where}: ${v} arrived but was not delivered`);
  }
  assert.deepEqual(waitingOn(a), IDLE, where);
  assert.deepEqual(waitingOn(b), IDLE, where);
  assert.equal(a.size + b.size, 0, where);
  stats.delivered += delivered.size;
  a.close();
  b.close();
  assert.deepEqual(a.tryReceive(), { state: "closed" });
  assert.deepEqual(b.tryReceive(), { state: "closed" });
}

Deno.test(
  "Channel conserves every value under a random mix of operations and aborts",
  NONE,
  async () => {
    const seed = CONSERVATION_SEED ?? (Date.now() >>> 0);
    console.log(
      `conservation seed ${seed} (set CONSERVATION_SEED to replay)`,
    );
    const rand = mulberry32(seed);
    const stats = { abortedSends: 0, abortedReceives: 0, delivered: 0 };
    for (const capacity of [0, 1, 7, 1024]) {
      await runConservation(capacity, rand, stats);
    }
    // The run exercised what it claims to.
    assert.ok(stats.abortedSends > 0, "no send was aborted");
    assert.ok(stats.abortedReceives > 0, "no receive was aborted");
    assert.ok(stats.delivered > 0, "nothing was delivered");
  },
);

// -- Bad input --

Deno.test(
  "new Channel() throws RangeError naming capacity for -1, 1.5 and NaN",
  NONE,
  () => {
    for (
      const [capacity, shown] of [[-1, "-1"], [1.5, "1.5"], [
        NaN,
        "NaN",
      ]] as const
    ) {
      assert.throws(() => new Channel({ capacity }), (e: unknown) => {
        assert.ok(e instanceof RangeError);
        assert.match(e.message, /capacity/);
        assert.ok(e.message.includes(shown), e.message);
        return true;
      });
    }
  },
);

Deno.test("new Channel() throws TypeError for a string capacity", NONE, () => {
  assert.throws(
    () => new Channel({ capacity: "8" as unknown as number }),
    (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /capacity/);
      assert.ok(e.message.includes('"8"'), e.message);
      return true;
    },
  );
});

Deno.test(
  "new Channel() throws RangeError naming order for an unknown order",
  NONE,
  () => {
    assert.throws(
      () => new Channel({ order: "stack" as unknown as "lifo" }),
      (e: unknown) => {
        assert.ok(e instanceof RangeError);
        assert.match(e.message, /order/);
        assert.ok(e.message.includes("stack"), e.message);
        return true;
      },
    );
  },
);

Deno.test("new Channel() throws TypeError for null options", NONE, () => {
  for (const options of [null, 8, "fifo"]) {
    assert.throws(() => new Channel(options as never), (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /options/);
      return true;
    });
  }
});

Deno.test(
  "select() rejects with TypeError when cases is not an array",
  NONE,
  async () => {
    for (const cases of [undefined, null, 5, "cases", { receive: 1 }]) {
      await assert.rejects(select(cases as never), (e: unknown) => {
        assert.ok(e instanceof TypeError);
        assert.match(e.message, /cases/);
        return true;
      });
    }
  },
);

Deno.test(
  "select() rejects with TypeError naming cases[i] for a malformed case, committing nothing",
  NONE,
  async () => {
    const ready = new Channel<number>({ capacity: 1 });
    const ch = new Channel<number>({ capacity: 1 });
    ready.trySend(1);
    const bad = [
      {},
      { receive: 5 },
      { send: ch },
      { receive: ch, send: ch },
      { send: {}, value: 1 },
      7,
    ];
    for (const c of bad) {
      await assert.rejects(
        select([{ receive: ready }, null, c] as never),
        (e: unknown) => {
          assert.ok(e instanceof TypeError);
          assert.ok(e.message.includes("cases[2]"), e.message);
          return true;
        },
      );
    }
    // The ready case before the bad one was neither committed nor parked.
    assert.equal(ready.size, 1);
    assert.equal(ch.size, 0);
    assert.deepEqual(waitingOn(ready), IDLE);
    assert.deepEqual(waitingOn(ch), IDLE);
    ready.close();
    ch.close();
  },
);

Deno.test(
  "trySelect() throws TypeError synchronously for malformed cases",
  NONE,
  () => {
    const ready = new Channel<number>({ capacity: 1 });
    const ch = new Channel<number>();
    ready.trySend(1);
    assert.throws(() => trySelect(5 as never), TypeError);
    for (
      const c of [{}, { receive: 5 }, { send: ch }, { receive: ch, send: ch }]
    ) {
      assert.throws(
        () => trySelect([{ receive: ready }, c] as never),
        (e: unknown) => {
          assert.ok(e instanceof TypeError);
          assert.ok(e.message.includes("cases[1]"), e.message);
          return true;
        },
      );
    }
    assert.equal(ready.size, 1);
    ready.close();
    ch.close();
  },
);

Deno.test(
  "Channel.send(), Channel.receive() and select() refuse a signal that is not an AbortSignal when they must wait",
  NONE,
  async () => {
    const ch = new Channel<number>();
    const notASignal = { aborted: false } as unknown as AbortSignal;
    const isSignalError = (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /signal/);
      return true;
    };
    // Like every failure of an async call: a rejected promise, never a throw.
    let send: Promise<void> | undefined;
    let receive: Promise<number> | undefined;
    assert.doesNotThrow(() => {
      send = ch.send(1, { signal: notASignal });
      receive = ch.receive({ signal: notASignal });
    });
    await assert.rejects(send!, isSignalError);
    await assert.rejects(receive!, isSignalError);
    await assert.rejects(
      select([{ receive: ch }], { signal: notASignal }),
      isSignalError,
    );
    assert.deepEqual(waitingOn(ch), IDLE);
    ch.close();
  },
);

Deno.test(
  "select() treats a case with receive and an explicit send: undefined as a receive case",
  NONE,
  async () => {
    // countReady() accepts { receive: ch, send: undefined } as a receive
    // case; parking must agree with it.
    const a = new Channel<number>();
    const b = new Channel<number>();
    const parked = track(
      select([{ receive: a }, { receive: b, send: undefined }] as never),
    );
    await tick();
    assert.equal(parked.settled, false);
    assert.equal(b.trySend(7), true);
    await tick();
    assert.deepEqual(parked.value, { index: 1, value: 7, ok: true });
    assert.deepEqual(waitingOn(a), IDLE);
    assert.deepEqual(waitingOn(b), IDLE);
    a.close();
    b.close();
  },
);

Deno.test(
  "trySelect() treats a case with send and an explicit receive: undefined as a send case",
  NONE,
  () => {
    // countReady() accepts { send: ch, value, receive: undefined } as a send
    // case; committing must agree with it.
    const ch = new Channel<number>({ capacity: 1 });
    const r = trySelect([{ send: ch, value: 1, receive: undefined }] as never);
    assert.deepEqual(r, { index: 0, value: undefined, ok: true });
    assert.deepEqual(ch.tryReceive(), { state: "ok", value: 1 });
    ch.close();
  },
);

Deno.test(
  "Channel.close() wakes a select parked on both sides of it on its receive case",
  NONE,
  async () => {
    // Go's closechan releases readers before writers: the select sees
    // ok: false on the receive case rather than a closed-channel send.
    const ch = new Channel<number>();
    const parked = track(select([{ send: ch, value: 1 }, { receive: ch }]));
    await tick();
    assert.equal(parked.settled, false);
    assert.deepEqual(waitingOn(ch), { senders: 1, receivers: 1 });
    ch.close();
    await tick();
    assert.deepEqual(parked.value, { index: 1, value: undefined, ok: false });
    assert.deepEqual(waitingOn(ch), IDLE);
  },
);
