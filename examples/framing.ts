// Copyright 2026 the chanpool authors. MIT license.
// A client and a server exchanging 32-bit length-prefixed messages with
// FrameReader and writeFrame: the classic "how do I frame TCP messages"
// answer, with a limit on what a peer may announce.
//
// Run: deno run --allow-net=127.0.0.1 examples/framing.ts

import { FrameReader, FrameTooLargeError, writeFrame } from "../mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const frame = { maxFrameSize: 64 * 1024 }; // 4-byte big-endian header

// The server upper-cases every message it gets, one reply per message.
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const server = (async () => {
  for await (const conn of listener) {
    (async () => {
      const reader = new FrameReader(conn, frame);
      try {
        let message;
        while ((message = await reader.readFrame()) !== null) {
          const text = decoder.decode(message);
          console.log(`server got ${message.length} bytes: ${text}`);
          await writeFrame(conn, encoder.encode(text.toUpperCase()), frame);
        }
      } catch (error) {
        // A peer announcing more than maxFrameSize costs its connection.
        if (!(error instanceof FrameTooLargeError)) throw error;
        console.log(`server: ${error.message}`);
      } finally {
        conn.close();
      }
    })();
  }
})();

const conn = await Deno.connect({ port: listener.addr.port });
const reader = new FrameReader(conn, frame);
for (const text of ["hello", "length-prefixed", "world"]) {
  await writeFrame(conn, encoder.encode(text), frame);
  const reply = await reader.readFrame();
  console.log(`client got: ${decoder.decode(reply!)}`);
}
// A hostile header: 4 GiB announced. The server refuses it without
// allocating anything and hangs up.
await conn.write(new Uint8Array([0xff, 0xff, 0xff, 0xff]));
console.log(
  `client: after a 4 GiB header the server hung up: ${
    (await reader.readFrame()) === null
  }`,
);
conn.close();
listener.close();
await server;
