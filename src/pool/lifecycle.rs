//! Where a pool is in its life: open, shut down, or broken, and the named moves between them.

use crate::error::Error;

/// Where a pool is in its life. `B` is what a broken pool remembers of why it broke (the thread
/// pool keeps the initializer's message, the process pool a [`BrokenProcessPool`](crate::BrokenProcessPool)).
///
/// Open → ShutDown ([`shut_down`](Self::shut_down)), Open or ShutDown → Broken
/// ([`break_with`](Self::break_with)); nothing leaves Broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle<B> {
    /// Taking work.
    Open,
    /// No new work; queued work still runs (unless cancelled), then the workers exit.
    ShutDown,
    /// No new work; queued work failed with this cause.
    Broken(B),
}

impl<B> Lifecycle<B> {
    /// Whether the pool takes work.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self, Lifecycle::Open)
    }

    /// Open → ShutDown: `true` if this call closed the pool (a shut-down or broken pool stays as it
    /// is).
    pub(crate) fn shut_down(&mut self) -> bool {
        let open = self.is_open();
        if open {
            *self = Lifecycle::ShutDown;
        }
        open
    }

    /// → Broken, with `cause()` unless the pool is already broken, whose first cause stays. Returns
    /// the cause the pool is broken with.
    pub(crate) fn break_with(&mut self, cause: impl FnOnce() -> B) -> &B {
        if !matches!(self, Lifecycle::Broken(_)) {
            *self = Lifecycle::Broken(cause());
        }
        match self {
            Lifecycle::Broken(cause) => cause,
            _ => unreachable!("just broken"),
        }
    }

    /// The error a submit gets from a pool that takes no more work (`broken` words a broken pool's),
    /// `None` while it is open.
    pub(crate) fn refusal(&self, broken: impl FnOnce(&B) -> Error) -> Option<Error> {
        match self {
            Lifecycle::Open => None,
            Lifecycle::ShutDown => Some(Error::Shutdown),
            Lifecycle::Broken(cause) => Some(broken(cause)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lifecycle;
    use crate::error::Error;

    #[test]
    fn shut_down_moves_only_an_open_pool() {
        let mut l = Lifecycle::<&str>::Open;
        assert!(l.shut_down());
        assert_eq!(l, Lifecycle::ShutDown);
        assert!(!l.shut_down(), "a second shutdown is not a move");
        let mut broken = Lifecycle::Broken("init failed");
        assert!(!broken.shut_down());
        assert_eq!(
            broken,
            Lifecycle::Broken("init failed"),
            "shutdown never mends a pool"
        );
    }

    #[test]
    fn a_broken_pool_keeps_its_first_cause() {
        let mut l = Lifecycle::<&str>::ShutDown;
        assert_eq!(*l.break_with(|| "first"), "first");
        assert_eq!(
            *l.break_with(|| unreachable!("a broken pool is not broken again")),
            "first"
        );
    }

    #[test]
    fn refusal_words_each_state() {
        let why = |cause: &&str| Error::BrokenThreadPool(cause.to_string());
        assert!(Lifecycle::<&str>::Open.refusal(why).is_none());
        assert!(matches!(
            Lifecycle::<&str>::ShutDown.refusal(why),
            Some(Error::Shutdown)
        ));
        assert!(matches!(
            Lifecycle::Broken("no").refusal(why),
            Some(Error::BrokenThreadPool(m)) if m == "no"
        ));
    }
}
