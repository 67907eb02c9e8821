use std::path::Path;
use std::time::Instant;
fn main() {
    let p = capsule::prefix::Prefix::open(Path::new("/")).unwrap();
    let n = 50;
    let t = Instant::now();
    let mut k = 0;
    for _ in 0..n {
        let c = p
            .resolve_closure("/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so")
            .unwrap();
        k = c.objects.len();
        std::hint::black_box(c);
    }
    println!("resolve {:?} for {k} objects", t.elapsed() / n);
}
