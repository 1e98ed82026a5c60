//! One deadline, usable from async code (tokio's clock, so paused-time tests work) and from blocking code
//! (the std clock), for `map`, `wait` and `as_completed`.
//!
//! Async polling uses a tokio `Sleep` when a tokio runtime is running. Under another executor (smol,
//! `futures::executor`), a small timer thread wakes the task instead, so a timeout works everywhere.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub(crate) struct Deadline {
    at_std: Instant,
    at_tokio: tokio::time::Instant,
    timer: Option<Timer>,
}

enum Timer {
    Tokio(Pin<Box<tokio::time::Sleep>>),
    Thread(Arc<Mutex<ThreadTimer>>),
}

struct ThreadTimer {
    waker: Option<Waker>,
    fired: bool,
}

impl Deadline {
    /// A deadline `timeout` from now, on both clocks.
    pub(crate) fn after(timeout: Duration) -> Deadline {
        let far = Duration::from_secs(86400 * 365 * 30);
        let timeout = timeout.min(far);
        Deadline {
            at_std: Instant::now() + timeout,
            at_tokio: tokio::time::Instant::now() + timeout,
            timer: None,
        }
    }

    /// The std-clock instant, for blocking waits.
    pub(crate) fn instant(&self) -> Instant {
        self.at_std
    }

    /// Ready once the deadline has passed; otherwise arranges for `cx` to be woken when it does.
    pub(crate) fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.timer.is_none() {
            self.timer = Some(match tokio::runtime::Handle::try_current() {
                Ok(_) => Timer::Tokio(Box::pin(tokio::time::sleep_until(self.at_tokio))),
                Err(_) => {
                    if Instant::now() >= self.at_std {
                        return Poll::Ready(());
                    }
                    Timer::Thread(spawn_thread_timer(self.at_std))
                }
            });
        }
        match self.timer.as_mut().expect("set above") {
            Timer::Tokio(sleep) => sleep.as_mut().poll(cx),
            Timer::Thread(t) => {
                let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
                if t.fired || Instant::now() >= self.at_std {
                    Poll::Ready(())
                } else {
                    t.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }
}

fn spawn_thread_timer(at: Instant) -> Arc<Mutex<ThreadTimer>> {
    let timer = Arc::new(Mutex::new(ThreadTimer {
        waker: None,
        fired: false,
    }));
    let weak = Arc::downgrade(&timer);
    let spawned = std::thread::Builder::new()
        .name("cf-timer".into())
        .spawn(move || {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if let Some(t) = weak.upgrade() {
                let waker = {
                    let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
                    t.fired = true;
                    t.waker.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
            }
        });
    if spawned.is_err() {
        // No thread for the timer: report the deadline as passed rather than risk waiting forever.
        timer.lock().unwrap_or_else(|e| e.into_inner()).fired = true;
    }
    timer
}
