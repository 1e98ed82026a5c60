//! How a re-executed program becomes a worker with no setup line: a constructor.
//!
//! [`WORKER_ENTRY`] is a function pointer in the ELF `.init_array` section, which the C runtime calls
//! before `main` (what the `ctor` crate does, written out by hand). It checks the worker marker in the
//! environment and, if present, runs the worker loop and exits, so the user's `main` never runs in a
//! worker. Without the marker it returns at once, as it does when the marker belongs to another copy
//! of this crate linked into the same program (whose own constructor then serves). The worker loop
//! serves only after the parent checks of `handshake::verify_parent`. This works the same in binaries, examples,
//! `cargo test` harnesses and doctests, which have no `main` of their own to put a setup line in.
//!
//! The linker only keeps this constructor if the object file holding it is linked, so
//! `ProcessPoolBuilder::build` references the static (through `std::hint::black_box`): every program
//! that can start a worker therefore contains the worker entry.
//!
//! Consequences, documented on the module: in a worker, constructors ordered after this one (in link
//! order) do not run, and neither does `main`; `std::env::args()` works (std fills it in an earlier,
//! prioritised constructor).

/// The constructor: see the module docs.
#[used]
#[allow(unsafe_code)] // `link_section` places the pointer where the C runtime looks for constructors.
#[link_section = ".init_array"]
pub(crate) static WORKER_ENTRY: extern "C" fn() = worker_entry;

extern "C" fn worker_entry() {
    // A panic must not unwind into the C runtime; `run_if_worker` catches everything it runs.
    super::child::run_if_worker();
}
