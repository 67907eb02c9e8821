//! One libc in the process: a library loaded through a generated shim shares the program's
//! per-process libc state (pthread keys, errno, stdout's buffer, atfork handlers, the
//! environment, the allocator), exactly as when the program links it directly.

use std::path::{Path, PathBuf};

use capsule_tests::{
    build_lib, build_program, generate_and_build_shim, install_shim, run_ok, Lib, Tree,
};

/// The host library: each function exercises one piece of libc state from inside.
const STATE_SOURCE: &str = r#"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

int lib_key_create_and_set(void) {
    pthread_key_t key;
    if (pthread_key_create(&key, 0) != 0) return -1;
    pthread_setspecific(key, (void *)0x1111);
    return (int)key;
}
void lib_set_errno(int e) { errno = e; }
int lib_fopen_missing(void) { return fopen("/nonexistent/capsule/file", "r") == NULL; }
void lib_print(const char *s) { printf("%s", s); }
static volatile int atfork_ran;
static void in_child(void) { atfork_ran = 1; }
void lib_register_atfork(void) { pthread_atfork(0, 0, in_child); }
int lib_atfork_ran(void) { return atfork_ran; }
const char *lib_getenv(const char *name) { return getenv(name); }
void *lib_malloc(size_t n) { return malloc(n); }
void lib_free(void *p) { free(p); }
void *lib_malloc_function(void) { return (void *)&malloc; }
void *lib_stdout(void) { return stdout; }
"#;

/// The program: prints one `key: value` line per behaviour. With `-DOWN_MALLOC` it
/// defines its own allocator, which the library must use too.
const PROGRAM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int lib_key_create_and_set(void);
void lib_set_errno(int);
int lib_fopen_missing(void);
void lib_print(const char *);
void lib_register_atfork(void);
int lib_atfork_ran(void);
const char *lib_getenv(const char *);
void *lib_malloc(size_t);
void lib_free(void *);
void *lib_malloc_function(void);
void *lib_stdout(void);

#ifdef OWN_MALLOC
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static volatile unsigned long own_calls;
void *malloc(size_t n) { own_calls++; return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t n, size_t s) { own_calls++; return __libc_calloc(n, s); }
void *realloc(void *p, size_t n) { own_calls++; return __libc_realloc(p, n); }
#endif

/* Distinct libc files mapped into this process. */
static int libc_images(void) {
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096], seen[8][512];
    int n = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        char *path = strchr(line, '/');
        if (!path) continue;
        path[strcspn(path, "\n")] = 0;
        const char *base = strrchr(path, '/') + 1;
        if (strcmp(base, "libc.so.6") && strncmp(base, "libc-", 5)) continue;
        int known = 0;
        for (int i = 0; i < n; i++) known |= !strcmp(seen[i], path);
        if (!known && n < 8) snprintf(seen[n++], sizeof seen[0], "%s", path);
    }
    if (maps) fclose(maps);
    return n;
}

int main(void) {
    pthread_key_t mine;
    pthread_key_create(&mine, 0);
    pthread_setspecific(mine, (void *)0x2222);
    int theirs = lib_key_create_and_set();
    printf("keys distinct: %s\n", theirs >= 0 && (pthread_key_t)theirs != mine ? "yes" : "no");
    printf("program key value: %s\n", pthread_getspecific(mine) == (void *)0x2222 ? "kept" : "overwritten");

    errno = 0;
    lib_set_errno(42);
    printf("errno set inside: %d\n", errno);
    errno = 0;
    int failed = lib_fopen_missing();
    printf("errno of fopen inside: %s\n", failed && errno == ENOENT ? "ENOENT" : strerror(errno));

    printf("A;");
    lib_print("B;");
    printf("C\n");

    lib_register_atfork();
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) _exit(lib_atfork_ran() ? 0 : 1);
    int status = 0;
    waitpid(child, &status, 0);
    printf("atfork handler in child: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ran" : "missing");

    /* The executable's copy of `stdout` (a copy relocation) is the one libc uses. */
    FILE *saved = stdout, *other = fopen("/dev/null", "w");
    stdout = other;
    int same = lib_stdout() == (void *)other;
    stdout = saved;
    fclose(other);
    printf("stdout assigned by the program, seen inside: %s\n", same ? "yes" : "no");

    setenv("CAPSULE_ONE_LIBC_LATE", "late value", 1);
    const char *late = lib_getenv("CAPSULE_ONE_LIBC_LATE");
    printf("setenv after load, seen inside: %s\n", late ? late : "(unset)");

    void *(*program_malloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "malloc");
    printf("malloc inside is the program's: %s\n", lib_malloc_function() == (void *)program_malloc ? "yes" : "no");
    void *p = lib_malloc(64);
    free(p);
    void *q = malloc(64);
    lib_free(q);
#ifdef OWN_MALLOC
    unsigned long before = own_calls;
    void *r = lib_malloc(32);
    printf("program's own malloc used inside: %s\n", own_calls > before ? "yes" : "no");
    lib_free(r);
#endif
    printf("libc images mapped: %d\n", libc_images());
    return 0;
}
"#;

/// The lines both builds of the program must print.
const EXPECTED: &[&str] = &[
    "keys distinct: yes",
    "program key value: kept",
    "errno set inside: 42",
    "errno of fopen inside: ENOENT",
    "A;B;C",
    "atfork handler in child: ran",
    "stdout assigned by the program, seen inside: yes",
    "setenv after load, seen inside: late value",
    "malloc inside is the program's: yes",
    "libc images mapped: 1",
];

fn shim_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shim-target")
}

/// The host tree with `libstate.so.1`, and the program built against the shim (`shim`
/// true) or the real library, with extra compiler arguments.
fn build(host: &Tree, work: &Tree, shim: bool, extra: &[&str]) -> PathBuf {
    let real = host.path(&capsule_tests::for_machine(
        "usr/lib/x86_64-linux-gnu/libstate.so.1",
    ));
    if !real.exists() {
        build_lib(
            &Lib {
                source: STATE_SOURCE,
                soname: Some("libstate.so.1"),
                args: &["-pthread"],
            },
            &real,
        );
    }
    let lib_dir = if shim {
        let dir = work.path("shim-lib");
        if !dir.join("libstate.so.1").exists() {
            let built = generate_and_build_shim(
                "libstate.so.1",
                host.root(),
                &work.path("shims"),
                &shim_target_dir(),
            );
            install_shim(&built, "libstate.so.1", &dir);
        }
        dir
    } else {
        let dir = work.path("real-lib");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&real, dir.join("libstate.so.1")).unwrap();
        std::os::unix::fs::symlink("libstate.so.1", dir.join("libstate.so")).ok();
        dir
    };
    let name = format!(
        "bin/state-{}{}",
        if shim { "shim" } else { "direct" },
        extra.join("")
    );
    let program = work.path(&name);
    let (l_arg, rpath) = (
        format!("-L{}", lib_dir.display()),
        format!("-Wl,-rpath,{}", lib_dir.display()),
    );
    let mut args = vec![
        l_arg.as_str(),
        rpath.as_str(),
        "-lstate",
        "-ldl",
        "-pthread",
    ];
    args.extend_from_slice(extra);
    build_program(PROGRAM, &program, &args);
    program
}

fn run(program: &Path, host: &Tree) -> Vec<String> {
    let out = run_ok(
        capsule_tests::program(program)
            .env_remove("CAPSULE_PREFIX")
            .env("CAPSULE_LIBSTATE_SO_1_PREFIX", host.root()),
        "run the program",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn per_process_libc_state_is_one_through_a_shim() {
    let (host, work) = (Tree::new(), Tree::new());
    let direct = run(&build(&host, &work, false, &[]), &host);
    assert_eq!(direct, EXPECTED, "the program linked directly");
    let shimmed = run(&build(&host, &work, true, &[]), &host);
    assert_eq!(shimmed, EXPECTED, "the program through the shim");
}

#[test]
fn the_programs_own_malloc_is_used_inside_the_capsule() {
    let (host, work) = (Tree::new(), Tree::new());
    let mut expected: Vec<&str> = EXPECTED.to_vec();
    expected.insert(9, "program's own malloc used inside: yes");
    let direct = run(&build(&host, &work, false, &["-DOWN_MALLOC"]), &host);
    assert_eq!(direct, expected, "the program linked directly");
    let shimmed = run(&build(&host, &work, true, &["-DOWN_MALLOC"]), &host);
    assert_eq!(shimmed, expected, "the program through the shim");
}

/// Run the shim build of `program` with the cache directory `cache` and
/// CAPSULE_DEBUG=libs: its stdout lines and stderr.
fn run_cached(program: &Path, host: &Tree, cache: &Path) -> (Vec<String>, String) {
    let out = run_ok(
        capsule_tests::program(program)
            .env_remove("CAPSULE_PREFIX")
            .env("CAPSULE_LIBSTATE_SO_1_PREFIX", host.root())
            .env("CAPSULE_CACHE_DIR", cache)
            .env("CAPSULE_DEBUG", "libs"),
        "run the program",
    );
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The line saying how libc was shared, and how many of its symbols the program's scope
/// takes from earlier objects.
fn libc_shared(stderr: &str) -> (&str, usize) {
    let line = stderr
        .lines()
        .find(|l| l.contains("libc.so.6 => shared with the program"))
        .unwrap_or_else(|| panic!("no line on libc's forwarder:\n{stderr}"));
    let count = line
        .split(", ")
        .find_map(|part| {
            part.strip_suffix(" symbol(s) from objects before it in the program's scope)")
        })
        .map_or(0, |n| n.parse().unwrap());
    (line, count)
}

/// libc's forwarder remembers what the walk of the program's scope found (the program's
/// own malloc family), and a later run of the program takes it from the file; a file that
/// remembers a symbol the scope does not define is walked again, and rewritten.
#[test]
fn the_forwarders_activation_is_remembered_and_checked() {
    let (host, work) = (Tree::new(), Tree::new());
    let cache = work.path("cache");
    let mut expected: Vec<&str> = EXPECTED.to_vec();
    expected.insert(9, "program's own malloc used inside: yes");
    let program = build(&host, &work, true, &["-DOWN_MALLOC"]);

    let (first, stderr) = run_cached(&program, &host, &cache);
    assert_eq!(first, expected, "the first run:\n{stderr}");
    assert!(
        stderr.contains("written, remembering its activation"),
        "the first run writes the forwarder:\n{stderr}"
    );
    let (line, walked) = libc_shared(&stderr);
    assert!(
        walked >= 4,
        "malloc, free, calloc, realloc at least: {line}"
    );

    let (second, stderr) = run_cached(&program, &host, &cache);
    assert_eq!(second, expected, "the second run:\n{stderr}");
    assert!(
        !stderr.contains("written"),
        "nothing written again:\n{stderr}"
    );
    let (line, remembered) = libc_shared(&stderr);
    assert!(
        line.contains(&format!("forwarder {}", cache.display())),
        "{line}"
    );
    assert_eq!(remembered, walked, "{line}");

    // Point the first remembered definition at the object's symbol 1, another name; then
    // announce one symbol more than the file holds. Each time the scope is walked instead,
    // and the file rewritten. (The file of this program's scope: the one every program
    // shares is beside it.)
    let word = std::mem::size_of::<usize>();
    let damage = |tag: u64, value: &dyn Fn(u64) -> u64| {
        let tag = &tag.to_le_bytes()[..word];
        let (forwarder, mut bytes, at) = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("forward-libc.so.6-")
            })
            .find_map(|path| {
                let bytes = std::fs::read(&path).unwrap();
                let at = bytes.windows(word).position(|w| w == tag)? + word;
                Some((path, bytes, at))
            })
            .expect("a remembered activation in libc's forwarder");
        let mut old = [0u8; 8];
        old[..word].copy_from_slice(&bytes[at..at + word]);
        let new = value(u64::from_le_bytes(old)).to_le_bytes();
        bytes[at..at + word].copy_from_slice(&new[..word]);
        std::fs::write(&forwarder, &bytes).unwrap();
    };
    let point_elsewhere = |_| 1;
    let announce_one_more = |n| n + 1;
    let cases: [(u64, &dyn Fn(u64) -> u64); 2] = [
        (0x6c61_7003, &point_elsewhere),
        (0x6c61_7001, &announce_one_more),
    ];
    for (tag, value) in cases {
        damage(tag, value);
        let (again, stderr) = run_cached(&program, &host, &cache);
        assert_eq!(again, expected, "the run with a damaged file:\n{stderr}");
        assert!(
            stderr.contains("walking the program's scope instead"),
            "the damage is noticed:\n{stderr}"
        );
        assert!(stderr.contains("written, remembering"), "{stderr}");
        assert_eq!(libc_shared(&stderr).1, walked, "{stderr}");
        let (after, stderr) = run_cached(&program, &host, &cache);
        assert_eq!(after, expected);
        assert!(
            !stderr.contains("written") && !stderr.contains("instead"),
            "{stderr}"
        );
    }
}

/// Preloaded into the child: `strspn` as an IFUNC, whose resolver notes how it was called.
const IFUNC_PRELOAD: &str = r#"
#include <stddef.h>
#include <string.h>
static size_t counting_strspn(const char *s, const char *accept) {
    size_t n = 0;
    while (s[n] && strchr(accept, s[n])) n++;
    return n + 1000;
}
unsigned long resolver_calls, resolver_hwcap, resolver_arg_size, resolver_hwcap2;
/* aarch64's resolvers get (hwcap | _IFUNC_ARG_HWCAP, const __ifunc_arg_t *); x86's read
 * nothing (their arguments are whatever the registers held). */
static void *resolve(unsigned long hwcap, const unsigned long *arg) {
    resolver_calls++;
#if defined(__aarch64__)
    resolver_hwcap = hwcap;
    if (hwcap & (1UL << 62)) {
        resolver_arg_size = arg[0];
        resolver_hwcap2 = arg[2];
    }
#else
    (void)hwcap;
    (void)arg;
#endif
    return (void *)counting_strspn;
}
size_t strspn(const char *, const char *) __attribute__((ifunc("resolve")));
"#;

/// The IFUNC that the program's global scope takes from a preload, not from libc, is what
/// the capsule's libc calls reach: the forwarder asked the resolver, as ld.so asks it.
#[test]
fn a_preloaded_ifunc_reaches_the_capsule_resolved_as_ld_so_resolves_it() {
    const NAME: &str = "a_preloaded_ifunc_reaches_the_capsule_resolved_as_ld_so_resolves_it";
    if capsule_tests::is_child(NAME) {
        let host = Path::new(&std::env::var_os("IFUNC_HOST").unwrap()).to_owned();
        let capsule = capsule::Capsule::load("libspan.so.1", &host).unwrap();
        // SAFETY: `span` is `int span(void)`.
        let span: extern "C" fn() -> i32 = unsafe { capsule_tests::func(&capsule, "span") };
        let read = |name: &str| {
            let c = std::ffi::CString::new(name).unwrap();
            // SAFETY: the preload's `unsigned long` variables, alive for the process.
            unsafe { *(libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) as *const libc::c_ulong) }
        };
        println!("span={}", span());
        println!("calls={}", read("resolver_calls"));
        #[cfg(target_arch = "aarch64")]
        {
            // SAFETY: getauxval only reads the auxiliary vector.
            let (hwcap, hwcap2) = unsafe {
                (
                    libc::getauxval(libc::AT_HWCAP),
                    libc::getauxval(libc::AT_HWCAP2),
                )
            };
            println!(
                "hwcap={} size={} hwcap2={}",
                read("resolver_hwcap") == hwcap | 1 << 62,
                read("resolver_arg_size"),
                read("resolver_hwcap2") == hwcap2
            );
        }
        return;
    }
    let work = Tree::new();
    let preload = work.path("lib/libpre.so");
    build_lib(
        &Lib {
            source: IFUNC_PRELOAD,
            soname: Some("libpre.so"),
            args: &[],
        },
        &preload,
    );
    let host = Tree::new();
    build_lib(
        &Lib {
            source:
                "#include <string.h>\nint span(void) { return (int)strspn(\"aaab\", \"a\"); }\n",
            soname: Some("libspan.so.1"),
            // A call to libc's strspn, not a folded constant.
            args: &["-fno-builtin"],
        },
        &host.path(&capsule_tests::for_machine(
            "usr/lib/x86_64-linux-gnu/libspan.so.1",
        )),
    );
    let out = capsule_tests::rerun_self(
        NAME,
        &[
            ("LD_PRELOAD", preload.to_str().unwrap()),
            ("IFUNC_HOST", host.root().to_str().unwrap()),
        ],
    );
    capsule_tests::assert_succeeded(&out, "the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("span=1003\n"),
        "the preload's strspn: {stdout}"
    );
    assert!(!stdout.contains("calls=0\n"), "{stdout}");
    if capsule_tests::machine() == capsule_tests::Machine::Aarch64 {
        assert!(
            stdout.contains("hwcap=true size=24 hwcap2=true\n"),
            "{stdout}"
        );
    }
}
