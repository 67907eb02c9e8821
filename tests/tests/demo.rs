//! The demo game (examples/game): an ordinary `-lEGL -lGL` program, run linked to the real
//! libraries and linked to capsule's shims; its PNGs are decoded and checked pixel by pixel.

use capsule_tests::{build_program, build_shim, capsule_gen, run_ok};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const SIZE: usize = 256;
/// examples/game/game.c: BG, MARK and the marker square's place.
const BACKGROUND: [u8; 4] = [24, 28, 48, 255];
const MARKER: [u8; 4] = [255, 200, 0, 255];
const MARKER_AT: std::ops::Range<usize> = 8..24;
const GAME_LIBS: &[&str] = &["-lEGL", "-lGL", "-lz", "-lm", "-lpthread"];
const SHIMMED: [&str; 2] = ["libEGL.so.1", "libGL.so.1"];

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

fn run_game(game: &Path, out_dir: &Path, envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(game);
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

fn build_direct_game(dir: &Path) -> PathBuf {
    let game = dir.join("game-direct");
    build_program(&game_source(), &game, GAME_LIBS);
    game
}

#[test]
fn game_linked_directly_renders_the_known_scene_on_both_threads() {
    let dir = tempfile::tempdir().unwrap();
    let game = build_direct_game(dir.path());
    let run = run_game(&game, dir.path(), &[]);
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
        let checked_in = workspace().join("shims").join(soname);
        let crate_dir = if checked_in.join("Cargo.toml").is_file() {
            checked_in
        } else {
            run_ok(
                Command::new(capsule_gen())
                    .arg("--out")
                    .arg(scratch.join("src"))
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

#[test]
fn game_linked_to_shims_renders_what_the_real_libraries_render() {
    let dir = tempfile::tempdir().unwrap();
    let direct = run_game(&build_direct_game(dir.path()), dir.path(), &[]);

    let lib_dir = shim_lib_dir(dir.path());
    let game = dir.path().join("game-capsule");
    let mut args = vec![
        format!("-L{}", lib_dir.display()),
        format!("-Wl,-rpath,{}", lib_dir.display()),
    ];
    args.extend(GAME_LIBS.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    build_program(&game_source(), &game, &args);
    let report = dir.path().join("namespace_report.so");
    run_ok(
        Command::new(capsule_tests::cc())
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&report)
            .arg(workspace().join("examples/game/namespace_report.c")),
        "build the namespace report helper",
    );

    let capsule_dir = dir.path().join("capsule");
    std::fs::create_dir(&capsule_dir).unwrap();
    let run = run_game(
        &game,
        &capsule_dir,
        &[
            ("CAPSULE_PREFIX", "/"),
            ("LD_PRELOAD", report.to_str().unwrap()),
        ],
    );
    assert_eq!(run.get("renderer"), direct.get("renderer"));
    let namespaces: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("namespace-report: "))
        .collect();
    assert!(
        namespaces.len() == 1 && namespaces[0].contains("swrast_dri.so: yes"),
        "expected one capsule namespace holding Mesa's driver, got {namespaces:#?}"
    );
    let image = run.png("png");
    check_scene("through the shims", &image);
    assert_same_image("shims vs real libraries", &image, &direct.png("png"));
    assert_same_image("shims: main vs game thread", &image, &run.png("thread_png"));
}
