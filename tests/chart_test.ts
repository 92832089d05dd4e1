// Copyright 2026 the chanpool authors. MIT license.
import assert from "node:assert/strict";
import {
  type BenchReport,
  escapeXml,
  formatTime,
  parseBenchJson,
  renderChart,
  roleOf,
} from "../bench/chart.ts";
import fixture from "./chart_fixture.json" with { type: "json" };

const REPORT = fixture as BenchReport;

/** The tags of an SVG document, checked to nest; the names of open tags. */
function checkWellFormed(svg: string): string[] {
  const stack: string[] = [];
  const opened: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (const m of svg.matchAll(tag)) {
    const text = svg.slice(last, m.index);
    // between tags: no raw "<", and every "&" starts an entity
    assert.doesNotMatch(text, /</, `raw "<" in text ${JSON.stringify(text)}`);
    assert.doesNotMatch(
      text,
      /&(?!(amp|lt|gt|quot|apos|#\d+);)/,
      `raw "&" in text ${JSON.stringify(text)}`,
    );
    last = m.index + m[0].length;
    const [, close, name, , selfClose] = m;
    if (close) {
      assert.equal(stack.pop(), name, `</${name}> closes the wrong tag`);
    } else if (!selfClose) {
      stack.push(name!);
      opened.push(name!);
    } else {
      opened.push(name!);
    }
  }
  assert.equal(svg.slice(last).trim(), "", "text after the last tag");
  assert.deepEqual(stack, [], "unclosed tags");
  return opened;
}

Deno.test({
  name: "renderChart() writes a well-formed SVG with escaped text",
  permissions: "none",
  fn() {
    const svg = renderChart(REPORT, { title: "bench/<redis> & co" });
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    const tags = checkWellFormed(svg);
    assert.equal(tags[0], "svg");
    assert.equal(tags.filter((t) => t === "svg").length, 1);
    assert.ok(svg.includes("bench/&lt;redis&gt; &amp; co"));
    assert.ok(svg.includes("ioredis &lt;auto&gt; &amp; &quot;pipelined&quot;"));
    assert.ok(svg.includes("Test CPU &lt;fixture&gt; &amp; co"));
    assert.ok(!svg.includes("<auto>"));
  },
});

Deno.test({
  name: "renderChart() draws one bar per benchmark that ran",
  permissions: "none",
  fn() {
    const svg = renderChart(REPORT, { title: "redis" });
    const bars = svg.match(/<rect class="bar"/g) ?? [];
    const ran = REPORT.benches.filter((b) => "ok" in b.results[0]!);
    assert.equal(ran.length, 5);
    assert.equal(bars.length, ran.length);
    for (const b of ran) {
      assert.ok(svg.includes(`>${escapeXml(b.name)}</text>`), b.name);
    }
    // the failed one is a line of text, with its error
    assert.ok(svg.includes("failed: Error: wrong reply &lt;3&gt;"));
    // chanpool's bars are highlighted: blue, and only theirs
    const blue = svg.match(/<rect class="bar"[^>]*fill="#1f6feb"/g) ?? [];
    assert.equal(blue.length, 2);
  },
});

Deno.test({
  name: "renderChart() titles each group with chanpool's lead against a peer",
  permissions: "none",
  fn() {
    const svg = renderChart(REPORT, { title: "redis" });
    // 1.34 ms against 1.00 ms: the fastest peer, not "connect per command"
    assert.ok(svg.includes(">GET/SET, 8 tasks</text>"));
    assert.ok(
      svg.includes(
        ">chanpool RedisClient (pipelined): 1.34x faster than ioredis &lt;auto&gt; &amp; &quot;pipelined&quot;</text>",
      ),
    );
    // no peer ran: the fastest other row, and "slower" when it is slower
    assert.ok(svg.includes(">try-ops</text>"));
    assert.ok(
      svg.includes(">chanpool: 2.00x slower than array (no promises)</text>"),
    );
  },
});

Deno.test({
  name: "renderChart() gives each group an axis in a unit that fits",
  permissions: "none",
  fn() {
    const svg = renderChart(REPORT, { title: "redis" });
    // GET/SET tops at 6.5 ms (p75), try-ops at 850 ns
    assert.ok(svg.includes(">ms per iteration</text>"));
    assert.ok(svg.includes(">ns per iteration</text>"));
    assert.ok(svg.includes(">1.0 ms"));
    assert.ok(svg.includes(">800.0 ns"));
    assert.equal(formatTime(999), "999.0 ns");
    assert.equal(formatTime(106_600), "106.6 µs");
    assert.equal(formatTime(7_000_000), "7.0 ms");
    assert.equal(formatTime(1_234_000_000), "1.2 s");
  },
});

Deno.test({
  name: "renderChart() gives the same bytes for the same input",
  permissions: "none",
  fn() {
    const a = renderChart(REPORT, { title: "redis" });
    const b = renderChart(structuredClone(REPORT), { title: "redis" });
    assert.equal(a, b);
  },
});

Deno.test({
  name: "parseBenchJson() skips what a bench module printed before the report",
  permissions: "none",
  fn() {
    const text = "redis-benchmark -c 8: 91234 requests/s\n{not json}\n" +
      JSON.stringify(REPORT, null, 2) + "\n";
    assert.deepEqual(parseBenchJson(text), REPORT);
    assert.throws(
      () => parseBenchJson("error: Module not found\n"),
      (e) =>
        e instanceof SyntaxError &&
        /no "deno bench --json" report/.test(e.message),
    );
  },
});

Deno.test({
  name: "roleOf() tells chanpool's rows from peers and limits",
  permissions: "none",
  fn() {
    assert.equal(roleOf("chanpool borrow + release"), "chanpool");
    assert.equal(roleOf("TcpPool pipeline fifo (max 8)"), "chanpool");
    assert.equal(roleOf("FrameReader.readFrame"), "chanpool");
    assert.equal(roleOf("through serveProxy (its own process)"), "chanpool");
    assert.equal(roleOf("tagged, 64 in flight"), "chanpool");
    assert.equal(
      roleOf("ioredis (1 connection, enableAutoPipelining)"),
      "peer",
    );
    assert.equal(roleOf("generic-pool"), "peer");
    assert.equal(roleOf("dial per request"), "peer");
    assert.equal(roleOf("8 persistent conns (limit)"), "limit");
    assert.equal(roleOf("bare array (limit)"), "limit");
    assert.equal(roleOf("same-contract baseline"), "limit");
    assert.equal(roleOf("direct"), "limit");
  },
});
