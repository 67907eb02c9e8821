//! The real deployment: programs run inside a bubblewrap sandbox whose root is this
//! machine's root with the graphics driver hidden (a container runtime without the host's
//! driver), the real root mounted at /run/host, and `CAPSULE_PREFIX=/run/host`.
//! Without a capsule the programs find no driver; through the checked-in shims the host's
//! driver stack (Mesa's llvmpipe for EGL, lavapipe for Vulkan) runs inside a capsule.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capsule_tests::{
    build_checked_in_shims, build_program, install_shim, sandbox_without_host_driver, Tree,
    SANDBOX_HOST,
};

/// How the EGL program links its libraries (`-lEGL -lGLESv2`; by soname on i386).
fn egl_link_args() -> [String; 2] {
    ["libEGL.so.1", "libGLESv2.so.2"].map(capsule_tests::link_arg)
}

/// The EGL check program, shared with `shim_mesa.rs`.
const EGL_PROGRAM: &str = include_str!("../c/egl_clear.c");

/// The program's output, checked for success.
struct Run {
    out: Output,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        out,
    }
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "{}\nstdout:\n{}\nstderr:\n{}",
            self.out.status, self.stdout, self.stderr
        )
    }
}

/// `exe` inside the sandbox, with the environment the tests share.
fn in_sandbox(work: &Tree, exe: &Path, binds: &[(&Path, &Path)]) -> Command {
    let mut cmd = sandbox_without_host_driver(work, binds);
    cmd.arg(exe)
        .env("CAPSULE_PREFIX", SANDBOX_HOST)
        .env("MESA_SHADER_CACHE_DISABLE", "true")
        .env_remove("__EGL_VENDOR_LIBRARY_DIRS")
        .env_remove("VK_DRIVER_FILES")
        .env_remove("VK_ICD_FILENAMES")
        .env_remove("CAPSULE_DEBUG");
    cmd
}

/// Build `source` twice: linked with the system's libraries (`direct`) and with the
/// checked-in shims of `shims` (`(package, soname, built file)`), and return both.
fn build_both(
    work: &Tree,
    source: &str,
    libs: &[impl AsRef<str>],
    shims: &[(&str, &str, &str)],
) -> (PathBuf, PathBuf) {
    let libs: Vec<&str> = libs.iter().map(AsRef::as_ref).collect();
    let packages: Vec<&str> = shims.iter().map(|s| s.0).collect();
    let release = build_checked_in_shims(&packages);
    let lib_dir = work.path("shims");
    for (_, soname, file) in shims {
        install_shim(&release.join(file), soname, &lib_dir);
    }
    let direct = work.path("bin/direct");
    build_program(source, &direct, &libs);
    let dir = lib_dir.display().to_string();
    let mut args = vec![format!("-L{dir}"), format!("-Wl,-rpath,{dir}")];
    args.extend(libs.iter().map(|l| l.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let shimmed = work.path("bin/through-shims");
    build_program(source, &shimmed, &args);
    (direct, shimmed)
}

const EGL_SHIMS: &[(&str, &str, &str)] = &[
    ("shim-libegl-so-1", "libEGL.so.1", "libEGL.so"),
    ("shim-libglesv2-so-2", "libGLESv2.so.2", "libGLESv2.so"),
];

#[test]
fn egl_renders_in_the_sandbox_only_through_the_shim() {
    let work = Tree::new();
    let (direct, shimmed) = build_both(&work, EGL_PROGRAM, &egl_link_args(), EGL_SHIMS);

    // Outside the sandbox the direct program renders: the machine has Mesa.
    let outside = run(Command::new(&direct).env("MESA_SHADER_CACHE_DISABLE", "true"));
    assert!(
        outside.out.status.success() && outside.stdout.contains("pixel=0,255,255,255"),
        "the program does not render even outside the sandbox (needs Mesa: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libegl-dev libgles-dev):\n{}",
        outside.describe()
    );

    // Inside, the runtime has libglvnd but no vendor: the direct program must fail.
    let hidden = run(&mut in_sandbox(&work, &direct, &[]));
    assert!(
        !hidden.out.status.success() && hidden.stdout.contains("eglInitialize failed"),
        "the sandbox does not hide the host's EGL driver:\n{}",
        hidden.describe()
    );

    // Through the shims the capsule takes the host's driver stack from /run/host.
    let through = run(in_sandbox(&work, &shimmed, &[]).env("CAPSULE_DEBUG", "libs,dlopen"));
    assert!(
        through.out.status.success(),
        "the shimmed program failed in the sandbox:\n{}",
        through.describe()
    );
    assert!(
        through.stdout.contains("pixel=0,255,255,255\n"),
        "{}",
        through.describe()
    );
    assert!(
        through.stdout.contains("renderer=llvmpipe"),
        "{}",
        through.describe()
    );
    assert!(
        through
            .stdout
            .contains("program sees __EGL_VENDOR_LIBRARY_DIRS=(unset)"),
        "the capsule's environment leaked into the program's:\n{}",
        through.describe()
    );
    let log = &through.stderr;
    // The vendor directories and Mesa's absolute DRI driver path were mapped into the prefix.
    assert!(
        log.contains("namespace environment: __EGL_VENDOR_LIBRARY_DIRS=/run/host/etc/glvnd/egl_vendor.d:/run/host/usr/share/glvnd/egl_vendor.d"),
        "{log}"
    );
    assert!(
        log.contains(&capsule_tests::for_machine("dlopen path /usr/lib/x86_64-linux-gnu/dri/swrast_dri.so -> /run/host/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so (mapped into prefix /run/host)")),
        "Mesa's DRI driver was not mapped into the prefix:\n{log}"
    );
    assert!(
        log.contains(&capsule_tests::for_machine(
            "libEGL_mesa.so.0 => /run/host/usr/lib/x86_64-linux-gnu/libEGL_mesa.so.0"
        )),
        "{log}"
    );
}

const VULKAN_PROGRAM: &str = include_str!("../../examples/deploy/vulkan_copy.c");

#[test]
fn vulkan_works_in_the_sandbox_only_through_the_shim() {
    let work = Tree::new();
    let shims = [("shim-libvulkan-so-1", "libvulkan.so.1", "libvulkan.so")];
    let (direct, shimmed) = build_both(
        &work,
        VULKAN_PROGRAM,
        &[&capsule_tests::link_arg("libvulkan.so.1")],
        &shims,
    );
    let needs = "(needs the Vulkan loader and lavapipe: apt-get install libvulkan1 mesa-vulkan-drivers libvulkan-dev)";

    let outside = run(&mut Command::new(&direct));
    assert!(
        outside.out.status.success() && outside.stdout.contains("copied=4096/4096"),
        "the Vulkan program does not work even outside the sandbox {needs}:\n{}",
        outside.describe()
    );

    let hidden = run(&mut in_sandbox(&work, &direct, &[]));
    assert!(
        !hidden.out.status.success() && hidden.stdout.contains("vkCreateInstance"),
        "the sandbox does not hide the host's Vulkan driver:\n{}",
        hidden.describe()
    );

    let through = run(in_sandbox(&work, &shimmed, &[]).env("CAPSULE_DEBUG", "libs,dlopen"));
    assert!(
        through.out.status.success(),
        "the shimmed Vulkan program failed in the sandbox:\n{}",
        through.describe()
    );
    assert!(
        through.stdout.contains("device=llvmpipe") && through.stdout.contains("copied=4096/4096\n"),
        "{}",
        through.describe()
    );
    let log = &through.stderr;
    assert!(
        log.contains("namespace environment: VK_DRIVER_FILES=")
            && log.contains(&format!(
                "/run/host/usr/share/vulkan/icd.d/lvp_icd.{}.json",
                capsule_tests::machine().platform()
            )),
        "the loader was not pointed at the host's driver manifests:\n{log}"
    );
    // lavapipe's manifest names its library by absolute path: mapped into the prefix.
    assert!(
        log.contains(&capsule_tests::for_machine("dlopen path /usr/lib/x86_64-linux-gnu/libvulkan_lvp.so -> /run/host/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so (mapped into prefix /run/host)")),
        "{log}"
    );
    assert!(
        log.contains("shim libvulkan.so.1: forwarding to /run/host/"),
        "{log}"
    );
}

/// A runtime's own `libexpat.so.1`: the program uses it, and every function Mesa calls to
/// parse its drirc files aborts, so a driver that got this copy instead of the host's
/// cannot render.
const RUNTIME_EXPAT: &str = r#"
#include <stdio.h>
#include <stdlib.h>
const char *XML_ExpatVersion(void) { return "runtime-fixture-expat"; }
#define MESA_NEEDS(name) \
    void name(void) { \
        fprintf(stderr, "runtime libexpat.so.1: " #name " called by the driver\n"); \
        abort(); \
    }
MESA_NEEDS(XML_ErrorString)
MESA_NEEDS(XML_GetBuffer)
MESA_NEEDS(XML_GetCurrentByteIndex)
MESA_NEEDS(XML_GetCurrentColumnNumber)
MESA_NEEDS(XML_GetCurrentLineNumber)
MESA_NEEDS(XML_GetErrorCode)
MESA_NEEDS(XML_ParseBuffer)
MESA_NEEDS(XML_ParserCreate)
MESA_NEEDS(XML_ParserFree)
MESA_NEEDS(XML_SetCharacterDataHandler)
MESA_NEEDS(XML_SetElementHandler)
MESA_NEEDS(XML_SetUserData)
"#;

#[test]
fn the_runtimes_copy_of_a_driver_dependency_stays_the_programs() {
    let work = Tree::new();
    let runtime = work.path("runtime/libexpat.so.1");
    capsule_tests::build_lib(
        &capsule_tests::Lib {
            source: RUNTIME_EXPAT,
            soname: Some("libexpat.so.1"),
            args: &[],
        },
        &runtime,
    );
    std::fs::copy(&runtime, work.path("runtime/libexpat.so")).expect("install the link name");
    let runtime_dir = runtime.parent().expect("runtime dir").display().to_string();
    let program = EGL_PROGRAM.replace(
        "int main(void) {",
        "const char *XML_ExpatVersion(void);\nint main(void) {\n    printf(\"program expat=%s\\n\", XML_ExpatVersion());",
    );
    let link_expat = format!("-L{runtime_dir}");
    let (direct, shimmed) = build_both(
        &work,
        &program,
        &[
            &link_expat,
            &capsule_tests::link_arg("libEGL.so.1"),
            &capsule_tests::link_arg("libGLESv2.so.2"),
            "-lexpat",
        ],
        EGL_SHIMS,
    );

    // The fixture really breaks Mesa: a driver loaded beside it (no capsule, outside the
    // sandbox) calls into it and aborts.
    let beside = run(Command::new(&direct)
        .env("LD_LIBRARY_PATH", &runtime_dir)
        .env("MESA_SHADER_CACHE_DISABLE", "true"));
    assert!(
        !beside.out.status.success()
            && beside.stderr.contains("runtime libexpat.so.1: ")
            && beside.stderr.contains("called by the driver"),
        "Mesa did not use the runtime's libexpat when loaded beside it, so this test proves nothing:\n{}",
        beside.describe()
    );

    // In the sandbox the runtime's libexpat is the fixture; the capsule takes the host's.
    let system_expat = std::fs::canonicalize(capsule_tests::system_lib("libexpat.so.1"))
        .expect("the machine's libexpat.so.1 (apt-get install libexpat1)");
    let through =
        run(in_sandbox(&work, &shimmed, &[(&runtime, &system_expat)]).env("CAPSULE_DEBUG", "libs"));
    assert!(
        through.out.status.success() && through.stdout.contains("pixel=0,255,255,255\n"),
        "the capsule's driver did not render beside the runtime's libexpat:\n{}",
        through.describe()
    );
    assert!(
        through
            .stdout
            .contains("program expat=runtime-fixture-expat"),
        "the program lost its own libexpat:\n{}",
        through.describe()
    );
    assert!(
        through.stderr.contains(&capsule_tests::for_machine(
            "libexpat.so.1 => /run/host/usr/lib/x86_64-linux-gnu/libexpat.so.1"
        )),
        "the capsule did not take the host's libexpat:\n{}",
        through.describe()
    );
}

/// A drirc file forcing the GL vendor string for the test's programs (the one observable
/// setting Mesa's llvmpipe honours without a GPU).
fn drirc_forcing_vendor(vendor: &str) -> String {
    format!(
        r#"<?xml version="1.0" standalone="yes"?>
<driconf>
    <device>
        <application name="capsule test, direct" executable="direct">
            <option name="force_gl_vendor" value="{vendor}"/>
        </application>
        <application name="capsule test, shims" executable="through-shims">
            <option name="force_gl_vendor" value="{vendor}"/>
        </application>
    </device>
</driconf>
"#
    )
}

/// A copy of this machine's `/usr/share/drirc.d` (Mesa's defaults) plus
/// `99-capsule-test.conf` forcing `vendor`, at `work/dir`.
fn drirc_dir(work: &Tree, dir: &str, vendor: &str) -> PathBuf {
    let system = Path::new("/usr/share/drirc.d");
    let entries = std::fs::read_dir(system).unwrap_or_else(|e| {
        panic!(
            "{} is needed (Mesa's driconf: apt-get install libgl1-mesa-dri): {e}",
            system.display()
        )
    });
    for entry in entries {
        let entry = entry.expect("read a drirc.d entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        std::fs::copy(entry.path(), work.path(&format!("{dir}/{name}")))
            .expect("copy Mesa's drirc file");
    }
    work.write(
        &format!("{dir}/99-capsule-test.conf"),
        &drirc_forcing_vendor(vendor),
    );
    work.root().join(dir)
}

/// The EGL program, also printing the GL vendor and which drirc file the program itself
/// reads at the fixed path.
fn egl_vendor_program() -> String {
    EGL_PROGRAM
        .replace(
            "#include <stdlib.h>",
            "#include <stdlib.h>\n#include <string.h>",
        )
        .replace(
            r#"    printf("pixel="#,
            r#"    printf("vendor=%s\n", (const char *)glGetString(GL_VENDOR));
    {
        char buf[4096] = {0};
        FILE *f = fopen("/usr/share/drirc.d/99-capsule-test.conf", "r");
        if (f) {
            fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
        }
        printf("program drirc=%s\n", strstr(buf, "capsule-runtime-drirc") ? "runtime"
                                     : strstr(buf, "capsule-host-drirc")  ? "host"
                                                                          : "none");
    }
    printf("pixel="#,
        )
}

#[test]
fn mesa_in_the_capsule_reads_the_hosts_drirc_and_the_program_the_runtimes() {
    let work = Tree::new();
    let program = egl_vendor_program();
    assert!(
        program.contains("vendor=%s"),
        "the program edit did not apply"
    );
    let (direct, shimmed) = build_both(&work, &program, &egl_link_args(), EGL_SHIMS);
    let host_drirc = drirc_dir(&work, "host-drirc.d", "capsule-host-drirc");
    let runtime_drirc = drirc_dir(&work, "runtime-drirc.d", "capsule-runtime-drirc");

    // Mesa honours the file: the direct program, with the machine's driver and the
    // runtime's drirc.d in place, reports the forced vendor.
    let control = run(Command::new("bwrap")
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--ro-bind",
        ])
        .arg(&runtime_drirc)
        .args(["/usr/share/drirc.d", "--die-with-parent", "--"])
        .arg(&direct)
        .env("MESA_SHADER_CACHE_DISABLE", "true"));
    assert!(
        control.out.status.success() && control.stdout.contains("vendor=capsule-runtime-drirc\n"),
        "Mesa did not apply the drirc file, so this test proves nothing:\n{}",
        control.describe()
    );

    // In the sandbox, the host (/run/host) and the runtime each have their own drirc.d.
    let host_mount = Path::new(SANDBOX_HOST).join("usr/share/drirc.d");
    let binds: [(&Path, &Path); 2] = [
        (&host_drirc, &host_mount),
        (&runtime_drirc, Path::new("/usr/share/drirc.d")),
    ];
    let through = run(in_sandbox(&work, &shimmed, &binds).env("CAPSULE_DEBUG", "libs,files"));
    assert!(
        through.out.status.success() && through.stdout.contains("pixel=0,255,255,255\n"),
        "the shimmed program failed in the sandbox:\n{}",
        through.describe()
    );
    assert!(
        through.stdout.contains("vendor=capsule-host-drirc\n"),
        "Mesa in the capsule did not read the host's drirc.d:\n{}",
        through.describe()
    );
    assert!(
        through.stdout.contains("program drirc=runtime\n"),
        "the program lost the runtime's drirc.d:\n{}",
        through.describe()
    );
    let log = &through.stderr;
    assert!(
        log.contains(
            "data files under /usr/share/drirc.d are read from /run/host/usr/share/drirc.d\n"
        ),
        "{log}"
    );
    assert!(
        log.contains("capsule: data file /usr/share/drirc.d/99-capsule-test.conf -> /run/host/usr/share/drirc.d/99-capsule-test.conf ("),
        "Mesa's drirc open did not go to /run/host:\n{log}"
    );
}
