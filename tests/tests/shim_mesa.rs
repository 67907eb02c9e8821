//! The Mesa check through the checked-in shims: a C program linked with `-lEGL -lGLESv2`
//! (the shims, not the real libraries) renders headless with the host's Mesa (llvmpipe,
//! surfaceless EGL): glClear to a known colour, then glReadPixels.

use std::process::Command;

use capsule_tests::{build_checked_in_shims, build_program, install_shim, Tree};

const PROGRAM: &str = r#"
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    EGLDisplay d = eglGetPlatformDisplay(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL);
    EGLint major, minor;
    if (d == EGL_NO_DISPLAY || !eglInitialize(d, &major, &minor)) {
        printf("eglInitialize failed: %#x\n", eglGetError());
        return 1;
    }
    eglBindAPI(EGL_OPENGL_ES_API);
    const EGLint attrs[] = {EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE};
    EGLContext c = eglCreateContext(d, EGL_NO_CONFIG_KHR, EGL_NO_CONTEXT, attrs);
    if (c == EGL_NO_CONTEXT || !eglMakeCurrent(d, EGL_NO_SURFACE, EGL_NO_SURFACE, c)) {
        printf("context failed: %#x\n", eglGetError());
        return 1;
    }
    GLuint tex, fbo;
    glGenTextures(1, &tex);
    glBindTexture(GL_TEXTURE_2D, tex);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, 4, 4, 0, GL_RGBA, GL_UNSIGNED_BYTE, NULL);
    glGenFramebuffers(1, &fbo);
    glBindFramebuffer(GL_FRAMEBUFFER, fbo);
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, tex, 0);
    if (glCheckFramebufferStatus(GL_FRAMEBUFFER) != GL_FRAMEBUFFER_COMPLETE) {
        printf("framebuffer incomplete\n");
        return 1;
    }
    glClearColor(1.0f, 0.0f, 1.0f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    unsigned char px[4] = {0};
    glReadPixels(1, 1, 1, 1, GL_RGBA, GL_UNSIGNED_BYTE, px);
    printf("renderer=%s\n", (const char *)glGetString(GL_RENDERER));
    printf("pixel=%d,%d,%d,%d\n", px[0], px[1], px[2], px[3]);
    eglMakeCurrent(d, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(d, c);
    eglTerminate(d);
    /* A normal exit: Mesa's destructors run and call dlclose inside the capsule. */
    return 0;
}
"#;

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
        stdout.contains("pixel=255,0,255,255\n"),
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
