//! A waker that counts its wake-ups, for tests of who keeps and wakes which waker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

/// Counts its wake-ups; its `Arc`'s strong count tells how many clones of it someone keeps.
#[derive(Default)]
pub struct Counting(pub AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A counting waker and the counter behind it.
pub fn counting() -> (Arc<Counting>, Waker) {
    let c = Arc::new(Counting::default());
    (c.clone(), Waker::from(c))
}
