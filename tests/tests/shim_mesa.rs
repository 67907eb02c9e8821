//! The Mesa check through the checked-in shims: a C program linked with `-lEGL -lGLESv2`
//! (the shims, not the real libraries) renders headless with the host's Mesa (llvmpipe,
//! surfaceless EGL): glClear to a known colour, then glReadPixels.

use std::process::Command;

use capsule_tests::{build_checked_in_shims, build_program, install_shim, Tree};

/// Surfaceless EGL + GLES2, clearing to cyan (shared with the sandbox tests).
const PROGRAM: &str = include_str!("../c/egl_clear.c");

#[test]
fn program_linked_with_the_egl_and_gles_shims_renders_with_mesa() {
    let release = build_checked_in_shims(&["shim-libegl-so-1", "shim-libglesv2-so-2"]);
    let work = Tree::new();
    let lib_dir = work.path("lib");
    install_shim(&release.join("libEGL.so"), "libEGL.so.1", &lib_dir);
    install_shim(&release.join("libGLESv2.so"), "libGLESv2.so.2", &lib_dir);
    let exe = work.path("bin/render");
    let dir = lib_dir.display().to_string();
    build_program(
        PROGRAM,
        &exe,
        &[
            &format!("-L{dir}"),
            &format!("-Wl,-rpath,{dir}"),
            "-lEGL",
            "-lGLESv2",
        ],
    );
    let out = Command::new(&exe)
        .env_remove("CAPSULE_PREFIX")
        .env("MESA_SHADER_CACHE_DISABLE", "true")
        .env("CAPSULE_DEBUG", "libs")
        .output()
        .expect("run the program");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{stderr}\n(needs Mesa: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libegl-dev libgles-dev)",
        out.status
    );
    assert!(
        stdout.contains("pixel=0,255,255,255\n"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("renderer=llvmpipe"), "{stdout}");
    // Both libraries came through their shims.
    for soname in ["libEGL.so.1", "libGLESv2.so.2"] {
        assert!(
            stderr.contains(&format!("shim {soname}: forwarding to ")),
            "{soname} did not go through its shim:\n{stderr}"
        );
    }
}
