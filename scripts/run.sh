#!/usr/bin/env bash
# make run / make stop: the local virtual cluster (see test/demo/cluster.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/node/bin:$PATH"
exec node --enable-source-maps build/js/test/demo/cluster.js "$@"
