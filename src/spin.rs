//! When a thread about to sleep may spin for a moment instead: the one policy behind every spin in the
//! crate (a thread-pool worker waiting for its next task, a blocking waiter waiting for a result, a
//! process pool's driver waiting for its worker's reply).
//!
//! A pool lives inside someone else's program, and every spin takes a CPU that program may need, so a
//! spin is allowed only when all of these hold:
//!
//! - **It is short.** At most [`MAX_ROUNDS`] rounds of `spin_loop` hints, and never longer than
//!   [`MAX_SPIN`] (a few microseconds) even where a hint is cheap. A spin is a latency trick: the
//!   wake-up credit or the waker's flag, not the spin, is what guarantees no wake-up is lost.
//! - **It has been paying off** ([`Adaptive`]). Each spinning site remembers its recent misses; after
//!   `n` misses in a row it skips its next `2^n - 1` chances to spin (at most [`MAX_SKIP`]), and one hit
//!   resets it. A pool paced slower than its spin (one task per 100 µs) thus spins about once every
//!   [`MAX_SKIP`] waits. The memory fades: a site whose last miss is older than [`FORGET`] tries
//!   again at once, so a burst after a quiet spell is not judged by the spell.
//! - **A spinner slot is free.** At most half the CPUs this process may run on spin at once, across
//!   all pools and all roles (tokio's scheduler and Go's runtime cap their searching threads the same
//!   way): a core is always left for the program. With one CPU, nothing spins; and since the two sides
//!   of one hand-off take turns waiting, on two CPUs only one of them spins at any moment.
//! - **The machine has no runnable thread waiting for a CPU.** If the kernel's count of runnable
//!   threads (`/proc/loadavg`, read at most once per [`REFRESH`]) exceeds the CPUs, a spinner would
//!   only delay the thread it waits for, or the program's own: nothing spins until the next reading.
//!
//! A future's state lock ([`crate::future`]'s word lock) spins too, by iterations (a few busy rounds
//! and yields, as parking_lot's `SpinWait`), and only while [`allowed`]: its holder is between a few
//! loads and stores, so its spin is far shorter than a spinner slot's and takes none.
//!
//! Setting `CONCURRENT_FUTURES_SPIN=0` in the environment turns every spin off (read once).

// Under loom nothing spins, so the policy's machinery goes unused there.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest a spin may last, whatever a `spin_loop` hint costs on this CPU.
const MAX_SPIN: Duration = Duration::from_micros(4);
/// `spin_loop` hints per round; the time is looked at between rounds.
const HINTS_PER_ROUND: u32 = 64;
/// The most rounds one spin makes.
const MAX_ROUNDS: u32 = 32;
/// The most waits a missing site skips before it tries to spin again.
const MAX_SKIP: u16 = 255;
/// How often the machine's load and the process's CPUs are looked at again.
const REFRESH: Duration = Duration::from_millis(1);
/// How long a site's misses count against it.
const FORGET: Duration = Duration::from_millis(50);

/// One spinning site's memory of whether spinning has been paying off. Each thread keeps its own (a
/// worker in its loop; waiters and drivers in a thread-local), so it needs no synchronisation.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Adaptive {
    /// Misses in a row (capped), which sets the next skip.
    misses: u8,
    /// Chances to spin still to be skipped.
    skip: u16,
    /// When the last miss was, in milliseconds since the policy's epoch (wrapping).
    last_miss_ms: u32,
}

impl Adaptive {
    pub(crate) const fn new() -> Self {
        Adaptive {
            misses: 0,
            skip: 0,
            last_miss_ms: 0,
        }
    }

    /// Whether this chance to spin should be taken, counting it if skipped.
    fn wants_to_spin(&mut self, now_ms: u32) -> bool {
        if self.skip == 0 {
            return true;
        }
        if now_ms.wrapping_sub(self.last_miss_ms) > FORGET.as_millis() as u32 {
            *self = Adaptive::new();
            return true;
        }
        self.skip -= 1;
        false
    }

    fn record(&mut self, spun: Spun, now_ms: u32) {
        match spun {
            Spun::Hit => self.misses = 0,
            Spun::Miss => {
                self.misses = (self.misses + 1).min(8);
                self.skip = ((1u16 << self.misses) - 1).min(MAX_SKIP);
                self.last_miss_ms = now_ms;
            }
        }
    }
}

/// How a spin a site took ended, for its [`Adaptive`] memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spun {
    /// What it waited for came during the spin.
    Hit,
    /// The spin ran out first.
    Miss,
}

/// How expensive `ready` is to ask, which sets how often a spin asks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// An atomic load: asked after every hint.
    Load,
    /// A system call: asked once per round.
    Syscall,
}

/// Spins until `ready()` is true (returns `true`) or the spin ends (`false`), if the policy allows a
/// spin now (see the module docs); otherwise asks `ready()` once and returns its answer. The caller then sleeps the ordinary
/// way, on a wake-up that is never lost.
#[cfg(not(loom))]
pub(crate) fn spin_until(
    site: &mut Adaptive,
    probe: Probe,
    mut ready: impl FnMut() -> bool,
) -> bool {
    // Something already there is no spin's merit: it must not count as a hit (a reader taking a frame
    // in two reads would otherwise reset its back-off on every frame).
    if ready() {
        return true;
    }
    if disabled() || !site.wants_to_spin(now_ms()) {
        return false;
    }
    let Some(_slot) = Slot::acquire() else {
        // Not a miss: the site did not get to try.
        return false;
    };
    let start = Instant::now();
    let mut spun = Spun::Miss;
    'spin: for _ in 0..MAX_ROUNDS {
        for _ in 0..HINTS_PER_ROUND {
            if probe == Probe::Load && ready() {
                spun = Spun::Hit;
                break 'spin;
            }
            std::hint::spin_loop();
        }
        if probe == Probe::Syscall && ready() {
            spun = Spun::Hit;
            break;
        }
        if start.elapsed() >= MAX_SPIN {
            break;
        }
    }
    site.record(spun, now_ms());
    spun == Spun::Hit
}

/// Whether the process-wide conditions let anything spin now: spins are not turned off, this process
/// may use more than one CPU, and the machine has no runnable thread waiting for one (the reading
/// [`spin_until`] uses, refreshed at most once per [`REFRESH`]). No spinner slot is taken: a caller
/// that asks this spins for a few iterations at most, or skips the work of getting ready to spin.
#[cfg(not(loom))]
pub(crate) fn allowed() -> bool {
    !disabled() && spinner_cap() > 0
}

/// Under loom the only caller, the word lock, makes no spin rounds either way (its `SPINS` is 0), so
/// allowing hides no interleaving the real build takes.
#[cfg(loom)]
pub(crate) fn allowed() -> bool {
    true
}

/// The policy's clock: milliseconds since its epoch (wrapping), coarse and cheap.
fn now_ms() -> u32 {
    epoch().elapsed().as_millis() as u32
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Under loom, spinning would only multiply the interleavings; sleeping covers the same ground.
#[cfg(loom)]
pub(crate) fn spin_until(
    _site: &mut Adaptive,
    _probe: Probe,
    mut ready: impl FnMut() -> bool,
) -> bool {
    ready()
}

#[cfg(not(loom))]
thread_local! {
    /// The adaptive state of the spins of whatever waits on this thread (blocking waiters, drivers).
    static LOCAL: Cell<Adaptive> = const { Cell::new(Adaptive::new()) };
}

/// [`spin_until`] with this thread's own [`Adaptive`] state.
#[cfg(loom)]
pub(crate) fn spin_here(_probe: Probe, mut ready: impl FnMut() -> bool) -> bool {
    ready()
}

/// [`spin_until`] with this thread's own [`Adaptive`] state.
#[cfg(not(loom))]
pub(crate) fn spin_here(probe: Probe, ready: impl FnMut() -> bool) -> bool {
    let mut site = LOCAL.with(Cell::get);
    let hit = spin_until(&mut site, probe, ready);
    LOCAL.with(|l| l.set(site));
    hit
}

fn disabled() -> bool {
    static DISABLED: OnceLock<bool> = OnceLock::new();
    *DISABLED.get_or_init(|| std::env::var_os("CONCURRENT_FUTURES_SPIN").is_some_and(|v| v == "0"))
}

/// Threads spinning now, across every pool of the process.
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// A spinner slot, given back on drop.
struct Slot;

impl Slot {
    fn acquire() -> Option<Slot> {
        let cap = spinner_cap();
        // The other side of a hand-off releases its slot the moment it sees its wake-up, which is when
        // this side starts waiting: a few tries let it finish instead of failing on that narrow race.
        for _ in 0..8 {
            if SPINNERS.fetch_add(1, Ordering::Acquire) < cap {
                return Some(Slot);
            }
            SPINNERS.fetch_sub(1, Ordering::Release);
            if cap == 0 {
                return None;
            }
            std::hint::spin_loop();
        }
        None
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        SPINNERS.fetch_sub(1, Ordering::Release);
    }
}

/// How many threads may spin now: half the CPUs this process may use, or none while the machine has
/// more runnable threads than those CPUs. Re-read at most once per [`REFRESH`], by one caller.
fn spinner_cap() -> usize {
    /// `usize::MAX` until first measured.
    static CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
    /// When to measure again, in nanoseconds since `EPOCH`.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = epoch().elapsed().as_nanos() as u64;
    let next = NEXT.load(Ordering::Relaxed);
    let cap = CAP.load(Ordering::Relaxed);
    if (now >= next || cap == usize::MAX)
        && NEXT
            .compare_exchange(
                next,
                now + REFRESH.as_nanos() as u64,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    {
        let fresh = measure_cap();
        CAP.store(fresh, Ordering::Relaxed);
        return fresh;
    }
    if cap == usize::MAX {
        // Another thread is measuring for the first time: do not spin meanwhile.
        0
    } else {
        cap
    }
}

fn measure_cap() -> usize {
    let half = os::cpus() / 2;
    if half == 0 {
        return 0;
    }
    // The kernel's count is machine-wide, so it is compared with the machine's CPUs.
    match os::runnable_threads() {
        Some(r) if r > os::online_cpus() => 0,
        _ => half,
    }
}

#[cfg(target_os = "linux")]
mod os {
    use std::fs::File;
    use std::os::unix::fs::FileExt;
    use std::sync::OnceLock;

    /// The CPUs the calling thread may run on (its affinity mask), which is what a spinner competes for.
    /// (std's `available_parallelism` also reads cgroup files on every call: too slow to repeat.)
    #[allow(unsafe_code)] // `sched_getaffinity` and `CPU_COUNT`: see the SAFETY comments.
    pub(super) fn cpus() -> usize {
        // SAFETY: `cpu_set_t` is plain data, for which all zeroes is a valid (empty) set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the pointer and the size describe `set`, which lives through the call.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if rc != 0 {
            return std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        // SAFETY: `set` was filled by the kernel above.
        unsafe { libc::CPU_COUNT(&set) as usize }
    }

    /// The CPUs online, machine-wide (read once).
    pub(super) fn online_cpus() -> usize {
        static ONLINE: OnceLock<usize> = OnceLock::new();
        *ONLINE.get_or_init(|| {
            std::fs::read_to_string("/sys/devices/system/cpu/online")
                .ok()
                .and_then(|s| count_cpu_list(s.trim()))
                .unwrap_or_else(cpus)
        })
    }

    /// Counts the CPUs in a kernel CPU list such as `0-3,8,10-11`.
    pub(super) fn count_cpu_list(list: &str) -> Option<usize> {
        let mut n = 0;
        for part in list.split(',') {
            n += match part.split_once('-') {
                Some((a, b)) => b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?,
                None => {
                    part.parse::<usize>().ok()?;
                    1
                }
            };
        }
        Some(n)
    }

    /// The kernel's count of runnable threads, machine-wide (the fourth field of `/proc/loadavg`,
    /// `running/total`), read through a descriptor kept open: one `pread` per look.
    pub(super) fn runnable_threads() -> Option<usize> {
        static LOADAVG: OnceLock<Option<File>> = OnceLock::new();
        let file = LOADAVG
            .get_or_init(|| File::open("/proc/loadavg").ok())
            .as_ref()?;
        let mut buf = [0u8; 128];
        let n = file.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let field = text.split_ascii_whitespace().nth(3)?;
        field.split('/').next()?.parse().ok()
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    pub(super) fn cpus() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    pub(super) fn online_cpus() -> usize {
        cpus()
    }

    pub(super) fn runnable_threads() -> Option<usize> {
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn misses_back_off_and_a_hit_resets() {
        let t = 1000; // a fixed clock: nothing fades
        let mut a = Adaptive::new();
        assert!(a.wants_to_spin(t));
        a.record(Spun::Miss, t);
        assert!(!a.wants_to_spin(t), "one miss skips the next chance");
        assert!(a.wants_to_spin(t));
        a.record(Spun::Miss, t);
        let skipped = (0..10).take_while(|_| !a.wants_to_spin(t)).count();
        assert_eq!(skipped, 3, "two misses in a row skip three chances");
        a.record(Spun::Hit, t);
        assert!(a.wants_to_spin(t), "a hit resets the back-off");
        for _ in 0..20 {
            a.record(Spun::Miss, t);
        }
        let skipped = (0..1000).take_while(|_| !a.wants_to_spin(t)).count();
        assert_eq!(skipped, MAX_SKIP as usize);
        for _ in 0..20 {
            a.record(Spun::Miss, t);
        }
        let later = t + FORGET.as_millis() as u32 + 1;
        assert!(a.wants_to_spin(later), "old misses are forgotten");
        assert!(a.wants_to_spin(later), "entirely");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_machine_readings_parse() {
        assert!(os::runnable_threads().is_some_and(|r| r >= 1));
        assert!(os::cpus() >= 1);
        assert!(os::online_cpus() >= os::cpus());
        assert_eq!(os::count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(os::count_cpu_list("0"), Some(1));
    }

    #[test]
    fn a_spin_never_outlasts_its_bound_and_releases_its_slot() {
        let mut a = Adaptive::new();
        let start = Instant::now();
        let hit = spin_until(&mut a, Probe::Load, || false);
        assert!(!hit);
        // Generous: only a runaway spin (hundreds of microseconds) fails this.
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
