// What @kubernetes/client-node's config.js imports from './gen/index.js' (see slim.ts), without
// the rest of the generated API that module re-exports.
export { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
