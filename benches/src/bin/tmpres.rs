use std::path::Path;
use std::time::Instant;
fn main() {
    let p = capsule::prefix::Prefix::open(Path::new("/")).unwrap();
    let n = 3000;
    let t = Instant::now();
    for _ in 0..n {
        let c = p.resolve_closure("libEGL.so.1").unwrap();
        std::hint::black_box(c);
    }
    println!("resolve {:?}", t.elapsed() / n);
}
