#!/usr/bin/env bash
# The project's test command: every unit and integration test of the workspace.
set -euo pipefail
cd "$(dirname "$0")"
export MESA_SHADER_CACHE_DISABLE=true
# The runtime's cache directory (interposer image, remembered closures) of this run only,
# so that no test reads what an earlier run left, and the user's cache gets nothing.
CAPSULE_CACHE_DIR=$(mktemp -d)
export CAPSULE_CACHE_DIR
trap 'rm -rf "$CAPSULE_CACHE_DIR"' EXIT
cargo test --workspace --no-fail-fast "$@"
