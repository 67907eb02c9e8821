#!/usr/bin/env bash
# Run every benchmark and rewrite BENCHMARKS.md from this run's results (a few minutes).
# Needs what the tests need (gcc, the GL stack: see .ci/run).
set -euo pipefail
cd "$(dirname "$0")"
export MESA_SHADER_CACHE_DISABLE=true
target=${CARGO_TARGET_DIR:-target}

# Only this run's numbers may reach the report.
rm -rf "$target/criterion/call" "$target/criterion/malloc_free" \
  "$target/criterion/free_program_pointer" "$target/capsule-bench" "$target/criterion-i686"

cargo bench -p capsule-benches

# i386: the call and load benches built for i686 (criterion's own directory, so that
# x86_64's figures stay; the load bench writes capsule-bench/i686-unknown-linux-gnu/).
case $target in /*) criterion_i686=$target/criterion-i686 ;; *) criterion_i686=$PWD/$target/criterion-i686 ;; esac
CRITERION_HOME=$criterion_i686 \
  cargo bench --target i686-unknown-linux-gnu -p capsule-benches --bench calls --bench load

# The demo game's figures: the same game linked directly and through the shims, 61 runs
# each, alternating (the start-up's median moves by 0.3 ms between runs of 21); medians in
# demo.tsv.
./demo.sh --bench 61 "$target/capsule-bench/demo.tsv"

# Vulkan through the libvulkan shim against the program linked directly, 21 runs each,
# alternating; medians in vulkan.tsv.
examples/deploy/bench-vulkan.sh 21 "$target/capsule-bench/vulkan.tsv"

cargo run --release --quiet -p capsule-benches --bin report -- "$target" BENCHMARKS.md
