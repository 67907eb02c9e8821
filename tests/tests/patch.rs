//! The ELF views and the slot rewriter on real objects: fixture libraries built at test
//! time, loaded with dlopen in the program's namespace, compared with dlsym/dlvsym and nm,
//! and patched while being called.

use std::collections::BTreeSet;
use std::ffi::{c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use capsule::elf::{LinkMap, Object, SlotKind, SymbolKind};
use capsule::patch::{self, Expect};
use capsule_tests::{build_lib, run_ok, Lib, Tree};

const CALLEE: &str = "int value(void) { return 42; }\n";

/// Imports `value` through a GOT slot (address taken) and an R_X86_64_64 data pointer (with
/// and without an addend). GNU ld turns calls of a symbol that also has a GOT slot into
/// `.plt.got` jumps through that slot, so the PLT case has its own library.
const CALLER: &str = r#"
extern int value(void);
int (*fp)(void) = value;
const char *skewed = (const char *)value + 16;
int (*got_address(void))(void) { return value; }
int call_got(void) { return got_address()(); }
int call_fp(void) { return fp(); }
"#;

/// Calls `value` through the PLT: a JUMP_SLOT, lazily bound (`-z lazy`).
const PLT_CALLER: &str = "extern int value(void);\nint call_plt(void) { return value() + 0; }\n";

/// `value@V1` (returns 1, not default) and `value@@V2` (returns 2).
const VERSIONED: &str = r#"
int value_v1(void) { return 1; }
int value_v2(void) { return 2; }
__asm__(".symver value_v1,value@V1");
__asm__(".symver value_v2,value@@V2");
"#;

/// Imports `value@V2` (the default, by an ordinary call) and `value@V1` (explicitly).
const VERSIONED_CALLER: &str = r#"
extern int value(void);
extern int value_old(void);
__asm__(".symver value_old,value@V1");
int call_new(void) { return value(); }
int call_old(void) { return value_old(); }
"#;

struct Fixtures {
    tree: Tree,
    dir: PathBuf,
}

/// Build every fixture library once per test process.
fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let tree = Tree::new();
        let dir = tree.path("usr/lib/.keep").parent().unwrap().to_path_buf();
        let link = format!("-L{}", dir.display());
        let rpath = format!("-Wl,-rpath,{}", dir.display());
        let lib = |source, soname, args: &[&str], file: &str| {
            build_lib(
                &Lib {
                    source,
                    soname: Some(soname),
                    args,
                },
                &dir.join(file),
            )
        };
        lib(CALLEE, "libcallee.so", &[], "libcallee.so");
        lib(
            CALLER,
            "libcaller.so",
            &[&link, "-lcallee", &rpath],
            "libcaller.so",
        );
        lib(
            PLT_CALLER,
            "libplt.so",
            &[&link, "-lcallee", &rpath, "-Wl,-z,lazy"],
            "libplt.so",
        );
        let script = tree.write(
            "usr/lib/ver.map",
            "V1 { local: value_v1; value_v2; };\nV2 { } V1;\n",
        );
        let script = format!("-Wl,--version-script={}", script.display());
        lib(VERSIONED, "libver.so", &[&script], "libver.so");
        lib(
            VERSIONED_CALLER,
            "libvcaller.so",
            &[&link, "-lver", &rpath],
            "libvcaller.so",
        );
        Fixtures { tree, dir }
    })
}

/// A private copy of fixture `file` under a new name, so that each test patches its own
/// loaded instance (dlopen tells objects apart by path and inode).
fn private_copy(file: &str, copy: &str) -> PathBuf {
    let f = fixtures();
    let to = f.tree.path(&format!("usr/lib/copies/{copy}"));
    std::fs::copy(f.dir.join(file), &to).expect("copy a fixture library");
    to
}

/// A dlopen'ed library, never closed: patched slots may still be in use by other threads
/// when a test ends.
struct Loaded {
    handle: *mut c_void,
}

fn open(path: &Path, flags: c_int) -> Loaded {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path string; the fixtures' constructors are trivial.
    let handle = unsafe { libc::dlopen(c.as_ptr(), flags) };
    assert!(
        !handle.is_null(),
        "dlopen {}: {}",
        path.display(),
        dl_error()
    );
    Loaded { handle }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a valid string owned by libdl; copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "no dlerror".into()
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

impl Loaded {
    fn link_map(&self) -> *const LinkMap {
        let mut lm: *const LinkMap = std::ptr::null();
        // SAFETY: RTLD_DI_LINKMAP writes one pointer into `lm`.
        let rc = unsafe {
            libc::dlinfo(
                self.handle,
                libc::RTLD_DI_LINKMAP,
                &mut lm as *mut _ as *mut c_void,
            )
        };
        assert_eq!(rc, 0, "dlinfo: {}", dl_error());
        lm
    }

    fn object(&self) -> Object<'static> {
        // SAFETY: the link map comes from dlinfo and the library is never closed.
        unsafe { Object::from_link_map(self.link_map()) }.expect("view of a loaded object")
    }

    fn sym(&self, name: &str) -> usize {
        let c = CString::new(name).unwrap();
        // SAFETY: valid handle and name.
        let p = unsafe { libc::dlsym(self.handle, c.as_ptr()) };
        assert!(!p.is_null(), "dlsym {name}: {}", dl_error());
        p as usize
    }

    fn vsym(&self, name: &str, version: &str) -> usize {
        let (c, v) = (CString::new(name).unwrap(), CString::new(version).unwrap());
        // SAFETY: valid handle and strings.
        let p = unsafe { libc::dlvsym(self.handle, c.as_ptr(), v.as_ptr()) };
        assert!(!p.is_null(), "dlvsym {name}@{version}: {}", dl_error());
        p as usize
    }

    fn call(&self, function: &str) -> c_int {
        let address = self.sym(function);
        // SAFETY: every fixture function called this way is `int f(void)`.
        let f: extern "C" fn() -> c_int = unsafe { std::mem::transmute(address) };
        f()
    }
}

/// A function's address as a slot holds it.
fn address_of(f: extern "C" fn() -> c_int) -> usize {
    f as usize
}

extern "C" fn replacement_a() -> c_int {
    7
}

extern "C" fn replacement_b() -> c_int {
    8
}

#[test]
fn lookups_agree_with_dlsym_and_dlvsym() {
    let f = fixtures();
    let callee = open(&f.dir.join("libcallee.so"), libc::RTLD_NOW);
    let object = callee.object();
    let value = object
        .lookup("value", None)
        .unwrap()
        .expect("value is defined");
    assert_eq!(value.address, callee.sym("value"));
    assert_eq!((value.kind, value.version), (SymbolKind::Function, None));
    assert_eq!(object.lookup("no_such_symbol", None).unwrap(), None);

    let versioned = open(&f.dir.join("libver.so"), libc::RTLD_NOW);
    let object = versioned.object();
    let default = object.lookup("value", None).unwrap().unwrap();
    assert_eq!(default.address, versioned.sym("value"));
    assert_eq!((default.version, default.hidden), (Some("V2"), false));
    let old = object.lookup("value", Some("V1")).unwrap().unwrap();
    assert_eq!(old.address, versioned.vsym("value", "V1"));
    assert!(old.hidden, "value@V1 is not the default version");
    let new = object.lookup("value", Some("V2")).unwrap().unwrap();
    assert_eq!(new.address, versioned.vsym("value", "V2"));
    assert_eq!(object.lookup("value", Some("V3")).unwrap(), None);
}

#[test]
fn objects_of_a_dlmopen_namespace_are_read_from_their_elf_header() {
    // dl_iterate_phdr only lists the caller's namespace, so these views take the program
    // headers from the ELF header at l_addr.
    let path = private_copy("libcaller.so", "libcaller-namespace.so");
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path; the fixtures' constructors are trivial.
    let handle = unsafe { libc::dlmopen(libc::LM_ID_NEWLM, c.as_ptr(), libc::RTLD_NOW) };
    assert!(
        !handle.is_null(),
        "dlmopen {}: {}",
        path.display(),
        dl_error()
    );
    let caller = Loaded { handle };
    let mut lm = caller.link_map();
    let mut seen = Vec::new();
    let mut fp_checked = 0;
    while !lm.is_null() {
        // SAFETY: a live link map of a namespace that is never closed.
        let object = unsafe { Object::from_link_map(lm) }.expect("view of a namespace object");
        if let Some(fp) = object.lookup("fp", None).unwrap() {
            assert_eq!(fp.address, caller.sym("fp"));
            // fp, skewed (R_X86_64_64) and the GOT slot (and aarch64's PLT slot, see
            // `data_taken_function_slots`).
            assert_eq!(
                object.slots("value", None).unwrap().len(),
                data_taken_function_slots().len()
            );
            fp_checked += 1;
        }
        if object.name().ends_with("libcallee.so") {
            let value = object.lookup("value", None).unwrap().unwrap();
            // The caller's GOT slot was bound to this namespace's libcallee.
            let got = object_slot_value(&caller, "value");
            assert_eq!(got, value.address);
        }
        seen.push(object.name().to_string());
        // SAFETY: as above.
        lm = unsafe { (*lm).l_next };
    }
    assert!(seen.iter().any(|n| n.ends_with("libcallee.so")), "{seen:?}");
    assert_eq!(fp_checked, 1, "objects defining fp: {seen:?}");
}

/// What the GOT slot of `symbol` in `lib` holds.
fn object_slot_value(lib: &Loaded, symbol: &str) -> usize {
    let object = lib.object();
    let slot = object
        .slots(symbol, None)
        .unwrap()
        .into_iter()
        .find(|s| s.kind == SlotKind::GlobDat)
        .expect("a GOT slot");
    patch::read_slot(&object, slot.address).unwrap()
}

#[test]
fn libc_lookups_agree_with_dlvsym() {
    let libc_so = open(Path::new("libc.so.6"), libc::RTLD_NOW | libc::RTLD_NOLOAD);
    let object = libc_so.object();
    for name in ["malloc", "free", "printf", "memcpy"] {
        let found = object
            .lookup(name, None)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} in libc"));
        let address = if found.kind == SymbolKind::Ifunc {
            // dlsym calls the resolver; the view reports the resolver itself.
            // SAFETY: glibc's x86_64 ifunc resolvers take no arguments that matter here
            // and return the implementation's address.
            let resolver: extern "C" fn() -> usize = unsafe { std::mem::transmute(found.address) };
            resolver()
        } else {
            found.address
        };
        assert_eq!(address, libc_so.sym(name), "{name}");
    }
    let base = capsule_tests::glibc_base_version();
    let oldest = object.lookup("malloc", Some(base)).unwrap().unwrap();
    assert_eq!(oldest.address, libc_so.vsym("malloc", base));
}

#[test]
fn every_object_of_the_program_namespace_can_be_viewed() {
    let libc_so = open(Path::new("libc.so.6"), libc::RTLD_NOW | libc::RTLD_NOLOAD);
    let mut lm = libc_so.link_map();
    // SAFETY: walking glibc's live link map of the base namespace; objects of the test
    // binary's startup set are never unloaded.
    unsafe {
        while !(*lm).l_prev.is_null() {
            lm = (*lm).l_prev;
        }
    }
    let mut names = Vec::new();
    while !lm.is_null() {
        // SAFETY: as above.
        let object = unsafe { Object::from_link_map(lm) }.expect("every loaded object has a view");
        assert!(
            object.symbol_count() > 0 || object.name() == "main program",
            "{}",
            object.name()
        );
        for symbol in object.symbols() {
            symbol.unwrap_or_else(|e| panic!("{}: {e}", object.name()));
        }
        names.push(object.name().to_string());
        if object.name() == capsule_tests::vdso_soname() {
            // The vDSO's dynamic section is not relocated by glibc: check the bias rule.
            let vdso = open(
                Path::new(capsule_tests::vdso_soname()),
                libc::RTLD_NOW | libc::RTLD_NOLOAD,
            );
            let found = object
                .lookup("__vdso_clock_gettime", Some("LINUX_2.6"))
                .unwrap()
                .unwrap();
            assert_eq!(
                found.address,
                vdso.vsym("__vdso_clock_gettime", "LINUX_2.6")
            );
        }
        // SAFETY: as above.
        lm = unsafe { (*lm).l_next };
    }
    assert_eq!(names[0], "main program");
    assert!(names.iter().any(|n| n.contains("libc.so.6")), "{names:?}");
    assert!(
        names.iter().any(|n| n == capsule_tests::vdso_soname()),
        "{names:?}"
    );
}

#[test]
fn zlib_exports_match_nm() {
    let zlib = open(Path::new("libz.so.1"), libc::RTLD_NOW);
    let object = zlib.object();
    let path = object.name().to_string();
    assert!(
        Path::new(&path).is_absolute(),
        "libz.so.1 loaded from {path}: install zlib1g"
    );
    let mut ours = BTreeSet::new();
    for symbol in object.symbols() {
        let symbol = symbol.unwrap();
        // nm prints GNU ld's absolute version-name symbols bare.
        let line = match symbol.version {
            Some(v) if symbol.absolute && v == symbol.name => symbol.name.to_string(),
            Some(v) if symbol.hidden => format!("{}@{v}", symbol.name),
            Some(v) => format!("{}@@{v}", symbol.name),
            None => symbol.name.to_string(),
        };
        ours.insert(line);
    }
    let out = run_ok(
        Command::new(capsule_tests::binutil("nm"))
            .args(["-D", "--defined-only", "--with-symbol-versions"])
            .arg(&path),
        "nm (install binutils)",
    );
    let theirs: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    assert!(theirs.len() > 50, "nm listed too little: {theirs:?}");
    assert_eq!(ours, theirs);
    // Addresses agree with dlsym too.
    let deflate = object.lookup("deflate", None).unwrap().unwrap();
    assert_eq!(deflate.address, zlib.sym("deflate"));
}

/// `start-end perms` of every mapping of the process, from /proc/self/maps.
fn mappings() -> Vec<(usize, usize, String)> {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next().unwrap();
            let perms = fields.next().unwrap().to_string();
            let (start, end) = range.split_once('-').unwrap();
            let hex = |s| usize::from_str_radix(s, 16).unwrap();
            (hex(start), hex(end), perms)
        })
        .collect()
}

/// The protection of every page of `object`'s PT_LOAD segments.
fn page_protections(object: &Object<'_>) -> Vec<(usize, String)> {
    let maps = mappings();
    let page = 4096;
    let mut pages = Vec::new();
    for segment in object.load_segments() {
        let range = segment.range();
        let mut at = range.start & !(page - 1);
        while at < range.end {
            let perms = maps
                .iter()
                .find(|(s, e, _)| (*s..*e).contains(&at))
                .map(|m| m.2.clone())
                .unwrap_or_else(|| panic!("page {at:#x} of {} is not mapped", object.name()));
            pages.push((at, perms));
            at += page;
        }
    }
    pages
}

fn assert_no_writable_executable_mapping() {
    for (start, end, perms) in mappings() {
        assert!(
            !(perms.contains('w') && perms.contains('x')),
            "{start:#x}-{end:#x} is {perms}"
        );
    }
}

/// The slot kinds of `value` in libcaller.so: `fp` and `skewed` (absolute), the GOT slot
/// of `got_address`; GNU ld for aarch64 also gives a function whose address data takes a
/// PLT entry, and so a JUMP_SLOT, that no code calls (binutils 2.40).
fn data_taken_function_slots() -> Vec<&'static str> {
    let mut kinds = vec!["Absolute", "Absolute", "GlobDat"];
    if capsule_tests::machine() == capsule_tests::Machine::Aarch64 {
        kinds.push("JumpSlot");
    }
    kinds
}

#[test]
fn got_and_data_pointer_slots_are_rewritten_and_protections_restored() {
    let caller = open(
        &private_copy("libcaller.so", "libcaller-rewrite.so"),
        libc::RTLD_NOW,
    );
    let object = caller.object();
    let value = object.lookup("fp", None).unwrap().unwrap();
    assert_eq!(value.kind, SymbolKind::Object);
    assert_eq!(caller.call("call_got"), 42);
    assert_eq!(caller.call("call_fp"), 42);
    let original = read_fp(&caller, "fp");
    let slots = object.slots("value", None).unwrap();
    let mut kinds: Vec<_> = slots.iter().map(|s| format!("{:?}", s.kind)).collect();
    kinds.sort();
    assert_eq!(kinds, data_taken_function_slots(), "{slots:?}");
    let relro = object
        .relro()
        .expect("fixture libraries are linked with -z relro");
    assert!(
        slots
            .iter()
            .any(|s| s.kind == SlotKind::GlobDat && relro.contains(&s.address)),
        "GOT slot in RELRO"
    );

    let before = page_protections(&object);
    // SAFETY: replacement_a has value's signature and lives as long as the test binary.
    let report = unsafe {
        patch::rewrite_symbol(
            &object,
            "value",
            None,
            address_of(replacement_a),
            Expect::Target(original),
        )
    }
    .unwrap();
    assert_eq!((report.rewritten, report.skipped.len()), (slots.len(), 0));
    assert_eq!(caller.call("call_got"), 7);
    assert_eq!(caller.call("call_fp"), 7);
    assert_eq!(
        read_fp(&caller, "skewed"),
        address_of(replacement_a) + 16,
        "an absolute slot (R_X86_64_64, R_386_32) keeps its addend"
    );
    assert_eq!(
        page_protections(&object),
        before,
        "page protections changed"
    );
    for (page, perms) in &before {
        if relro.contains(page) {
            assert_eq!(perms, "r--p", "RELRO page {page:#x}");
        }
    }
    assert_no_writable_executable_mapping();
    for slot in slots
        .iter()
        .filter(|s| s.addend.is_some() || s.kind != SlotKind::Absolute)
    {
        assert_eq!(
            patch::read_slot(&object, slot.address).unwrap(),
            slot.value_for(address_of(replacement_a))
        );
    }
}

fn read_fp(lib: &Loaded, variable: &str) -> usize {
    // SAFETY: the fixture's pointer variables are pointer-sized and aligned.
    unsafe { *(lib.sym(variable) as *const usize) }
}

#[test]
fn lazily_bound_plt_slot_is_rewritten() {
    let plt = open(
        &private_copy("libplt.so", "libplt-lazy.so"),
        libc::RTLD_LAZY,
    );
    let object = plt.object();
    let slots = object.slots("value", None).unwrap();
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert_eq!(slots[0].kind, SlotKind::JumpSlot);
    let current = patch::read_slot(&object, slots[0].address).unwrap();
    let in_own_code = object.flags_at(current).is_some_and(|f| f.execute);
    assert!(
        in_own_code,
        "the JUMP_SLOT is already bound ({current:#x}): is LD_BIND_NOW set?"
    );
    let callee = open(&fixtures().dir.join("libcallee.so"), libc::RTLD_NOW);
    // SAFETY: replacement_a has value's signature.
    let report = unsafe {
        patch::rewrite_symbol(
            &object,
            "value",
            None,
            address_of(replacement_a),
            Expect::Target(callee.sym("value")),
        )
    }
    .unwrap();
    assert_eq!(report.rewritten, 1);
    assert_eq!(plt.call("call_plt"), 7);
}

#[test]
fn slot_with_unexpected_value_is_left_alone() {
    let caller = open(
        &private_copy("libcaller.so", "libcaller-unexpected.so"),
        libc::RTLD_NOW,
    );
    let object = caller.object();
    let slots = object.slots("value", None).unwrap();
    // SAFETY: replacement_a has value's signature.
    let report = unsafe {
        patch::rewrite_symbol(
            &object,
            "value",
            None,
            address_of(replacement_a),
            Expect::Target(0x1234_5678),
        )
    }
    .unwrap();
    assert_eq!(report.rewritten, 0);
    assert_eq!(report.skipped.len(), slots.len());
    assert_eq!(caller.call("call_got"), 42);
    assert_eq!(caller.call("call_fp"), 42);

    let slot = slots[0];
    let current = patch::read_slot(&object, slot.address).unwrap();
    // SAFETY: replacement_b has value's signature; the slot is one of value's.
    let written = unsafe {
        patch::rewrite_slot(
            &object,
            slot.address,
            address_of(replacement_b),
            Some(current + 1),
        )
    };
    assert!(
        !written.unwrap(),
        "a wrong expected value must not be overwritten"
    );
    // SAFETY: as above.
    let misaligned = unsafe { patch::rewrite_slot(&object, slot.address + 1, 0, None) };
    assert!(misaligned.unwrap_err().to_string().contains("aligned"));
    let text = object
        .load_segments()
        .find(|s| s.flags.execute)
        .unwrap()
        .address;
    // SAFETY: refused before anything is written.
    let in_code = unsafe { patch::rewrite_slot(&object, text, 0, None) };
    assert!(in_code.unwrap_err().to_string().contains("executable"));
}

#[test]
fn versioned_slots_match_only_their_version() {
    let f = fixtures();
    let versioned = open(&f.dir.join("libver.so"), libc::RTLD_NOW);
    let caller = open(
        &private_copy("libvcaller.so", "libvcaller-v1.so"),
        libc::RTLD_NOW,
    );
    let object = caller.object();
    assert_eq!((caller.call("call_old"), caller.call("call_new")), (1, 2));
    assert_eq!(object.slots("value", None).unwrap().len(), 2);
    assert_eq!(object.slots("value", Some("V1")).unwrap().len(), 1);
    assert!(object.slots("value", Some("V3")).unwrap().is_empty());
    // SAFETY: replacement_a has value's signature.
    let report = unsafe {
        patch::rewrite_symbol(
            &object,
            "value",
            Some("V1"),
            address_of(replacement_a),
            Expect::Target(versioned.vsym("value", "V1")),
        )
    }
    .unwrap();
    assert_eq!(report.rewritten, 1);
    assert_eq!((caller.call("call_old"), caller.call("call_new")), (7, 2));
}

#[test]
fn concurrent_patching_while_calling_through_the_slots() {
    let caller = open(
        &private_copy("libcaller.so", "libcaller-threads.so"),
        libc::RTLD_NOW,
    );
    let plt = open(
        &private_copy("libplt.so", "libplt-threads.so"),
        libc::RTLD_NOW,
    );
    let objects = [caller.object(), plt.object()];
    let calls: Vec<extern "C" fn() -> c_int> = [
        (&caller, "call_got"),
        (&caller, "call_fp"),
        (&plt, "call_plt"),
    ]
    .iter()
    .map(|(lib, name)| {
        // SAFETY: all are `int f(void)`.
        unsafe { std::mem::transmute::<usize, extern "C" fn() -> c_int>(lib.sym(name)) }
    })
    .collect();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for &call in &calls {
            let stop = &stop;
            scope.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let got = call();
                    assert!(matches!(got, 42 | 7 | 8), "call landed on {got}");
                    n += 1;
                }
                n
            });
        }
        let patchers: Vec<_> = (0..4)
            .map(|t| {
                let objects = &objects;
                scope.spawn(move || {
                    for i in 0..300 {
                        let to = if (i + t) % 2 == 0 {
                            address_of(replacement_a)
                        } else {
                            address_of(replacement_b)
                        };
                        for object in objects {
                            // SAFETY: both replacements have value's signature.
                            let report = unsafe {
                                patch::rewrite_symbol(object, "value", None, to, Expect::Any)
                            }
                            .unwrap();
                            assert!(report.skipped.is_empty());
                        }
                    }
                })
            })
            .collect();
        for p in patchers {
            p.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_no_writable_executable_mapping();
    for object in &objects {
        let relro = object.relro().unwrap();
        for (page, perms) in page_protections(object) {
            if relro.contains(&page) {
                assert_eq!(perms, "r--p", "{}: RELRO page {page:#x}", object.name());
            }
        }
    }
}
