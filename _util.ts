// Copyright 2026 the chanpool authors. MIT license.
// Small helpers shared by the modules; never re-exported from mod.ts.

/** Names a bad value in an error message: strings quoted, objects by kind. */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object" && value !== null) return "an object";
  return String(value);
}

/**
 * The longest finite delay the runtime's timers take, in milliseconds
 * (2^31 − 1, about 24.8 days): a longer one fires at once. A finite
 * duration option above it is a RangeError; `Infinity` says "no limit".
 */
export const MAX_DELAY = 2_147_483_647;

/**
 * The RangeError for a finite duration above {@linkcode MAX_DELAY}, or
 * `undefined` when `ms` is within it (or `Infinity`).
 */
export function tooLong(
  where: string,
  name: string,
  ms: number,
): RangeError | undefined {
  if (ms <= MAX_DELAY || ms === Infinity) return undefined;
  return new RangeError(
    `Cannot ${where}: ${name} must be at most ${MAX_DELAY} ms (about 24.8 days) or Infinity, received ${ms}`,
  );
}
