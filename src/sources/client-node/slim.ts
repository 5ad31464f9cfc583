// @kubernetes/client-node loads its whole generated API (every resource's API class and model,
// ~760 modules) as soon as KubeConfig or ListWatch is imported: config.js imports
// './gen/index.js' for two names used only by makeApiClient(), and cache.js imports the
// model serializer to pass selector strings through unchanged. Those sources, their bytecode
// and the classes cost weftd about 40 MB of resident memory and are never used. A resolve hook
// points exactly those two imports, from exactly those two files, at small modules exporting
// what the files use; everything else in the library resolves as before.
import { registerHooks } from 'node:module';

const DIST = '/@kubernetes/client-node/dist/';
/** importing file (under dist/) → specifier it uses → our replacement (next to this file). */
const REDIRECTS: Record<string, Record<string, string>> = {
  'config.js': { './gen/index.js': './gen-index.js' },
  'cache.js': { './serializer.js': './selector-serializer.js' },
};

let registered = false;

/** Registers the hook (once). Must run before the first import of the library's modules. */
export function slimClientNode(): void {
  if (registered) return;
  registered = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const parent = context.parentURL;
      const at = parent?.lastIndexOf(DIST) ?? -1;
      const to = at >= 0 ? REDIRECTS[parent!.slice(at + DIST.length)]?.[specifier] : undefined;
      if (to === undefined) return nextResolve(specifier, context);
      return { url: new URL(to, import.meta.url).href, shortCircuit: true };
    },
  });
}
