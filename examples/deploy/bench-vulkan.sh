#!/usr/bin/env bash
# Vulkan instance+device creation and the fill+copy work (examples/deploy/vulkan_copy.c),
# linked directly against the system's libvulkan and through the libvulkan shim (host
# prefix /), outside any sandbox, both pinned to one CPU. Runs alternate; prints the
# median of each measurement.
# Usage: examples/deploy/bench-vulkan.sh [RUNS [FILE]]   (default 15 runs; FILE gets the
# medians as KEY=VALUE fields, for ./bench.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-15}
FILE=${2:-}
OUT=target/bench-vulkan
SHIM=target/release/libvulkan.so
cargo build --release --quiet -p shim-libvulkan-so-1
mkdir -p "$OUT/lib"
ln -sf "$PWD/$SHIM" "$OUT/lib/libvulkan.so"
ln -sf "$PWD/$SHIM" "$OUT/lib/libvulkan.so.1"
cc -O2 -o "$OUT/direct" examples/deploy/vulkan_copy.c -lvulkan
cc -O2 -o "$OUT/capsule" examples/deploy/vulkan_copy.c -L"$OUT/lib" -Wl,-rpath,"$PWD/$OUT/lib" -lvulkan
rm -f "$OUT"/run.*
# Both programs run on one CPU: on a machine of two, where lavapipe's threads wake up
# decides a submission's time (about 20 or 50 us, either way in either program), which
# would otherwise outweigh what is measured.
pin=()
if command -v taskset >/dev/null; then
    pin=(taskset -c "$(taskset -pc $$ | sed 's/.*: //; s/[,-].*//')")
else
    echo "bench-vulkan: taskset (util-linux) missing: running unpinned, expect noise" >&2
fi
for i in $(seq "$RUNS"); do
    for b in direct capsule; do
        start=$(date +%s%N)
        CAPSULE_PREFIX=/ "${pin[@]}" "$OUT/$b" >"$OUT/run.$b.$i"
        end=$(date +%s%N)
        echo "process_ms=$(((end - start) / 1000000))" >>"$OUT/run.$b.$i"
    done
done
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
fields="runs=$RUNS"
for key in instance_device_ms work_ms repeat_ms process_ms; do
    d=$(cat "$OUT"/run.direct.* | sed -n "s/^$key=//p" | median)
    c=$(cat "$OUT"/run.capsule.* | sed -n "s/^$key=//p" | median)
    awk -v k="$key" -v d="$d" -v c="$c" 'BEGIN {printf "%-20s direct %9.3f  capsule %9.3f  ratio %.2fx\n", k, d, c, c / d}'
    fields="$fields	direct_$key=$d	capsule_$key=$c"
done
if [ -n "$FILE" ]; then
    mkdir -p "$(dirname "$FILE")"
    echo "$fields" >"$FILE"
fi
