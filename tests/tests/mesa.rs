//! The host's real GL stack (glvnd libEGL, Mesa, llvmpipe) from `/`, through the runtime
//! API: a surfaceless EGL display, a GLES2 context, an FBO cleared to a known colour and
//! read back, from the main thread and from threads the program created before and after
//! the capsule was loaded.
//!
//! Every scenario runs in a child process (`rerun_self`): the thread that must exist
//! before the capsule is loaded cannot be had in a test process where another test already
//! loaded it, and a crash inside Mesa must fail one test with its signal, not the run.

use capsule::Capsule;
use capsule_tests::{func, is_child, rerun_self};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::path::Path;
use std::process::Output;
use std::sync::mpsc;

type EglDisplay = *mut c_void;
type EglContext = *mut c_void;
type EglConfig = *mut c_void;

const EGL_PLATFORM_SURFACELESS_MESA: c_uint = 0x31DD;
const EGL_OPENGL_ES_API: c_uint = 0x30A0;
const EGL_NONE: c_int = 0x3038;
const EGL_RENDERABLE_TYPE: c_int = 0x3040;
const EGL_OPENGL_ES2_BIT: c_int = 0x0004;
const EGL_SURFACE_TYPE: c_int = 0x3033;
const EGL_PBUFFER_BIT: c_int = 0x0001;
const EGL_CONTEXT_CLIENT_VERSION: c_int = 0x3098;
const EGL_EXTENSIONS: c_int = 0x3055;

const GL_RENDERER: c_uint = 0x1F01;
const GL_FRAMEBUFFER: c_uint = 0x8D40;
const GL_RENDERBUFFER: c_uint = 0x8D41;
const GL_RGBA8: c_uint = 0x8058;
const GL_COLOR_ATTACHMENT0: c_uint = 0x8CE0;
const GL_FRAMEBUFFER_COMPLETE: c_uint = 0x8CD5;
const GL_COLOR_BUFFER_BIT: c_uint = 0x4000;
const GL_RGBA: c_uint = 0x1908;
const GL_UNSIGNED_BYTE: c_uint = 0x1401;

const SIZE: c_int = 16;

/// The EGL entry points the test needs, from libEGL.so.1 in the capsule.
#[derive(Clone, Copy)]
struct Egl {
    get_proc_address: unsafe extern "C" fn(*const c_char) -> *mut c_void,
    get_platform_display: unsafe extern "C" fn(c_uint, *mut c_void, *const isize) -> EglDisplay,
    initialize: unsafe extern "C" fn(EglDisplay, *mut c_int, *mut c_int) -> c_uint,
    query_string: unsafe extern "C" fn(EglDisplay, c_int) -> *const c_char,
    bind_api: unsafe extern "C" fn(c_uint) -> c_uint,
    choose_config:
        unsafe extern "C" fn(EglDisplay, *const c_int, *mut EglConfig, c_int, *mut c_int) -> c_uint,
    create_context:
        unsafe extern "C" fn(EglDisplay, EglConfig, EglContext, *const c_int) -> EglContext,
    make_current: unsafe extern "C" fn(EglDisplay, *mut c_void, *mut c_void, EglContext) -> c_uint,
    destroy_context: unsafe extern "C" fn(EglDisplay, EglContext) -> c_uint,
    get_error: unsafe extern "C" fn() -> c_int,
}

/// The GLES2 entry points the test needs, from `eglGetProcAddress` (glvnd dispatch).
struct Gl {
    get_string: unsafe extern "C" fn(c_uint) -> *const c_char,
    gen_framebuffers: unsafe extern "C" fn(c_int, *mut c_uint),
    bind_framebuffer: unsafe extern "C" fn(c_uint, c_uint),
    gen_renderbuffers: unsafe extern "C" fn(c_int, *mut c_uint),
    bind_renderbuffer: unsafe extern "C" fn(c_uint, c_uint),
    renderbuffer_storage: unsafe extern "C" fn(c_uint, c_uint, c_int, c_int),
    framebuffer_renderbuffer: unsafe extern "C" fn(c_uint, c_uint, c_uint, c_uint),
    check_framebuffer_status: unsafe extern "C" fn(c_uint) -> c_uint,
    viewport: unsafe extern "C" fn(c_int, c_int, c_int, c_int),
    clear_color: unsafe extern "C" fn(f32, f32, f32, f32),
    clear: unsafe extern "C" fn(c_uint),
    finish: unsafe extern "C" fn(),
    read_pixels: unsafe extern "C" fn(c_int, c_int, c_int, c_int, c_uint, c_uint, *mut c_void),
    delete_framebuffers: unsafe extern "C" fn(c_int, *const c_uint),
    delete_renderbuffers: unsafe extern "C" fn(c_int, *const c_uint),
}

impl Egl {
    fn load(capsule: &Capsule) -> Egl {
        // SAFETY: each type below is the C prototype of that function in EGL/egl.h.
        unsafe {
            Egl {
                get_proc_address: func(capsule, "eglGetProcAddress"),
                get_platform_display: func(capsule, "eglGetPlatformDisplay"),
                initialize: func(capsule, "eglInitialize"),
                query_string: func(capsule, "eglQueryString"),
                bind_api: func(capsule, "eglBindAPI"),
                choose_config: func(capsule, "eglChooseConfig"),
                create_context: func(capsule, "eglCreateContext"),
                make_current: func(capsule, "eglMakeCurrent"),
                destroy_context: func(capsule, "eglDestroyContext"),
                get_error: func(capsule, "eglGetError"),
            }
        }
    }

    /// `name` through `eglGetProcAddress`, as type `F`.
    ///
    /// # Safety
    /// `F` must be the `extern "C" fn` type of `name`'s C prototype.
    unsafe fn proc<F: Copy>(&self, name: &str) -> F {
        let cname = std::ffi::CString::new(name).unwrap();
        // SAFETY: eglGetProcAddress takes a NUL-terminated name; it may be called without
        // a current context.
        let p = unsafe { (self.get_proc_address)(cname.as_ptr()) };
        assert!(!p.is_null(), "eglGetProcAddress({name}) returned NULL");
        // SAFETY: the caller promises F is the right function-pointer type; both are
        // pointer-sized.
        unsafe { std::mem::transmute_copy(&p) }
    }

    fn gl(&self) -> Gl {
        // SAFETY: each type below is the C prototype of that function in GLES2/gl2.h.
        unsafe {
            Gl {
                get_string: self.proc("glGetString"),
                gen_framebuffers: self.proc("glGenFramebuffers"),
                bind_framebuffer: self.proc("glBindFramebuffer"),
                gen_renderbuffers: self.proc("glGenRenderbuffers"),
                bind_renderbuffer: self.proc("glBindRenderbuffer"),
                renderbuffer_storage: self.proc("glRenderbufferStorage"),
                framebuffer_renderbuffer: self.proc("glFramebufferRenderbuffer"),
                check_framebuffer_status: self.proc("glCheckFramebufferStatus"),
                viewport: self.proc("glViewport"),
                clear_color: self.proc("glClearColor"),
                clear: self.proc("glClear"),
                finish: self.proc("glFinish"),
                read_pixels: self.proc("glReadPixels"),
                delete_framebuffers: self.proc("glDeleteFramebuffers"),
                delete_renderbuffers: self.proc("glDeleteRenderbuffers"),
            }
        }
    }
}

/// An initialized surfaceless display and a GLES2 config on it.
#[derive(Clone, Copy)]
struct Display {
    egl: Egl,
    display: usize,
    config: usize,
}

fn open_display(egl: Egl) -> Display {
    // SAFETY: EGL calls with arguments built as egl.h documents them; every pointer
    // passed lives across the call.
    unsafe {
        let display = (egl.get_platform_display)(
            EGL_PLATFORM_SURFACELESS_MESA,
            std::ptr::null_mut(),
            std::ptr::null(),
        );
        assert!(
            !display.is_null(),
            "eglGetPlatformDisplay(SURFACELESS_MESA) failed: 0x{:x}",
            (egl.get_error)()
        );
        let (mut major, mut minor) = (0, 0);
        assert_eq!(
            (egl.initialize)(display, &mut major, &mut minor),
            1,
            "eglInitialize failed: 0x{:x}",
            (egl.get_error)()
        );
        let extensions = CStr::from_ptr((egl.query_string)(display, EGL_EXTENSIONS))
            .to_string_lossy()
            .into_owned();
        assert!(
            extensions.contains("EGL_KHR_surfaceless_context"),
            "Mesa's EGL {major}.{minor} lacks EGL_KHR_surfaceless_context: {extensions}"
        );
        let attributes = [
            EGL_RENDERABLE_TYPE,
            EGL_OPENGL_ES2_BIT,
            EGL_SURFACE_TYPE,
            EGL_PBUFFER_BIT,
            EGL_NONE,
        ];
        let mut config: EglConfig = std::ptr::null_mut();
        let mut count = 0;
        assert_eq!(
            (egl.choose_config)(display, attributes.as_ptr(), &mut config, 1, &mut count),
            1,
            "eglChooseConfig failed: 0x{:x}",
            (egl.get_error)()
        );
        assert_eq!(
            count, 1,
            "no GLES2 pbuffer config on the surfaceless display"
        );
        Display {
            egl,
            display: display as usize,
            config: config as usize,
        }
    }
}

/// What one render returned: the renderer string and the pixel at the FBO's centre.
struct Rendered {
    renderer: String,
    pixel: [u8; 4],
    corner: [u8; 4],
}

/// Create a GLES2 context current on this thread (no surface), clear an FBO to `rgba`
/// and read it back; the context is released and destroyed before returning.
fn render(d: Display, rgba: [u8; 4]) -> Rendered {
    let egl = d.egl;
    let display = d.display as EglDisplay;
    let none = std::ptr::null_mut();
    // SAFETY: EGL/GL calls on a context made current on this thread just before, with
    // buffers sized for what each call writes (SIZE*SIZE RGBA pixels).
    unsafe {
        assert_eq!((egl.bind_api)(EGL_OPENGL_ES_API), 1, "eglBindAPI(GLES)");
        let attributes = [EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE];
        let context =
            (egl.create_context)(display, d.config as EglConfig, none, attributes.as_ptr());
        assert!(
            !context.is_null(),
            "eglCreateContext failed: 0x{:x}",
            (egl.get_error)()
        );
        assert_eq!(
            (egl.make_current)(display, none, none, context),
            1,
            "eglMakeCurrent(surfaceless) failed: 0x{:x}",
            (egl.get_error)()
        );
        let gl = egl.gl();
        let renderer = CStr::from_ptr((gl.get_string)(GL_RENDERER))
            .to_string_lossy()
            .into_owned();

        let (mut fbo, mut rbo) = (0, 0);
        (gl.gen_framebuffers)(1, &mut fbo);
        (gl.bind_framebuffer)(GL_FRAMEBUFFER, fbo);
        (gl.gen_renderbuffers)(1, &mut rbo);
        (gl.bind_renderbuffer)(GL_RENDERBUFFER, rbo);
        (gl.renderbuffer_storage)(GL_RENDERBUFFER, GL_RGBA8, SIZE, SIZE);
        (gl.framebuffer_renderbuffer)(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER, rbo);
        assert_eq!(
            (gl.check_framebuffer_status)(GL_FRAMEBUFFER),
            GL_FRAMEBUFFER_COMPLETE,
            "the FBO is incomplete"
        );
        (gl.viewport)(0, 0, SIZE, SIZE);
        let [r, g, b, a] = rgba.map(|c| c as f32 / 255.0);
        (gl.clear_color)(r, g, b, a);
        (gl.clear)(GL_COLOR_BUFFER_BIT);
        (gl.finish)();
        let mut pixels = vec![0u8; (SIZE * SIZE * 4) as usize];
        (gl.read_pixels)(
            0,
            0,
            SIZE,
            SIZE,
            GL_RGBA,
            GL_UNSIGNED_BYTE,
            pixels.as_mut_ptr().cast(),
        );
        (gl.delete_framebuffers)(1, &fbo);
        (gl.delete_renderbuffers)(1, &rbo);
        assert_eq!(
            (egl.make_current)(display, none, none, none),
            1,
            "release the context"
        );
        assert_eq!(
            (egl.destroy_context)(display, context),
            1,
            "eglDestroyContext"
        );

        let at = |x: c_int, y: c_int| {
            let i = ((y * SIZE + x) * 4) as usize;
            [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]]
        };
        Rendered {
            renderer,
            pixel: at(SIZE / 2, SIZE / 2),
            corner: at(0, 0),
        }
    }
}

fn check_render(who: &str, d: Display, rgba: [u8; 4]) {
    eprintln!("mesa test: rendering from {who}");
    let out = render(d, rgba);
    assert!(
        out.renderer.contains("llvmpipe"),
        "{who}: GL_RENDERER is {:?}, expected Mesa's llvmpipe",
        out.renderer
    );
    assert_eq!(out.pixel, rgba, "{who}: centre pixel after glClear");
    assert_eq!(out.corner, rgba, "{who}: corner pixel after glClear");
    println!(
        "mesa test: {who} rendered {:?} on {}",
        out.pixel, out.renderer
    );
}

/// Mappings of this process that are writable and executable at once.
/// Writable and executable mappings, but those of a file whose own program headers ask
/// for a writable+executable segment: Mesa's i386 libglapi.so.0 has one (its dispatch
/// stubs, patched at run time), mapped so in a plain process too.
fn writable_executable_mappings() -> Vec<String> {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .filter(|line| {
            let perms = line.split_whitespace().nth(1).unwrap_or("");
            perms.contains('w') && perms.contains('x')
        })
        .filter(|line| {
            let file = line.split_whitespace().nth(5).unwrap_or("");
            !(file.starts_with('/') && declares_writable_code(Path::new(file)))
        })
        .map(String::from)
        .collect()
}

/// Whether the ELF file at `path` has a PT_LOAD with both PF_W and PF_X.
fn declares_writable_code(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    capsule::elf::Object::from_file_image(&path.display().to_string(), &bytes)
        .is_ok_and(|o| o.load_segments().any(|s| s.flags.write && s.flags.execute))
}

fn load_egl() -> Capsule {
    Capsule::load("libEGL.so.1", Path::new("/")).unwrap_or_else(|e| {
        panic!(
            "load libEGL.so.1 from /: {e}\n(the Mesa tests need: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri)"
        )
    })
}

/// The child's part: everything happens in one fresh process.
fn render_from_three_threads() {
    // A thread of the program's libc that exists before the capsule does: it waits for
    // the display, then renders.
    let (send, receive) = mpsc::channel::<Display>();
    let early = std::thread::spawn(move || {
        let d = receive.recv().expect("the main thread sends the display");
        check_render("a thread created before loading", d, [10, 200, 30, 255]);
    });

    let capsule = load_egl();
    let wx = writable_executable_mappings();
    assert!(
        wx.is_empty(),
        "writable+executable mappings after loading: {wx:#?}"
    );
    let d = open_display(Egl::load(&capsule));
    // eglInitialize dlopened the driver inside the capsule: still nothing W+X.
    let wx = writable_executable_mappings();
    assert!(
        wx.is_empty(),
        "writable+executable mappings after eglInitialize: {wx:#?}"
    );

    check_render("the main thread", d, [255, 128, 0, 255]);
    std::thread::spawn(move || {
        check_render("a thread created after loading", d, [20, 40, 250, 255])
    })
    .join()
    .expect("the thread created after loading panicked");
    send.send(d).expect("the early thread waits");
    early
        .join()
        .expect("the thread created before loading panicked");

    let objects = capsule.objects();
    let names: Vec<String> = objects
        .iter()
        .map(|o| o.path.display().to_string())
        .collect();
    assert!(
        names.len() >= 40,
        "only {} objects in the namespace: {names:#?}",
        names.len()
    );
    assert!(
        names.iter().any(|n| n.ends_with("/swrast_dri.so")),
        "swrast_dri.so is not in the namespace: {names:#?}"
    );
    assert!(
        names.iter().any(|n| n.contains("libLLVM")),
        "libLLVM is not in the namespace: {names:#?}"
    );
    // Making a context current maps one anonymous RWX page for GL dispatch stubs (Mesa's
    // glapi does it in a plain process too, without any capsule); a file-backed W+X
    // mapping would be a library page left writable by slot patching.
    let wx = writable_executable_mappings();
    assert!(
        wx.iter().all(|m| m.split_whitespace().nth(4) == Some("0")),
        "file-backed writable+executable mappings after rendering: {wx:#?}"
    );
    println!(
        "mesa test: {} objects in namespace {}",
        names.len(),
        capsule.namespace_id()
    );
}

/// Run the child scenario `name` and fail with its whole output (and signal) unless it
/// succeeded.
fn run_child(name: &str, envs: &[(&str, &str)]) -> Output {
    let mut all = vec![("MESA_SHADER_CACHE_DISABLE", "true")];
    all.extend_from_slice(envs);
    let out = rerun_self(name, &all);
    assert!(
        out.status.success(),
        "the child running {name} failed: {} (a signal here is a crash inside the capsule)\nstdout:\n{}\nstderr:\n{}",
        describe(&out.status),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn describe(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(signal) => format!("killed by signal {signal}"),
        None => format!("{status}"),
    }
}

#[test]
fn mesa_renders_from_main_and_program_threads() {
    const NAME: &str = "mesa_renders_from_main_and_program_threads";
    if is_child(NAME) {
        render_from_three_threads();
        return;
    }
    let out = run_child(NAME, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for who in [
        "the main thread",
        "a thread created after loading",
        "a thread created before loading",
    ] {
        assert!(
            stdout.contains(&format!("mesa test: {who} rendered")),
            "no render from {who} in:\n{stdout}"
        );
    }
}

#[test]
fn mesa_dlopens_its_driver_inside_the_capsule() {
    const NAME: &str = "mesa_dlopens_its_driver_inside_the_capsule";
    if is_child(NAME) {
        let capsule = load_egl();
        let d = open_display(Egl::load(&capsule));
        check_render("the main thread", d, [1, 2, 3, 255]);
        // Mesa and LLVM ran on the program's libc: no second one was ever mapped.
        assert_eq!(
            capsule_tests::libc_images_mapped(),
            1,
            "a second libc was mapped into the process"
        );
        return;
    }
    let out = run_child(NAME, &[("CAPSULE_DEBUG", "dlopen")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dlopens: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("capsule: dlopen(\""))
        .collect();
    assert!(
        dlopens
            .iter()
            .any(|l| l.contains("libEGL_mesa.so.0") && l.contains("-> namespace")),
        "libEGL_mesa.so.0 was not dlopened inside the capsule:\n{stderr}"
    );
    assert!(
        dlopens
            .iter()
            .any(|l| l.contains("swrast_dri.so") && l.contains("RTLD_GLOBAL emulated")),
        "swrast_dri.so was not dlopened inside the capsule with RTLD_GLOBAL emulated:\n{stderr}"
    );
}
