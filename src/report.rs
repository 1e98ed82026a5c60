//! Where failures that have no caller to return to are reported: a panicking done callback, a failing
//! initializer. They go to the `log` crate at error level when a logger is installed, and to stderr
//! otherwise, as Python's `logging` falls back to stderr when nothing is configured.

use crate::future::FutureId;

pub(crate) fn callback_panicked(id: FutureId, msg: &str) {
    emit(&format!(
        "exception calling callback for future {id}: {msg}"
    ));
}

pub(crate) fn waker_panicked(msg: &str) {
    emit(&format!(
        "exception waking a task waiting for a future: {msg}"
    ));
}

pub(crate) fn drop_panicked(msg: &str) {
    emit(&format!("exception dropping a task's data: {msg}"));
}

pub(crate) fn initializer_failed(msg: &str) {
    emit(&format!("Exception in initializer: {msg}"));
}

fn emit(line: &str) {
    if log::log_enabled!(target: "concurrent_futures", log::Level::Error) {
        log::error!(target: "concurrent_futures", "{line}");
    } else {
        eprintln!("concurrent_futures: {line}");
    }
}
