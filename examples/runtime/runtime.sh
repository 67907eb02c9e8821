#!/usr/bin/env bash
# A real pinned runtime, as Steam's are: a Debian 11 (bullseye) userland, made once with
# debootstrap and cached outside the checkout, in which a game runs with bubblewrap while
# the graphics driver comes from the newer host, mounted at /run/host, through capsule's
# shims. As pressure-vessel does, the runtime runs on the newer of the two glibcs: the
# host's ld.so and glibc libraries are bound over the runtime's (glibc must match ld.so).
#
# Usage (as root: debootstrap and bwrap need it here):
#   runtime.sh path                      build the runtime unless cached; print its directory
#   runtime.sh run [OPTIONS] -- PROGRAM [ARGS...]
#       --shims DIR      the shims' directory, first in the runtime's library path
#                        (mounted at /run/capsule/lib; CAPSULE_PREFIX=/run/host)
#       --naive          no capsule: the host's library directory after the runtime's in
#                        LD_LIBRARY_PATH and the host's driver directories named to the
#                        loaders, the classic setup that mixes the two trees
#       --bind SRC DEST  bind SRC (read-write) at DEST, under /run/capsule
#     DISPLAY's X socket and WAYLAND_DISPLAY's socket are passed in; so are variables named
#     CAPSULE_*, MESA_*, LIBGL_*, SDL_*, VK_*, LD_DEBUG*, and nothing else of the caller's.
#   runtime.sh demo                      the whole deployment, step by step (see main_demo)
#     (needs: xvfb mesa-utils vulkan-tools libsdl2-dev libgles-dev libvulkan-dev cc cargo)
#
# The cache: ${XDG_CACHE_HOME:-~/.cache}/capsule-runtime/bullseye-HASH, HASH naming the
# suite, variant and package list, so changing the list builds a new runtime.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SUITE=bullseye
MIRROR=${CAPSULE_RUNTIME_MIRROR:-http://deb.debian.org/debian}
# What the game needs from its runtime; no Mesa, no libGL/libEGL (SDL2 pulls in libgbm1).
PACKAGES=(libsdl2-2.0-0 libx11-6 libxcb1 libstdc++6 zlib1g libvulkan1)
KEY=$(printf '%s\n' "$SUITE" minbase "${PACKAGES[@]}" | sha256sum | cut -c1-16)
RUNTIME=${XDG_CACHE_HOME:-$HOME/.cache}/capsule-runtime/$SUITE-$KEY
HOST=/run/host
LIBDIR=usr/lib/x86_64-linux-gnu

fail() {
    printf 'runtime.sh: %s\n' "$*" >&2
    exit 1
}
step() { printf '==> %s\n' "$*"; }

build_runtime() {
    [ -f "$RUNTIME/etc/debian_version" ] && return
    command -v debootstrap >/dev/null || fail "debootstrap not found: apt-get install -y debootstrap"
    [ "$(id -u)" = 0 ] || fail "building the runtime needs root (debootstrap)"
    step "building the $SUITE runtime in $RUNTIME (once; a few minutes)" >&2
    mkdir -p "$(dirname "$RUNTIME")"
    rm -rf "$RUNTIME.tmp"
    local includes
    includes=$(IFS=,; echo "${PACKAGES[*]}")
    debootstrap --variant=minbase --include="$includes" "$SUITE" "$RUNTIME.tmp" "$MIRROR" \
        >"$RUNTIME.log" 2>&1 || fail "debootstrap failed; see $RUNTIME.log:
$(tail -n 20 "$RUNTIME.log")"
    # Complete or absent: a half-built tree never sits at the cached path.
    mv "$RUNTIME.tmp" "$RUNTIME"
}

# PATH (absolute, of the runtime) with its symlinks resolved inside the runtime: bwrap
# mounts before it enters the new root, so a destination must be a real file of it.
in_runtime() {
    local path=$1 parts part done_path="" link n=0
    while :; do
        IFS=/ read -ra parts <<<"${path#/}"
        done_path=""
        local restart=0
        for part in "${parts[@]}"; do
            [ -n "$part" ] || continue
            if [ -L "$RUNTIME$done_path/$part" ]; then
                ((++n < 40)) || fail "too many symlinks under $1 in the runtime"
                link=$(readlink "$RUNTIME$done_path/$part")
                local rest=${path#"$done_path/$part"}
                if [[ $link == /* ]]; then path=$link$rest; else path=$done_path/$link$rest; fi
                path=$(realpath -m -s "$path")
                restart=1
                break
            fi
            done_path=$done_path/$part
        done
        ((restart)) || break
    done
    printf '%s\n' "$done_path"
}

# bwrap arguments putting the host's glibc (ld.so, libc, libm, libpthread, ..., every
# library of the host's libc6 package the runtime also has) and its gconv modules over the
# runtime's.
glibc_binds() {
    local lib name dest
    while read -r lib; do
        name=${lib##*/}
        [ -e "$RUNTIME/$LIBDIR/$name" ] || continue
        dest=$(in_runtime "/$LIBDIR/$name")
        printf '%s\n' --ro-bind "$(readlink -f "$lib")" "$dest"
    # The host's own architecture named: with libc6:i386 installed too, plain `libc6` is
    # ambiguous to dpkg.
    done < <(dpkg -L "libc6:$(dpkg --print-architecture)" | grep -E '^/lib(64)?/[^/]*\.so[.0-9]*$|^/lib/x86_64-linux-gnu/[^/]*\.so[.0-9]*$')
    [ -d "/$LIBDIR/gconv" ] && [ -d "$RUNTIME/$LIBDIR/gconv" ] &&
        printf '%s\n' --ro-bind "/$LIBDIR/gconv" "$(in_runtime "/$LIBDIR/gconv")"
    return 0
}

run_in_runtime() {
    local shims="" naive=0 binds=()
    while (($#)); do
        case $1 in
        --shims) shims=$2; shift 2 ;;
        --naive) naive=1; shift ;;
        --bind) binds+=(--bind "$2" "/run/capsule/${3#/}"); shift 3 ;;
        --) shift; break ;;
        *) fail "run: unknown option $1" ;;
        esac
    done
    (($#)) || fail "run: no program given"
    command -v bwrap >/dev/null || fail "bwrap not found: apt-get install -y bubblewrap"
    build_runtime
    local args=(--ro-bind "$RUNTIME" / --dev /dev --proc /proc --ro-bind /sys /sys
        --tmpfs /tmp --tmpfs /run --ro-bind / "$HOST")
    local line glibc=()
    while read -r line; do glibc+=("$line"); done < <(glibc_binds)
    args+=("${glibc[@]}")
    # The library path and the environment, built for `env -i` inside.
    local envs=(PATH=/usr/bin:/bin HOME=/tmp)
    if [ -n "$shims" ]; then
        args+=(--ro-bind "$shims" /run/capsule/lib)
        envs+=(LD_LIBRARY_PATH=/run/capsule/lib CAPSULE_PREFIX=$HOST)
    fi
    if ((naive)); then
        envs+=("LD_LIBRARY_PATH=/$LIBDIR:$HOST/$LIBDIR"
            "LIBGL_DRIVERS_PATH=$HOST/$LIBDIR/dri"
            "__EGL_VENDOR_LIBRARY_DIRS=$HOST/usr/share/glvnd/egl_vendor.d")
    fi
    if [ -n "${DISPLAY:-}" ] && [ -d /tmp/.X11-unix ]; then
        args+=(--ro-bind /tmp/.X11-unix /tmp/.X11-unix)
        envs+=("DISPLAY=$DISPLAY")
    fi
    if [ -n "${WAYLAND_DISPLAY:-}" ]; then
        local socket=$WAYLAND_DISPLAY
        [[ $socket == /* ]] || socket=${XDG_RUNTIME_DIR:?WAYLAND_DISPLAY without XDG_RUNTIME_DIR}/$socket
        args+=(--dir /run/xdg --chmod 0700 /run/xdg --bind "$socket" /run/xdg/wayland-0)
        envs+=(XDG_RUNTIME_DIR=/run/xdg WAYLAND_DISPLAY=wayland-0)
    fi
    local name
    while read -r name; do
        envs+=("$name=${!name}")
    done < <(compgen -e | grep -E '^(CAPSULE_|MESA_|LIBGL_|SDL_|VK_|LD_DEBUG)' || true)
    bwrap "${args[@]}" "${binds[@]}" --die-with-parent -- /usr/bin/env -i "${envs[@]}" "$@"
}

# The demo: the shims and programs built on this machine, run in the runtime on a private
# Xvfb display, compared with the game on the host; then the naive setup. Output in
# target/runtime-demo/.
main_demo() {
    local out=$ROOT/target/runtime-demo entry packages=() n
    local shims=(libEGL.so:libEGL.so.1 libGL.so:libGL.so.1 libGLESv2.so:libGLESv2.so.2
        libGLX.so:libGLX.so.0 libGLdispatch.so:libGLdispatch.so.0 libOpenGL.so:libOpenGL.so.0
        libvulkan.so:libvulkan.so.1)
    build_runtime
    rm -rf "$out" && mkdir -p "$out/lib" "$out/out"
    for entry in "${shims[@]}"; do
        packages+=(-p "shim-$(tr 'A-Z.' 'a-z-' <<<"${entry##*:}")")
    done
    step "building the shims, the SDL2 game, the Vulkan program; copying glxinfo and vkcube"
    (cd "$ROOT" && cargo build --release --quiet "${packages[@]}")
    for entry in "${shims[@]}"; do cp "$ROOT/target/release/${entry%%:*}" "$out/lib/${entry##*:}"; done
    cc -O2 -I/usr/include/SDL2 -o "$out/sdl_game" "$HERE/sdl_game.c" -lSDL2 -lGLESv2 -lz -lm \
        -Wl,--no-as-needed -lstdc++
    cc -O2 -o "$out/vulkan_copy" "$ROOT/examples/deploy/vulkan_copy.c" -lvulkan
    cp "$(readlink -f /usr/bin/glxinfo)" "$out/glxinfo"
    cp "$(readlink -f /usr/bin/vkcube)" "$out/vkcube"

    for n in $(seq 400 440); do [ -e /tmp/.X11-unix/X$n ] || [ -e /tmp/.X$n-lock ] || break; done
    Xvfb ":$n" -screen 0 1024x768x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
    XVFB_PID=$!
    trap 'kill "$XVFB_PID" 2>/dev/null || true' EXIT
    for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done
    export DISPLAY=:$n MESA_SHADER_CACHE_DISABLE=true
    unset WAYLAND_DISPLAY

    local w=/run/capsule/work
    in_rt() { run_in_runtime --shims "$out/lib" --bind "$out" work -- "$@"; }
    step "the game on the host (its SDL2 and Mesa, no capsule), for comparison"
    "$out/sdl_game" "$out/out" >"$out/host.out"
    step "in the runtime through the shims: the game by GLX, by EGL, vulkan_copy, glxinfo -B, vkcube"
    CAPSULE_DEBUG=libs in_rt $w/sdl_game $w/out >"$out/glx.out" 2>"$out/glx.err" ||
        fail "the game (GLX) failed in the runtime; see $out/glx.err"
    SDL_VIDEO_X11_FORCE_EGL=1 CAPSULE_DEBUG=libs in_rt $w/sdl_game $w/out >"$out/egl.out" \
        2>"$out/egl.err" || fail "the game (EGL) failed in the runtime; see $out/egl.err"
    in_rt $w/vulkan_copy >"$out/vulkan.out" 2>&1 || fail "vulkan_copy failed; see $out/vulkan.out"
    in_rt $w/glxinfo -B >"$out/glxinfo.out" 2>&1 || fail "glxinfo failed; see $out/glxinfo.out"
    in_rt $w/vkcube --c 20 >"$out/vkcube.out" 2>&1 || fail "vkcube failed; see $out/vkcube.out"
    local key
    for key in host glx egl; do
        printf '  game %-4s SDL %s, %s, image %s\n' "$key" \
            "$(sed -n 's/^sdl: //p' "$out/$key.out")" "$(sed -n 's/^renderer: //p' "$out/$key.out")" \
            "$(sed -n 's/^image_hash: //p' "$out/$key.out")"
    done
    [ "$(grep image_hash "$out/host.out")" = "$(grep image_hash "$out/glx.out")" ] &&
        [ "$(grep image_hash "$out/host.out")" = "$(grep image_hash "$out/egl.out")" ] ||
        fail "the runtime's pictures differ from the host's"
    echo "  the runtime's pictures (GLX and EGL) equal the host's"
    printf '  vulkan:  %s\n' "$(grep -E 'copied=|device' "$out/vulkan.out" | tr '\n' ' ')"
    printf '  glxinfo: %s\n' "$(grep 'OpenGL renderer string' "$out/glxinfo.out")"
    printf '  vkcube:  %s\n' "$(grep 'Selected GPU' "$out/vkcube.out")"
    echo "  version skew met (CAPSULE_DEBUG=libs):"
    cat "$out/glx.err" "$out/egl.err" | grep -E 'lacks' | sort -u | sed 's/^/    /'

    step "without capsule: the host's library directory after the runtime's (--naive)"
    run_in_runtime --naive --bind "$out" work -- $w/glxinfo -B >"$out/naive.out" 2>&1 || true
    grep -m1 "version \`GLIBCXX_" "$out/naive.out" | sed 's/^/  /' ||
        fail "the naive setup did not fail on libstdc++; see $out/naive.out"
}

main() {
    case ${1:-} in
    path) build_runtime; printf '%s\n' "$RUNTIME" ;;
    run) shift; run_in_runtime "$@" ;;
    demo) main_demo ;;
    *) fail "usage: runtime.sh path | run [--shims DIR] [--naive] [--bind SRC DEST]... -- PROGRAM [ARGS...] | demo" ;;
    esac
}

main "$@"
