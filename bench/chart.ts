// Copyright 2026 the chanpool authors. MIT license.
// SVG bar charts of `deno bench --json` results: one chart per suite, its
// groups stacked, one bar per benchmark. chanpool's rows are drawn in blue,
// peers (npm libraries and the naive ways of doing the same job) in orange,
// and the limits written here (a bare array, a hand-written pool, a direct
// connection) in grey. Each bar is the mean time per iteration (`avg`: the
// JSON carries no median, only `avg`, `min`, `max`, `p75`, `p99`, `p995`
// and `p999`), with a tick at `p75`; shorter is faster. The title of each
// group compares chanpool's lead row (the group's baseline if it is
// chanpool's, else its first chanpool row) with the fastest peer, or, in a
// group without peers, the fastest other row, as `deno bench` words it:
// "2.10x faster than ioredis". Same input, same bytes out, so the charts
// diff well.
//
// Run every suite and render (the JSON goes to bench/results, the SVGs to
// bench/charts): deno task bench:chart [suite ...]
// Render saved results again, without running anything:
//   deno run --allow-read=bench/results --allow-write=bench/charts \
//     bench/chart.ts bench/results/*.json

/** One benchmark of a `deno bench --json` report. */
export interface BenchEntry {
  origin: string;
  group: string | null;
  name: string;
  baseline: boolean;
  results: BenchResult[];
}

/** What `deno bench --json` reports for one run of a benchmark. */
export type BenchResult =
  | { ok: BenchStats }
  | { failed: { name?: string; message?: string } | string };

/** Per-iteration times of one benchmark, in nanoseconds. */
export interface BenchStats {
  n: number;
  min: number;
  max: number;
  avg: number;
  p75: number;
  p99: number;
  p995?: number;
  p999?: number;
}

/** The JSON `deno bench --json` writes. */
export interface BenchReport {
  version: number;
  runtime: string;
  cpu: string;
  benches: BenchEntry[];
}

/** How a row is drawn. */
export type Role = "chanpool" | "peer" | "limit";

/**
 * The suites `deno task bench:chart` runs, with the permissions each file's
 * header names (no more).
 */
export const SUITES: Record<string, string[]> = {
  pool_bench: [],
  channel_bench: [],
  framing_bench: [],
  agent_bench: ["--allow-net=127.0.0.1"],
  tcp_bench: ["--allow-net=127.0.0.1", "--allow-run"],
  pipeline_bench: ["--allow-net=127.0.0.1", "--allow-run"],
  redis_bench: ["--allow-net=127.0.0.1", "--allow-run", "--allow-env"],
  memcached_bench: ["--allow-net=127.0.0.1", "--allow-run"],
  proxy_bench: ["--allow-net=127.0.0.1", "--allow-run"],
  events_bench: ["--allow-env=CHANPOOL_BEFORE", "--allow-read"],
};

// Rows that measure chanpool: its name, its exports, and the rows of the
// pipelining and proxy suites (every one of them runs chanpool's code).
const CHANPOOL_ROW =
  /chanpool|TcpPool|TcpAgent|FrameReader|FrameDecoderStream|FrameEncoderStream|encodeFrame|serveProxy|^proxy\b|^(tagged|fifo),/;
// Rows written here as the least the job can cost: not peers to beat.
const LIMIT_ROW =
  /\blimit\b|same-contract baseline|no promises|bare array|^direct$/;

/** Whether a row is chanpool's, a peer's, or a limit written for the bench. */
export function roleOf(name: string): Role {
  if (CHANPOOL_ROW.test(name)) return "chanpool";
  if (LIMIT_ROW.test(name)) return "limit";
  return "peer";
}

/**
 * Parses what `deno bench --json` wrote to stdout. Lines a bench module
 * printed before the report (deno bench sends them to the same stdout) are
 * skipped.
 *
 * @throws {SyntaxError} If no report is found
 */
export function parseBenchJson(text: string): BenchReport {
  const start = text.search(/^\{\s*"version"\s*:/m);
  const end = text.lastIndexOf("}");
  if (start < 0 || end < start) {
    throw new SyntaxError(
      `Cannot parse bench results: no "deno bench --json" report in ${text.length} characters`,
    );
  }
  const report = JSON.parse(text.slice(start, end + 1)) as BenchReport;
  if (!Array.isArray(report.benches)) {
    throw new SyntaxError(
      "Cannot parse bench results: the report has no benches array",
    );
  }
  return report;
}

interface Row {
  name: string;
  role: Role;
  baseline: boolean;
  stats: BenchStats | undefined;
  error: string | undefined;
}

interface Group {
  title: string;
  rows: Row[];
}

function groupsOf(report: BenchReport): Group[] {
  const origins = new Set(report.benches.map((b) => b.origin));
  const groups = new Map<string, Group>();
  for (const b of report.benches) {
    const file = b.origin.slice(b.origin.lastIndexOf("/") + 1);
    const key = `${b.origin}\0${b.group ?? ""}`;
    let group = groups.get(key);
    if (group === undefined) {
      const name = b.group ?? "ungrouped";
      group = { title: origins.size > 1 ? `${file}: ${name}` : name, rows: [] };
      groups.set(key, group);
    }
    const result = b.results[0];
    let stats: BenchStats | undefined, error: string | undefined;
    if (result !== undefined && "ok" in result) stats = result.ok;
    else if (result !== undefined && "failed" in result) {
      const f = result.failed;
      error = typeof f === "string" ? f : `${f.name ?? "Error"}: ${f.message}`;
    } else error = "no result";
    group.rows.push({
      name: b.name,
      role: roleOf(b.name),
      baseline: b.baseline,
      stats,
      error,
    });
  }
  return [...groups.values()];
}

/** A ratio of two times, as `deno bench` prints it. */
function ratio(slow: number, fast: number): string {
  const r = slow / fast;
  return r < 10 ? r.toFixed(2) : r < 100 ? r.toFixed(1) : r.toFixed(0);
}

type Ranked = {
  name: string;
  role: Role;
  baseline: boolean;
  stats: BenchStats | undefined;
};

/** chanpool's lead row: the baseline if it is chanpool's, else its first. */
function leadOf<T extends Ranked>(rows: readonly T[]): T | undefined {
  const ok = rows.filter((r) => r.stats !== undefined);
  return ok.find((r) => r.baseline && r.role === "chanpool") ??
    ok.find((r) => r.role === "chanpool");
}

/**
 * The comparison a group's title carries: chanpool's lead row against the
 * fastest peer, or the fastest other row where there is no peer. Undefined
 * when the group has no chanpool row or nothing to compare with.
 */
export function comparisonOf(rows: readonly Ranked[]): string | undefined {
  const ok = rows.filter((r) => r.stats !== undefined);
  const lead = leadOf(rows);
  if (lead === undefined) return undefined;
  const peers = ok.filter((r) => r.role === "peer");
  const others = peers.length > 0 ? peers : ok.filter((r) => r !== lead);
  let best = others[0];
  for (const r of others) if (r.stats!.avg < best!.stats!.avg) best = r;
  if (best === undefined) return undefined;
  const a = lead.stats!.avg, b = best.stats!.avg;
  return a <= b
    ? `${lead.name}: ${ratio(b, a)}x faster than ${best.name}`
    : `${lead.name}: ${ratio(a, b)}x slower than ${best.name}`;
}

const UNITS: [string, number][] = [
  ["s", 1e9],
  ["ms", 1e6],
  ["µs", 1e3],
  ["ns", 1],
];

/** The unit a time in nanoseconds reads best in. */
function unitOf(ns: number): [string, number] {
  return UNITS.find(([, scale]) => ns >= scale) ?? ["ns", 1];
}

/** A time in nanoseconds, with its unit: "106.6 µs". */
export function formatTime(ns: number): string {
  const [unit, scale] = unitOf(ns);
  return `${(ns / scale).toFixed(1)} ${unit}`;
}

/** The step of an axis: 1, 2 or 5 times a power of ten, about max/5. */
function niceStep(max: number): number {
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

/** Text made safe for SVG: the five XML entities, no control characters. */
export function escapeXml(text: string): string {
  return text
    // deno-lint-ignore no-control-regex
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

/** A number for an SVG attribute: at most one decimal, no "-0". */
function px(n: number): string {
  const s = (Math.round(n * 10) / 10).toString();
  return s === "-0" ? "0" : s;
}

const COLOR: Record<Role, string> = {
  chanpool: "#1f6feb",
  peer: "#e3823b",
  limit: "#9aa4ae",
};
const LABEL: Record<Role, string> = {
  chanpool: "chanpool",
  peer: "peer, or the common way",
  limit: "limit written for the bench",
};
const FONT =
  "font-family=\"system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\"";
const CHAR_WIDTH = 6.8; // 12 px sans-serif, a generous average
const ROW = 22;
const BAR = 14;
const PLOT = 360;
const VALUE_WIDTH = 230;
const PAD = 16;

/** Options of {@linkcode renderChart}. */
export interface RenderOptions {
  /** The chart's heading, usually the suite's file name. */
  title: string;
}

/**
 * Renders a `deno bench --json` report as one SVG: its groups stacked, one
 * bar per benchmark that ran (a failed one is a line of text instead).
 */
export function renderChart(
  report: BenchReport,
  options: RenderOptions,
): string {
  const groups = groupsOf(report);
  const longest = Math.max(
    12,
    ...groups.flatMap((g) => g.rows.map((r) => r.name.length)),
  );
  const labelWidth = Math.min(Math.ceil(longest * CHAR_WIDTH) + 12, 380);
  const plotX = PAD + labelWidth;
  // wide enough for the longest line of text, estimated
  const texts = groups.flatMap((g) => [
    g.title.length * 9,
    (comparisonOf(g.rows) ?? "").length * 7.4,
  ]);
  const width = Math.ceil(
    Math.max(plotX + PLOT + VALUE_WIDTH, ...texts.map((t) => PAD * 2 + t)),
  );
  const out: string[] = [];
  let y = PAD;

  out.push(
    `<text x="${PAD}" y="${y + 16}" font-size="17" font-weight="600">${
      escapeXml(options.title)
    }</text>`,
  );
  y += 24;
  for (
    const line of [
      `${report.runtime}, ${report.cpu}; one run, so compare rows within a group.`,
      "Bar: mean time per iteration (avg, as deno bench reports; no median in its JSON); tick: p75. Shorter is faster.",
    ]
  ) {
    out.push(
      `<text x="${PAD}" y="${y + 12}" font-size="12" fill="#57606a">${
        escapeXml(line)
      }</text>`,
    );
    y += 18;
  }
  y += 2;
  let lx = PAD;
  const present = new Set(groups.flatMap((g) => g.rows.map((r) => r.role)));
  for (const role of ["chanpool", "peer", "limit"] as const) {
    if (!present.has(role)) continue;
    out.push(
      `<rect x="${px(lx)}" y="${y + 2}" width="12" height="12" fill="${
        COLOR[role]
      }"/>`,
      `<text x="${px(lx + 17)}" y="${y + 12}" font-size="12">${
        LABEL[role]
      }</text>`,
    );
    lx += 17 + LABEL[role].length * CHAR_WIDTH + 18;
  }
  y += 26;

  for (const group of groups) {
    const compared = comparisonOf(group.rows);
    out.push(
      `<text x="${PAD}" y="${y + 14}" font-size="14" font-weight="600">${
        escapeXml(group.title)
      }</text>`,
    );
    y += 20;
    if (compared !== undefined) {
      out.push(
        `<text x="${PAD}" y="${y + 13}" font-size="13">${
          escapeXml(compared)
        }</text>`,
      );
      y += 20;
    }
    y += 4;
    const ran = group.rows.filter((r) => r.stats !== undefined);
    const top = Math.max(
      1,
      ...ran.map((r) => Math.max(r.stats!.avg, r.stats!.p75)),
    );
    const lead = leadOf(group.rows);
    const [unit, scale] = unitOf(top);
    const step = niceStep(top / scale);
    const axisMax = Math.ceil(top / scale / step) * step;
    const x = (ns: number) => plotX + (ns / scale / axisMax) * PLOT;
    const rowsTop = y;
    for (const row of group.rows) {
      const cy = y + ROW / 2;
      out.push(
        `<text x="${px(plotX - 8)}" y="${px(cy + 4)}" font-size="12" ${
          row.role === "chanpool" ? 'font-weight="600" ' : ""
        }text-anchor="end">${escapeXml(row.name)}</text>`,
      );
      if (row.stats === undefined) {
        out.push(
          `<text x="${px(plotX + 4)}" y="${
            px(cy + 4)
          }" font-size="12" fill="#cf222e">${
            escapeXml(`failed: ${row.error}`)
          }</text>`,
        );
      } else {
        const s = row.stats;
        const end = Math.max(x(s.avg), plotX + 1);
        out.push(
          `<rect class="bar" x="${px(plotX)}" y="${px(cy - BAR / 2)}" width="${
            px(end - plotX)
          }" height="${BAR}" fill="${COLOR[row.role]}"><title>${
            escapeXml(
              `${row.name}: avg ${formatTime(s.avg)}, min ${
                formatTime(s.min)
              }, p75 ${formatTime(s.p75)}, p99 ${formatTime(s.p99)}, max ${
                formatTime(s.max)
              }, n ${s.n}`,
            )
          }</title></rect>`,
        );
        // p75 beyond the axis (an outlier-heavy row) is drawn at its end
        const tick = Math.min(x(s.p75), plotX + PLOT);
        out.push(
          `<line x1="${px(tick)}" y1="${px(cy - BAR / 2 - 2)}" x2="${
            px(tick)
          }" y2="${
            px(cy + BAR / 2 + 2)
          }" stroke="#24292f" stroke-width="1.5"/>`,
        );
        const relative = lead === undefined
          ? ""
          : row === lead
          ? "· lead"
          : `· ${ratio(s.avg, lead.stats!.avg)}x the lead's time`;
        out.push(
          `<text x="${px(Math.max(end, tick) + 6)}" y="${
            px(cy + 4)
          }" font-size="12">${
            escapeXml(formatTime(s.avg))
          }<tspan dx="5" fill="#57606a">${escapeXml(relative)}</tspan></text>`,
        );
      }
      y += ROW;
    }
    // axis: ticks in the group's unit
    out.push(
      `<line x1="${px(plotX)}" y1="${px(rowsTop)}" x2="${px(plotX)}" y2="${
        px(y + 2)
      }" stroke="#57606a"/>`,
      `<line x1="${px(plotX)}" y1="${px(y + 2)}" x2="${px(plotX + PLOT)}" y2="${
        px(y + 2)
      }" stroke="#57606a"/>`,
    );
    for (let i = 0; i * step <= axisMax + step / 1e6; i++) {
      const v = i * step;
      const tx = plotX + (v / axisMax) * PLOT;
      const label = Number(v.toPrecision(6)).toString();
      out.push(
        `<line x1="${px(tx)}" y1="${px(y + 2)}" x2="${px(tx)}" y2="${
          px(y + 6)
        }" stroke="#57606a"/>`,
        `<text x="${px(tx)}" y="${
          px(y + 18)
        }" font-size="11" fill="#57606a" text-anchor="middle">${
          escapeXml(label)
        }</text>`,
      );
    }
    out.push(
      `<text x="${px(plotX + PLOT / 2)}" y="${
        px(y + 33)
      }" font-size="11" fill="#57606a" text-anchor="middle">${
        escapeXml(`${unit} per iteration`)
      }</text>`,
    );
    y += 50;
  }

  const height = y + PAD - 8;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${px(width)}" height="${
      px(height)
    }" viewBox="0 0 ${px(width)} ${px(height)}" ${FONT} fill="#24292f">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...out,
    `</svg>`,
    "",
  ].join("\n");
}

/**
 * Runs one suite with `--json` (its progress and errors go to stderr); the
 * report, or why there is none.
 */
async function runSuite(suite: string): Promise<BenchReport | string> {
  const flags = SUITES[suite]!;
  const file = decodeURIComponent(
    new URL(`./${suite}.ts`, import.meta.url).pathname,
  );
  const { code, stdout } = await new Deno.Command("deno", {
    args: ["bench", "--json", ...flags, file],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  try {
    const report = parseBenchJson(new TextDecoder().decode(stdout));
    if (code !== 0) console.error(`${suite}: deno bench exited with ${code}`);
    return report;
  } catch {
    return `deno bench exited with ${code} and no report`;
  }
}

async function main(args: string[]): Promise<number> {
  const results = new URL("./results/", import.meta.url);
  const charts = new URL("./charts/", import.meta.url);
  let files: string[];
  let failed = 0;
  if (args[0] === "--run") {
    const suites = args.length > 1 ? args.slice(1) : Object.keys(SUITES);
    for (const s of suites) {
      if (!(s in SUITES)) {
        throw new RangeError(
          `Cannot run suite: "${s}" is not one of ${
            Object.keys(SUITES).join(", ")
          }`,
        );
      }
    }
    await Deno.mkdir(results, { recursive: true });
    files = [];
    for (const suite of suites) {
      const started = performance.now();
      console.error(`${suite}: running`);
      const report = await runSuite(suite);
      const seconds = ((performance.now() - started) / 1000).toFixed(0);
      if (typeof report === "string") {
        console.error(`${suite}: failed after ${seconds} s: ${report}`);
        failed++;
        continue;
      }
      const path = decodeURIComponent(
        new URL(`${suite}.json`, results).pathname,
      );
      await Deno.writeTextFile(path, JSON.stringify(report, null, 2) + "\n");
      console.error(`${suite}: ${path} (${seconds} s)`);
      files.push(path);
    }
  } else {
    files = args;
  }
  if (files.length === 0) {
    console.error(
      "Usage: chart.ts --run [suite ...] | chart.ts results.json ...",
    );
    return 2;
  }
  await Deno.mkdir(charts, { recursive: true });
  for (const file of files) {
    const suite = file.slice(file.lastIndexOf("/") + 1).replace(/\.json$/, "");
    const report = parseBenchJson(await Deno.readTextFile(file));
    const path = decodeURIComponent(new URL(`${suite}.svg`, charts).pathname);
    await Deno.writeTextFile(
      path,
      renderChart(report, { title: `bench/${suite}.ts` }),
    );
    console.error(`${suite}: ${path}`);
  }
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
