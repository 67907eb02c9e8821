#!/usr/bin/env bash
# The real deployment in one command: the game (examples/game) and a Vulkan program
# (examples/deploy/vulkan_copy.c) run inside a container runtime that has no graphics
# driver, with the host's root mounted at /run/host, as Steam's pressure-vessel or
# Flatpak run games. Linked directly they find no driver; linked to capsule's shims they
# take the host's whole driver stack from /run/host, in a capsule.
#
# The "runtime" is this machine's root, read-only, with its graphics driver hidden by
# bubblewrap: tmpfs over the vendor/ICD/DRI directories, the driver libraries bound over
# by an empty file. The real root is bound read-only at /run/host.
#
# Usage: ./demo-sandbox.sh   (as root, it installs missing Debian packages itself)
# Everything it builds lands in target/demo-sandbox/.
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$PWD
OUT=$ROOT/target/demo-sandbox
HOST=/run/host
LIBDIR=/usr/lib/x86_64-linux-gnu
PACKAGES=(bubblewrap libegl1 libegl-mesa0 libgl1-mesa-dri libegl-dev libgles-dev zlib1g-dev
    libvulkan1 mesa-vulkan-drivers libvulkan-dev libx11-dev)
# shim crate directory : soname : built file
SHIMS=(libEGL.so.1:libEGL.so libGL.so.1:libGL.so libvulkan.so.1:libvulkan.so)

step() { printf '==> %s\n' "$*"; }
fail() {
    printf 'demo-sandbox: %s\n' "$*" >&2
    exit 1
}

ensure_packages() {
    local p missing=()
    command -v dpkg-query >/dev/null || fail "dpkg-query not found: this demo expects Debian 12"
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return
    [ "$(id -u)" = 0 ] || fail "missing packages: ${missing[*]}
run as root: apt-get update && apt-get install -y ${missing[*]}"
    step "installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

package_name() { sed -n 's/^name = "\(.*\)"$/\1/p' "$1/Cargo.toml" | head -n 1; }

build_shims() {
    local entry lib packages=()
    command -v cargo >/dev/null || fail "cargo not found: install the Rust toolchain"
    for entry in "${SHIMS[@]}"; do
        lib=${entry%%:*}
        [ -f "shims/$lib/Cargo.toml" ] || fail "shims/$lib is missing: this checkout has no $lib shim"
        packages+=(-p "$(package_name "shims/$lib")")
    done
    step "building the shims (${packages[*]})"
    cargo build --release --quiet "${packages[@]}"
    mkdir -p "$OUT/lib"
    for entry in "${SHIMS[@]}"; do
        lib=${entry%%:*}
        ln -sf "$ROOT/target/release/${entry##*:}" "$OUT/lib/${entry##*:}"
        ln -sf "$ROOT/target/release/${entry##*:}" "$OUT/lib/$lib"
    done
}

build_programs() {
    command -v cc >/dev/null || fail "no C compiler (cc): apt-get install -y gcc"
    step "building the game and the Vulkan program, each linked directly and to the shims"
    local game=examples/game/game.c vk=examples/deploy/vulkan_copy.c
    local shims=(-L"$OUT/lib" -Wl,-rpath,"$OUT/lib")
    cc -O2 -o "$OUT/game-direct" "$game" -lEGL -lGL -lX11 -lz -lm -lpthread
    cc -O2 -o "$OUT/game-capsule" "$game" "${shims[@]}" -lEGL -lGL -lX11 -lz -lm -lpthread
    cc -O2 -o "$OUT/vulkan-direct" "$vk" -lvulkan
    cc -O2 -o "$OUT/vulkan-capsule" "$vk" "${shims[@]}" -lvulkan
}

# The sandbox: bwrap arguments, then the command.
sandbox() {
    local args=(--ro-bind / / --dev /dev --proc /proc --tmpfs /run --ro-bind / "$HOST")
    local dir lib
    for dir in /usr/share/glvnd /usr/share/vulkan /etc/glvnd /etc/vulkan "$LIBDIR/dri"; do
        [ -d "$dir" ] && args+=(--tmpfs "$dir")
    done
    : >"$OUT/empty-driver"
    for lib in "$LIBDIR"/libEGL_mesa.so* "$LIBDIR"/libGLX_mesa.so* "$LIBDIR"/libvulkan_*.so \
        "$LIBDIR"/libVkLayer_*.so "$LIBDIR"/libgbm.so*; do
        [ -e "$lib" ] && args+=(--ro-bind "$OUT/empty-driver" "$(readlink -f "$lib")")
    done
    # Where the game writes its pictures.
    args+=(--bind "$OUT/run" "$OUT/run")
    bwrap "${args[@]}" --die-with-parent -- "$@"
}

run_in_sandbox() {
    local name=$1
    shift
    mkdir -p "$OUT/run/$name"
    sandbox env MESA_SHADER_CACHE_DISABLE=true CAPSULE_PREFIX="$HOST" "$@" \
        >"$OUT/run/$name.out" 2>"$OUT/run/$name.err"
}

value() { sed -n "s/^$2: //p" "$OUT/run/$1.out"; }

main() {
    ensure_packages
    command -v bwrap >/dev/null || fail "bwrap not found: apt-get install -y bubblewrap"
    rm -rf "$OUT/run"
    mkdir -p "$OUT/run"
    build_shims
    build_programs

    step "in the sandbox, linked directly (the runtime has no driver: this must fail)"
    if run_in_sandbox game-direct "$OUT/game-direct" "$OUT/run/game-direct"; then
        fail "the directly linked game rendered inside the sandbox: the driver is not hidden"
    fi
    printf '  game:   %s\n' "$(tail -n 1 "$OUT/run/game-direct.out" "$OUT/run/game-direct.err" | grep -v '^==>' | grep . | tail -n 1)"
    if run_in_sandbox vulkan-direct "$OUT/vulkan-direct"; then
        fail "the directly linked Vulkan program worked inside the sandbox: the driver is not hidden"
    fi
    printf '  vulkan: %s\n' "$(tail -n 1 "$OUT/run/vulkan-direct.out")"

    step "in the sandbox, linked to the shims (CAPSULE_PREFIX=$HOST)"
    run_in_sandbox game-capsule CAPSULE_DEBUG=libs,dlopen "$OUT/game-capsule" "$OUT/run/game-capsule" ||
        fail "the shim-linked game failed in the sandbox; see $OUT/run/game-capsule.err:
$(grep -v '^capsule: ' "$OUT/run/game-capsule.err" | tail -n 20)"
    run_in_sandbox vulkan-capsule CAPSULE_DEBUG=libs,dlopen "$OUT/vulkan-capsule" ||
        fail "the shim-linked Vulkan program failed in the sandbox; see $OUT/run/vulkan-capsule.err:
$(grep -v '^capsule: ' "$OUT/run/vulkan-capsule.err" | tail -n 20)"
    printf '  game:   renderer %s, picture %s\n' "$(value game-capsule renderer)" "$(value game-capsule png)"
    printf '  vulkan: %s\n' "$(tr '\n' ' ' <"$OUT/run/vulkan-capsule.out")"

    step "outside the sandbox, the game linked directly, for comparison"
    mkdir -p "$OUT/run/game-outside"
    env MESA_SHADER_CACHE_DISABLE=true "$OUT/game-direct" "$OUT/run/game-outside" \
        >"$OUT/run/game-outside.out" 2>"$OUT/run/game-outside.err" ||
        fail "the directly linked game failed even outside the sandbox; see $OUT/run/game-outside.err"
    if cmp -s "$(value game-outside png)" "$(value game-capsule png)"; then
        echo "  the sandboxed capsule's picture is identical to the direct one outside"
    else
        fail "the pictures differ: compare $(value game-outside png) and $(value game-capsule png)"
    fi

    echo
    echo "What the capsules took from $HOST instead of the runtime (CAPSULE_DEBUG=libs,dlopen):"
    cat "$OUT/run/game-capsule.err" "$OUT/run/vulkan-capsule.err" |
        sed -n -e 's/^capsule: namespace environment: \([^=]*=[^ ]*\).*/  environment  \1/p' \
            -e 's/^capsule: dlopen path \([^ ]*\) -> \([^ ]*\).*/  dlopen       \1 -> \2/p' |
        sort -u
    echo
    echo "Logs: $OUT/run/*.err"
}

main "$@"
