//! The process's allocator: mimalloc for everything but the servers (`peerstorm serve …`),
//! which keep the system allocator.
//!
//! Why both. A simulation allocates and frees millions of small buffers (the `rtc` stack's
//! messages, datagrams); with glibc's malloc that was ~18 % of storm-10k's CPU and mimalloc cuts
//! the run's CPU by ~15 % (identical results: virtual time does not see the allocator). The
//! servers are measured for the memory they hold (the broker's queue budgets, the TURN server's
//! bytes per idle allocation, RSS bounds in the hostile-client tests) and mimalloc keeps freed
//! memory for reuse: the same hardened broker showed +35 MiB instead of under 24 MiB after a
//! burst it had already dropped. Those figures must describe the server, not an allocator's
//! cache, so `serve` runs on the system allocator as before.
//!
//! The choice is made once, before `main` and before the first allocation, from `argv[1]`: glibc
//! passes `argc`/`argv` to `.init_array` functions (the standard library reads its arguments the
//! same way on this target). It never changes afterwards, so every block is freed by the
//! allocator that made it.

use std::alloc::{GlobalAlloc, Layout, System};
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use std::ffi::{CStr, c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set before `main` when this process is a server.
static SYSTEM: AtomicBool = AtomicBool::new(false);

/// mimalloc, or the system allocator for `serve`: the binary declares it its
/// `#[global_allocator]`.
#[derive(Debug)]
pub struct Chosen;

// SAFETY: every call goes to one of two allocators chosen before the first allocation and
// never changed after, so a block is always freed or resized by the allocator that made it.
unsafe impl GlobalAlloc for Chosen {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { if SYSTEM.load(Ordering::Relaxed) { System.alloc(layout) } else { mimalloc::MiMalloc.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if SYSTEM.load(Ordering::Relaxed) {
                System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the same allocator (the choice never changes).
        unsafe {
            if SYSTEM.load(Ordering::Relaxed) {
                System.dealloc(ptr, layout)
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc`.
        unsafe {
            if SYSTEM.load(Ordering::Relaxed) {
                System.realloc(ptr, layout, new_size)
            } else {
                mimalloc::MiMalloc.realloc(ptr, layout, new_size)
            }
        }
    }
}

/// Whether these arguments start a server.
fn serves(first: &[u8]) -> bool {
    first == b"serve"
}

/// Runs before `main` with its arguments (glibc's `.init_array` calling convention). Kept in
/// this module, beside the allocator the binary links, so the linker keeps it too.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" fn choose(argc: c_int, argv: *const *const c_char, _env: *const *const c_char) {
    if argc < 2 || argv.is_null() {
        return;
    }
    // SAFETY: glibc passes `main`'s argc and argv: argv[1] is a NUL-terminated string.
    let first = unsafe { *argv.add(1) };
    // SAFETY: as above; a null entry is skipped.
    if !first.is_null() && serves(unsafe { CStr::from_ptr(first) }.to_bytes()) {
        SYSTEM.store(true, Ordering::Relaxed);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[used]
#[unsafe(link_section = ".init_array.00099")]
static CHOOSE: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = choose;

#[cfg(test)]
mod tests {
    #[test]
    fn only_serve_keeps_the_system_allocator() {
        assert!(super::serves(b"serve"));
        for other in [&b"run"[..], b"peer", b"bench", b"calibrate", b"servefoo", b""] {
            assert!(!super::serves(other), "{:?}", String::from_utf8_lossy(other));
        }
    }
}
