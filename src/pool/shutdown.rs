//! Shutdown in its three forms (waiting, not waiting, async) and `shutdown_after`, Python's `with`
//! block, written once for every pool.

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;

use super::backend::{Backend, InCallback};
use super::handle::{Frontend, Pool};
use super::vocab::{Metrics, Queued};
use crate::sync::MutexGuard;

impl<B: Backend> Pool<B> {
    /// Closes the pool and waits until every worker has left, then joins their threads. On one of the
    /// pool's own workers it waits only for the workers not themselves waiting here (two tasks
    /// shutting their own pool down must not wait for each other), and joins nothing: a worker it
    /// joined might be waiting for this very one to leave. In a done callback it waits only if the
    /// backend says so ([`InCallback`]).
    pub(crate) fn shutdown(&self, queued: Queued) {
        self.shutdown_nowait(queued);
        if returns_in_callback::<B>() {
            return;
        }
        let backend = self.backend();
        let me = crate::sync::thread::current().id();
        let mut st = backend.lock();
        if backend.on_own_worker(&st) {
            wait_as_own_worker(backend, st);
            return;
        }
        while B::exits(&mut st).live > 0 {
            st = backend.exited().wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let exits = B::exits(&mut st);
        // Never the calling thread's own handle: joining itself would never return.
        let handles: Vec<_> = exits
            .handles
            .drain(..)
            .chain(exits.retired.into_iter().flat_map(|r| r.drain(..)))
            .filter(|h| h.thread().id() != me)
            .collect();
        drop(st);
        for h in handles {
            let _ = h.join();
        }
    }

    /// Closes the pool without waiting.
    pub(crate) fn shutdown_nowait(&self, queued: Queued) {
        self.backend().close(queued);
    }

    /// Closes the pool; resolves when every worker has left, without blocking: the threads are
    /// detached, not joined, so an async runtime's thread never blocks. Driven on one of the pool's own
    /// workers, it waits there as [`shutdown`](Self::shutdown) does.
    pub(crate) fn shutdown_async(&self, queued: Queued) -> impl Future<Output = ()> + Send + '_ {
        self.shutdown_nowait(queued);
        let backend = self.backend().clone();
        poll_fn(move |cx| {
            if returns_in_callback::<B>() {
                return Poll::Ready(());
            }
            let mut st = backend.lock();
            if backend.on_own_worker(&st) {
                // Driven by one of the pool's own workers (a task or a callback blocking on it): the
                // wake-up below comes when the last worker leaves, which this one cannot do while it
                // waits. It waits as a blocking shutdown there does; the thread is the pool's, not a
                // runtime's, and is blocked by whoever drives this future anyway.
                wait_as_own_worker(&backend, st);
                return Poll::Ready(());
            }
            let exits = B::exits(&mut st);
            if exits.live == 0 {
                exits.handles.clear();
                if let Some(retired) = exits.retired {
                    retired.clear();
                }
                Poll::Ready(())
            } else {
                // Re-polls (a `select!`, a spurious wake) must not pile up copies of the same waker.
                if !exits.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    exits.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
    }

    /// A snapshot of the pool's counters.
    pub(crate) fn metrics(&self) -> Metrics {
        self.backend().metrics()
    }
}

/// The wait of a shutdown called on one of the pool's own workers: until every worker not itself
/// waiting here has left (two tasks shutting their own pool down must not wait for each other). It
/// joins nothing: a worker it joined might be waiting for this very one to leave.
fn wait_as_own_worker<B: Backend>(backend: &Arc<B>, mut st: MutexGuard<'_, B::State>) {
    *B::exits(&mut st).in_shutdown += 1;
    // Another worker waiting here may now be waiting only for workers that wait too.
    backend.exited().notify_all();
    loop {
        let exits = B::exits(&mut st);
        if exits.live <= *exits.in_shutdown {
            break;
        }
        st = backend.exited().wait(st).unwrap_or_else(|e| e.into_inner());
    }
    *B::exits(&mut st).in_shutdown -= 1;
}

/// Runs `body` with the executor, then shuts the pool down and waits, even if `body` panics.
pub(crate) fn shutdown_after<E: Frontend, R>(executor: E, body: impl FnOnce(&E) -> R) -> R {
    struct WaitOnExit<'a, E: Frontend>(&'a E);
    impl<E: Frontend> Drop for WaitOnExit<'_, E> {
        fn drop(&mut self) {
            self.0.pool().shutdown(Queued::Run);
        }
    }
    let guard = WaitOnExit(&executor);
    body(guard.0)
}

/// Whether a waiting shutdown called here returns at once: in a done callback, for a backend whose
/// workers may be waiting for that callback's future ([`InCallback::Return`]).
fn returns_in_callback<B: Backend>() -> bool {
    B::SHUTDOWN_IN_CALLBACK == InCallback::Return && crate::future::state::in_done_callback()
}
