//! Watching many futures at once with O(1) work per completion: each watched future gets its own waker,
//! which records that future's index in a ready queue and wakes the one task polling the set. This is how
//! `wait` and `as_completed` stay linear over 100k futures instead of re-polling every future on every
//! wake-up.

use std::collections::{HashSet, VecDeque};
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};

use crate::future::Watch;
use crate::sync::{lock, Mutex};

/// The indices of watched futures whose wakers fired, and the one task to wake when one does. Shared by
/// every per-future waker of a set; a [`WatchSet`] (fixed) or a `CompletionSet` (growing) drains it.
pub(crate) struct ReadyQueue {
    inner: Mutex<Ready>,
}

impl ReadyQueue {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ReadyQueue {
            inner: Mutex::new(Ready {
                indices: VecDeque::new(),
                parent: None,
            }),
        })
    }

    /// A waker that queues `index` and wakes the parent.
    pub(crate) fn waker(self: &Arc<Self>, index: usize) -> Waker {
        Waker::from(Arc::new(Node {
            index,
            queue: self.clone(),
        }))
    }

    /// Makes `waker` the one woken by the next ready index. Call before draining, so an index queued
    /// after the drain still wakes the caller.
    pub(crate) fn set_parent(&self, waker: &Waker) {
        let mut r = lock(&self.inner);
        match &r.parent {
            Some(w) if w.will_wake(waker) => {}
            _ => r.parent = Some(waker.clone()),
        }
    }

    /// Queues `index` without waking anyone (a new entry the caller polls on its next turn).
    pub(crate) fn push(&self, index: usize) {
        lock(&self.inner).indices.push_back(index);
    }

    /// The next ready index.
    pub(crate) fn pop(&self) -> Option<usize> {
        lock(&self.inner).indices.pop_front()
    }

    /// What a waker does: queues `index` and wakes the parent.
    fn ready(&self, index: usize) {
        let parent = {
            let mut r = lock(&self.inner);
            r.indices.push_back(index);
            r.parent.take()
        };
        if let Some(p) = parent {
            p.wake();
        }
    }
}

struct Ready {
    indices: VecDeque<usize>,
    parent: Option<Waker>,
}

struct Node {
    index: usize,
    queue: Arc<ReadyQueue>,
}

impl Wake for Node {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.queue.ready(self.index);
    }
}

/// The wakers of a fixed set of indices in one allocation: waker `i` queues `i` and wakes the parent, as
/// a [`ReadyQueue::waker`] does, but a set of 10 000 futures makes one allocation instead of 10 000, and
/// polling future `i` lends it a borrowed waker (no reference count touched unless the future keeps a
/// clone). The data pointer of waker `i` is `&nodes[i]`; each node points back to its block, whose
/// strong count the wakers share.
struct WakerBlock {
    queue: Arc<ReadyQueue>,
    nodes: Box<[BlockNode]>,
}

struct BlockNode {
    index: usize,
    block: *const WakerBlock,
}

// SAFETY: a node is read-only after the block is built; `block` points to the `Arc`'s own contents,
// which are `Send + Sync` (a queue behind a mutex), and live while any waker holds a count.
#[allow(unsafe_code)]
unsafe impl Send for BlockNode {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for BlockNode {}

#[allow(unsafe_code)] // a hand-made waker vtable: see the SAFETY comments.
impl WakerBlock {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        Self::clone_raw,
        Self::wake_raw,
        Self::wake_by_ref_raw,
        Self::drop_raw,
    );

    fn new(queue: Arc<ReadyQueue>, n: usize) -> Arc<Self> {
        Arc::new_cyclic(|weak| {
            let block = weak.as_ptr();
            WakerBlock {
                queue,
                nodes: (0..n).map(|index| BlockNode { index, block }).collect(),
            }
        })
    }

    /// Waker `i`, borrowed from the block: valid while `self` is, and never dropped (the caller holds
    /// it in `ManuallyDrop`); a future that keeps it clones it, which takes a count.
    fn borrowed(&self, i: usize) -> ManuallyDrop<Waker> {
        let data: *const BlockNode = &self.nodes[i];
        // SAFETY: the vtable's functions uphold `RawWaker`'s contract for this data pointer (see each
        // one); the borrowed waker is never dropped, so it gives back no count it did not take.
        ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(data.cast(), &Self::VTABLE)) })
    }

    /// # Safety
    /// `data` is a node of a live block (the caller's waker holds a count, or borrows from an owner).
    unsafe fn node<'a>(data: *const ()) -> &'a BlockNode {
        // SAFETY: as the caller promises, the node and its block are alive.
        unsafe { &*data.cast::<BlockNode>() }
    }

    unsafe fn clone_raw(data: *const ()) -> RawWaker {
        // SAFETY: the waker being cloned keeps the block alive; the new waker takes its own count.
        unsafe { Arc::increment_strong_count(Self::node(data).block) };
        RawWaker::new(data, &Self::VTABLE)
    }

    unsafe fn wake_raw(data: *const ()) {
        // SAFETY: waking by value is waking by reference, then dropping this waker's count.
        unsafe {
            Self::wake_by_ref_raw(data);
            Self::drop_raw(data);
        }
    }

    unsafe fn wake_by_ref_raw(data: *const ()) {
        // SAFETY: the waker holds a count (or borrows from the block's owner), so both are alive.
        let node = unsafe { Self::node(data) };
        let block = unsafe { &*node.block };
        block.queue.ready(node.index);
    }

    unsafe fn drop_raw(data: *const ()) {
        // SAFETY: an owned waker (made by `clone_raw`) holds exactly one count, given back here.
        unsafe { Arc::decrement_strong_count(Self::node(data).block) };
    }
}

/// Keeps the first of any duplicates. Futures are usually given in submission order, whose ids
/// increase, so the common case is one pass without hashing; that pass also notes which futures have
/// already ended (the same atomic word), returned as `Some(indices)`.
fn dedupe<F: Watch>(futures: Vec<F>) -> (Vec<Option<F>>, Option<Vec<usize>>) {
    let mut ended = Vec::new();
    let mut last = None;
    let increasing = futures.iter().enumerate().all(|(i, f)| {
        let (id, done) = f.watched().snapshot();
        if done {
            ended.push(i);
        }
        match last.replace(id) {
            None => true,
            Some(prev) => prev < id,
        }
    });
    if increasing {
        return (futures.into_iter().map(Some).collect(), Some(ended));
    }
    let mut seen = HashSet::with_capacity(futures.len());
    let unique = futures
        .into_iter()
        .filter(|f| seen.insert(f.watched().identity()))
        .map(Some)
        .collect();
    (unique, None)
}

/// Where one watched future stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not yet seen ended; `key` is its waiter registration, once made.
    Watching(Option<u64>),
    /// Seen ended and reported by `poll_ended`.
    Ended,
}

/// A deduplicated set of futures being watched.
pub(crate) struct WatchSet<F: Watch> {
    futures: Vec<Option<F>>,
    /// Per-future state, made only when the set must register (empty before): a `wait` that returns
    /// on its first look allocates nothing per future.
    slots: Vec<Slot>,
    /// Futures seen ended on the first look, before `slots` exists.
    seen_early: Vec<usize>,
    /// Futures already ended when the set was made, noted while checking for duplicates; the first
    /// look reports these instead of scanning again.
    ended_at_start: Option<Vec<usize>>,
    /// One waker per future, made when the set first registers.
    wakers: Option<Arc<WakerBlock>>,
    queue: Arc<ReadyQueue>,
    phase: Phase,
    pending: usize,
}

/// How far the set has got with its futures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing looked at yet.
    Fresh,
    /// Already-ended futures reported; the rest not yet registered.
    Checked,
    /// Every unfinished future carries one of our wakers.
    Registered,
}

impl<F: Watch> WatchSet<F> {
    /// Collects the futures, keeping the first of any duplicates.
    pub(crate) fn new(futures: impl IntoIterator<Item = F>) -> Self {
        let (futures, ended_at_start) = dedupe(futures.into_iter().collect());
        let n = futures.len();
        WatchSet {
            futures,
            slots: Vec::new(),
            seen_early: Vec::new(),
            ended_at_start,
            wakers: None,
            queue: ReadyQueue::new(),
            phase: Phase::Fresh,
            pending: n,
        }
    }

    /// Distinct futures in the set.
    pub(crate) fn len(&self) -> usize {
        self.futures.len()
    }

    /// Futures not yet seen ended.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Reports, in order, the indices of futures newly seen ended: on the first call every future that
    /// had already ended (in input order), afterwards the ones that end, in completion order.
    pub(crate) fn poll_ended(&mut self, cx: &mut Context<'_>, out: &mut Vec<usize>) -> Poll<()> {
        self.queue.set_parent(cx.waker());
        let before = out.len();
        if self.phase == Phase::Fresh {
            self.phase = Phase::Checked;
            // First pass without registering anything: already-ended futures cost no allocation, and
            // FIRST_COMPLETED over many pending futures with one done returns at once.
            let ended = match self.ended_at_start.take() {
                Some(ended) => ended,
                None => (0..self.futures.len())
                    .filter(|&i| self.future(i).watched().is_done())
                    .collect(),
            };
            self.pending -= ended.len();
            out.extend_from_slice(&ended);
            self.seen_early = ended;
            if out.len() > before {
                return Poll::Ready(());
            }
        }
        if self.phase == Phase::Checked {
            self.phase = Phase::Registered;
            self.wakers = Some(WakerBlock::new(self.queue.clone(), self.futures.len()));
            self.slots = vec![Slot::Watching(None); self.futures.len()];
            for &i in &self.seen_early {
                self.slots[i] = Slot::Ended;
            }
            for i in 0..self.futures.len() {
                self.poll_one(i, out);
            }
        } else {
            while let Some(i) = self.queue.pop() {
                self.poll_one(i, out);
            }
        }
        if out.len() > before {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn future(&self, i: usize) -> &F {
        self.futures[i]
            .as_ref()
            .expect("futures are taken only after they end")
    }

    fn poll_one(&mut self, i: usize, out: &mut Vec<usize>) {
        let Slot::Watching(mut key) = self.slots[i] else {
            return;
        };
        if self.futures[i].is_none() {
            return; // taken out of the set; a late wake-up for it means nothing
        }
        let block = self.wakers.as_ref().expect("made when the set registers");
        let waker = block.borrowed(i);
        let mut cx = Context::from_waker(&waker);
        let ended = self
            .future(i)
            .watched()
            .poll_ended(&mut cx, &mut key)
            .is_ready();
        if ended {
            self.slots[i] = Slot::Ended;
            self.pending -= 1;
            out.push(i);
        } else {
            self.slots[i] = Slot::Watching(key);
        }
    }

    /// Whether the future at `i` failed (for `FirstException`).
    pub(crate) fn raised(&self, i: usize) -> bool {
        self.future(i).watched().raised()
    }

    /// Takes the future at `i` out of the set (it stops being watched).
    pub(crate) fn take(&mut self, i: usize) -> F {
        self.unwatch(i);
        self.futures[i].take().expect("each future is taken once")
    }

    /// Takes every future still in the set, in input order.
    pub(crate) fn take_rest(&mut self) -> Vec<F> {
        let mut rest = Vec::with_capacity(self.futures.len());
        for i in 0..self.futures.len() {
            if self.futures[i].is_some() {
                rest.push(self.take(i));
            }
        }
        rest
    }

    fn unwatch(&mut self, i: usize) {
        if let (Some(Slot::Watching(Some(k))), Some(f)) =
            (self.slots.get(i).copied(), self.futures[i].as_ref())
        {
            f.watched().unwatch(k);
            self.slots[i] = Slot::Watching(None);
        }
    }
}

impl<F: Watch> Drop for WatchSet<F> {
    fn drop(&mut self) {
        // A dropped wait/as_completed leaves no waker behind on the futures it watched (it has put
        // none there before it registers).
        if self.phase != Phase::Registered {
            return;
        }
        for i in 0..self.futures.len() {
            self.unwatch(i);
        }
    }
}
