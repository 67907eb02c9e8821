//! Faults tried on a loaded capsule: fork while threads run inside it, exec after a load,
//! a low address-space limit, cache directories shared between processes, read-only or
//! `noexec`, concurrent first loads, and a signal handler calling in during a load. Each
//! runs in a child process of its own (`rerun_self`), so that what it does to the process
//! (limits, signals, first loads) touches no other test.

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;

use capsule::Capsule;
use capsule_tests::{build_lib, is_child, rerun_self, Lib, Tree};

const FAULT: &str = r#"
int fault_add(int a, int b) { return a + b + ID; }
void fault_spin(volatile int *stop) { while (!*stop) { } }
"#;

type Add = extern "C" fn(c_int, c_int) -> c_int;
type Spin = extern "C" fn(*const AtomicI32);

/// `libfaultN.so.1` (`fault_add` adds N) in a host tree at `tree`.
fn fault_lib(tree: &Tree, n: usize) -> PathBuf {
    let path = tree.path(&capsule_tests::for_machine(&format!(
        "usr/lib/x86_64-linux-gnu/libfault{n}.so.1"
    )));
    build_lib(
        &Lib {
            source: FAULT,
            soname: Some(&format!("libfault{n}.so.1")),
            args: &[&format!("-DID={n}")],
        },
        &path,
    );
    path
}

fn add_of(capsule: &Capsule) -> Add {
    // SAFETY: fault_add is `int fault_add(int, int)`.
    *unsafe { capsule.get::<Add>("fault_add") }.unwrap()
}

/// The child's environment: the host tree's root, and the test's cache directory.
fn env_root() -> PathBuf {
    PathBuf::from(std::env::var_os("FAULT_ROOT").expect("FAULT_ROOT set by the parent"))
}

/// Run test `name` again in a child with the tree's root (and `envs`), expecting success.
fn in_child(name: &str, tree: &Tree, envs: &[(&str, &str)]) -> Output {
    let root = tree.root().display().to_string();
    let mut all = vec![("FAULT_ROOT", root.as_str())];
    all.extend_from_slice(envs);
    let out = rerun_self(name, &all);
    capsule_tests::assert_succeeded(&out, name);
    out
}

#[test]
fn fork_while_threads_run_inside_the_capsule_then_the_child_calls_in() {
    const NAME: &str = "fork_while_threads_run_inside_the_capsule_then_the_child_calls_in";
    if !is_child(NAME) {
        let tree = Tree::new();
        fault_lib(&tree, 1);
        fault_lib(&tree, 2);
        in_child(NAME, &tree, &[]);
        return;
    }
    let capsule = Capsule::load("libfault1.so.1", &env_root()).unwrap();
    // SAFETY: fault_spin is `void fault_spin(volatile int *)`; AtomicI32 is an int.
    let spin = *unsafe { capsule.get::<Spin>("fault_spin") }.unwrap();
    let stop = Arc::new(AtomicI32::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || spin(&*stop))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(50));
    // SAFETY: the child only calls async-signal-safe code and functions of the capsule,
    // then loads another library (the loader's locks are reset by glibc's fork) and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = add_of(&capsule)(2, 3) == 6
            && Capsule::load("libfault2.so.1", &env_root())
                .map(|c| add_of(&c)(2, 3) == 7)
                .unwrap_or(false);
        // SAFETY: _exit ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    stop.store(1, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child failed to call into the capsule or load another: status {status:#x}"
    );
}

#[test]
fn exec_after_a_load_runs_the_new_program() {
    const NAME: &str = "exec_after_a_load_runs_the_new_program";
    if !is_child(NAME) {
        let tree = Tree::new();
        fault_lib(&tree, 3);
        let out = in_child(NAME, &tree, &[]);
        // The harness's "test NAME ... " precedes it on the line: the exec replaced the test.
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.trim_end().ends_with("... exec ok 8"), "{stdout}");
        return;
    }
    use std::os::unix::process::CommandExt;
    let capsule = Capsule::load("libfault3.so.1", &env_root()).unwrap();
    let sum = add_of(&capsule)(2, 3);
    let err = Command::new("/bin/sh")
        .args(["-c", &format!("echo exec ok {sum}")])
        .exec();
    panic!("exec /bin/sh: {err}");
}

#[test]
fn a_low_address_space_limit_is_a_clear_error_and_the_process_goes_on() {
    const NAME: &str = "a_low_address_space_limit_is_a_clear_error_and_the_process_goes_on";
    if !is_child(NAME) {
        let tree = Tree::new();
        fault_lib(&tree, 4);
        // 2 GiB of zero-filled data (1 GiB on 32-bit machines, whose objects must stay
        // below 2 GiB): more than the limit leaves.
        build_lib(
            &Lib {
                source: "static char big[(sizeof(void *) == 8 ? 2UL : 1UL) << 30];\nchar *fault_big(void) { return big; }\n",
                soname: Some("libfaultbig.so.1"),
                args: &[],
            },
            &tree.path(&capsule_tests::for_machine(
                "usr/lib/x86_64-linux-gnu/libfaultbig.so.1",
            )),
        );
        in_child(NAME, &tree, &[]);
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let limit = (vm_kib + 512 * 1024) * 1024;
    let rlimit = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) }, 0);
    let err = Capsule::load("libfaultbig.so.1", &env_root())
        .map(|_| ())
        .expect_err("a 1-2 GiB object loaded under a limit of VmSize + 512 MiB");
    let message = err.to_string();
    assert!(
        message.starts_with("capsule: dlmopen libfaultbig.so.1 (")
            && message.ends_with("libfaultbig.so.1: failed to map segment from shared object"),
        "{message}"
    );
    // The process goes on: memory, and another capsule.
    let v = vec![1u8; 16 << 20];
    assert_eq!(v.iter().map(|&b| usize::from(b)).sum::<usize>(), 16 << 20);
    let small = Capsule::load("libfault4.so.1", &env_root()).unwrap();
    assert_eq!(add_of(&small)(2, 3), 9);
}

#[test]
fn two_processes_fill_one_cache_directory_at_once() {
    const NAME: &str = "two_processes_fill_one_cache_directory_at_once";
    if !is_child(NAME) {
        let tree = Tree::new();
        fault_lib(&tree, 5);
        let cache = tempfile::tempdir().unwrap();
        let (root, dir) = (tree.root().to_owned(), cache.path().to_owned());
        let children: Vec<_> = (0..2)
            .map(|_| {
                let exe = std::env::current_exe().unwrap();
                capsule_tests::program(exe)
                    .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
                    .env("CAPSULE_TEST_CHILD", NAME)
                    .env("FAULT_ROOT", &root)
                    .env("CAPSULE_CACHE_DIR", &dir)
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            capsule_tests::assert_succeeded(&out, NAME);
        }
        let names: Vec<String> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("interpose-")),
            "{names:?}"
        );
        return;
    }
    let capsule = Capsule::load("libfault5.so.1", &env_root()).unwrap();
    assert_eq!(add_of(&capsule)(2, 3), 10);
}

/// A tmpfs mounted with `options` (needs root), unmounted when dropped.
struct Mount(tempfile::TempDir);

impl Mount {
    fn tmpfs(options: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs -o {options} (the test needs root to mount a tmpfs): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn read_only_and_noexec_cache_directories_fall_back_to_memory() {
    const NAME: &str = "read_only_and_noexec_cache_directories_fall_back_to_memory";
    if !is_child(NAME) {
        let tree = Tree::new();
        fault_lib(&tree, 6);
        for options in ["ro", "noexec"] {
            let mount = Mount::tmpfs(options);
            let dir = mount.path().display().to_string();
            in_child(
                NAME,
                &tree,
                &[("CAPSULE_CACHE_DIR", &dir), ("FAULT_CACHE", &dir)],
            );
        }
        return;
    }
    let capsule = Capsule::load("libfault6.so.1", &env_root()).unwrap();
    assert_eq!(add_of(&capsule)(2, 3), 11);
    // The interposer came from a memfd, not from the unusable directory.
    let cache = std::env::var("FAULT_CACHE").unwrap();
    let interposer = &capsule.objects()[0].path;
    assert!(
        !interposer.starts_with(&cache),
        "interposer loaded from {interposer:?}"
    );
}

#[test]
fn eight_threads_load_different_libraries_at_once() {
    const NAME: &str = "eight_threads_load_different_libraries_at_once";
    if !is_child(NAME) {
        let tree = Tree::new();
        for n in 10..18 {
            fault_lib(&tree, n);
        }
        in_child(NAME, &tree, &[]);
        return;
    }
    let root = env_root();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (10..18)
        .map(|n| {
            let (root, barrier) = (root.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let capsule = Capsule::load(&format!("libfault{n}.so.1"), &root).unwrap();
                (n, add_of(&capsule)(2, 3), capsule.namespace_id())
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for &(n, sum, _) in &results {
        assert_eq!(sum, 5 + n as c_int, "libfault{n}");
    }
    let namespaces: std::collections::BTreeSet<_> = results.iter().map(|r| r.2).collect();
    assert_eq!(
        namespaces.len(),
        1,
        "one prefix, one namespace: {results:?}"
    );
}

static HANDLER_ADD: AtomicUsize = AtomicUsize::new(0);
static HANDLER_CALLS: AtomicUsize = AtomicUsize::new(0);
static HANDLER_WRONG: AtomicUsize = AtomicUsize::new(0);

extern "C" fn call_in(_: c_int) {
    let add = HANDLER_ADD.load(Ordering::SeqCst);
    if add != 0 {
        // SAFETY: the address of fault_add, stored before the handler was installed;
        // fault_add is async-signal-safe (arithmetic only).
        let add: Add = unsafe { std::mem::transmute::<usize, Add>(add) };
        if add(2, 3) != 25 {
            HANDLER_WRONG.fetch_add(1, Ordering::SeqCst);
        }
        HANDLER_CALLS.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_signal_handler_calls_into_a_capsule_while_another_loads() {
    const NAME: &str = "a_signal_handler_calls_into_a_capsule_while_another_loads";
    if !is_child(NAME) {
        let tree = Tree::new();
        fault_lib(&tree, 20);
        let other = Tree::new();
        fault_lib(&other, 21);
        let other_root = other.root().display().to_string();
        in_child(NAME, &tree, &[("FAULT_OTHER_ROOT", &other_root)]);
        return;
    }
    let capsule = Capsule::load("libfault20.so.1", &env_root()).unwrap();
    HANDLER_ADD.store(add_of(&capsule) as usize, Ordering::SeqCst);
    // SAFETY: `call_in` only reads atomics and calls an async-signal-safe function.
    let previous = unsafe {
        libc::signal(
            libc::SIGUSR1,
            call_in as extern "C" fn(c_int) as libc::sighandler_t,
        )
    };
    assert_ne!(previous, libc::SIG_ERR);
    let other = PathBuf::from(std::env::var_os("FAULT_OTHER_ROOT").unwrap());
    // started, done, released: the loader handles every signal sent before it returns.
    let flags = Arc::new([
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicBool::new(false),
    ]);
    let loader = {
        let flags = Arc::clone(&flags);
        std::thread::spawn(move || {
            flags[0].store(true, Ordering::SeqCst);
            // Another prefix: a new namespace, the interposer, a forwarder of libc, the
            // library: a load long enough for many signals to land inside it.
            let loaded = Capsule::load("libfault21.so.1", &other).map(|c| add_of(&c)(2, 3));
            flags[1].store(true, Ordering::SeqCst);
            while !flags[2].load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            loaded
        })
    };
    let target = std::os::unix::thread::JoinHandleExt::as_pthread_t(&loader);
    while !flags[0].load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let mut sent = 0;
    loop {
        // SAFETY: the loader thread runs until `released` is set below.
        unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
        sent += 1;
        if flags[1].load(Ordering::SeqCst) {
            break;
        }
        std::thread::yield_now();
    }
    flags[2].store(true, Ordering::SeqCst);
    assert_eq!(loader.join().unwrap().unwrap(), 26);
    assert!(
        sent > 0 && HANDLER_CALLS.load(Ordering::SeqCst) > 0,
        "sent {sent}"
    );
    assert_eq!(HANDLER_WRONG.load(Ordering::SeqCst), 0);
}
