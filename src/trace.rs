//! One [`tracing`] span per task, behind the `tracing` feature, so a service's traces show where a
//! request's time went: waiting in the pool's queue, or running.
//!
//! The span is named `task` (target `concurrent_futures`), is created when the task is submitted (so
//! its parent is the submitter's current span, a request's span say), and carries:
//!
//! | field | value |
//! |---|---|
//! | `pool` | the pool's name: the thread pool's thread-name prefix, or `ProcessPoolExecutor` |
//! | `pool.kind` | `"thread"` or `"process"` |
//! | `task.id` | the future's [`FutureId`](crate::FutureId) number |
//! | `queue_wait_us` | microseconds from submit to start, recorded when the task starts |
//! | `run_us` | microseconds the task ran, recorded when it ends |
//! | `outcome` | `returned`, `failed`, `panicked`, `interrupted`, `cancelled` or `broken`, recorded when it ends |
//!
//! A thread-pool task's span is entered on the worker while the task runs, so events the task emits
//! nest in it. A process-pool task runs in another process, which has no subscriber: its span lives on
//! the parent, entered on the pool's driver thread when the reply is decoded, and spans the task's life
//! from submit to end. A task cancelled before it starts closes its span with `outcome = "cancelled"`
//! and no `run_us`.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use tracing::field::Empty;
use tracing::Span;

use crate::error::Error;
use crate::future::FutureId;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The span of one task, created at submit.
fn task_span(kind: &'static str, pool: &str) -> Span {
    tracing::info_span!(
        target: "concurrent_futures",
        "task",
        pool = pool,
        pool.kind = kind,
        task.id = Empty,
        queue_wait_us = Empty,
        run_us = Empty,
        outcome = Empty,
    )
}

/// How a task ended, as the span's `outcome` says it.
pub(crate) fn outcome_label<T>(outcome: &Result<T, Error>) -> &'static str {
    match outcome {
        Ok(_) => "returned",
        Err(Error::Cancelled) => "cancelled",
        Err(Error::Panicked(..)) => "panicked",
        Err(Error::Interrupted) => "interrupted",
        Err(e) if e.is_broken() => "broken",
        Err(_) => "failed",
    }
}

/// Names the task's future in its span, once the future exists.
pub(crate) fn record_id(span: &Span, id: FutureId) {
    span.record("task.id", id.0);
}

/// Closes the span of a task dropped before it ran (cancelled, or failed by a broken pool).
struct Unrun {
    span: Span,
    queued_at: Instant,
    ran: bool,
}

impl Drop for Unrun {
    fn drop(&mut self) {
        if !self.ran {
            self.span
                .record("queue_wait_us", micros(self.queued_at.elapsed()));
            self.span.record("outcome", "cancelled");
        }
    }
}

/// Wraps a thread-pool task's closure: the span is entered while it runs, on the worker, and records the
/// queue wait, the run time and the outcome. Returns the span too, for [`record_id`].
pub(crate) fn thread_task<T, F>(pool: &str, func: F) -> (impl FnOnce() -> Result<T, Error>, Span)
where
    F: FnOnce() -> Result<T, Error>,
{
    let span = task_span("thread", pool);
    let mut unrun = Unrun {
        span: span.clone(),
        queued_at: Instant::now(),
        ran: false,
    };
    let traced = move || {
        unrun.ran = true;
        let span = &unrun.span;
        let _entered = span.enter();
        let start = Instant::now();
        span.record("queue_wait_us", micros(start - unrun.queued_at));
        let outcome = catch_unwind(AssertUnwindSafe(func));
        span.record("run_us", micros(start.elapsed()));
        let label = match &outcome {
            Ok(result) => outcome_label(result),
            Err(_) => "panicked",
        };
        span.record("outcome", label);
        match outcome {
            Ok(result) => result,
            // The pool's worker catches it, as it would have without the span.
            Err(payload) => resume_unwind(payload),
        }
    };
    (traced, span)
}

/// The span of a process-pool task, shared by the task the driver sees and the future's done callback.
#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) mod process {
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use super::*;
    use crate::future::PoolFuture;
    use crate::process_pool::wire::Body;
    use crate::process_pool::{Counters, Proc, ProcTask};
    use crate::sync::{lock, Mutex};

    struct Trace {
        /// Taken (closing the span) when the future ends.
        span: Mutex<Option<Span>>,
        queued_at: Instant,
        started: OnceLock<Instant>,
    }

    /// A process-pool task as the driver sees it, with its span: `start` records the queue wait.
    struct Traced {
        inner: Arc<dyn ProcTask>,
        trace: Arc<Trace>,
    }

    /// Gives `task` a span that ends with `fut`.
    pub(crate) fn wrap<T: Send + 'static>(
        task: Arc<dyn ProcTask>,
        fut: &PoolFuture<T>,
    ) -> Arc<dyn ProcTask> {
        let span = task_span("process", "ProcessPoolExecutor");
        record_id(&span, fut.id());
        let trace = Arc::new(Trace {
            span: Mutex::new(Some(span)),
            queued_at: Instant::now(),
            started: OnceLock::new(),
        });
        let closing = trace.clone();
        fut.on_outcome(move |outcome| {
            let Some(span) = lock(&closing.span).take() else {
                return;
            };
            match closing.started.get() {
                Some(start) => {
                    span.record("run_us", micros(start.elapsed()));
                }
                None => {
                    span.record("queue_wait_us", micros(closing.queued_at.elapsed()));
                }
            }
            span.record("outcome", outcome_label(outcome));
        });
        Arc::new(Traced { inner: task, trace })
    }

    impl ProcTask for Traced {
        fn id(&self) -> FutureId {
            self.inner.id()
        }
        fn start(&self) -> bool {
            let started = self.inner.start();
            let now = Instant::now();
            // A redelivered task starts twice; its run counts from the first start.
            if started && self.trace.started.set(now).is_ok() {
                if let Some(span) = &*lock(&self.trace.span) {
                    span.record("queue_wait_us", micros(now - self.trace.queued_at));
                }
            }
            started
        }
        fn redeliver(&self, frame: Vec<u8>) {
            self.inner.redeliver(frame)
        }
        fn awaits_redelivery(&self) -> bool {
            self.inner.awaits_redelivery()
        }
        fn take_frame(&self) -> Option<Vec<u8>> {
            self.inner.take_frame()
        }
        fn bind(&self, proc: Option<&Arc<Proc>>) {
            self.inner.bind(proc)
        }
        fn attended(&self) -> bool {
            self.inner.attended()
        }
        fn time_limit(&self) -> Option<Duration> {
            self.inner.time_limit()
        }
        fn finish(&self, body: Body<'_>, counters: &Counters) {
            let span = lock(&self.trace.span).clone();
            let _entered = span.as_ref().map(Span::enter);
            self.inner.finish(body, counters)
        }
        fn fail(&self, error: Error) {
            self.inner.fail(error)
        }
        fn cancel(&self) -> bool {
            self.inner.cancel()
        }
        fn cancelled(&self) -> bool {
            self.inner.cancelled()
        }
    }
}
