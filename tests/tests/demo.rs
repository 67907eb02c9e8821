//! The demo game (examples/game): an ordinary `-lEGL -lGL` program, run linked to the real
//! libraries and linked to capsule's shims; its PNGs are decoded and checked pixel by pixel.
//! The shim-linked game runs with its own libz.so.1 (examples/game/runtime) first in its
//! path, as the demo does: each side must get its own copy. In an X11 window (a private
//! Xvfb), the shim-linked game's screenshot must equal the directly linked game's.

use capsule_tests::{build_program, build_shim, capsule_gen, run_ok, DisplayServer};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const SIZE: usize = 256;
/// examples/game/game.c: BG, MARK and the marker square's place.
const BACKGROUND: [u8; 4] = [24, 28, 48, 255];
const MARKER: [u8; 4] = [255, 200, 0, 255];
const MARKER_AT: std::ops::Range<usize> = 8..24;
const SHIMMED: [&str; 2] = ["libEGL.so.1", "libGL.so.1"];
/// examples/game/runtime/zlib.c: what the game's own libz.so.1 answers.
const RUNTIME_ZLIB_VERSION: &str = "1.2.13-capsule-demo-runtime";
/// 256 rows of a filter byte and 256 RGBA pixels: stored deflate blocks keep all of it.
const RAW_IMAGE_BYTES: u64 = (SIZE * (1 + SIZE * 4)) as u64;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn game_source() -> String {
    let path = workspace().join("examples/game/game.c");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// An RGBA image decoded from a PNG the game wrote.
struct Image {
    pixels: Vec<u8>,
}

impl Image {
    fn read(path: &Path) -> Image {
        let file = std::fs::File::open(path)
            .unwrap_or_else(|e| panic!("open the game's PNG {}: {e}", path.display()));
        let mut reader = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
        let mut pixels = vec![0; reader.output_buffer_size().expect("PNG size fits memory")];
        let info = reader
            .next_frame(&mut pixels)
            .unwrap_or_else(|e| panic!("decode {}: {e}", path.display()));
        assert_eq!(
            (info.width, info.height, info.color_type, info.bit_depth),
            (
                SIZE as u32,
                SIZE as u32,
                png::ColorType::Rgba,
                png::BitDepth::Eight
            ),
            "{}: unexpected PNG format",
            path.display()
        );
        pixels.truncate(info.buffer_size());
        Image { pixels }
    }

    /// The pixel at column `x`, row `y` (top row 0).
    fn at(&self, x: usize, y: usize) -> [u8; 4] {
        let i = (y * SIZE + x) * 4;
        self.pixels[i..i + 4].try_into().unwrap()
    }

    fn distinct_colours(&self) -> usize {
        self.pixels.chunks(4).collect::<HashSet<_>>().len()
    }
}

/// What one run of the game printed (`key: value` lines), plus its stderr.
struct Run {
    values: BTreeMap<String, String>,
    stderr: String,
}

impl Run {
    fn get(&self, key: &str) -> &str {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("the game printed no `{key}:` line: {:?}", self.values))
    }

    fn png(&self, key: &str) -> Image {
        Image::read(Path::new(self.get(key)))
    }
}

/// Run the game headless, or with `window` in an X11 window on that server (`--window`).
fn run_game(
    game: &Path,
    out_dir: &Path,
    window: Option<&DisplayServer>,
    envs: &[(&str, &str)],
) -> Run {
    let mut cmd = Command::new(game);
    if let Some(server) = window {
        server.connect(&mut cmd);
        cmd.arg("--window");
    }
    cmd.arg(out_dir).env("MESA_SHADER_CACHE_DISABLE", "true");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = run_ok(&mut cmd, "run the demo game");
    let values = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Run {
        values,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The known pixels of game.c's last frame, and a scene that is really shaded.
fn check_scene(what: &str, image: &Image) {
    for (x, y) in [(0, 0), (SIZE - 1, 0), (0, SIZE - 1), (SIZE - 1, SIZE - 1)] {
        assert_eq!(image.at(x, y), BACKGROUND, "{what}: corner ({x},{y})");
    }
    for y in MARKER_AT {
        for x in MARKER_AT {
            assert_eq!(image.at(x, y), MARKER, "{what}: HUD marker at ({x},{y})");
        }
    }
    assert_eq!(
        image.at(MARKER_AT.end, MARKER_AT.end),
        BACKGROUND,
        "{what}: past the marker"
    );
    // The cube covers the middle of the frame whatever its angle.
    for y in SIZE / 2 - 32..SIZE / 2 + 32 {
        for x in SIZE / 2 - 32..SIZE / 2 + 32 {
            let p = image.at(x, y);
            assert!(
                p != MARKER && p.iter().zip(BACKGROUND).any(|(a, b)| a.abs_diff(b) >= 20),
                "{what}: pixel ({x},{y}) {p:?} is background or marker, not the cube"
            );
        }
    }
    let colours = image.distinct_colours();
    assert!(
        colours > 200,
        "{what}: only {colours} distinct colours: the cube is not shaded"
    );
}

fn assert_same_image(what: &str, a: &Image, b: &Image) {
    let differing = a
        .pixels
        .chunks(4)
        .zip(b.pixels.chunks(4))
        .filter(|(p, q)| p.iter().zip(q.iter()).any(|(x, y)| x.abs_diff(*y) > 1))
        .count();
    assert_eq!(
        differing, 0,
        "{what}: {differing} pixels differ by more than 1"
    );
}

/// The game's runtime: a directory holding only its own libz.so.1, built as demo.sh builds it.
fn build_runtime(dir: &Path) -> PathBuf {
    let runtime = dir.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    let src = workspace().join("examples/game/runtime");
    let map = format!("-Wl,--version-script={}", src.join("zlib.map").display());
    run_ok(
        Command::new(capsule_tests::cc())
            .args(capsule_tests::cc_machine_args())
            .args([
                "-shared",
                "-fPIC",
                "-O2",
                "-Wl,-soname,libz.so.1",
                &map,
                "-o",
            ])
            .arg(runtime.join("libz.so.1"))
            .arg(src.join("zlib.c")),
        "build the game's runtime libz",
    );
    runtime
}

fn build_namespace_report(dir: &Path) -> PathBuf {
    let report = dir.join("namespace_report.so");
    run_ok(
        Command::new(capsule_tests::cc())
            .args(capsule_tests::cc_machine_args())
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&report)
            .arg(workspace().join("examples/game/namespace_report.c")),
        "build the namespace report helper",
    );
    report
}

/// `namespace-report: namespace N: libz VERSION (PATH)` lines: (N, version, path).
fn zlib_copies(stderr: &str) -> Vec<(u32, String, String)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("namespace-report: namespace "))
        .filter_map(|l| {
            let (lmid, rest) = l.split_once(": libz ")?;
            let (version, path) = rest.strip_suffix(')')?.split_once(" (")?;
            Some((lmid.parse().ok()?, version.to_string(), path.to_string()))
        })
        .collect()
}

fn build_direct_game(dir: &Path) -> PathBuf {
    let game = dir.join("game-direct");
    let args = capsule_tests::game_build_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    build_program(&game_source(), &game, &args);
    game
}

#[test]
fn game_linked_directly_renders_the_known_scene_on_both_threads() {
    let dir = tempfile::tempdir().unwrap();
    let game = build_direct_game(dir.path());
    let run = run_game(&game, dir.path(), None, &[]);
    assert!(
        run.get("renderer").contains("llvmpipe"),
        "renderer {:?}",
        run.get("renderer")
    );
    for key in ["load_ms", "frame_ms", "thread_frame_ms"] {
        let ms: f64 = run.get(key).parse().expect("a number of milliseconds");
        assert!(ms > 0.0 && ms < 10_000.0, "{key}: {ms}");
    }
    let main = run.png("png");
    check_scene("main thread", &main);
    // llvmpipe is deterministic: the game's own thread draws the very same frame.
    assert_same_image("main vs game thread", &main, &run.png("thread_png"));
}

/// Shim libraries for libEGL and libGL in one directory under both link names: the
/// checked-in workspace crates under shims/ when there are, else crates generated now.
fn shim_lib_dir(scratch: &Path) -> PathBuf {
    let target = workspace().join("target/demo-test-shims");
    let lib_dir = scratch.join("lib");
    std::fs::create_dir_all(&lib_dir).unwrap();
    for soname in SHIMMED {
        let checked_in = capsule_tests::checked_in_shims_dir(capsule_tests::machine()).join(soname);
        let crate_dir = if checked_in.join("Cargo.toml").is_file() {
            checked_in
        } else {
            run_ok(
                Command::new(capsule_gen())
                    .arg("--out")
                    .arg(scratch.join("src"))
                    .args(["--target", capsule_tests::machine().rust_target()])
                    .arg(soname),
                "generate a shim with capsule-gen",
            );
            scratch.join("src").join(soname)
        };
        let built = build_shim(&crate_dir, &target);
        let link_name = soname.trim_end_matches(".1");
        for name in [soname, link_name] {
            std::os::unix::fs::symlink(&built, lib_dir.join(name)).unwrap();
        }
    }
    lib_dir
}

/// The game linked to the libEGL and libGL shims, its runtime's libz first in its RUNPATH,
/// as demo.sh builds it.
fn build_shim_linked_game(dir: &Path, runtime: &Path) -> PathBuf {
    let lib_dir = shim_lib_dir(dir);
    let game = dir.join("game-capsule");
    let mut args = vec![
        format!("-L{}", lib_dir.display()),
        format!("-Wl,-rpath,{}:{}", lib_dir.display(), runtime.display()),
    ];
    args.extend(capsule_tests::game_build_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    build_program(&game_source(), &game, &args);
    game
}

#[test]
fn game_linked_to_shims_renders_what_the_real_libraries_render() {
    let dir = tempfile::tempdir().unwrap();
    let direct = run_game(&build_direct_game(dir.path()), dir.path(), None, &[]);

    let runtime = build_runtime(dir.path());
    let game = build_shim_linked_game(dir.path(), &runtime);
    let report = build_namespace_report(dir.path());

    let capsule_dir = dir.path().join("capsule");
    std::fs::create_dir(&capsule_dir).unwrap();
    let run = run_game(
        &game,
        &capsule_dir,
        None,
        &[
            ("CAPSULE_PREFIX", "/"),
            ("LD_PRELOAD", report.to_str().unwrap()),
        ],
    );
    assert_eq!(run.get("renderer"), direct.get("renderer"));
    let namespaces: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("namespace-report: ") && l.contains(" objects "))
        .collect();
    assert!(
        namespaces.len() == 1 && namespaces[0].contains("swrast_dri.so: yes"),
        "expected one capsule namespace holding Mesa's driver, got {namespaces:#?}"
    );
    let image = run.png("png");
    check_scene("through the shims", &image);
    assert_same_image("shims vs real libraries", &image, &direct.png("png"));
    assert_same_image("shims: main vs game thread", &image, &run.png("thread_png"));
    assert_eq!(run.get("image_hash"), direct.get("image_hash"));

    // Each side got its own libz: the game its runtime's, the host stack the host's.
    let own_zlib = runtime.join("libz.so.1");
    assert_eq!(
        run.get("zlib"),
        format!("{RUNTIME_ZLIB_VERSION} ({})", own_zlib.display()),
        "the game must use its runtime's libz"
    );
    let png_size = std::fs::metadata(run.get("png")).unwrap().len();
    assert!(
        png_size > RAW_IMAGE_BYTES,
        "the runtime's zlib stores, so the PNG holds every raw byte; {png_size} bytes"
    );
    let host_version = direct
        .get("zlib")
        .split_once(" (")
        .expect("zlib: VERSION (PATH)")
        .0;
    let copies = zlib_copies(&run.stderr);
    let in_capsule: Vec<_> = copies.iter().filter(|(lmid, ..)| *lmid != 0).collect();
    assert!(
        in_capsule.len() == 1
            && in_capsule[0].1 == host_version
            && !in_capsule[0].2.starts_with(dir.path().to_str().unwrap()),
        "the capsule's namespace must hold exactly the host's libz ({host_version}), got {copies:?}"
    );
    let in_program: Vec<_> = copies.iter().filter(|(lmid, ..)| *lmid == 0).collect();
    assert!(
        in_program.len() == 1 && Path::new(&in_program[0].2) == own_zlib,
        "the program's namespace must hold only the runtime's libz, got {copies:?}"
    );
}

/// What Mesa's loaders complained of on stderr (`libEGL warning: ...`, `MESA: error: ...`).
fn mesa_complaints(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("libEGL ") || l.starts_with("libGL ") || l.starts_with("MESA"))
        .collect()
}

/// The game in an X11 window on a private Xvfb: linked directly, its screenshot (read back
/// from the window) is the headless frame; through the shims it must be the same image, with
/// no complaint from Mesa (a capsule with its own libxcb gets "libEGL warning: DRI3: failed
/// to query the version" on the program's X connection).
#[test]
fn windowed_game_through_shims_shows_what_the_real_libraries_show() {
    let server = DisplayServer::xvfb(640, 480);
    let dir = tempfile::tempdir().unwrap();
    let direct_game = build_direct_game(dir.path());
    let headless = run_game(&direct_game, dir.path(), None, &[]);
    let direct_dir = dir.path().join("direct");
    std::fs::create_dir(&direct_dir).unwrap();
    let direct = run_game(&direct_game, &direct_dir, Some(&server), &[]);
    assert_eq!(
        direct.get("window"),
        format!("x11 {SIZE}x{SIZE} on {}", server.name)
    );
    let screenshot = direct.png("png");
    check_scene("in a window, linked directly", &screenshot);
    assert_same_image("window vs headless", &screenshot, &headless.png("png"));
    assert_eq!(
        mesa_complaints(&direct.stderr),
        [] as [&str; 0],
        "linked directly"
    );

    let runtime = build_runtime(dir.path());
    let game = build_shim_linked_game(dir.path(), &runtime);
    let capsule_dir = dir.path().join("capsule");
    std::fs::create_dir(&capsule_dir).unwrap();
    let run = run_game(
        &game,
        &capsule_dir,
        Some(&server),
        &[("CAPSULE_PREFIX", "/")],
    );
    assert_eq!(run.get("renderer"), direct.get("renderer"));
    assert_eq!(run.get("window"), direct.get("window"));
    let image = run.png("png");
    check_scene("in a window, through the shims", &image);
    assert_same_image("window: shims vs real libraries", &image, &screenshot);
    assert_same_image(
        "window, through the shims: main vs game thread",
        &image,
        &run.png("thread_png"),
    );
    assert_eq!(
        mesa_complaints(&run.stderr),
        [] as [&str; 0],
        "through the shims, Mesa complained (linked directly it does not):\n{}",
        run.stderr
    );
}

/// The conflict is real: the same game linked directly to the real GL libraries, with its
/// runtime first in its path, hands the host's driver the runtime's libz, and the driver
/// cannot load.
#[test]
fn without_the_capsule_the_host_stack_gets_the_runtime_libz_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let game = build_direct_game(dir.path());
    let runtime = build_runtime(dir.path());
    let report = build_namespace_report(dir.path());
    let out = Command::new(&game)
        .arg(dir.path())
        .env("MESA_SHADER_CACHE_DISABLE", "true")
        .env("LD_LIBRARY_PATH", &runtime)
        .env("LD_DEBUG", "libs")
        .env("LD_PRELOAD", &report)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", game.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("game: eglInitialize failed"),
        "expected eglInitialize to fail without the capsule; status {}, stderr:\n{stderr}",
        out.status
    );
    let own_zlib = runtime.join("libz.so.1");
    let copies = zlib_copies(&stderr);
    assert_eq!(
        copies,
        [(
            0,
            RUNTIME_ZLIB_VERSION.to_string(),
            own_zlib.display().to_string()
        )],
        "the process must hold exactly one libz, the runtime's"
    );
    let loader_error = stderr
        .lines()
        .find(|l| l.contains("error: version lookup error"))
        .unwrap_or_else(|| panic!("no loader version error in:\n{stderr}"));
    assert!(
        loader_error.contains(&format!("{}: error", own_zlib.display()))
            && loader_error.contains("required by /"),
        "the loader error must blame the runtime's libz for a host library: {loader_error}"
    );
}

/// The README's main command, as a user runs it: `./demo.sh` from the repository root. It
/// must render through the capsule with llvmpipe, write the known scene, and find the
/// capsule's image identical to the directly linked game's.
#[test]
fn readme_main_command_renders_the_demo() {
    let out = Command::new("bash")
        .arg(workspace().join("demo.sh"))
        .current_dir(workspace())
        .output()
        .expect("run ./demo.sh");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let capsule_part = stdout
        .split("Through capsule")
        .nth(1)
        .unwrap_or_else(|| panic!("no capsule report ({}) in:\n{stdout}\n{stderr}", out.status));
    let field = |key: &str| {
        capsule_part
            .lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {key} line in:\n{stdout}"))
    };
    assert!(field("renderer:").contains("llvmpipe"), "{stdout}");
    assert!(
        field("namespaces:").contains("swrast_dri.so: yes"),
        "{stdout}"
    );
    check_scene(
        "./demo.sh, through the capsule",
        &Image::read(Path::new(&field("PNG:"))),
    );
    assert!(stdout.contains("The two images are identical"), "{stdout}");

    // The windowed runs: a screenshot of each game's X11 window, the same picture.
    let window_part = stdout
        .split("In an X11 window")
        .nth(1)
        .unwrap_or_else(|| panic!("no windowed report in:\n{stdout}"));
    for build in ["direct:", "capsule:"] {
        let line = window_part
            .lines()
            .find_map(|l| l.trim().strip_prefix(build))
            .unwrap_or_else(|| panic!("no windowed {build} line in:\n{stdout}\n{stderr}"));
        let png = line.trim().split(" (").next().unwrap();
        check_scene(
            &format!("./demo.sh, in a window, {build}"),
            &Image::read(Path::new(png)),
        );
    }
    assert!(
        window_part.contains("The two screenshots are identical"),
        "{stdout}"
    );

    // The 32-bit game through the i386 shims: its machine's Mesa, its own 32-bit libz,
    // the 64-bit game's picture.
    let i386_part = stdout
        .split("32-bit game through capsule")
        .nth(1)
        .unwrap_or_else(|| panic!("no 32-bit report in:\n{stdout}\n{stderr}"));
    let field32 = |key: &str| {
        i386_part
            .lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no 32-bit {key} line in:\n{stdout}"))
    };
    assert!(field32("renderer:").contains("llvmpipe"), "{stdout}");
    assert!(
        field32("namespaces:").contains("swrast_dri.so: yes"),
        "{stdout}"
    );
    assert!(
        i386_part.contains("(namespace 1): 1.2.13 (/lib/i386-linux-gnu/libz.so.1)")
            && field32("zlib:").contains(RUNTIME_ZLIB_VERSION),
        "{stdout}"
    );
    check_scene(
        "./demo.sh, the 32-bit game through the i386 shims",
        &Image::read(Path::new(&field32("PNG:"))),
    );
    assert!(
        i386_part.contains("The 32-bit and 64-bit games' images are identical"),
        "{stdout}"
    );
    assert!(
        out.status.success(),
        "./demo.sh failed: {}\n{stdout}\n{stderr}",
        out.status
    );
}
