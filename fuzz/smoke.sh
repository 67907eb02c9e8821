#!/usr/bin/env bash
# Short fuzzing smoke run for CI: every target for ${FUZZ_SECONDS:-30} s from the checked-in
# seed corpus (new inputs go to a temporary directory, so the corpus stays as committed).
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer's sanitizer flags are nightly
# features: with nightly installed it is used, else the stable toolchain with
# RUSTC_BOOTSTRAP=1 (this project's machines have only the one toolchain). Exits non-zero
# on the first crash, timeout or leak; the input is left in fuzz/artifacts/<target>/.
# `-a` keeps debug assertions (overflow checks) on in the optimised build: a wrapping
# offset in a parser is a crash here, not a silent wrong read.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz() { cargo +nightly fuzz "$@"; }
else
  fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi
fuzz build -O -a
for target in cache conf elf_image elffile gen_scan remembered slot_cache; do
  mkdir -p "$work/$target"
  echo "fuzz: $target for ${seconds}s"
  fuzz run -O -a "$target" "$work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 2>&1 | tail -n 12
done
