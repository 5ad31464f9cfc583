// The local source: a directory of YAML (or JSON) manifests in the upstream Kubernetes shapes.
// Each file is an origin in the store. A file that does not parse keeps its last good objects;
// an object that does not validate keeps its last good version; everything else applies.
import fs from 'node:fs';
import path from 'node:path';
import { loadAll } from 'js-yaml';
import type { SourceProblem } from '../contract/agent-api.js';
import type { Logger } from '../lib/log.js';
import { resourceKey, type Resource } from '../state/resources.js';
import type { ResourceStore } from '../state/store.js';
import { validateResource } from '../state/validate.js';

const MANIFEST = /\.(ya?ml|json)$/;

interface FileState {
  stamp: string; // mtime and size: re-parse only what changed
}

export class ManifestsDirSource {
  private files = new Map<string, FileState>();
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  /** Per file: each valid object's serialized form, to tell unchanged objects from changed. */
  private fingerprints = new Map<string, Map<string, string>>();
  /** Current problems, by file; cleared when the file is fixed. */
  readonly problems = new Map<string, SourceProblem[]>();

  constructor(
    readonly dir: string,
    private readonly store: ResourceStore,
    private readonly log: Logger,
    private readonly opts: { debounceMs?: number; pollMs?: number } = {},
  ) {}

  /** True once start() has loaded the directory: the store holds its full content. */
  synced = false;

  /** Loads every file once; the store holds the directory's full content when this returns. */
  start(): void {
    if (!fs.statSync(this.dir, { throwIfNoEntry: false })?.isDirectory()) {
      throw new Error(`--source dir:${this.dir}: not a directory`);
    }
    this.scan();
    this.synced = true;
    this.watcher = fs.watch(this.dir, { persistent: true }, () => this.schedule());
    this.watcher.on('error', (err) =>
      this.log.warn('watching manifests failed; polling only', { dir: this.dir, error: err.message }),
    );
    // fs.watch can miss events (editors that rename, network filesystems): a slow poll backs it up.
    this.poll = setInterval(() => this.scan(), this.opts.pollMs ?? 2000);
    this.poll.unref();
  }

  stop(): void {
    this.watcher?.close();
    clearTimeout(this.timer);
    clearInterval(this.poll);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.scan(), this.opts.debounceMs ?? 15);
  }

  private scan(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir).filter((n) => MANIFEST.test(n) && !n.startsWith('.'));
    } catch (err) {
      this.log.error('cannot read manifests directory; keeping last state', {
        dir: this.dir,
        error: (err as Error).message,
      });
      return;
    }
    const present = new Set(names);
    for (const name of [...this.files.keys()]) {
      if (present.has(name)) continue;
      this.files.delete(name);
      this.problems.delete(name);
      this.fingerprints.delete(name);
      this.store.removeOrigin(name);
      this.log.info('manifest file removed', { file: name });
    }
    for (const name of names.sort()) {
      const st = fs.statSync(path.join(this.dir, name), { throwIfNoEntry: false });
      if (!st?.isFile()) continue;
      const stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (this.files.get(name)?.stamp === stamp) continue;
      this.files.set(name, { stamp });
      this.load(name);
    }
  }

  private load(name: string): void {
    const problems: SourceProblem[] = [];
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.dir, name), 'utf8');
    } catch (err) {
      this.report(name, [{ file: name, errors: [(err as Error).message] }]);
      return;
    }
    let docs: unknown[];
    try {
      docs = parseManifests(name, text);
    } catch (err) {
      // We cannot tell which objects the broken text meant: the whole file keeps its last good state.
      this.report(name, [{ file: name, errors: [(err as Error).message.split('\n')[0] ?? 'unparsable'] }]);
      return;
    }
    const previous = this.store.originResources(name);
    const previousPrints = this.fingerprints.get(name);
    const prints = new Map<string, string>();
    const next = new Map<string, Resource>();
    for (const raw of docs) {
      if (raw === null || raw === undefined) continue;
      for (const item of expandList(raw)) {
        const result = validateResource(item);
        const object = describe(item);
        if (result.ok === 'unsupported') {
          this.log.debug('ignoring unsupported kind', { file: name, kind: result.kind });
          continue;
        }
        if (!result.ok) {
          problems.push({ file: name, object, errors: result.errors });
          const last = object ? previous?.get(object) : undefined;
          if (last) next.set(object!, last);
          continue;
        }
        const key = resourceKey(result.value);
        if (next.has(key)) {
          problems.push({ file: name, object: key, errors: ['defined twice in this file; the first wins'] });
          continue;
        }
        // An object whose content did not change keeps its identity, so the compilers know
        // to skip it: an edit to one Service in a file of thousands costs one Service.
        const print = JSON.stringify(result.value);
        prints.set(key, print);
        const kept = previousPrints?.get(key) === print ? previous?.get(key) : undefined;
        next.set(key, kept ?? result.value);
      }
    }
    this.report(name, problems);
    this.fingerprints.set(name, prints);
    this.store.replaceOrigin(name, next.values());
  }

  private report(file: string, problems: SourceProblem[]): void {
    if (problems.length === 0) {
      if (this.problems.delete(file)) this.log.info('manifest file fixed', { file });
      return;
    }
    this.problems.set(file, problems);
    for (const p of problems) {
      for (const error of p.errors) {
        const [field, ...rest] = error.split(': ');
        this.log.error('invalid manifest; its last good state stays in force', {
          file,
          object: p.object,
          field: rest.length ? field : undefined,
          error: rest.length ? rest.join(': ') : error,
        });
      }
    }
  }
}

/** The documents of one file. JSON skips the YAML parser: at 10,000 services the difference is
 *  seconds of agent start. */
function parseManifests(name: string, text: string): unknown[] {
  if (name.endsWith('.json')) {
    try {
      return [JSON.parse(text)];
    } catch (err) {
      throw new Error(`not valid JSON: ${(err as Error).message}`);
    }
  }
  return loadAll(text);
}

function expandList(raw: unknown): unknown[] {
  const o = raw as { kind?: unknown; items?: unknown };
  if (typeof o?.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)) return o.items;
  return [raw];
}

/** kind/namespace/name of a raw object, as far as it can be read. */
function describe(raw: unknown): string | undefined {
  const o = raw as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  if (typeof o?.kind !== 'string' || typeof o.metadata?.name !== 'string') return undefined;
  const ns = typeof o.metadata.namespace === 'string' ? o.metadata.namespace : 'default';
  return `${o.kind}/${ns}/${o.metadata.name}`;
}
