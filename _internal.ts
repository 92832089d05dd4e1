// Copyright 2026 the chanpool authors. MIT license.
// Hooks into private state, for tests and sibling modules only; never
// re-exported from mod.ts. Filled in by the classes' static blocks.

import type { Channel } from "./channel.ts";

/** How many operations wait on a channel, by side. */
export interface Waiting {
  senders: number;
  receivers: number;
}

/** Read-only views of private state, bound when the modules load. */
export const internals: {
  waiting: (ch: Channel<unknown>) => Waiting;
} = {
  waiting: () => {
    throw new Error("channel.ts is not loaded");
  },
};
