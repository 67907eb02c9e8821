//! A real library from the machine's own root, through a capsule.

use capsule::Capsule;
use capsule_tests::func;
use std::ffi::{c_int, c_ulong};
use std::path::Path;

type Compress = unsafe extern "C" fn(*mut u8, *mut c_ulong, *const u8, c_ulong) -> c_int;

#[test]
fn zlib_compresses_and_uncompresses_through_a_capsule() {
    let z = Capsule::load("libz.so.1", Path::new("/")).expect("load libz.so.1 from /");
    assert_ne!(
        z.namespace_id(),
        0,
        "a capsule never lives in the base namespace"
    );
    // SAFETY: the fixture defines these functions with exactly these C signatures.
    let compress: Compress = unsafe { func(&z, "compress") };
    // SAFETY: the fixture defines these functions with exactly these C signatures.
    let uncompress: Compress = unsafe { func(&z, "uncompress") };

    let input: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut packed = vec![0u8; input.len() + 1024];
    let mut packed_len = packed.len() as c_ulong;
    // SAFETY: the buffers and lengths describe live Vec storage; zlib writes within them.
    let rc = unsafe {
        compress(
            packed.as_mut_ptr(),
            &mut packed_len,
            input.as_ptr(),
            input.len() as c_ulong,
        )
    };
    assert_eq!(rc, 0, "compress failed");
    assert!(
        (packed_len as usize) < input.len() / 4,
        "{packed_len} bytes is no compression"
    );

    let mut output = vec![0u8; input.len()];
    let mut output_len = output.len() as c_ulong;
    // SAFETY: the buffers and lengths describe live Vec storage; zlib writes within them.
    let rc = unsafe {
        uncompress(
            output.as_mut_ptr(),
            &mut output_len,
            packed.as_ptr(),
            packed_len,
        )
    };
    assert_eq!(rc, 0, "uncompress failed");
    assert_eq!(&output[..output_len as usize], &input[..]);

    // The namespace holds the interposer, a forwarder to the program's libc, and libz.
    let names: Vec<String> = z
        .objects()
        .iter()
        .map(|o| o.path.display().to_string())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.ends_with("libz.so.1") || n.contains("libz.so.1.")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.ends_with("/libc.so.6")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.contains("/forward-libc.so.6-")),
        "{names:?}"
    );
    assert_eq!(capsule_tests::libc_images_mapped(), 1, "{names:?}");
}
