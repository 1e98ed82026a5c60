//! The user's handle on a pool: cheap to clone, and the last one dropped shuts the pool down without
//! waiting; plus the weak handle that a buffered `map` feeds through.

use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use super::backend::Backend;
use super::vocab::Queued;

/// A strong handle on a pool's shared state. Every clone of a public executor holds one; when the
/// last goes, the pool closes (queued work still runs) and nobody waits.
pub(crate) struct Pool<B: Backend> {
    handle: Arc<Handle<B>>,
}

struct Handle<B: Backend> {
    backend: Arc<B>,
}

impl<B: Backend> Drop for Handle<B> {
    fn drop(&mut self) {
        self.backend.close(Queued::Run);
    }
}

impl<B: Backend> Pool<B> {
    pub(crate) fn new(backend: Arc<B>) -> Self {
        Pool {
            handle: Arc::new(Handle { backend }),
        }
    }

    /// The pool's shared state (which workers also hold: it outlives the handles).
    pub(crate) fn backend(&self) -> &Arc<B> {
        &self.handle.backend
    }
}

impl<B: Backend> Clone for Pool<B> {
    fn clone(&self) -> Self {
        Pool {
            handle: self.handle.clone(),
        }
    }
}

/// A public executor type: a [`Pool`] with the pool's own API around it.
pub(crate) trait Frontend: Sized {
    /// The pool's shared state.
    type Backend: Backend;

    /// The handle inside.
    fn pool(&self) -> &Pool<Self::Backend>;

    /// Wraps a handle (a [`WeakPool`] upgraded).
    fn from_pool(pool: Pool<Self::Backend>) -> Self;
}

/// A handle that does not keep the pool alive: a buffered `map` stops feeding once the pool is gone
/// (Python 3.14 holds a weak reference too).
pub(crate) struct WeakPool<E: Frontend> {
    handle: Weak<Handle<E::Backend>>,
    executor: PhantomData<fn() -> E>,
}

impl<E: Frontend> WeakPool<E> {
    pub(crate) fn new(executor: &E) -> Self {
        WeakPool {
            handle: Arc::downgrade(&executor.pool().handle),
            executor: PhantomData,
        }
    }

    /// The executor, while some strong handle still holds the pool.
    pub(crate) fn upgrade(&self) -> Option<E> {
        self.handle
            .upgrade()
            .map(|handle| E::from_pool(Pool { handle }))
    }
}
