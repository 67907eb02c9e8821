#!/usr/bin/env bash
# Short fuzzing smoke run for CI: every target for ${FUZZ_SECONDS:-30} s from the checked-in
# seed corpus (new inputs go to a temporary directory, so the corpus stays as committed).
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Exits non-zero on
# the first crash, timeout or leak; the input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo +nightly fuzz build -O
for target in cache conf elf_image gen_scan; do
  mkdir -p "$work/$target"
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run -O "$target" "$work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 2>&1 | tail -n 12
done
