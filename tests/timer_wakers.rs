//! The process-wide timer thread that serves deadlines outside a tokio runtime runs the callers'
//! wakers: one that panics must not stop the timer for every deadline after it. (Its own binary: on
//! the old code the timer thread dies, which would hang any other test here.)

mod common;

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use common::LONG;
use concurrent_futures::{wait, Promise};

/// Says that it was woken, then panics.
struct PanickingWaker(Mutex<mpsc::Sender<()>>);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
        panic!("a waker that panics");
    }
}

#[test]
fn a_panicking_waker_does_not_stop_the_shared_timer() {
    let (_p, pending) = Promise::<u8>::new();
    let (woken_tx, woken) = mpsc::channel();
    let waker = Waker::from(Arc::new(PanickingWaker(Mutex::new(woken_tx))));
    {
        let mut first = pin!(wait([&pending])
            .timeout(Duration::from_millis(1))
            .into_future());
        // No tokio runtime here: the deadline registers with the shared timer thread.
        assert!(first
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        woken.recv_timeout(LONG).expect("the timer fired");
    }
    // A later deadline, under another executor, still fires.
    let (done_tx, done) = mpsc::channel();
    let (_q, other) = Promise::<u8>::new();
    std::thread::spawn(move || {
        let d = futures::executor::block_on(
            wait([&other])
                .timeout(Duration::from_millis(1))
                .into_future(),
        );
        let _ = done_tx.send(d.not_done.len());
    });
    assert_eq!(
        done.recv_timeout(LONG),
        Ok(1),
        "the deadline after the panicking waker never fired"
    );
}
