#!/usr/bin/env bash
# The project's test command: every unit and integration test of the workspace.
set -euo pipefail
cd "$(dirname "$0")"
export MESA_SHADER_CACHE_DISABLE=true
exec cargo test --workspace --no-fail-fast "$@"
