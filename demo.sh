#!/usr/bin/env bash
# The demo: an ordinary GL game (examples/game/game.c, linked -lEGL -lGL) rendered through
# capsule's shims, with this machine's root as the host prefix, next to the same game
# linked directly to the real libraries. The game ships its own libz.so.1 (its "runtime",
# examples/game/runtime), which the host's GL stack cannot use: through capsule each side
# gets its own copy; linked directly, the host's driver gets the game's and fails to load.
# Then both games again in an X11 window, on a private Xvfb display the demo starts, each
# writing a screenshot of its window. Last, the same game as a 32-bit (i386) program,
# built with `gcc -m32`, linked directly and through the i386 shims (shims/i386), with its
# own 32-bit libz: it must render the 64-bit game's image.
#
# Usage: ./demo.sh                  (as root, it installs missing Debian packages itself)
#        ./demo.sh --bench RUNS FILE  (build, then run each game RUNS times, alternating,
#                                      and write the medians to FILE for ./bench.sh)
# Everything it builds lands in target/demo/; a second run only rebuilds what changed.
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
OUT=$TARGET/demo
LIBS=(libEGL.so.1 libGL.so.1)
PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libegl-dev libgles-dev zlib1g-dev libx11-dev xvfb)
# The 32-bit game: Debian's i386 GL stack and a compiler that builds for it.
PACKAGES_I386=(gcc-multilib libc6-dev:i386 libegl1:i386 libegl-mesa0:i386 libgl1-mesa-dri:i386
    libgl1:i386 libx11-6:i386 zlib1g-dev:i386)
TARGET_I386=i686-unknown-linux-gnu

step() { printf '==> %s\n' "$*"; }
fail() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}

# ---- 1. the host stack and build tools -------------------------------------------------

missing_packages() {
    local p
    for p in "${PACKAGES[@]}" "${PACKAGES_I386[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            printf '%s ' "$p"
    done
}

ensure_packages() {
    step "checking Debian packages: ${PACKAGES[*]} ${PACKAGES_I386[*]}"
    command -v dpkg-query >/dev/null || fail "dpkg-query not found: this demo expects Debian 12"
    local missing
    missing=$(missing_packages)
    missing=${missing% }
    [ -z "$missing" ] && return
    if [ "$(id -u)" != 0 ]; then
        fail "missing packages: $missing
run as root: dpkg --add-architecture i386 && apt-get update && apt-get install -y $missing
(or run ./demo.sh as root, which installs them)"
    fi
    step "installing $missing"
    dpkg --print-foreign-architectures | grep -qx i386 || dpkg --add-architecture i386
    apt-get update -q
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
}

ensure_tools() {
    command -v cc >/dev/null || fail "no C compiler (cc): apt-get install -y gcc"
    command -v Xvfb >/dev/null || fail "Xvfb not found: apt-get install -y xvfb"
    command -v cargo >/dev/null ||
        fail "cargo not found: install the Rust toolchain (https://rustup.rs) and put cargo on PATH"
    rustc --print target-libdir --target "$TARGET_I386" >/dev/null 2>&1 &&
        [ -d "$(rustc --print target-libdir --target "$TARGET_I386")" ] ||
        fail "the Rust standard library for $TARGET_I386 is missing: rustup target add $TARGET_I386"
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
        SHIM_DIR=$TARGET/release
        return
    fi
    step "building capsule-gen"
    cargo build --quiet -p capsule-gen --bin capsule-gen
    for lib in "${LIBS[@]}"; do
        dir=$OUT/shim-src/$lib
        if [ ! -f "$dir/Cargo.toml" ]; then
            step "generating the $lib shim from the live library"
            "$TARGET/debug/capsule-gen" --out "$OUT/shim-src" "$lib" 2>&1 |
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

# The i386 shims: the checked-in crates of shims/i386, a workspace of their own, built
# for i686 in the same target directory.
build_shims_i386() {
    local lib packages=()
    for lib in "${LIBS[@]}"; do packages+=(-p "$(package_name "shims/i386/$lib")"); done
    step "building the i386 shims (shims/i386: ${packages[*]})"
    (cd shims/i386 && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet \
        --target "$TARGET_I386" "${packages[@]}")
    SHIM_DIR_I386=$TARGET/$TARGET_I386/release
}

# The program asks for libEGL.so.1 at run time: a directory with both link names.
# link_shims SHIM_DIR LIB_DIR
link_shims() {
    local lib name from=$1 into=$2
    mkdir -p "$into"
    for lib in "${LIBS[@]}"; do
        name=${lib%.1}
        [ -f "$from/$name" ] || fail "the shim build made no $from/$name"
        ln -sf "$from/$name" "$into/$name"
        ln -sf "$from/$name" "$into/$lib"
    done
}

# ---- 3. the game -----------------------------------------------------------------------

# The game's runtime: its own libz.so.1, built differently from the host's.
build_runtime() {
    local src=examples/game/runtime
    step "building the game's runtime: its own libz.so.1 ($src), 64-bit and 32-bit"
    mkdir -p "$OUT/runtime" "$OUT/runtime32"
    cc -O2 -Wall -shared -fPIC -Wl,-soname,libz.so.1 -Wl,--version-script="$src/zlib.map" \
        -o "$OUT/runtime/libz.so.1" "$src/zlib.c"
    cc -m32 -O2 -Wall -shared -fPIC -Wl,-soname,libz.so.1 -Wl,--version-script="$src/zlib.map" \
        -o "$OUT/runtime32/libz.so.1" "$src/zlib.c"
}

# Both builds compile against the system's zlib.h and link its libz.so; at run time the
# shim-linked game finds its runtime's libz.so.1 first, through its RUNPATH.
build_game() {
    local src=examples/game
    step "building the game: direct (-lEGL -lGL from the system) and shim-linked"
    cc -O2 -Wall -o "$OUT/game-direct" "$src/game.c" -lEGL -lGL -lX11 -lz -lm -lpthread
    cc -O2 -Wall -o "$OUT/game-capsule" "$src/game.c" -L"$OUT/lib" \
        -Wl,-rpath,"$OUT/lib:$OUT/runtime" -lEGL -lGL -lX11 -lz -lm -lpthread
    cc -O2 -Wall -shared -fPIC -o "$OUT/namespace_report.so" "$src/namespace_report.c"
    cc -O2 -Wall -o "$OUT/exec_timed" "$src/exec_timed.c"
    # i386: Debian's :i386 packages install no link names (libEGL.so), so the real
    # libraries are named by soname; the shims' directory has both.
    step "building the 32-bit game (gcc -m32): direct and linked to the i386 shims"
    cc -m32 -O2 -Wall -o "$OUT/game-direct32" "$src/game.c" -l:libEGL.so.1 -l:libGL.so.1 \
        -l:libX11.so.6 -lz -lm -lpthread
    cc -m32 -O2 -Wall -o "$OUT/game-capsule32" "$src/game.c" -L"$OUT/lib32" \
        -Wl,-rpath,"$OUT/lib32:$OUT/runtime32" -lEGL -lGL -l:libX11.so.6 -lz -lm -lpthread
    cc -m32 -O2 -Wall -shared -fPIC -o "$OUT/namespace_report32.so" "$src/namespace_report.c"
    cc -m32 -O2 -Wall -o "$OUT/exec_timed32" "$src/exec_timed.c"
}

# Run one build of the game (game-<build>) as <name>, into $OUT/<name>/, output in
# <name>.out and <name>.err: run_game NAME BUILD [--window] [VAR=value...]
run_game() {
    local name=$1 build=$2 flags=()
    shift 2
    if [ "${1:-}" = --window ]; then
        flags=(--window)
        shift
    fi
    rm -rf "${OUT:?}/$name"
    mkdir -p "$OUT/$name"
    # exec_timed: the game's startup_ms counts from its execve, to the microsecond.
    local report=$OUT/namespace_report.so exec_timed=$OUT/exec_timed
    case $build in *32) report=$OUT/namespace_report32.so exec_timed=$OUT/exec_timed32 ;; esac
    env MESA_SHADER_CACHE_DISABLE=true LD_PRELOAD="$report" "$@" \
        "$exec_timed" "$OUT/game-$build" "${flags[@]}" "$OUT/$name" >"$OUT/$name.out" 2>"$OUT/$name.err"
}

value() { sed -n "s/^$2: //p" "$OUT/$1.out"; }

objects() {
    local lines
    lines=$(sed -n 's/^namespace-report: \(.* objects .*\)/\1/p' "$OUT/$1.err")
    if [ -z "$lines" ]; then
        echo "0 (no secondary namespace)"
    else
        echo "$lines" | paste -sd ';' - | sed 's/;/; /g'
    fi
}

# The libz copies the namespace report found in the capsule's namespaces (not the game's).
zlibs() {
    sed -n 's/^namespace-report: namespace \([1-9][0-9]*\): libz \(.*\)$/\1\t\2/p' \
        "$OUT/$1.err" | while IFS=$'\t' read -r lmid copy; do
        printf '                the host GL stack (namespace %s): %s\n' "$lmid" "$copy"
    done
}

report() {
    local name=$1 title=$2
    printf '%s\n' "$title"
    printf '  PNG:          %s\n' "$(value "$name" png)"
    printf '  renderer:     %s\n' "$(value "$name" renderer)"
    printf '  namespaces:   %s\n' "$(objects "$name")"
    printf '  zlib:         the game: %s\n' "$(value "$name" zlib)"
    zlibs "$name"
    printf '  load time:    %s ms (first EGL call to eglInitialize), %s ms since its execve\n' \
        "$(value "$name" load_ms)" "$(value "$name" startup_ms)"
    printf '  frame time:   %s ms (main thread), %s ms (game thread), medians after 8 frames\n' \
        "$(value "$name" frame_ms)" "$(value "$name" thread_frame_ms)"
}

# The game linked directly to the real GL libraries, its runtime's libz first in its path,
# as a game with a pinned runtime runs without capsule. Expected to fail: prints why.
show_clash() {
    step "running the directly linked game with its runtime's libz first (no capsule)"
    if run_game clash direct LD_LIBRARY_PATH="$OUT/runtime" LD_DEBUG=libs; then
        echo "Without capsule: the game ran, and the host GL stack shared the game's libz: $(
            sed -n 's/^namespace-report: namespace 0: libz //p' "$OUT/clash.err")"
        return
    fi
    echo "Without capsule (the same game linked directly, its runtime's libz.so.1 first):"
    printf '  the only libz: %s\n' \
        "$(sed -n 's/^namespace-report: namespace 0: libz //p' "$OUT/clash.err")"
    printf '  so the driver: %s\n' "$(grep -m 1 -o 'error: .*' "$OUT/clash.err" ||
        echo "(no loader error; see $OUT/clash.err)")"
    printf '  and the game:  %s\n' "$(grep -m 1 '^game: ' "$OUT/clash.err" ||
        echo "(see $OUT/clash.err)")"
}

# Run one machine's directly linked and shim-linked builds, and report both; fails (after
# the direct report) when the shim-linked build failed:
# run_both DIRECT CAPSULE WHAT DIRECT_TITLE CAPSULE_TITLE
run_both() {
    local direct=$1 capsule=$2 what=${3:+$3 } status=0
    step "running the ${what}game linked to the real libraries"
    run_game "$direct" "$direct" || fail "the directly linked ${what}game failed (see $OUT/$direct.err):
$(tail -n 20 "$OUT/$direct.err")"
    step "running the ${what}game linked to the shims (host prefix: /)"
    run_game "$capsule" "$capsule" CAPSULE_PREFIX=/ || status=$?
    echo
    report "$direct" "$4"
    echo
    if [ "$status" != 0 ]; then
        fail "the ${what}shim-linked game failed with status $status; its stderr is $OUT/$capsule.err:
$(grep -v -e '^capsule: ' -e '^ ' "$OUT/$capsule.err" | tail -n 20)"
    fi
    report "$capsule" "$5"
    echo
}

# ---- 4. the windowed game --------------------------------------------------------------

# A private X display, never the user's: Xvfb on the first free display number from :90,
# ready once its socket exists; stopped when the demo exits.
XVFB_PID=
XVFB_DISPLAY=
start_xvfb() {
    local n
    for n in $(seq 90 189); do
        [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] && continue
        Xvfb ":$n" -screen 0 640x480x24 -nolisten tcp >"$OUT/xvfb.log" 2>&1 &
        XVFB_PID=$!
        trap stop_xvfb EXIT
        for _ in $(seq 200); do
            if [ -S "/tmp/.X11-unix/X$n" ]; then
                XVFB_DISPLAY=:$n
                return
            fi
            # Another server took the number first: Xvfb exited; try the next one.
            kill -0 "$XVFB_PID" 2>/dev/null || break
            sleep 0.1
        done
        stop_xvfb
    done
    fail "could not start Xvfb (last log: $OUT/xvfb.log)"
}

stop_xvfb() {
    [ -n "$XVFB_PID" ] || return 0
    kill "$XVFB_PID" 2>/dev/null || true
    wait "$XVFB_PID" 2>/dev/null || true
    XVFB_PID=
}

# Both games in an X11 window; each PNG is read back from its window. Returns 1 when the
# shim-linked game failed (after reporting it).
show_windows() {
    step "starting a private X display (Xvfb)"
    start_xvfb
    step "running both games in an X11 window on $XVFB_DISPLAY"
    run_game window-direct direct --window DISPLAY="$XVFB_DISPLAY" ||
        fail "the directly linked game failed in a window (see $OUT/window-direct.err):
$(tail -n 20 "$OUT/window-direct.err")"
    local status=0
    run_game window-capsule capsule --window DISPLAY="$XVFB_DISPLAY" CAPSULE_PREFIX=/ ||
        status=$?
    stop_xvfb
    echo
    echo "In an X11 window (Xvfb $XVFB_DISPLAY), screenshots read back from the window:"
    printf '  direct:       %s (%s)\n' "$(value window-direct png)" "$(value window-direct renderer)"
    if [ "$status" != 0 ]; then
        printf '  capsule:      failed with status %s: %s\n' "$status" \
            "$(grep -v -e '^capsule: ' -e '^ ' -e '^namespace-report: ' "$OUT/window-capsule.err" |
                tail -n 1)"
        echo "  (its stderr: $OUT/window-capsule.err)"
        return 1
    fi
    printf '  capsule:      %s (%s)\n' "$(value window-capsule png)" "$(value window-capsule renderer)"
    # Mesa's own warnings show a window system the capsule does not share yet.
    grep -e '^libEGL ' -e '^libGL ' -e '^MESA' "$OUT/window-capsule.err" |
        sed 's/^/  Mesa said:    /' || true
    if [ "$(value window-direct image_hash)" = "$(value window-capsule image_hash)" ]; then
        echo "The two screenshots are identical (pixel hash $(value window-capsule image_hash))."
    else
        echo "The two screenshots differ: compare $(value window-direct png) and $(value window-capsule png)."
    fi
}

build_all() {
    ensure_packages
    ensure_tools
    mkdir -p "$OUT"
    build_shims
    link_shims "$SHIM_DIR" "$OUT/lib"
    build_shims_i386
    link_shims "$SHIM_DIR_I386" "$OUT/lib32"
    build_runtime
    build_game
}

median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mean() { awk '{ s += $1 } END { printf "%.4f\n", s / NR }'; }

# ./demo.sh --bench RUNS FILE: both games RUNS times, alternating so that machine noise
# hits both alike; FILE gets, as KEY=VALUE fields, the medians over the runs, but for the
# frame times the means: each run's frame time is already the median of its frames, and
# those fall in two clusters here (~0.27 and ~0.34 ms on the development VM, for both
# builds alike), between which a median over runs jumps from one run to the next.
bench() {
    local runs=$1 file=$2 i name key
    [[ $runs =~ ^[1-9][0-9]*$ ]] || fail "--bench RUNS: a positive number, not '$runs'"
    build_all
    step "timing the game, $runs runs each, direct and through capsule"
    for name in direct capsule; do : >"$OUT/bench-$name.tsv"; done
    for ((i = 1; i <= runs; i++)); do
        printf '\r==> run %d/%d' "$i" "$runs"
        run_game bench-direct direct || fail "the directly linked game failed: $OUT/bench-direct.err"
        run_game bench-capsule capsule CAPSULE_PREFIX=/ ||
            fail "the shim-linked game failed: $OUT/bench-capsule.err"
        for name in direct capsule; do
            for key in load_ms startup_ms frame_ms thread_frame_ms rss_kb; do
                printf '%s\t%s\n' "$key" "$(value "bench-$name" "$key")"
            done >>"$OUT/bench-$name.tsv"
        done
    done
    echo
    mkdir -p "$(dirname "$file")"
    {
        printf 'runs=%s' "$runs"
        for name in direct capsule; do
            for key in load_ms startup_ms frame_ms thread_frame_ms rss_kb; do
                local statistic=median
                case $key in *frame_ms) statistic=mean ;; esac
                printf '\t%s_%s=%s' "$name" "$key" \
                    "$(awk -v k="$key" '$1 == k { print $2 }' "$OUT/bench-$name.tsv" | "$statistic")"
            done
        done
        echo
    } >"$file"
    step "wrote $file"
}

# The 32-bit game, directly and through the i386 shims: the same image as the 64-bit one.
show_i386() {
    echo
    run_both direct32 capsule32 "32-bit (i386)" "32-bit game, direct (i386 libraries):" \
        "32-bit game through capsule (i386 shims, host prefix /, its own 32-bit libz):"
    if [ "$(value capsule image_hash)" = "$(value capsule32 image_hash)" ] &&
        [ "$(value direct32 image_hash)" = "$(value capsule32 image_hash)" ]; then
        echo "The 32-bit and 64-bit games' images are identical (pixel hash $(value capsule32 image_hash))."
    else
        echo "The 32-bit images differ: compare $(value capsule png), $(value direct32 png) and $(value capsule32 png)."
    fi
}

main() {
    if [ "${1:-}" = --bench ]; then
        [ $# = 3 ] || fail "usage: ./demo.sh --bench RUNS FILE"
        bench "$2" "$3"
        return
    fi
    [ $# = 0 ] || fail "usage: ./demo.sh  (or ./demo.sh --bench RUNS FILE)"
    build_all

    run_both direct capsule "" "Direct (-lEGL -lGL, real libraries):" \
        "Through capsule (shims, host prefix /, the game's own libz):"
    if [ "$(value direct image_hash)" = "$(value capsule image_hash)" ]; then
        echo "The two images are identical (pixel hash $(value capsule image_hash))."
    else
        echo "The two images differ: compare $(value direct png) and $(value capsule png)."
    fi
    echo
    show_clash
    show_windows || fail "the shim-linked game failed in an X11 window"
    show_i386
}

main "$@"
