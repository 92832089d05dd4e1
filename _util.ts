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
