// Copyright 2026 the chanpool authors. MIT license.
// The pickers of a TcpCluster: which of its candidate hosts takes a call.
// Pure functions over a list of candidates (the healthy hosts, or all of
// them when none is); cluster.ts decides who the candidates are.
//
// - p2c: two draws by weight, the second among the others; the second is
//   taken only if, with this call, its calls in flight per unit of weight
//   would still be no more than the first's are now. For equal weights that
//   is "strictly fewer calls in flight" (the classic rule). With unequal
//   weights it keeps a light host that is idle from beating a heavy one
//   that has a call or two: the first draw, made by weight, wins unless
//   the second is really less loaded, so a lightly loaded cluster is
//   spread in proportion to the weights; under load each host's calls in
//   flight settle in proportion to its weight (and a host that answers
//   more slowly than its weight says gets less).
// - round-robin: smooth weighted round-robin (nginx's): every pick adds
//   each candidate's weight to its running credit and takes the one with
//   the most, which then pays the total back. Weights 3:1:1 give
//   A B A C A, exactly in proportion over every 5 picks, never a burst.
// - rendezvous (highest random weight) hashing: each candidate scores
//   `-weight / ln(u)`, u a hash of (key, host) mapped to (0, 1); the
//   highest wins. A host that leaves takes only its own keys with it
//   (they go to their second choice); the rest never move. The weighted
//   score gives each host keys in proportion to its weight.

/** What a picker reads of a host. */
export interface Candidate {
  /** > 0. */
  readonly weight: number;
  /** Calls in flight on it now. */
  readonly inFlight: number;
  /** Smooth round-robin credit (the picker's own state). */
  credit: number;
  /** Two 32-bit hashes of the host's address, for rendezvous. */
  readonly seedA: number;
  readonly seedB: number;
}

/** Running sums of the candidates' weights, for draws by weight. */
export function cumulative(list: readonly Candidate[]): Float64Array {
  const sums = new Float64Array(list.length);
  let total = 0;
  for (let i = 0; i < list.length; i++) sums[i] = total += list[i]!.weight;
  return sums;
}

/** The first index whose running sum exceeds `x`. */
function drawAt(sums: Float64Array, x: number): number {
  let lo = 0;
  let hi = sums.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sums[mid]! > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Power of two choices, weighted (see the file's notes). `sums` is
 * {@linkcode cumulative} of `list`.
 */
export function p2c<C extends Candidate>(
  list: readonly C[],
  sums: Float64Array,
  random: () => number = Math.random,
): C {
  const n = list.length;
  if (n === 1) return list[0]!;
  const total = sums[n - 1]!;
  const i = drawAt(sums, random() * total);
  const a = list[i]!;
  // The second draw skips the first: a point in the total less a's weight,
  // moved past a's segment when it falls at or beyond its start.
  let x = random() * (total - a.weight);
  if (x >= (i === 0 ? 0 : sums[i - 1]!)) x += a.weight;
  let j = drawAt(sums, x);
  if (j === i) j = (i + 1) % n; // a rounding edge
  const b = list[j]!;
  // (b.inFlight + 1) / b.weight <= a.inFlight / a.weight, without division.
  return (b.inFlight + 1) * a.weight <= a.inFlight * b.weight ? b : a;
}

/** Smooth weighted round-robin (see the file's notes). */
export function roundRobin<C extends Candidate>(list: readonly C[]): C {
  let best = list[0]!;
  let total = 0;
  for (const c of list) {
    c.credit += c.weight;
    total += c.weight;
    if (c.credit > best.credit) best = c;
  }
  best.credit -= total;
  return best;
}

/** murmur3's 32-bit finalizer: every input bit moves every output bit. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Two independent 32-bit hashes of a string (its UTF-16 code units), the
 * same in every process: a key maps to the same host in every client.
 */
export function hashString(s: string): [number, number] {
  let a = 0x9e3779b9 ^ s.length;
  let b = 0x632be5ab ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x5bd1e995);
    a ^= a >>> 15;
    b = Math.imul(b ^ c, 0x27d4eb2f);
    b ^= b >>> 13;
  }
  return [mix(a), mix(b ^ a)];
}

const TWO_53 = 2 ** 53;

/** Rendezvous hashing, weighted (see the file's notes). */
export function rendezvous<C extends Candidate>(
  list: readonly C[],
  keyA: number,
  keyB: number,
): C {
  let best = list[0]!;
  let top = -1;
  for (const c of list) {
    const hi = mix(keyA ^ c.seedA);
    const lo = mix((keyB ^ c.seedB) + hi);
    // 53 random bits, mapped into (0, 1): ln(u) < 0, never -Infinity.
    const u = (hi * 2 ** 21 + (lo >>> 11) + 0.5) / TWO_53;
    const score = -c.weight / Math.log(u);
    if (score > top) {
      top = score;
      best = c;
    }
  }
  return best;
}
