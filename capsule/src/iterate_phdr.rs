//! glibc's `dl_iterate_phdr` with a Rust closure: the crate's one callback of it. A leaf
//! below both `elf` (an object's program headers) and `linkmap` (whose walks need the
//! loader's list lock, which glibc holds around the callbacks).

use std::ffi::c_void;

/// Run `visit` on each object `dl_iterate_phdr` reports (the caller's namespace, in load
/// order) until it returns `Some`, and return that. glibc holds its loader's list lock
/// (`dl_load_write_lock`, recursive) meanwhile, so no object is unlinked while `visit`
/// runs. `visit` must not panic: the unwinding would cross glibc's C frames.
pub(crate) fn first<F, T>(visit: F) -> Option<T>
where
    F: FnMut(&libc::dl_phdr_info) -> Option<T>,
{
    struct Search<F, T> {
        visit: F,
        found: Option<T>,
    }
    unsafe extern "C" fn callback<F: FnMut(&libc::dl_phdr_info) -> Option<T>, T>(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the Search below, alive for the whole dl_iterate_phdr call, and
        // glibc passes a valid `info` for the duration of the callback.
        let (search, info) = unsafe { (&mut *(data as *mut Search<F, T>), &*info) };
        match (search.visit)(info) {
            Some(found) => {
                search.found = Some(found);
                1
            }
            None => 0,
        }
    }
    let mut search = Search { visit, found: None };
    // SAFETY: the callback has dl_iterate_phdr's type and only touches `search`, which
    // outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(callback::<F, T>),
            &mut search as *mut Search<F, T> as *mut c_void,
        )
    };
    search.found
}

#[cfg(test)]
mod tests {
    #[test]
    fn visits_objects_in_load_order_until_one_answers() {
        let mut seen = Vec::new();
        let none: Option<()> = super::first(|info| {
            seen.push(info.dlpi_phnum);
            None
        });
        assert!(none.is_none());
        // The test program, libc and ld.so at least.
        assert!(seen.len() >= 3, "{seen:?}");
        let mut calls = 0;
        let second = super::first(|_| {
            calls += 1;
            (calls == 2).then_some(calls)
        });
        assert_eq!((second, calls), (Some(2), 2));
    }
}
