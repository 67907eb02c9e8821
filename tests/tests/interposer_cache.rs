//! The interposer's image file: kept in the cache directory (`CAPSULE_CACHE_DIR`), reused
//! by later processes, replaced when damaged, and loaded from memory where no cache can
//! be used. Each case runs in a child process, since a namespace is made once per process.

use capsule::Capsule;
use capsule_tests::{is_child, rerun_self};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const CHILD: &str = "load_libz_and_print_the_interposer_path";

/// Child: load libz from `/` and print the path the namespace's first object was loaded
/// from, after checking that zlib answers through the capsule.
#[test]
fn load_libz_and_print_the_interposer_path() {
    if !is_child(CHILD) {
        return;
    }
    let z = Capsule::load("libz.so.1", Path::new("/")).expect("load libz.so.1 from /");
    type Version = unsafe extern "C" fn() -> *const std::ffi::c_char;
    // SAFETY: zlibVersion takes nothing and returns a static C string.
    let version: Version = unsafe { capsule_tests::func(&z, "zlibVersion") };
    // SAFETY: as above.
    let version = unsafe { std::ffi::CStr::from_ptr(version()) };
    assert!(version.to_bytes().starts_with(b"1."), "{version:?}");
    let first = &z.objects()[0];
    println!("INTERPOSER={}", first.path.display());
}

/// Run the child with `envs` (and CAPSULE_DEBUG=libs); the interposer's path and stderr.
fn run(envs: &[(&str, &str)]) -> (PathBuf, String) {
    let mut all = envs.to_vec();
    all.push(("CAPSULE_DEBUG", "libs"));
    let out = rerun_self(CHILD, &all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let path = stdout
        .lines()
        // The test harness may print its own words before ours on the line.
        .find_map(|l| l.split_once("INTERPOSER=").map(|(_, path)| path))
        .unwrap_or_else(|| panic!("no INTERPOSER= line:\n{stdout}\n{stderr}"));
    (PathBuf::from(path), stderr)
}

#[test]
fn the_interposer_file_is_written_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache/capsule");
    let env = [("CAPSULE_CACHE_DIR", cache.to_str().unwrap())];

    let (path, stderr) = run(&env);
    assert_eq!(path.parent(), Some(cache.as_path()), "{stderr}");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("interpose-root-") && name.ends_with(".so"),
        "{name}"
    );
    assert!(stderr.contains("writing it"), "{stderr}");
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\x7fELF"), "not an ELF image");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o022, 0, "writable by others");
    let dir_mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700, "the cache directory is private");
    // Beside the image: the closure remembered for libz, libc's forwarder, and no
    // temporary file.
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n == &name || n.ends_with(".memo") || n.starts_with("forward-libc.so.6-")),
        "{names:?}"
    );

    // A later process loads the same file, untouched.
    let (again, stderr) = run(&env);
    assert_eq!(again, path);
    assert!(!stderr.contains("writing it"), "{stderr}");
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), meta.ino());
}

#[test]
fn a_damaged_or_unsafe_interposer_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("CAPSULE_CACHE_DIR", dir.path().to_str().unwrap())];
    let (path, _) = run(&env);
    let good = std::fs::read(&path).unwrap();

    // Truncated (a crash of some other writer, a full disk).
    std::fs::write(&path, &good[..100]).unwrap();
    let (again, stderr) = run(&env);
    assert_eq!(again, path);
    assert!(stderr.contains("100 bytes, not"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), good);

    // Writable by others: anyone could have put code there.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (_, stderr) = run(&env);
    assert!(stderr.contains("lets others write it"), "{stderr}");
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o022, 0);
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn without_a_usable_cache_the_interposer_loads_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let below_a_file = file.join("capsule");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cases = [
        ("none", "CAPSULE_CACHE_DIR is none"),
        ("relative/dir", "is not an absolute path"),
        (below_a_file.to_str().unwrap(), "cannot write"),
        (shared.to_str().unwrap(), "is not private"),
    ];
    for (value, why) in cases {
        let (path, stderr) = run(&[("CAPSULE_CACHE_DIR", value)]);
        assert!(
            path.starts_with("/proc"),
            "CAPSULE_CACHE_DIR={value}: {}\n{stderr}",
            path.display()
        );
        assert!(
            stderr.contains(why) && stderr.contains("loading it from memory"),
            "CAPSULE_CACHE_DIR={value}: no {why:?} in\n{stderr}"
        );
    }
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
}

#[test]
fn the_default_cache_is_under_xdg_cache_home_then_home() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("xdg");
    let (path, _) = run(&[
        ("CAPSULE_CACHE_DIR", ""),
        ("XDG_CACHE_HOME", xdg.to_str().unwrap()),
    ]);
    assert_eq!(path.parent(), Some(xdg.join("capsule").as_path()));

    let home = dir.path().join("home");
    let (path, _) = run(&[
        ("CAPSULE_CACHE_DIR", ""),
        ("XDG_CACHE_HOME", "relative"),
        ("HOME", home.to_str().unwrap()),
    ]);
    assert_eq!(path.parent(), Some(home.join(".cache/capsule").as_path()));
}

/// libc's forwarders beside the interposer: a damaged one (cut short) is loaded from
/// memory for this process and replaced for the next; one writable by others is replaced.
/// Both files: the one of this program's scope, which remembers the activation (later runs
/// load it), and the one every program shares (loaded while the other is missing).
#[test]
fn a_damaged_or_unsafe_forwarder_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("CAPSULE_CACHE_DIR", dir.path().to_str().unwrap())];
    run(&env);
    let word = std::mem::size_of::<usize>();
    let remembers = |bytes: &[u8]| {
        let tag = &0x6c61_7001u64.to_le_bytes()[..word];
        bytes.windows(word).any(|w| w == tag)
    };
    let forwarders: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("forward-libc.so.6-"))
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    assert_eq!(forwarders.len(), 2, "{forwarders:?}");
    let scoped = forwarders.iter().find(|(_, b)| remembers(b));
    let shared = forwarders.iter().find(|(_, b)| !remembers(b));
    let (Some((scoped, scoped_good)), Some((shared, shared_good))) = (scoped, shared) else {
        panic!("one forwarder remembers its activation, the other not");
    };

    // Cut `path` short: the next run loads the forwarder from memory and writes it whole.
    let cut_short_and_run = |path: &Path, good: &[u8]| {
        std::fs::write(path, &good[..200]).unwrap();
        let (_, stderr) = run(&env);
        assert!(
            stderr.contains("loading the forwarder from memory (file replaced)"),
            "{stderr}"
        );
        assert_eq!(std::fs::read(path).unwrap(), good);
    };
    cut_short_and_run(scoped, scoped_good);
    let (_, stderr) = run(&env);
    assert!(
        !stderr.contains("loading the forwarder from memory"),
        "{stderr}"
    );

    std::fs::set_permissions(scoped, std::fs::Permissions::from_mode(0o666)).unwrap();
    run(&env);
    assert_eq!(std::fs::metadata(scoped).unwrap().mode() & 0o022, 0);
    assert_eq!(&std::fs::read(scoped).unwrap(), scoped_good);

    // Without the scope's file, the shared one is loaded: damaged, it is replaced too (and
    // the scope's file written again).
    std::fs::remove_file(scoped).unwrap();
    cut_short_and_run(shared, shared_good);
    assert_eq!(&std::fs::read(scoped).unwrap(), scoped_good);
}
