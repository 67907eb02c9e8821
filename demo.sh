#!/usr/bin/env bash
# The demo: an ordinary GL game (examples/game/game.c, linked -lEGL -lGL) rendered through
# capsule's shims, with this machine's root as the host prefix, next to the same game
# linked directly to the real libraries.
#
# Usage: ./demo.sh         (as root, it installs missing Debian packages itself)
# Everything it builds lands in target/demo/; a second run only rebuilds what changed.
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$PWD
OUT=$ROOT/target/demo
LIBS=(libEGL.so.1 libGL.so.1)
PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libegl-dev libgles-dev zlib1g-dev)

step() { printf '==> %s\n' "$*"; }
fail() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}

# ---- 1. the host stack and build tools -------------------------------------------------

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            printf '%s ' "$p"
    done
}

ensure_packages() {
    step "checking Debian packages: ${PACKAGES[*]}"
    command -v dpkg-query >/dev/null || fail "dpkg-query not found: this demo expects Debian 12"
    local missing
    missing=$(missing_packages)
    missing=${missing% }
    [ -z "$missing" ] && return
    if [ "$(id -u)" != 0 ]; then
        fail "missing packages: $missing
run as root: apt-get update && apt-get install -y $missing
(or run ./demo.sh as root, which installs them)"
    fi
    step "installing $missing"
    apt-get update -q
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
}

ensure_tools() {
    command -v cc >/dev/null || fail "no C compiler (cc): apt-get install -y gcc"
    command -v cargo >/dev/null ||
        fail "cargo not found: install the Rust toolchain (https://rustup.rs) and put cargo on PATH"
}

# ---- 2. the shims ----------------------------------------------------------------------

# Checked-in shim crates that are workspace members, built by the workspace; otherwise
# generated with capsule-gen into target/demo/shim-src and built there.
workspace_shims() {
    local lib
    for lib in "${LIBS[@]}"; do
        [ -f "shims/$lib/Cargo.toml" ] || return 1
    done
    grep -q '"shims/' Cargo.toml
}

package_name() {
    sed -n 's/^name = "\(.*\)"$/\1/p' "$1/Cargo.toml" | head -n 1
}

build_shims() {
    local lib dir packages=()
    if workspace_shims; then
        for lib in "${LIBS[@]}"; do packages+=(-p "$(package_name "shims/$lib")"); done
        step "building the shims (workspace members: ${packages[*]})"
        cargo build --release --quiet "${packages[@]}"
        SHIM_DIR=$ROOT/target/release
        return
    fi
    step "building capsule-gen"
    cargo build --quiet -p capsule-gen --bin capsule-gen
    for lib in "${LIBS[@]}"; do
        dir=$OUT/shim-src/$lib
        if [ ! -f "$dir/Cargo.toml" ]; then
            step "generating the $lib shim from the live library"
            "$ROOT/target/debug/capsule-gen" --out "$OUT/shim-src" "$lib" 2>&1 |
                grep -v 'left out of the shim: it has no symbol type' || true
            [ -f "$dir/Cargo.toml" ] || fail "capsule-gen wrote no crate for $lib"
        fi
        # The workspace's lock: the shims get the dependency versions the tests used.
        cp "$ROOT/Cargo.lock" "$dir/Cargo.lock"
        step "building the $lib shim"
        (cd "$dir" && CARGO_TARGET_DIR=$OUT/shim-target cargo build --release --quiet)
    done
    SHIM_DIR=$OUT/shim-target/release
}

# The program asks for libEGL.so.1 at run time: a directory with both link names.
link_shims() {
    local lib name
    mkdir -p "$OUT/lib"
    for lib in "${LIBS[@]}"; do
        name=${lib%.1}
        [ -f "$SHIM_DIR/$name" ] || fail "the shim build made no $SHIM_DIR/$name"
        ln -sf "$SHIM_DIR/$name" "$OUT/lib/$name"
        ln -sf "$SHIM_DIR/$name" "$OUT/lib/$lib"
    done
}

# ---- 3. the game -----------------------------------------------------------------------

build_game() {
    local src=examples/game
    step "building the game: direct (-lEGL -lGL from the system) and shim-linked"
    cc -O2 -Wall -o "$OUT/game-direct" "$src/game.c" -lEGL -lGL -lz -lm -lpthread
    cc -O2 -Wall -o "$OUT/game-capsule" "$src/game.c" -L"$OUT/lib" -Wl,-rpath,"$OUT/lib" \
        -lEGL -lGL -lz -lm -lpthread
    cc -O2 -Wall -shared -fPIC -o "$OUT/namespace_report.so" "$src/namespace_report.c"
}

# Run one build of the game into $OUT/<name>/, output in <name>.out and <name>.err.
run_game() {
    local name=$1
    shift
    rm -rf "${OUT:?}/$name"
    mkdir -p "$OUT/$name"
    env MESA_SHADER_CACHE_DISABLE=true LD_PRELOAD="$OUT/namespace_report.so" "$@" \
        "$OUT/game-$name" "$OUT/$name" >"$OUT/$name.out" 2>"$OUT/$name.err"
}

value() { sed -n "s/^$2: //p" "$OUT/$1.out"; }

objects() {
    local lines
    lines=$(sed -n 's/^namespace-report: //p' "$OUT/$1.err")
    if [ -z "$lines" ]; then
        echo "0 (no secondary namespace)"
    else
        echo "$lines" | paste -sd ';' - | sed 's/;/; /g'
    fi
}

report() {
    local name=$1 title=$2
    printf '%s\n' "$title"
    printf '  PNG:          %s\n' "$(value "$name" png)"
    printf '  renderer:     %s\n' "$(value "$name" renderer)"
    printf '  namespaces:   %s\n' "$(objects "$name")"
    printf '  load time:    %s ms (first EGL call to eglInitialize), %s ms since process start\n' \
        "$(value "$name" load_ms)" "$(value "$name" startup_ms)"
    printf '  frame time:   %s ms (main thread), %s ms (game thread)\n' \
        "$(value "$name" frame_ms)" "$(value "$name" thread_frame_ms)"
}

main() {
    ensure_packages
    ensure_tools
    mkdir -p "$OUT"
    build_shims
    link_shims
    build_game

    step "running the game linked to the real libraries"
    run_game direct || fail "the directly linked game failed (see $OUT/direct.err):
$(tail -n 20 "$OUT/direct.err")"

    step "running the game linked to the shims (host prefix: /)"
    local status=0
    run_game capsule CAPSULE_PREFIX=/ || status=$?

    echo
    report direct "Direct (-lEGL -lGL, real libraries):"
    echo
    if [ "$status" != 0 ]; then
        fail "the shim-linked game failed with status $status; its stderr is $OUT/capsule.err:
$(grep -v -e '^capsule: ' -e '^ ' "$OUT/capsule.err" | tail -n 20)"
    fi
    report capsule "Through capsule (shims, host prefix /):"
    echo
    if cmp -s "$(value direct png)" "$(value capsule png)"; then
        echo "The two images are identical."
    else
        echo "The two images differ: compare $(value direct png) and $(value capsule png)."
    fi
}

main "$@"
