// The layering of src/ is a test. Every import between src/'s folders (static, `export … from`,
// dynamic `import('…')`, `typeof import('…')`, a worker's `new URL('./x.js', import.meta.url)`;
// type-only ones too: a type is a dependency) must go down the house's map below, state/ must
// not import a module that does I/O, and no two folders may import each other, even by a
// detour. A failure names the importing file, what it imports and the rule it breaks.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

// The house's map: each folder of src/ and the folders it may import. Read it from the bottom:
//
//   lib → contract → state → datapath/sources → observe → proxy → agent → cli
//
// A folder may import only folders below it, and of those only the ones on its line. Subfolders
// (state/routes/, proxy/h2/) belong to their folder. A new folder goes here first.
const MAP: Readonly<Record<string, readonly string[]>> = {
  cli: ['lib', 'contract', 'state', 'datapath', 'observe'], // the weft command: never agent/ or sources/
  agent: ['lib', 'contract', 'state', 'datapath', 'sources', 'observe', 'proxy'], // weftd: the wiring
  proxy: ['lib', 'contract', 'observe'], // weft-proxy: lives on snapshots, never sees state/
  observe: ['lib', 'contract', 'state', 'datapath'], // flows: decoding, filters, formats
  sources: ['lib', 'contract', 'state'], // Kubernetes objects into the store
  datapath: ['lib', 'contract', 'state'], // the kernel side: converts state's types to map codecs
  state: ['lib', 'contract'], // resources, store, validators, compilers: pure (PURE below)
  contract: ['lib'], // wire contracts between processes: types and their validation
  lib: [], // generic plumbing
};

/** Folders that do no I/O: everything they do is a function of their inputs. */
const PURE: ReadonlySet<string> = new Set(['state']);

/** Modules that reach outside the process (files, network, processes, threads, the kernel, the
 * host): what a pure folder may not import. `node:` prefixes and subpaths are matched. */
const IO_MODULES: ReadonlySet<string> = new Set([
  'fs',
  'fs/promises',
  'net',
  'tls',
  'http',
  'https',
  'http2',
  'dgram',
  'dns',
  'child_process',
  'worker_threads',
  'cluster',
  'os',
  'process',
  'readline',
  'inspector',
  'module',
  'koffi',
  'undici',
  '@kubernetes/client-node',
]);

interface Rules {
  readonly map: Readonly<Record<string, readonly string[]>>;
  readonly pure: ReadonlySet<string>;
  readonly io: ReadonlySet<string>;
}
const RULES: Rules = { map: MAP, pure: PURE, io: IO_MODULES };

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const SRC = path.join(REPO, 'src');

/** One import: of a file (its path relative to src/, `state/store.ts`; `../` when outside), of
 * a module (`node:fs`, `koffi`), or computed (`import(name)`: the checker cannot follow it). */
interface Import {
  readonly kind: 'file' | 'module' | 'computed';
  readonly to: string;
  readonly line: number;
}
/** The import graph: each file of src/ (relative to src/) and what it imports. */
type Graph = ReadonlyMap<string, readonly Import[]>;

interface Specifier {
  /** The module specifier; undefined when computed. */
  readonly spec: string | undefined;
  /** The importing expression's text (the start of it). */
  readonly text: string;
  readonly line: number;
}

/** Every module a TypeScript source depends on, with its line, as the compiler parses it. */
function specifiers(fileName: string, text: string): Specifier[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: Specifier[] = [];
  const add = (node: ts.Node | undefined, at: ts.Node): void => {
    const literal = node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node));
    out.push({
      spec: literal ? node.text : undefined,
      text: at.getText(sf).slice(0, 60),
      line: sf.getLineAndCharacterOfPosition(at.getStart(sf)).line + 1,
    });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || (ts.isExportDeclaration(node) && node.moduleSpecifier)) {
      add(node.moduleSpecifier, node);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], node);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, node);
    } else if (
      ts.isNewExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'URL' &&
      node.arguments?.length === 2 &&
      node.arguments[1]!.getText(sf) === 'import.meta.url' &&
      ts.isStringLiteralLike(node.arguments[0]!) &&
      /\.[cm]?js$/.test(node.arguments[0].text)
    ) {
      // new Worker(new URL('./ring-worker.js', import.meta.url)): a module this one loads.
      add(node.arguments[0], node);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** Reads src/ into a graph. Relative specifiers become paths relative to src/ (`.js` → `.ts`). */
function readGraph(root: string): Graph {
  const graph = new Map<string, Import[]>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const imports = specifiers(p, fs.readFileSync(p, 'utf8')).map(({ spec, text, line }): Import => {
          if (spec === undefined) return { kind: 'computed', to: text, line };
          if (!spec.startsWith('.')) return { kind: 'module', to: spec, line };
          const abs = path.resolve(path.dirname(p), spec);
          const source = abs.replace(/\.([cm]?)js$/, '.$1ts');
          const index = path.join(abs, 'index.ts');
          const target = fs.existsSync(source) ? source : fs.existsSync(index) ? index : abs;
          return { kind: 'file', to: path.relative(root, target), line };
        });
        graph.set(path.relative(root, p), imports);
      }
    }
  };
  walk(root);
  return graph;
}

const folderOf = (file: string): string => (file.includes('/') ? file.slice(0, file.indexOf('/')) : '.');

/** `node:fs/promises` is `fs/promises` and `fs`; `@kubernetes/client-node/dist/watch.js` is
 * `@kubernetes/client-node`. */
function isIo(module: string, io: ReadonlySet<string>): boolean {
  const bare = module.replace(/^node:/, '');
  const parts = bare.split('/');
  return io.has(bare) || io.has(bare.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
}

/** What breaks the map: one line per offending import, then one per folder cycle. */
function check(graph: Graph, rules: Rules): string[] {
  const problems: string[] = [];
  const edges = new Map<string, Map<string, string>>(); // folder → folder → an example import
  for (const [file, imports] of [...graph].sort(([a], [b]) => a.localeCompare(b))) {
    const from = folderOf(file);
    const may = rules.map[from];
    if (!may) {
      problems.push(`src/${file}: src/${from}/ is not on the map (MAP in test/unit/layering.test.ts)`);
      continue;
    }
    for (const { kind, to, line } of imports) {
      const where = `src/${file}:${line}`;
      if (kind === 'computed') {
        problems.push(`${where} → ${to}: a computed import, which the layering cannot check`);
      } else if (kind === 'module') {
        if (rules.pure.has(from) && isIo(to, rules.io)) {
          problems.push(`${where} → ${to}: ${from} is pure, it may not import an I/O module`);
        }
      } else if (to.startsWith('..')) {
        problems.push(`${where} → ${to}: outside src/`);
      } else {
        const target = folderOf(to);
        if (target === from) continue;
        let out = edges.get(from);
        if (!out) edges.set(from, (out = new Map()));
        if (!out.has(target)) out.set(target, `src/${file} → src/${to}`);
        if (!may.includes(target)) {
          const allowed = may.length ? may.join(', ') : 'nothing of ours';
          problems.push(`${where} → src/${to}: ${from} may import ${allowed}`);
        }
      }
    }
  }
  for (const cycle of folderCycles(edges)) {
    const steps = cycle.slice(0, -1).map((f, i) => edges.get(f)!.get(cycle[i + 1]!)!);
    problems.push(`folder cycle ${cycle.join(' → ')}: ${steps.join('; ')}`);
  }
  return problems;
}

/** The folder cycles: for each import from one folder to another that leads back to it, the
 * shortest way back. Each cycle once, starting at its first folder by name. */
function folderCycles(edges: ReadonlyMap<string, ReadonlyMap<string, string>>): string[][] {
  const next = (v: string): string[] => [...(edges.get(v)?.keys() ?? [])].sort();
  /** The shortest path from `from` to `to`, both included (breadth first); undefined if none. */
  const way = (from: string, to: string): string[] | undefined => {
    const prev = new Map<string, string>([[from, from]]);
    const queue = [from];
    while (queue.length) {
      const v = queue.shift()!;
      if (v === to) {
        const path = [to];
        for (let at = to; at !== from; at = prev.get(at)!) path.unshift(prev.get(at)!);
        return path;
      }
      for (const w of next(v)) {
        if (prev.has(w)) continue;
        prev.set(w, v);
        queue.push(w);
      }
    }
    return undefined;
  };
  const cycles = new Map<string, string[]>();
  for (const v of [...edges.keys()].sort()) {
    for (const w of next(v)) {
      const back = way(w, v);
      if (!back) continue;
      const ring = [v, ...back.slice(0, -1)];
      const first = ring.indexOf([...ring].sort()[0]!);
      const cycle = [...ring.slice(first), ...ring.slice(0, first)];
      cycles.set(cycle.join(' '), [...cycle, cycle[0]!]);
    }
  }
  return [...cycles].sort(([a], [b]) => a.localeCompare(b)).map(([, cycle]) => cycle);
}

describe('layering', () => {
  it('src/ imports only down the map, state/ does no I/O, and no folders import each other', () => {
    const graph = readGraph(SRC);
    assert.ok(graph.size > 50, `read ${graph.size} files under ${SRC}`);
    const problems = check(graph, RULES);
    if (problems.length) assert.fail(`${problems.length} problems with the layering:\n${problems.join('\n')}`);
  });

  it('the map points down and names every folder of src/', () => {
    const edges = new Map(
      Object.entries(MAP).map(([f, may]) => [f, new Map(may.map((t) => [t, `${f} may import ${t}`]))]),
    );
    assert.deepEqual(folderCycles(edges), []);
    for (const [f, may] of Object.entries(MAP))
      for (const t of may) assert.ok(t in MAP, `${f} may import ${t}: not a folder`);
    for (const e of fs.readdirSync(SRC, { withFileTypes: true })) {
      if (e.isDirectory()) assert.ok(e.name in MAP, `src/${e.name}/ is not on the map`);
    }
  });

  it('finds every kind of import, multi-line and type-only ones included', () => {
    const text = [
      "import a from './a.js';",
      'import {',
      '  b1,',
      '  type b2,',
      "} from '../b/b.js';",
      "import type { C } from './c.js';",
      "export { d } from './d.js';",
      "export * from './e.js';",
      "export type { F } from './f.js';",
      "import './g.js';",
      "const h = await import('./h.js');",
      "let i: typeof import('./i.js') | undefined;",
      "const j = new Worker(new URL('./j.js', import.meta.url));",
      "import k = require('./k.js');",
      "const notImport = './z.js'; // a string is not an import",
      'const l = await import(name);',
      "import fs from 'node:fs';",
    ].join('\n');
    assert.deepEqual(
      specifiers('x.ts', text).map((s) => `${s.line} ${s.spec ?? `computed: ${s.text}`}`),
      [
        '1 ./a.js',
        '2 ../b/b.js',
        '6 ./c.js',
        '7 ./d.js',
        '8 ./e.js',
        '9 ./f.js',
        '10 ./g.js',
        '11 ./h.js',
        '12 ./i.js',
        '13 ./j.js',
        '14 ./k.js',
        '16 computed: import(name)',
        '17 node:fs',
      ],
    );
  });

  it('catches an import up the map, I/O in a pure folder, an unknown folder and a folder cycle', () => {
    // A small house: low ← mid ← top, and side beside mid; low is pure.
    const rules: Rules = {
      map: { top: ['mid', 'side', 'low'], mid: ['low'], side: ['low'], low: [] },
      pure: new Set(['low']),
      io: new Set(['fs', '@k8s/client']),
    };
    const file = (to: string, line: number): Import => ({ kind: 'file', to, line });
    const module = (to: string, line: number): Import => ({ kind: 'module', to, line });
    const graph: Graph = new Map<string, Import[]>([
      ['top/main.ts', [file('mid/a.ts', 1), file('side/s.ts', 2), module('node:net', 3)]],
      ['mid/a.ts', [file('low/l.ts', 1), file('mid/b.ts', 2), file('side/s.ts', 3)]],
      ['mid/b.ts', [file('low/l.ts', 1)]],
      ['side/s.ts', [file('mid/a.ts', 4), { kind: 'computed', to: 'import(name)', line: 5 }]],
      ['low/l.ts', [module('node:events', 1), module('node:fs/promises', 2), module('@k8s/client/x.js', 3)]],
      ['low/m.ts', [file('top/main.ts', 7), file('../bpf/x', 8)]],
      ['new/n.ts', []],
    ]);
    assert.deepEqual(check(graph, rules), [
      'src/low/l.ts:2 → node:fs/promises: low is pure, it may not import an I/O module',
      'src/low/l.ts:3 → @k8s/client/x.js: low is pure, it may not import an I/O module',
      'src/low/m.ts:7 → src/top/main.ts: low may import nothing of ours',
      'src/low/m.ts:8 → ../bpf/x: outside src/',
      'src/mid/a.ts:3 → src/side/s.ts: mid may import low',
      'src/new/n.ts: src/new/ is not on the map (MAP in test/unit/layering.test.ts)',
      'src/side/s.ts:4 → src/mid/a.ts: side may import low',
      'src/side/s.ts:5 → import(name): a computed import, which the layering cannot check',
      'folder cycle low → top → mid → low: src/low/m.ts → src/top/main.ts; src/top/main.ts → src/mid/a.ts;' +
        ' src/mid/a.ts → src/low/l.ts',
      'folder cycle low → top → side → mid → low: src/low/m.ts → src/top/main.ts;' +
        ' src/top/main.ts → src/side/s.ts; src/side/s.ts → src/mid/a.ts; src/mid/a.ts → src/low/l.ts',
      'folder cycle mid → side → mid: src/mid/a.ts → src/side/s.ts; src/side/s.ts → src/mid/a.ts',
    ]);
    // And the same house with the wrong imports taken out passes.
    const good: Graph = new Map<string, Import[]>([
      ['top/main.ts', [file('mid/a.ts', 1), file('side/s.ts', 2), module('node:net', 3)]],
      ['mid/a.ts', [file('low/l.ts', 1), file('mid/b.ts', 2)]],
      ['side/s.ts', [file('low/l.ts', 1)]],
      ['low/l.ts', [module('node:events', 1)]],
    ]);
    assert.deepEqual(check(good, rules), []);
  });
});
