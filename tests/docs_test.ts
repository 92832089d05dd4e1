// Copyright 2026 the chanpool authors. MIT license.
// The README's option tables against the exported option types: every field
// of every exported `*Options` type has a row in the table that documents
// it (a field whose type is itself an options type, such as `heartbeat` or
// `tls`, names that type's fields in its row or in `parent.field` rows), and
// every row names a field that exists. So an option cannot be added without
// its row, nor a row outlive its option.
//
// The fields come from `deno doc --json mod.ts`: the public API as Deno's
// TypeScript parser sees it, with `extends`, `Pick<...>` and aliases
// resolved here, and no list kept by hand. (A regex over the sources would
// have to follow the re-exports from the `_*.ts` files, and trip over braces
// in JSDoc and in function types.) It needs `--allow-run=deno` (or run
// access to `Deno.execPath()`) and `--allow-read=README.md`; the test task
// grants both.

import assert from "node:assert/strict";

/**
 * Which README table documents which exported option types: the `##`
 * section it is in and the header of its first column. Every exported type
 * whose name ends in `Options` must be listed here or reached from a listed
 * one (nested in a field, extended, aliased).
 */
const TABLES: { section: string; column: string; types: string[] }[] = [
  { section: "Channels", column: "option", types: ["ChannelOptions"] },
  {
    section: "Channels",
    column: "call option",
    types: ["ChannelSendOptions", "ChannelReceiveOptions", "SelectOptions"],
  },
  { section: "Pools", column: "option", types: ["PoolOptions"] },
  {
    section: "Pools",
    column: "call option",
    types: ["BorrowOptions", "PoolCloseOptions"],
  },
  {
    section: "Framing",
    column: "option",
    types: ["FrameOptions", "FrameReaderOptions", "LineDecoderOptions"],
  },
  { section: "TCP connections", column: "option", types: ["TcpPoolOptions"] },
  {
    section: "TCP connections",
    column: "call option",
    types: [
      "IoOptions",
      "WriteOptions",
      "ExchangeOptions",
      "RequestOptions",
      "PoolExchangeOptions",
      "PoolRequestOptions",
    ],
  },
  {
    section: "A proxy over pooled upstreams",
    column: "option",
    types: ["ProxyOptions", "ServeProxyOptions"],
  },
  { section: "Many servers", column: "option", types: ["TcpAgentOptions"] },
  {
    section: "Many servers",
    column: "cluster option",
    types: ["TcpClusterOptions"],
  },
  {
    section: "Many servers",
    column: "cluster call option",
    types: [
      "TcpClusterExchangeOptions",
      "TcpClusterRequestOptions",
      "TcpClusterBorrowOptions",
      "TcpClusterCallOptions",
    ],
  },
];

// -- The public API, from deno doc --

/** The parts of `deno doc --json` (format version 2) read here. */
interface TsType {
  kind: string;
  repr?: string;
  value?: unknown;
}
interface Declaration {
  kind: string;
  def: {
    properties?: { name: string; tsType?: TsType }[];
    extends?: TsType[];
    tsType?: TsType;
  };
}
interface DocSymbol {
  name: string;
  declarations: Declaration[];
}

/** One field of an options type. */
interface Field {
  name: string;
  /** The type that declares it. */
  owner: string;
  /** Option types its own type names (`heartbeat?: HeartbeatOptions<T>`). */
  nested: string[];
}

/** Runs `deno doc --json mod.ts`: the exported declarations, by name. */
async function publicApi(): Promise<Map<string, Declaration>> {
  const exec = Deno.execPath();
  const own = await Deno.permissions.query({ name: "run", command: exec });
  const command = own.state === "granted" ? exec : "deno";
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, {
      args: ["doc", "--json", "mod.ts"],
      cwd: new URL("../", import.meta.url),
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    throw new Error(
      `Cannot run deno doc: ${error} (run with --allow-run=deno, deno on the PATH)`,
      { cause: error },
    );
  }
  const { success, stdout, stderr } = output;
  const text = new TextDecoder();
  assert.ok(success, `deno doc failed: ${text.decode(stderr)}`);
  const doc = JSON.parse(text.decode(stdout));
  assert.equal(doc.version, 2, "deno doc's JSON format changed");
  const api = new Map<string, Declaration>();
  for (const node of Object.values(doc.nodes) as { symbols: DocSymbol[] }[]) {
    for (const symbol of node.symbols) {
      const declaration = symbol.declarations.find((d) =>
        d.kind === "interface" || d.kind === "typeAlias"
      );
      if (declaration !== undefined) api.set(symbol.name, declaration);
    }
  }
  return api;
}

/** Every `typeRef` name inside a type, depth first. */
function typeRefs(type: unknown, out: string[] = []): string[] {
  if (Array.isArray(type)) {
    for (const t of type) typeRefs(t, out);
  } else if (typeof type === "object" && type !== null) {
    const t = type as { kind?: unknown; value?: { typeName?: unknown } };
    if (t.kind === "typeRef" && typeof t.value?.typeName === "string") {
      out.push(t.value.typeName);
    }
    for (const v of Object.values(type)) typeRefs(v, out);
  }
  return out;
}

/** The string literals of a `Pick`/`Omit` key type (`"a" | "b"`). */
function keys(type: TsType | undefined): Set<string> {
  const out = new Set<string>();
  const visit = (t: unknown): void => {
    const lit = t as { kind?: string; value?: unknown };
    if (lit?.kind === "literal") {
      const v = lit.value as { kind?: string; string?: string };
      if (v.kind === "string" && v.string !== undefined) out.add(v.string);
    } else if (lit?.kind === "union") {
      for (const u of lit.value as unknown[]) visit(u);
    }
  };
  visit(type);
  return out;
}

/** Reads the fields of exported option types, recording every type reached. */
class Fields {
  readonly reached = new Set<string>();
  readonly #api: Map<string, Declaration>;

  constructor(api: Map<string, Declaration>) {
    this.#api = api;
  }

  isOptions(name: string): boolean {
    return name.endsWith("Options") && this.#api.has(name);
  }

  of(name: string): Field[] {
    const declaration = this.#api.get(name);
    assert.ok(declaration, `${name} is not exported from mod.ts`);
    this.reached.add(name);
    const def = declaration.def;
    if (declaration.kind === "typeAlias") return this.#ofType(name, def.tsType);
    const fields = (def.properties ?? []).map((p) => ({
      name: p.name,
      owner: name,
      nested: typeRefs(p.tsType).filter((n) => this.isOptions(n)),
    }));
    for (const base of def.extends ?? []) {
      fields.push(...this.#ofType(name, base));
    }
    return fields;
  }

  #ofType(name: string, type: TsType | undefined): Field[] {
    const ref = type?.value as
      | { typeName?: string; typeParams?: TsType[] }
      | undefined;
    if (type?.kind !== "typeRef" || ref?.typeName === undefined) {
      throw new Error(
        `Cannot read the fields of ${name}: a ${type?.kind} type (teach tests/docs_test.ts)`,
      );
    }
    if (ref.typeName === "Pick" || ref.typeName === "Omit") {
      const [base, picked] = ref.typeParams ?? [];
      const names = keys(picked);
      const pick = ref.typeName === "Pick";
      return this.#ofType(name, base).filter((f) => names.has(f.name) === pick);
    }
    return this.of(ref.typeName);
  }
}

// -- The README's tables --

interface Table {
  section: string;
  header: string[];
  rows: string[][];
}

/** A table row's cells; a `|` inside backticks is not a separator. */
function cells(line: string): string[] {
  const out: string[] = [];
  let cell = "";
  let code = false;
  for (const ch of line.trim().slice(1, -1)) {
    if (ch === "`") code = !code;
    if (ch === "|" && !code) {
      out.push(cell.trim());
      cell = "";
    } else cell += ch;
  }
  out.push(cell.trim());
  return out;
}

/** Every table of a Markdown text, with the `##` section it is in. */
function tables(markdown: string): Table[] {
  const out: Table[] = [];
  let section = "";
  let table: Table | null = null;
  for (const line of markdown.split("\n")) {
    const heading = /^## (.+)$/.exec(line);
    if (heading !== null) section = heading[1]!.trim();
    if (!line.startsWith("|")) {
      table = null;
      continue;
    }
    if (table === null) {
      table = { section, header: cells(line), rows: [] };
      out.push(table);
    } else if (!/^\|[\s|:-]+\|$/.test(line.trim())) {
      table.rows.push(cells(line));
    }
  }
  return out;
}

/** The contents of a cell's backtick spans. */
function spans(cell: string): string[] {
  return [...cell.matchAll(/`([^`]*)`/g)].map((m) => m[1]!);
}

/** Identifiers named in a row's backtick spans (`{ interval, ping }`). */
function identifiers(row: string[]): Set<string> {
  const out = new Set<string>();
  for (const span of row.flatMap(spans)) {
    for (const m of span.matchAll(/[A-Za-z_$][\w$]*/g)) out.add(m[0]);
  }
  return out;
}

/**
 * What a table documents and where: `name` and `parent.child` rows by their
 * first cell; a row whose first cell is plain text ("pool options") lists
 * fields as backticked names in its last cell.
 */
function documented(table: Table): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const row of table.rows) {
    const name = /^`([\w$]+(?:\.[\w$]+)?)`$/.exec(row[0]!);
    if (name !== null) {
      out.set(name[1]!, row);
      continue;
    }
    for (const span of spans(row.at(-1)!)) {
      if (/^[A-Za-z_$][\w$]*$/.test(span)) out.set(span, row);
    }
  }
  return out;
}

/** What is wrong between the README and the exported option types. */
function problems(markdown: string, api: Map<string, Declaration>): string[] {
  const found: string[] = [];
  const fields = new Fields(api);
  const all = tables(markdown);
  for (const spec of TABLES) {
    const where = `README "${spec.section}" table "${spec.column}"`;
    const expected = new Map<string, Field>();
    for (const type of spec.types) {
      for (const f of fields.of(type)) {
        if (!expected.has(f.name)) expected.set(f.name, f);
      }
    }
    assert.ok(expected.size > 0, `${spec.types.join(", ")}: no fields`);
    const table = all.find((t) =>
      t.section === spec.section && t.header[0] === spec.column
    );
    if (table === undefined) {
      found.push(`${where} is missing (for ${spec.types.join(", ")})`);
      continue;
    }
    const rows = documented(table);
    for (const f of expected.values()) {
      const row = rows.get(f.name);
      if (row === undefined) {
        found.push(`${where} has no row for ${f.owner}.${f.name}`);
        continue;
      }
      const named = identifiers(row);
      for (const type of f.nested) {
        for (const g of fields.of(type)) {
          if (!named.has(g.name) && !rows.has(`${f.name}.${g.name}`)) {
            found.push(
              `${where}: the ${f.name} row does not name ${type}.${g.name}`,
            );
          }
        }
      }
    }
    for (const [name, row] of rows) {
      const [parent, child] = name.split(".") as [string, string?];
      const f = expected.get(parent);
      const known = f !== undefined &&
        (child === undefined ||
          f.nested.some((type) =>
            fields.of(type).some((g) => g.name === child)
          ));
      if (!known) {
        found.push(
          `${where} documents ${name}, which is not a field of ${
            spec.types.join(" or ")
          }`,
        );
      }
      const d = table.header.indexOf("default");
      if (d >= 0 && (row[d] ?? "") === "") {
        found.push(`${where}: ${name} has no default`);
      }
    }
  }
  for (const name of api.keys()) {
    if (fields.isOptions(name) && !fields.reached.has(name)) {
      found.push(
        `${name} is exported but no README table documents it (add one, and list it in tests/docs_test.ts)`,
      );
    }
  }
  return found;
}

let cached: Promise<Map<string, Declaration>> | undefined;
/** The public API, read once for the file's tests. */
const api = () => cached ??= publicApi();
const readme = () =>
  Deno.readTextFile(new URL("../README.md", import.meta.url));

Deno.test("README: every exported option type's fields have rows in its option table, and every row names a field", async () => {
  assert.deepEqual(problems(await readme(), await api()), []);
});

Deno.test("README docs check: names a deleted row, a nested field missing from its row, and a row for no field", async () => {
  const markdown = await readme();
  // What a change to the README adds to the problems it has already.
  const before = new Set(problems(markdown, await api()));
  const added = async (changed: string) =>
    problems(changed, await api()).filter((p) => !before.has(p));
  const row = markdown.split("\n").find((l) => l.startsWith("| `maxDialing`"));
  assert.ok(row, "the Pool table's maxDialing row");
  assert.deepEqual(await added(markdown.replace(row + "\n", "")), [
    'README "Pools" table "option" has no row for PoolOptions.maxDialing',
  ]);
  // A name nested in a row: the TcpPool heartbeat's ping.
  assert.deepEqual(
    await added(markdown.replace("ping(conn, signal)", "check(conn, signal)")),
    [
      'README "TCP connections" table "option": the heartbeat row does not name TcpHeartbeatOptions.ping',
    ],
  );
  // A row for an option that does not exist.
  assert.deepEqual(
    await added(
      markdown.replace(
        row + "\n",
        row.replace("maxDialing", "maxDailing") + "\n",
      ),
    ),
    [
      'README "Pools" table "option" has no row for PoolOptions.maxDialing',
      'README "Pools" table "option" documents maxDailing, which is not a field of PoolOptions',
    ],
  );
});
