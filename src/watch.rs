//! Watching many futures at once with O(1) work per completion: each watched future gets its own waker,
//! which records that future's index in a ready queue and wakes the one task polling the set. This is how
//! `wait` and `as_completed` stay linear over 100k futures instead of re-polling every future on every
//! wake-up.

use std::collections::{HashSet, VecDeque};
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};

use crate::future::{Registration, Watch};
use crate::sync::atomic::AtomicUsize;
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

/// The wakers of a fixed set of futures in one allocation, with each future's registration beside its
/// waker: waker `i` queues `i` and wakes the parent, as a [`ReadyQueue::waker`] does, but a set of
/// 10 000 futures makes one allocation instead of 10 000. The data pointer of waker `i` is `&nodes[i]`,
/// whose place in `nodes` is the index; each node points back to its block.
///
/// # Who keeps the block alive
///
/// The set owns the block's `Arc`. The wakers of the block that are owned (given to a future, or
/// cloned from one) are counted in `wakers`, and hold one strong count of the `Arc` between them: the
/// step from 0 to some takes it, the step back to 0 gives it back. A count per waker would be one atomic
/// operation on the `Arc` per future registered and one per future unregistered; counting them here
/// lets the set pay for all its registrations at once ([`acquire`](Self::acquire) before registering
/// every future) and take them back at once (it keeps the wakers its futures hand back, and
/// [`release`](Self::release)s them together). A waker the set lends for one poll is borrowed (not
/// counted, never dropped), valid because the set's own `Arc` outlives the poll.
///
/// Why the count cannot reach 0 and then be taken from 0 by a waker of a freed block: a step from 0 is
/// made only by the set itself (under its `Arc`) or by cloning a borrowed waker (during a poll the set
/// makes, under its `Arc`); a clone of an owned waker finds the count above 0, since that waker is
/// counted. So the `Arc` is freed only once the set is gone and no owned waker is left.
struct WakerBlock {
    queue: Arc<ReadyQueue>,
    nodes: Box<[BlockNode]>,
    /// Owned wakers of this block alive: see the type's docs.
    wakers: AtomicUsize,
}

struct BlockNode {
    block: *const WakerBlock,
    /// The future's [`Slot`], packed. Only the set's owner reads or writes it (a waker reads `block`
    /// alone); an atomic only so that the block can be shared with the wakers without `unsafe`.
    slot: AtomicU64,
}

impl BlockNode {
    #[inline(always)]
    fn get(&self) -> Slot {
        Slot::unpack(self.slot.load(Ordering::Relaxed))
    }

    #[inline(always)]
    fn set(&self, slot: Slot) {
        self.slot.store(slot.pack(), Ordering::Relaxed);
    }
}

// SAFETY: `block` is written once, before any waker exists, and points to the `Arc`'s own contents,
// which are `Send + Sync` (a queue behind a mutex, these nodes, a counter), alive while the set or any
// owned waker holds it (see `WakerBlock`).
#[allow(unsafe_code)]
unsafe impl Send for BlockNode {}
// SAFETY: as above; `slot` is an atomic.
#[allow(unsafe_code)]
unsafe impl Sync for BlockNode {}

/// The vtable of a [`WakerBlock`]'s wakers: a `static` (not a `const`, which each use may copy), so that
/// every waker of every block carries the same vtable address and [`WakerBlock::is_own`] recognises
/// them.
static BLOCK_WAKER_VTABLE: RawWakerVTable = RawWakerVTable::new(
    WakerBlock::clone_raw,
    WakerBlock::wake_raw,
    WakerBlock::wake_by_ref_raw,
    WakerBlock::drop_raw,
);

#[allow(unsafe_code)] // a hand-made waker vtable and its reference count: see the SAFETY comments.
impl WakerBlock {
    const VTABLE: &'static RawWakerVTable = &BLOCK_WAKER_VTABLE;

    /// A block for `n` futures, none registered; those at `ended` are marked ended.
    fn new(queue: Arc<ReadyQueue>, n: usize, ended: &[usize]) -> Arc<Self> {
        let block = Arc::new_cyclic(|weak| {
            let block = weak.as_ptr();
            WakerBlock {
                queue,
                nodes: (0..n)
                    .map(|_| BlockNode {
                        block,
                        slot: AtomicU64::new(Slot::Watching(None).pack()),
                    })
                    .collect(),
                wakers: AtomicUsize::new(0),
            }
        });
        for &i in ended {
            block.nodes[i].set(Slot::Ended);
        }
        block
    }

    /// Counts `n` more owned wakers (see the type's docs).
    ///
    /// # Safety
    /// `block` comes from the block's `Arc` (`Arc::as_ptr`, or a node's `block`, which is the same
    /// pointer), and the caller holds that `Arc` or a waker of the block (owned, or borrowed from a
    /// holder of the `Arc`).
    unsafe fn acquire(block: *const Self, n: usize) {
        // SAFETY: the caller keeps the block alive.
        let wakers = unsafe { &(*block).wakers };
        if n > 0 && wakers.fetch_add(n, Ordering::Relaxed) == 0 {
            // SAFETY: `block` points to the contents of a live `Arc`, with the provenance of the
            // whole allocation, so adding a count is sound.
            unsafe { Arc::increment_strong_count(block) };
        }
    }

    /// Counts `n` owned wakers gone; the last gives back the wakers' strong count, which may free the
    /// block (hence a raw pointer: no reference to it may outlive this call).
    ///
    /// # Safety
    /// `block` is a live block, from its `Arc` as for [`acquire`](Self::acquire), and the caller
    /// stands for `n` owned wakers of it, now gone.
    unsafe fn release(block: *const Self, n: usize) {
        // SAFETY: the caller's wakers keep the block alive until the decrement below.
        let wakers = unsafe { &(*block).wakers };
        // Release: this thread's uses of the block happen before its freeing; Acquire: the thread
        // that frees it sees every other thread's.
        if n > 0 && wakers.fetch_sub(n, Ordering::AcqRel) == n {
            // SAFETY: the count went to 0: the wakers' strong count, taken at the step from 0, is
            // given back once.
            unsafe { Arc::decrement_strong_count(block) };
        }
    }

    /// The waker of `node`, lent for one poll: never dropped (the caller holds it in `ManuallyDrop`),
    /// valid while the node's block is (which the borrow of the node ensures); a future that keeps it
    /// clones it, which counts an owned waker.
    #[inline(always)]
    fn borrowed(node: &BlockNode) -> ManuallyDrop<Waker> {
        let data: *const BlockNode = node;
        // SAFETY: the vtable's functions uphold `RawWaker`'s contract for this data pointer (see each
        // one); the borrowed waker is never dropped, so it gives back no count it did not take.
        ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(data.cast(), Self::VTABLE)) })
    }

    /// An owned waker of `node`, for a future to keep.
    ///
    /// # Safety
    /// The caller has counted it with [`acquire`](Self::acquire) (on the node's block).
    #[inline(always)]
    unsafe fn owned(node: &BlockNode) -> Waker {
        let data: *const BlockNode = node;
        // SAFETY: as in `borrowed`; the count this waker gives back when dropped was taken by the
        // caller.
        unsafe { Waker::from_raw(RawWaker::new(data.cast(), Self::VTABLE)) }
    }

    /// Whether `waker` is the owned waker of `node` (one this block counts).
    #[inline(always)]
    fn is_own(waker: &Waker, node: &BlockNode) -> bool {
        waker.will_wake(&Self::borrowed(node))
    }

    /// # Safety
    /// `data` is a node of a live block (the caller's waker is counted, or borrows from an owner).
    unsafe fn node<'a>(data: *const ()) -> &'a BlockNode {
        // SAFETY: as the caller promises, the node and its block are alive.
        unsafe { &*data.cast::<BlockNode>() }
    }

    unsafe fn clone_raw(data: *const ()) -> RawWaker {
        // SAFETY: the waker being cloned keeps the block alive (see `WakerBlock`); the new waker is
        // counted.
        unsafe { Self::acquire(Self::node(data).block, 1) };
        RawWaker::new(data, Self::VTABLE)
    }

    unsafe fn wake_raw(data: *const ()) {
        // SAFETY: waking by value is waking by reference, then dropping this waker.
        unsafe {
            Self::wake_by_ref_raw(data);
            Self::drop_raw(data);
        }
    }

    unsafe fn wake_by_ref_raw(data: *const ()) {
        // SAFETY: the waker is counted (or borrows from the block's owner), so both are alive.
        let block = unsafe { &*Self::node(data).block };
        // SAFETY: `data` points into `block.nodes` (every waker of the block is made from one of its
        // nodes), so both pointers are in one allocation and the distance is a whole number of nodes.
        let index = unsafe { data.cast::<BlockNode>().offset_from(block.nodes.as_ptr()) };
        block.queue.ready(index as usize);
    }

    unsafe fn drop_raw(data: *const ()) {
        // SAFETY: an owned waker (given out by `owned` or made by `clone_raw`) is counted once, and is
        // gone now.
        unsafe { Self::release(Self::node(data).block, 1) };
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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slot {
    /// Not yet seen ended; `key` is its waiter registration, once made.
    Watching(Option<u64>),
    /// Seen ended and reported by `poll_ended`.
    Ended,
}

impl Slot {
    /// The word standing for "watching, not registered". A future's watcher keys count up from 0, or
    /// are its inline key (`u64::MAX`): neither reaches the two words below it.
    const UNREGISTERED: u64 = u64::MAX - 2;
    /// The word standing for [`Slot::Ended`].
    const ENDED: u64 = u64::MAX - 3;

    #[inline(always)]
    fn pack(self) -> u64 {
        match self {
            Slot::Watching(None) => Self::UNREGISTERED,
            Slot::Watching(Some(key)) => {
                debug_assert!(key != Self::UNREGISTERED && key != Self::ENDED);
                key
            }
            Slot::Ended => Self::ENDED,
        }
    }

    #[inline(always)]
    fn unpack(word: u64) -> Self {
        match word {
            Self::UNREGISTERED => Slot::Watching(None),
            Self::ENDED => Slot::Ended,
            key => Slot::Watching(Some(key)),
        }
    }
}

/// A deduplicated set of futures being watched.
pub(crate) struct WatchSet<F: Watch> {
    /// By index; `None` once taken out, and empty once `take_rest` has taken them all.
    futures: Vec<Option<F>>,
    /// Distinct futures the set was made with.
    total: usize,
    /// Futures still in `futures` (not taken out).
    held: usize,
    /// Futures seen ended on the first look, before the set registers.
    seen_early: Vec<usize>,
    /// Futures already ended when the set was made, noted while checking for duplicates; the first
    /// look reports these instead of scanning again.
    ended_at_start: Option<Vec<usize>>,
    /// One waker and one registration per future, made when the set first registers: a `wait` that
    /// returns on its first look allocates nothing per future.
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
            total: n,
            held: n,
            seen_early: Vec::new(),
            ended_at_start,
            wakers: None,
            queue: ReadyQueue::new(),
            phase: Phase::Fresh,
            pending: n,
        }
    }

    /// Distinct futures in the set (taken out or not).
    pub(crate) fn len(&self) -> usize {
        self.total
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
            let block = WakerBlock::new(
                self.queue.clone(),
                self.futures.len(),
                &std::mem::take(&mut self.seen_early),
            );
            // Every future gets an owned waker, counted here at once; the counts of those not given
            // out and of those handed back (a future that ended meanwhile) are given back at once too.
            // SAFETY: the pointer is the `Arc`'s own, and this set holds the `Arc`.
            #[allow(unsafe_code)]
            unsafe {
                WakerBlock::acquire(Arc::as_ptr(&block), self.futures.len())
            };
            let mut unused = HandedBack::new(&block);
            for (i, (future, node)) in self.futures.iter().zip(&*block.nodes).enumerate() {
                // Only futures seen ended can have been taken, and their nodes say so.
                let (Some(future), Slot::Watching(None)) = (future, node.get()) else {
                    unused.count_one();
                    continue;
                };
                // SAFETY: counted by the `acquire` above, one per future.
                #[allow(unsafe_code)]
                let waker = unsafe { WakerBlock::owned(node) };
                match future.watched().watch(waker) {
                    Registration::Kept(key) => node.set(Slot::Watching(Some(key))),
                    Registration::Ended(waker) => {
                        unused.take(waker, node);
                        node.set(Slot::Ended);
                        self.pending -= 1;
                        out.push(i);
                    }
                }
            }
            drop(unused);
            self.wakers = Some(block);
        } else if let Some(block) = &self.wakers {
            while let Some(i) = self.queue.pop() {
                // A future taken out of the set has no node to wake; a late wake-up means nothing.
                if let Some(future) = &self.futures[i] {
                    if poll_one(future, &block.nodes[i]) {
                        self.pending -= 1;
                        out.push(i);
                    }
                }
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

    /// Whether the future at `i` failed (for `FirstException`).
    pub(crate) fn raised(&self, i: usize) -> bool {
        self.future(i).watched().raised()
    }

    /// Takes the future at `i` out of the set (it stops being watched).
    pub(crate) fn take(&mut self, i: usize) -> F {
        let future = self.futures[i].take().expect("each future is taken once");
        self.held -= 1;
        if let Some(block) = &self.wakers {
            drop(unwatch(&future, &block.nodes[i]));
        }
        future
    }

    /// Takes every future still in the set, in input order. The list is made in place of the set's
    /// own (no second allocation), which leaves the set empty.
    pub(crate) fn take_rest(&mut self) -> Vec<F> {
        self.held = 0;
        let futures = std::mem::take(&mut self.futures);
        let Some(block) = &self.wakers else {
            return futures.into_iter().flatten().collect();
        };
        let mut handed_back = HandedBack::new(block);
        futures
            .into_iter()
            .zip(&*block.nodes)
            .filter_map(|(future, node)| {
                let future = future?;
                if let Some(waker) = unwatch(&future, node) {
                    handed_back.take(waker, node);
                }
                Some(future)
            })
            .collect()
    }
}

/// Polls `future` with the waker of its `node`: registers the waker, or, if the future has ended,
/// marks the node so and returns `true` (once: an ended node is not polled again).
#[inline(always)]
fn poll_one<F: Watch>(future: &F, node: &BlockNode) -> bool {
    let Slot::Watching(mut key) = node.get() else {
        return false;
    };
    let waker = WakerBlock::borrowed(node);
    let ended = future
        .watched()
        .poll_ended(&mut Context::from_waker(&waker), &mut key)
        .is_ready();
    node.set(if ended {
        Slot::Ended
    } else {
        Slot::Watching(key)
    });
    ended
}

/// Removes the registration `node` records from `future`, if it has one, and gives back the waker the
/// future held for it.
#[inline(always)]
fn unwatch<F: Watch>(future: &F, node: &BlockNode) -> Option<Waker> {
    let Slot::Watching(Some(key)) = node.get() else {
        return None;
    };
    node.set(Slot::Watching(None));
    future.watched().unwatch(key)
}

/// Owned wakers of a block that came back to its set, dropped together (one atomic operation for all:
/// see [`WakerBlock`]) when this goes.
struct HandedBack<'a> {
    /// The set's own `Arc`, held for as long as `'a`: so the release this makes when it goes never
    /// frees the block.
    block: &'a Arc<WakerBlock>,
    count: usize,
}

impl<'a> HandedBack<'a> {
    fn new(block: &'a Arc<WakerBlock>) -> Self {
        HandedBack { block, count: 0 }
    }

    /// A waker given back by the future of `node`: kept to be released with the others if it is
    /// that node's own, dropped otherwise.
    #[inline(always)]
    fn take(&mut self, waker: Waker, node: &BlockNode) {
        if WakerBlock::is_own(&waker, node) {
            std::mem::forget(waker);
            self.count += 1;
        }
    }

    /// An owned waker counted but never made (the `acquire` covered it).
    #[inline(always)]
    fn count_one(&mut self) {
        self.count += 1;
    }
}

impl Drop for HandedBack<'_> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: each counted waker was owned and counted, and is gone (forgotten, or never made);
        // the pointer is the `Arc`'s own, and the block stays alive through it (see `block`).
        unsafe { WakerBlock::release(Arc::as_ptr(self.block), self.count) };
    }
}

impl<F: Watch> Drop for WatchSet<F> {
    fn drop(&mut self) {
        // A dropped wait/as_completed leaves no waker behind on the futures it watched (it has put
        // none there before it registers).
        let Some(block) = &self.wakers else { return };
        if self.held == 0 {
            return;
        }
        let mut handed_back = HandedBack::new(block);
        for (future, node) in self.futures.iter().zip(&*block.nodes) {
            if let Some(waker) = future.as_ref().and_then(|future| unwatch(future, node)) {
                handed_back.take(waker, node);
            }
        }
    }
}
