//! CPython's future fixtures (`CANCELLED_FUTURE`, `CANCELLED_AND_NOTIFIED_FUTURE`, `EXCEPTION_FUTURE`,
//! `SUCCESSFUL_FUTURE`), built with [`Promise`], and a waker that shows whether anything keeps it.

use std::io;
use std::sync::Arc;
use std::task::Wake;

use concurrent_futures::{Error, PoolFuture, Promise, TaskError};

/// `CANCELLED_FUTURE`: cancelled, no worker has looked at it.
pub fn cancelled() -> PoolFuture<i32> {
    let (p, f) = Promise::<i32>::new();
    assert!(f.cancel());
    drop(p);
    f
}

/// `CANCELLED_AND_NOTIFIED_FUTURE`: cancelled, and the "executor" then saw the cancellation.
pub fn cancelled_and_notified() -> PoolFuture<i32> {
    let (p, f) = Promise::<i32>::new();
    assert!(f.cancel());
    assert!(!p.set_running());
    f
}

/// The error of `EXCEPTION_FUTURE`: a task that failed with an `OSError`.
pub fn os_error() -> Error {
    Error::Failed(TaskError::new(io::Error::other("OSError")))
}

/// `EXCEPTION_FUTURE` (an `OSError`).
pub fn exception() -> PoolFuture<i32> {
    let (p, f) = Promise::new();
    p.set_error(os_error()).unwrap();
    f
}

/// `SUCCESSFUL_FUTURE` (42).
pub fn successful() -> PoolFuture<i32> {
    let (p, f) = Promise::new();
    p.set_result(42).unwrap();
    f
}

/// A waker whose `Arc` count shows whether anything still holds a clone of it.
pub struct Probe;

impl Wake for Probe {
    fn wake(self: Arc<Self>) {}
}
