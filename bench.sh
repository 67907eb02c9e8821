#!/usr/bin/env bash
# Run every benchmark and rewrite BENCHMARKS.md from this run's results (a few minutes).
# Needs what the tests need (gcc, the GL stack: see .ci/run).
set -euo pipefail
cd "$(dirname "$0")"
export MESA_SHADER_CACHE_DISABLE=true
target=${CARGO_TARGET_DIR:-target}

# Only this run's numbers may reach the report.
rm -rf "$target/criterion/call" "$target/criterion/malloc_free" \
  "$target/criterion/free_program_pointer" "$target/capsule-bench"

cargo bench -p capsule-benches

# LEAD: the demo game's figures (first eglInitialize, per-frame time, capsule vs direct)
# go here, writing target/capsule-bench/demo.tsv for the report to read.

cargo run --release --quiet -p capsule-benches --bin report -- "$target" BENCHMARKS.md
