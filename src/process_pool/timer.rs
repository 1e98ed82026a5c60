//! Per-task time limits: one thread per pool, started at the first time-limited task, sleeping on a
//! condvar until the earliest deadline (no polling). At a deadline it kills the worker if that worker is
//! still running the task (its reply has not begun to arrive: `Proc::kill_running`); the driver then
//! sees the death and ends the future with
//! [`Error::TimeLimit`](crate::Error::TimeLimit).
//!
//! A deadline is armed when the task is dispatched (its RUNNING transition), so time spent queued does
//! not count. There is at most one armed deadline per worker, so a plain vector is the right structure.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::proc::{KillReason, Proc};
use crate::future::FutureId;
use crate::sync::{lock, Condvar, Mutex};

struct Entry {
    at: Instant,
    id: FutureId,
    limit: Duration,
    proc: Weak<Proc>,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    thread: bool,
    closed: bool,
}

#[derive(Default)]
pub(crate) struct Timer {
    state: Mutex<State>,
    cv: Condvar,
}

impl Timer {
    pub(crate) fn arm(self: &Arc<Self>, id: FutureId, proc: &Arc<Proc>, limit: Duration) {
        let at = Instant::now()
            .checked_add(limit)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365 * 30));
        let mut st = lock(&self.state);
        st.entries.push(Entry {
            at,
            id,
            limit,
            proc: Arc::downgrade(proc),
        });
        if !st.thread {
            let me = self.clone();
            let started = std::thread::Builder::new()
                .name("process-pool-timer".into())
                .spawn(move || me.run());
            // Without a timer thread the limit cannot fire; the task still ends normally.
            st.thread = started.is_ok();
        }
        drop(st);
        self.cv.notify_one();
    }

    pub(crate) fn disarm(&self, id: FutureId) {
        lock(&self.state).entries.retain(|e| e.id != id);
    }

    /// The pool is finished: the thread exits.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.cv.notify_one();
    }

    fn run(&self) {
        let mut st = lock(&self.state);
        loop {
            if st.closed {
                return;
            }
            let now = Instant::now();
            if let Some(i) = st.entries.iter().position(|e| e.at <= now) {
                let e = st.entries.swap_remove(i);
                drop(st);
                if let Some(p) = e.proc.upgrade() {
                    p.kill_running(e.id, KillReason::TimeLimit(e.limit));
                }
                st = lock(&self.state);
                continue;
            }
            st = match st.entries.iter().map(|e| e.at).min() {
                Some(next) => {
                    self.cv
                        .wait_timeout(st, next - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}
