//! Sections 7–11 (issue #9): what a pool costs the program around it, side by side with the anchors.
//!
//! - §7 (a) an async service under open-loop load, with and without two CPU hogs;
//! - §8 (b) the round trip with the whole process on one CPU;
//! - §9 (c) many pools with CPU-bound neighbours;
//! - §10 (d) CPU per task at low rates;
//! - §11 (e) the process pool's parent CPU per task.
//!
//! CPU is the whole process's (`CLOCK_PROCESS_CPUTIME_ID`) minus the hogs' own threads (each hog
//! publishes its thread CPU time), so a spinning pool pays for its spin here.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{black_box, fmt_time, pi_series, process_cpu_ns, Cfg, EchoChild, Results};
use concurrent_futures::{ProcessPoolExecutor, ThreadPoolExecutor};

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

/// Set by the §7 probe: `busy` adds the CPU time its jobs take to `JOB_CPU_NS`.
static COUNT_JOB_CPU: AtomicBool = AtomicBool::new(false);
static JOB_CPU_NS: AtomicU64 = AtomicU64::new(0);

/// Busy for `us` microseconds of wall time (the offloaded job). A thread preempted meanwhile burns
/// less CPU for the same wall time, so under CPU hogs a job's CPU depends on its scheduling: the §7
/// probe counts it apart from the pool's own CPU.
fn busy(us: f64) -> u64 {
    let counted = COUNT_JOB_CPU.load(Ordering::Relaxed);
    let cpu0 = if counted { thread_cpu_ns() } else { 0 };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() * 1e6 < us {
        n = black_box(n.wrapping_add(1));
        std::hint::spin_loop();
    }
    if counted {
        JOB_CPU_NS.fetch_add(thread_cpu_ns() - cpu0, Ordering::Relaxed);
    }
    n
}

/// The process-pool job of §11: busy for `us` microseconds.
fn busy_task(us: u64) -> u64 {
    busy(us as f64)
}

/// CPU time of the calling thread so far, in nanoseconds.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Asks the kernel to wake this thread's sleeps within 1 µs of their deadline (the default slack is
/// 50 µs), so a paced loop keeps its pace.
fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000u64, 0u64, 0u64, 0u64) };
}

fn sleep_until(due: Instant) {
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

/// CPU-bound neighbours: threads that compute chunks (≈ 20 µs each) until stopped, counting them and
/// publishing their own CPU time, so the bench can take both out of its numbers.
struct Hogs {
    stop: Arc<AtomicBool>,
    chunks: Arc<AtomicU64>,
    cpu: Arc<Vec<AtomicU64>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hogs {
    fn start(n: usize) -> Hogs {
        let stop = Arc::new(AtomicBool::new(false));
        let chunks = Arc::new(AtomicU64::new(0));
        let cpu: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let threads = (0..n)
            .map(|i| {
                let (stop, chunks, cpu) = (stop.clone(), chunks.clone(), cpu.clone());
                std::thread::Builder::new()
                    .name(format!("hog{i}"))
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            black_box(pi_series(black_box(10_000)));
                            chunks.fetch_add(1, Ordering::Relaxed);
                            cpu[i].store(thread_cpu_ns(), Ordering::Relaxed);
                        }
                    })
                    .expect("hog thread")
            })
            .collect();
        Hogs {
            stop,
            chunks,
            cpu,
            threads,
        }
    }

    /// (chunks so far, the hogs' CPU so far in ns).
    fn snapshot(&self) -> (u64, u64) {
        (
            self.chunks.load(Ordering::Relaxed),
            self.cpu.iter().map(|c| c.load(Ordering::Relaxed)).sum(),
        )
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 * 1e-9
}

fn med(mut xs: Vec<f64>) -> f64 {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Rounds per measurement in these sections (`BENCH_REPS`; 5 by default, 2 in a quick run).
pub(crate) fn reps(cfg: &Cfg) -> usize {
    std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg.quick { 2 } else { 5 })
}

/// §7's length of one open-loop run, in seconds (`BENCH_SERVICE_SECS`).
pub(crate) fn service_secs(cfg: &Cfg) -> f64 {
    secs_env("BENCH_SERVICE_SECS", 0.5, 0.2, cfg)
}

/// §10's length of one paced run, in seconds (`BENCH_LOWRATE_SECS`).
pub(crate) fn lowrate_secs(cfg: &Cfg) -> f64 {
    secs_env("BENCH_LOWRATE_SECS", 1.0, 0.2, cfg)
}

/// Stores a figure for the targets table without logging it (the sections log their own lines).
fn record(r: &mut Results, key: String, v: f64) {
    r.values.insert(key, v);
}

fn secs_env(name: &str, full: f64, quick: f64, cfg: &Cfg) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg.quick { quick } else { full })
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "—".into()
    }
}

// ---------------------------------------------------------------------------------------------------
// §7 (a) Async service, open loop
// ---------------------------------------------------------------------------------------------------

/// Where a request's blocking job goes.
#[derive(Clone)]
enum Offload {
    Cf(ThreadPoolExecutor),
    SpawnBlocking,
    Unblock,
    Rayon(Arc<rayon::ThreadPool>),
}

impl Offload {
    async fn run(&self, w: f64) {
        match self {
            Offload::Cf(p) => {
                black_box(
                    p.spawn(move || busy(w))
                        .expect("submit")
                        .await
                        .expect("task"),
                );
            }
            Offload::SpawnBlocking => {
                black_box(
                    tokio::task::spawn_blocking(move || busy(w))
                        .await
                        .expect("task"),
                );
            }
            Offload::Unblock => {
                black_box(blocking::unblock(move || busy(w)).await);
            }
            Offload::Rayon(p) => {
                let (tx, rx) = oneshot::channel();
                p.spawn(move || {
                    let _ = tx.send(busy(w));
                });
                black_box(rx.await.expect("rayon job"));
            }
        }
    }
}

/// Starts the contender's two pool threads before a run, as a service's pool is warm when its load
/// arrives: two jobs that meet at a barrier, so that both threads exist and run at once, and the
/// kernel places them while the process is quiet rather than in the run's burst (a thread started
/// next to a busy sibling at saturation tends to stay on its CPU). Rayon starts its threads when its
/// pool is built, the others at their first submits: without this the contenders would not start
/// alike. Called in the §7 runtime's context (`spawn_blocking` goes to that runtime's blocking pool),
/// right before each run: tokio's blocking threads retire after 10 s idle, `blocking`'s after 0.5 s.
fn warm(o: &Offload) {
    let both = Arc::new(std::sync::Barrier::new(2));
    let (started, ran) = std::sync::mpsc::channel();
    for _ in 0..2 {
        let (both, started) = (both.clone(), started.clone());
        let job = move || {
            both.wait();
            let _ = started.send(());
        };
        // Each job reports through the channel, so its handle is not needed.
        match o {
            Offload::Cf(p) => drop(p.spawn(job).expect("submit")),
            Offload::SpawnBlocking => drop(tokio::task::spawn_blocking(job)),
            Offload::Unblock => blocking::unblock(job).detach(),
            Offload::Rayon(p) => p.spawn(job),
        }
    }
    for _ in 0..2 {
        ran.recv_timeout(Duration::from_secs(30))
            .expect("warm-up: the pool did not run two jobs at once within 30 s");
    }
}

/// §7's settings: CPU-hog threads, the offloaded job's length W in µs, and the load.
pub(crate) const HOG_COUNTS: [usize; 2] = [0, 2];
pub(crate) const WS: [f64; 3] = [5.0, 50.0, 500.0];
pub(crate) const LOADS: [f64; 3] = [0.3, 0.7, 0.95];

/// The key under which §7 records one setting's ratio of cf to its reference (`metric`: `p50`, `p99`
/// and `tick` against the best anchor, `cpu` against `spawn_blocking`).
pub(crate) fn setting_key(hogs: usize, w: f64, load: f64, metric: &str) -> String {
    format!("s7.{hogs}.{w}.{:.0}.{metric}", load * 100.0)
}

const CONTENDERS: [&str; 4] = ["cf", "spawn_blocking", "unblock", "rayon+oneshot"];

/// Builds contender `i` (its pool is new for each run: 2 threads each).
fn offload(i: usize) -> Offload {
    match i {
        0 => Offload::Cf(ThreadPoolExecutor::new(2).expect("pool")),
        1 => Offload::SpawnBlocking,
        2 => Offload::Unblock,
        // Named, so that the §7 probes can tell its threads from the generator's.
        _ => Offload::Rayon(Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .thread_name(|i| format!("rayon-{i}"))
                .build()
                .expect("rayon pool"),
        )),
    }
}

/// The name (as `/proc` shows it: 15 bytes at most) its pool threads start with, for contender `i`.
fn pool_role(i: usize) -> &'static str {
    match i {
        0 => "ThreadPoolExecu",
        1 => "tokio-blocking",
        2 => "blocking",
        _ => "rayon-",
    }
}

/// Where the kernel kept a pool's threads during a run: a thread samples, every 10 ms, the CPU each
/// thread whose name starts with the pool's role last ran on (`/proc/self/task/*/stat`, field 39),
/// and counts the samples that found two of them on one CPU. At saturation this, not the pool's
/// code, sets what a 2-thread pool serves: two workers sharing one CPU serve about one CPU's worth
/// of jobs, and a worker that never sleeps is never placed again by a wake-up, only by the load
/// balancer, which leaves a task that ran within the last 0.5 ms where it is. (The sampling costs
/// about 1 % of a CPU.)
struct Placement {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(usize, usize)>,
}

impl Placement {
    fn start(role: &'static str) -> Placement {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut shared, mut samples) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let mut cpus = Vec::new();
                    for t in std::fs::read_dir("/proc/self/task")
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let comm =
                            std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                        if !comm.starts_with(role) {
                            continue;
                        }
                        let stat =
                            std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                        // The fields after the parenthesised name; `processor` is the 39th in all.
                        if let Some(cpu) = stat
                            .rsplit_once(')')
                            .and_then(|(_, r)| r.split_whitespace().nth(36))
                        {
                            cpus.push(cpu.to_string());
                        }
                    }
                    if cpus.len() >= 2 {
                        samples += 1;
                        cpus.sort();
                        shared += usize::from(cpus.windows(2).any(|w| w[0] == w[1]));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                (shared, samples)
            })
        };
        Placement { stop, thread }
    }

    /// (samples with two pool threads on one CPU, samples with two or more pool threads alive).
    fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0))
    }
}

fn service_rt() -> tokio::runtime::Runtime {
    // The runtime starts its workers first, then its blocking threads: named apart, the §7 probe
    // counts their context switches apart.
    let started = AtomicUsize::new(0);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name_fn(move || {
            if started.fetch_add(1, Ordering::Relaxed) < 2 {
                "tokio-rt-worker".into()
            } else {
                "tokio-blocking".into()
            }
        })
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A request's own async work before it offloads (parsing, routing: a yield and a little compute).
async fn request(o: &Offload, w: f64) {
    tokio::task::yield_now().await;
    black_box(pi_series(black_box(50)));
    o.run(w).await;
}

/// Closed loop, 16 requests in flight for `secs`: the contender's capacity in requests per second.
fn capacity(o: &Offload, w: f64, secs: f64) -> f64 {
    closed_loop(o, w, secs, CAPACITY_IN_FLIGHT, None, None).throughput
}

/// Requests in flight in the closed loop that measures §7's capacity.
const CAPACITY_IN_FLIGHT: usize = 16;

/// What a closed-loop run served, and the CPU it took (hog threads' own CPU taken out).
struct ClosedStats {
    requests: u64,
    throughput: f64,
    cpu_per_req: f64,
}

/// Closed loop: `in_flight` requests kept in flight for `secs`, each started again as soon as it
/// ends, so the pool always has work waiting: the contender's sustained throughput.
fn closed_loop(
    o: &Offload,
    w: f64,
    secs: f64,
    in_flight: usize,
    hogs: Option<&Hogs>,
    mut counts: Option<&mut Counts>,
) -> ClosedStats {
    let rt = service_rt();
    rt.block_on(async { warm(o) });
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(c) = counts.as_deref_mut() {
        c.begin();
    }
    let cpu0 = process_cpu_ns();
    let hog0 = hogs.map_or(0, |h| h.snapshot().1);
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let (o, done, stop) = (o.clone(), done.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    request(&o, w).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu_ns() - cpu0 - (hogs.map_or(0, |h| h.snapshot().1) - hog0);
    if let Some(c) = counts {
        c.end();
    }
    let requests = done.load(Ordering::Relaxed);
    ClosedStats {
        requests,
        throughput: requests as f64 / elapsed,
        cpu_per_req: cpu as f64 * 1e-9 / requests.max(1) as f64,
    }
}

struct RunStats {
    p50: f64,
    p99: f64,
    p999: f64,
    cpu_per_req: f64,
    throughput: f64,
    tick_p50: f64,
    tick_p99: f64,
}

/// One open-loop run: `rate` requests per second for `secs`, arrivals evenly spaced; each latency is
/// counted from the request's due time (so a late generator counts against the server, as a client's
/// clock would). A 1 ms ticker runs on the same runtime.
fn open_loop(
    o: &Offload,
    w: f64,
    rate: f64,
    secs: f64,
    hogs: Option<&Hogs>,
    mut counts: Option<&mut Counts>,
) -> RunStats {
    let rt = service_rt();
    rt.block_on(async { warm(o) });
    let n = (rate * secs).max(1.0) as usize;
    let lat: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(u64::MAX)).collect());
    let left = Arc::new(AtomicUsize::new(n));
    let all_done = Arc::new((Mutex::new(false), Condvar::new()));
    let tick_stop = Arc::new(AtomicBool::new(false));
    let ticks = Arc::new(Mutex::new(Vec::<u64>::new()));
    {
        let (tick_stop, ticks) = (tick_stop.clone(), ticks.clone());
        rt.spawn(async move {
            let mut next = tokio::time::Instant::now() + Duration::from_millis(1);
            let mut seen = Vec::new();
            while !tick_stop.load(Ordering::Relaxed) {
                tokio::time::sleep_until(next).await;
                seen.push(tokio::time::Instant::now().duration_since(next).as_nanos() as u64);
                next += Duration::from_millis(1);
            }
            *ticks.lock().unwrap() = seen;
        });
    }
    std::thread::sleep(Duration::from_millis(5));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let handle = rt.handle().clone();
    if let Some(c) = counts.as_deref_mut() {
        c.begin();
    }
    let cpu0 = process_cpu_ns();
    let hog0 = hogs.map_or(0, |h| h.snapshot().1);
    let start = Instant::now();
    // The generator: its own thread, sleeping to each due time (1 µs timer slack).
    std::thread::scope(|s| {
        s.spawn(|| {
            tight_timer_slack();
            for i in 0..n {
                let due = start + interval * i as u32;
                sleep_until(due);
                let (o, lat, left, all_done) =
                    (o.clone(), lat.clone(), left.clone(), all_done.clone());
                handle.spawn(async move {
                    request(&o, w).await;
                    lat[i].store(due.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                        *all_done.0.lock().unwrap() = true;
                        all_done.1.notify_all();
                    }
                });
            }
        });
    });
    let (lock, cv) = &*all_done;
    let mut done = lock.lock().unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    while !*done && Instant::now() < give_up {
        done = cv.wait_timeout(done, Duration::from_millis(100)).unwrap().0;
    }
    drop(done);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu_ns() - cpu0 - (hogs.map_or(0, |h| h.snapshot().1) - hog0);
    if let Some(c) = counts {
        c.end();
    }
    tick_stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(3));
    drop(rt);
    let mut l: Vec<u64> = lat.iter().map(|x| x.load(Ordering::Relaxed)).collect();
    let completed = l.iter().filter(|&&x| x != u64::MAX).count();
    l.sort_unstable();
    let mut t = std::mem::take(&mut *ticks.lock().unwrap());
    t.sort_unstable();
    RunStats {
        p50: pct(&l[..completed], 0.5),
        p99: pct(&l[..completed], 0.99),
        p999: pct(&l[..completed], 0.999),
        cpu_per_req: cpu as f64 * 1e-9 / n as f64,
        throughput: completed as f64 / elapsed,
        tick_p50: pct(&t, 0.5),
        tick_p99: pct(&t, 0.99),
    }
}

/// Context switches per thread role, from `/proc/self/task/*/status` (a role is a thread's name
/// without its trailing number: `hog`, `tokio-runtime-w`, a pool's prefix), and the process's totals
/// from `getrusage`, which also count threads that exited meanwhile.
#[derive(Default)]
pub(crate) struct Counts {
    /// role -> (voluntary, involuntary) at `begin` and at `end`.
    at: [std::collections::BTreeMap<String, (u64, u64, usize)>; 2],
    rusage: [(u64, u64); 2],
}

impl Counts {
    fn begin(&mut self) {
        self.at[0] = Self::by_role();
        self.rusage[0] = Self::rusage();
    }

    fn end(&mut self) {
        self.at[1] = Self::by_role();
        self.rusage[1] = Self::rusage();
    }

    fn rusage() -> (u64, u64) {
        // SAFETY: `rusage` is plain data, and the kernel fills it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        (ru.ru_nvcsw as u64, ru.ru_nivcsw as u64)
    }

    fn by_role() -> std::collections::BTreeMap<String, (u64, u64, usize)> {
        let mut m = std::collections::BTreeMap::new();
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return m;
        };
        for t in dir.flatten() {
            let path = t.path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let role = comm
                .trim()
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '_' || c == '-')
                .to_string();
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let e = m.entry(role).or_insert((0, 0, 0));
            e.0 += field("voluntary_ctxt_switches:");
            e.1 += field("nonvoluntary_ctxt_switches:");
            e.2 += 1;
        }
        m
    }

    /// One line per role: voluntary and involuntary switches per request over the run.
    fn report(&self, requests: f64) -> String {
        let mut out = String::new();
        let roles: std::collections::BTreeSet<&String> =
            self.at[0].keys().chain(self.at[1].keys()).collect();
        for role in roles {
            let (v0, i0, _) = self.at[0].get(role).copied().unwrap_or_default();
            let (v1, i1, n) = self.at[1].get(role).copied().unwrap_or_default();
            out.push_str(&format!(
                "  {role:<18} threads {n:>2}  voluntary/req {:>6.3}  involuntary/req {:>6.3}\n",
                v1.saturating_sub(v0) as f64 / requests,
                i1.saturating_sub(i0) as f64 / requests,
            ));
        }
        let (v0, i0) = self.rusage[0];
        let (v1, i1) = self.rusage[1];
        out.push_str(&format!(
            "  {:<18}            voluntary/req {:>6.3}  involuntary/req {:>6.3}  (getrusage, exited threads too)\n",
            "process",
            (v1 - v0) as f64 / requests,
            (i1 - i0) as f64 / requests,
        ));
        out
    }
}

/// How often the machine-wide runnable count (`/proc/loadavg`, as `src/spin.rs` reads it) exceeds the
/// online CPUs, over `samples` readings 100 µs apart: the fraction of the time the spin policy's load
/// check forbids spinning.
fn loadavg_over_cpus(samples: usize) -> (f64, usize, usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut over, mut lo, mut hi) = (0, usize::MAX, 0);
    for _ in 0..samples {
        let r = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|t| {
                t.split_ascii_whitespace()
                    .nth(3)
                    .and_then(|f| f.split('/').next()?.parse::<usize>().ok())
            })
            .unwrap_or(0);
        over += usize::from(r > cpus);
        lo = lo.min(r);
        hi = hi.max(r);
        std::thread::sleep(Duration::from_micros(100));
    }
    (over as f64 / samples as f64, lo, hi)
}

/// A §7 probe's arguments: the contender named first (its index in [`CONTENDERS`]), then numbers,
/// read by `num(i, default)`; anything else panics with `usage`.
fn probe_args<'a>(
    args: &'a [&str],
    usage: &'static str,
) -> (usize, impl Fn(usize, Option<f64>) -> f64 + 'a) {
    let contender = CONTENDERS
        .iter()
        .position(|c| Some(c) == args.first())
        .unwrap_or_else(|| panic!("usage: {usage}"));
    let num = move |i: usize, default: Option<f64>| -> f64 {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .or(default)
            .unwrap_or_else(|| panic!("usage: {usage}"))
    };
    (contender, num)
}

/// One §7 contender in one setting, alone in this process (`anchors --probe s7 <contender> <hogs> <W
/// µs> <load> [secs] [capacity req/s]`), for `perf stat`/`strace -f` to attach to that contender
/// only: with the capacity given, nothing else runs. Prints the run's figures and context switches
/// per request by thread role; returns CPU per request in µs.
pub(crate) fn s7_probe(args: &[&str]) -> f64 {
    let usage =
        "s7 <cf|spawn_blocking|unblock|rayon+oneshot> <hogs> <W µs> <load> [secs] [capacity]";
    let (contender, num) = probe_args(args, usage);
    let (hog_n, w, load, secs) = (
        num(1, None) as usize,
        num(2, None),
        num(3, None),
        num(4, Some(1.0)),
    );
    let hogs = (hog_n > 0).then(|| Hogs::start(hog_n));
    let cap = args
        .get(5)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| capacity(&Offload::SpawnBlocking, w, 0.4));
    let (over, lo, hi) = loadavg_over_cpus(200);
    let rate = cap * load;
    let o = offload(contender);
    let mut counts = Counts::default();
    let placement = Placement::start(pool_role(contender));
    COUNT_JOB_CPU.store(true, Ordering::Relaxed);
    let s = open_loop(&o, w, rate, secs, hogs.as_ref(), Some(&mut counts));
    COUNT_JOB_CPU.store(false, Ordering::Relaxed);
    let (shared, samples) = placement.stop();
    let requests = (rate * secs).max(1.0);
    let job = JOB_CPU_NS.load(Ordering::Relaxed) as f64 * 1e-9 / requests;
    println!(
        "{} hogs={hog_n} W={w} µs load={load} capacity={cap:.0} req/s rate={rate:.0} req/s secs={secs}",
        CONTENDERS[contender]
    );
    println!(
        "  p50 {}  p99 {}  cpu/req {} (jobs {}, the rest {})  req/s {:.0}  tick p99 {}",
        fmt_time(s.p50),
        fmt_time(s.p99),
        fmt_time(s.cpu_per_req),
        fmt_time(job),
        fmt_time(s.cpu_per_req - job),
        s.throughput,
        fmt_time(s.tick_p99)
    );
    println!(
        "  /proc/loadavg runnable > CPUs in {:.0} % of 200 readings before the run (range {lo}..={hi})",
        over * 100.0
    );
    println!("  {}", placement_line(shared, samples));
    print!("{}", counts.report(requests));
    drop(o);
    if let Some(h) = hogs {
        h.stop();
    }
    s.cpu_per_req * 1e6
}

/// One §7 contender's sustained throughput alone in this process (`anchors --probe s7closed
/// <contender> <hogs> <W µs> [secs] [in flight]`, 16 in flight by default, as §7's capacity): a
/// closed loop, so the pool always has work waiting. Prints requests per second, CPU per request
/// (the jobs' own apart from the rest) and context switches per request by thread role; returns the
/// requests per second.
pub(crate) fn s7_closed_probe(args: &[&str]) -> f64 {
    let usage =
        "s7closed <cf|spawn_blocking|unblock|rayon+oneshot> <hogs> <W µs> [secs] [in flight]";
    let (contender, num) = probe_args(args, usage);
    let (hog_n, w, secs, in_flight) = (
        num(1, None) as usize,
        num(2, None),
        num(3, Some(1.0)),
        num(4, Some(CAPACITY_IN_FLIGHT as f64)) as usize,
    );
    let hogs = (hog_n > 0).then(|| Hogs::start(hog_n));
    let o = offload(contender);
    let mut counts = Counts::default();
    let placement = Placement::start(pool_role(contender));
    JOB_CPU_NS.store(0, Ordering::Relaxed);
    COUNT_JOB_CPU.store(true, Ordering::Relaxed);
    let s = closed_loop(&o, w, secs, in_flight, hogs.as_ref(), Some(&mut counts));
    COUNT_JOB_CPU.store(false, Ordering::Relaxed);
    let (shared, samples) = placement.stop();
    let requests = s.requests.max(1) as f64;
    let job = JOB_CPU_NS.load(Ordering::Relaxed) as f64 * 1e-9 / requests;
    println!(
        "{} closed loop hogs={hog_n} W={w} µs in flight={in_flight} secs={secs}",
        CONTENDERS[contender]
    );
    println!(
        "  req/s {:.0}  cpu/req {} (jobs {}, the rest {})",
        s.throughput,
        fmt_time(s.cpu_per_req),
        fmt_time(job),
        fmt_time(s.cpu_per_req - job),
    );
    println!("  {}", placement_line(shared, samples));
    print!("{}", counts.report(requests));
    drop(o);
    if let Some(h) = hogs {
        h.stop();
    }
    s.throughput
}

fn placement_line(shared: usize, samples: usize) -> String {
    format!(
        "pool threads sharing one CPU in {shared} of {samples} samples ({:.0} %)",
        100.0 * shared as f64 / samples.max(1) as f64
    )
}

pub(crate) fn section7(cfg: &Cfg, r: &mut Results) -> String {
    let rounds = reps(cfg);
    let secs = service_secs(cfg);
    let (ws, loads) = (WS, LOADS);
    eprintln!("§7 async service, open loop: W {ws:?} µs, loads {loads:?}, {secs} s per run, {rounds} rounds");
    let mut out = String::new();
    out.push_str(&format!(
        "### 7. Async service, open loop (issue #9 (a))\n\ntokio multi-thread runtime, 2 workers; arrivals evenly spaced for {secs} s (a generator thread); each request yields, computes ~0.1 µs, then offloads a busy loop of W µs to a 2-thread pool and awaits it. Every contender's pool threads are started right before each run, the capacity runs included (two jobs that meet at a barrier), as a service's pool is warm when its load arrives: rayon's pool starts its threads when built, the others would start theirs during the run. Capacity = `spawn_blocking`'s closed-loop throughput (16 requests in flight) under the same conditions; load = arrival rate ÷ capacity. Latency from each request's due time; CPU of the whole process per request (hog threads' own CPU taken out); ticker = lateness of a 1 ms `sleep_until` loop on the same runtime. Medians of {rounds} rounds; contenders interleaved within each round. Ratios: cf ÷ best anchor (p50, p99) and cf ÷ `spawn_blocking` (CPU).\n\n"
    ));
    let mut detail = String::new();
    let mut summary = String::from(
        "**Summary: cf against the anchors, per setting** (best anchor = the lowest median among `spawn_blocking`, `unblock` and rayon+oneshot, per column; targets: p50, p99 and CPU ≤ 1.00×, ticker no worse)\n\n| hogs | W | load | cf p50 | best p50 | p50 ratio | cf p99 | best p99 | p99 ratio | cf CPU/req | `spawn_blocking` CPU/req | CPU ratio | cf ticker p99 | best ticker p99 | ticker ratio |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let (mut cells, mut met) = (0, [0usize; 4]);
    for hog_n in HOG_COUNTS {
        let hogs = (hog_n > 0).then(|| Hogs::start(hog_n));
        let out = &mut detail;
        out.push_str(&format!(
            "**{}**\n\n| W | load | contender | req/s | p50 | p99 | p99.9 | CPU/req | ticker p50 | ticker p99 | cf p50 ÷ best | cf p99 ÷ best | cf CPU ÷ spawn_blocking |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            if hog_n == 0 { "Without CPU hogs".to_string() } else { format!("With {hog_n} CPU-hog threads") }
        ));
        for &w in &ws {
            let cap = capacity(
                &Offload::SpawnBlocking,
                w,
                if cfg.quick { 0.2 } else { 0.4 },
            );
            eprintln!("  W={w} µs hogs={hog_n}: capacity {cap:.0} req/s");
            for &load in &loads {
                let rate = cap * load;
                // stats[contender][round]
                let mut stats: Vec<Vec<RunStats>> =
                    (0..CONTENDERS.len()).map(|_| Vec::new()).collect();
                for round in 0..rounds {
                    for k in 0..CONTENDERS.len() {
                        let c = (k + round) % CONTENDERS.len();
                        let o = offload(c);
                        let s = open_loop(&o, w, rate, secs, hogs.as_ref(), None);
                        eprintln!(
                            "    W={w} load={load} hogs={hog_n} {:<15} p50 {:>9} p99 {:>9} cpu/req {:>9} tick p99 {:>9}",
                            CONTENDERS[c], fmt_time(s.p50), fmt_time(s.p99), fmt_time(s.cpu_per_req), fmt_time(s.tick_p99)
                        );
                        stats[c].push(s);
                        drop(o);
                    }
                }
                let m = |c: usize, f: fn(&RunStats) -> f64| med(stats[c].iter().map(f).collect());
                let best = |f: fn(&RunStats) -> f64| {
                    (1..CONTENDERS.len())
                        .map(|c| m(c, f))
                        .fold(f64::INFINITY, f64::min)
                };
                let (bp50, bp99) = (best(|s| s.p50), best(|s| s.p99));
                let btick = best(|s| s.tick_p99);
                let (cp50, cp99, ccpu, ctick) = (
                    m(0, |s| s.p50),
                    m(0, |s| s.p99),
                    m(0, |s| s.cpu_per_req),
                    m(0, |s| s.tick_p99),
                );
                let sbcpu = m(1, |s| s.cpu_per_req);
                for (metric, cf, reference) in [
                    ("p50", cp50, bp50),
                    ("p99", cp99, bp99),
                    ("cpu", ccpu, sbcpu),
                    ("tick", ctick, btick),
                ] {
                    record(r, setting_key(hog_n, w, load, metric), cf / reference);
                }
                cells += 1;
                for (i, ok) in [cp50 <= bp50, cp99 <= bp99, ccpu <= sbcpu, ctick <= btick]
                    .into_iter()
                    .enumerate()
                {
                    met[i] += usize::from(ok);
                }
                summary.push_str(&format!(
                    "| {hog_n} | {w} µs | {:.0} % | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    load * 100.0,
                    fmt_time(cp50),
                    fmt_time(bp50),
                    ratio(cp50, bp50),
                    fmt_time(cp99),
                    fmt_time(bp99),
                    ratio(cp99, bp99),
                    fmt_time(ccpu),
                    fmt_time(sbcpu),
                    ratio(ccpu, sbcpu),
                    fmt_time(ctick),
                    fmt_time(btick),
                    ratio(ctick, btick),
                ));
                for (c, name) in CONTENDERS.iter().enumerate() {
                    let extra = if c == 0 {
                        format!(
                            "{} | {} | {}",
                            ratio(m(0, |s| s.p50), bp50),
                            ratio(m(0, |s| s.p99), bp99),
                            ratio(m(0, |s| s.cpu_per_req), m(1, |s| s.cpu_per_req))
                        )
                    } else {
                        " | | ".into()
                    };
                    out.push_str(&format!(
                        "| {w} µs | {:.0} % ({:.0}/s) | {} | {:.0} | {} | {} | {} | {} | {} | {} | {extra} |\n",
                        load * 100.0,
                        rate,
                        name,
                        m(c, |s| s.throughput),
                        fmt_time(m(c, |s| s.p50)),
                        fmt_time(m(c, |s| s.p99)),
                        fmt_time(m(c, |s| s.p999)),
                        fmt_time(m(c, |s| s.cpu_per_req)),
                        fmt_time(m(c, |s| s.tick_p50)),
                        fmt_time(m(c, |s| s.tick_p99)),
                    ));
                }
            }
        }
        out.push('\n');
        if let Some(h) = hogs {
            h.stop();
        }
    }
    out.push_str(&summary);
    out.push_str(&format!(
        "\nTargets met in {cells} settings: p50 {}, p99 {}, CPU {}, ticker {}.\n\n**Every contender, every setting** (medians)\n\n",
        met[0], met[1], met[2], met[3]
    ));
    out.push_str(&detail);
    out
}

// ---------------------------------------------------------------------------------------------------
// §8 (b) One CPU
// ---------------------------------------------------------------------------------------------------

pub(crate) fn section8(cfg: &Cfg, r: &mut Results) -> String {
    let n: u64 = if cfg.quick { 500 } else { 5000 };
    let rounds = reps(cfg);
    eprintln!("§8 one CPU: round trip of a 1 µs task ×{n}, {rounds} rounds");
    // Pin this thread first: every pool and runtime below is created afterwards, so their threads
    // inherit the one-CPU mask.
    let old = super::pin_to_cpu0();
    let job = || busy(1.0);
    let pool = ThreadPoolExecutor::new(2).expect("pool");
    let rp = super::rayon_pool(2);
    let ct = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let names = [
        "cf `result()` (blocking)",
        "cf `.await` (current-thread)",
        "tokio `spawn_blocking` `.await` (current-thread)",
        "`blocking::unblock` `.await` (current-thread)",
        "rayon + oneshot blocking `recv()`",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..=rounds {
        for (k, (times_k, cpus_k)) in times.iter_mut().zip(cpus.iter_mut()).enumerate() {
            let c0 = process_cpu_ns();
            let t = Instant::now();
            match k {
                0 => {
                    for _ in 0..n {
                        black_box(pool.spawn(job).unwrap().result(None).unwrap());
                    }
                }
                1 => ct.block_on(async {
                    for _ in 0..n {
                        black_box(pool.spawn(job).unwrap().await.unwrap());
                    }
                }),
                2 => ct.block_on(async {
                    for _ in 0..n {
                        black_box(tokio::task::spawn_blocking(job).await.unwrap());
                    }
                }),
                3 => ct.block_on(async {
                    for _ in 0..n {
                        black_box(blocking::unblock(job).await);
                    }
                }),
                _ => {
                    for _ in 0..n {
                        let (tx, rx) = oneshot::channel();
                        rp.spawn(move || {
                            let _ = tx.send(job());
                        });
                        black_box(rx.recv().unwrap());
                    }
                }
            }
            let el = t.elapsed().as_secs_f64() / n as f64;
            let cpu = (process_cpu_ns() - c0) as f64 * 1e-9 / n as f64;
            if round > 0 {
                times_k.push(el);
                cpus_k.push(cpu);
            }
        }
    }
    drop(pool);
    drop(ct);
    drop(rp);
    super::set_cpus(&old);
    let sb = med(times[2].clone());
    record(r, "s8.cf_block".into(), med(times[0].clone()) / sb);
    record(r, "s8.cf_await".into(), med(times[1].clone()) / sb);
    let mut out = format!(
        "### 8. One CPU: round trip of a 1 µs task, the whole process pinned to CPU 0 (issue #9 (b))\n\nSequential ×{n}; pools of 2 threads created after pinning; median of {rounds} rounds (after one warm-up).\n\n| | median/op | CPU/op | vs tokio `spawn_blocking` |\n|---|---:|---:|---|\n"
    );
    for (k, name) in names.iter().enumerate() {
        let m = med(times[k].clone());
        out.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            fmt_time(m),
            fmt_time(med(cpus[k].clone())),
            if k == 2 {
                "anchor".into()
            } else {
                ratio(m, sb)
            }
        ));
    }
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------------------
// §9 (c) Many pools, CPU-bound neighbours
// ---------------------------------------------------------------------------------------------------

pub(crate) fn section9(cfg: &Cfg, r: &mut Results) -> String {
    let tasks: usize = if cfg.quick { 200 } else { 1000 };
    let rounds = reps(cfg);
    eprintln!("§9 many pools: 8 pools × 4 workers, {tasks} tasks of 5 µs per pool with 100 µs gaps, 2 CPU hogs, {rounds} rounds");
    let names = [
        "neighbours alone (no pool work)",
        "cf: 8 × `ThreadPoolExecutor(4)`, `result()`",
        "tokio: 8 runtimes × `spawn_blocking` (4 threads), `block_on`",
        "rayon: 8 × `ThreadPool(4)` + oneshot `recv()`",
    ];
    // per contender: (hog chunks/s, wall s, CPU per task s)
    let mut res: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); names.len()];
    for round in 0..rounds {
        for k0 in 0..names.len() {
            let k = (k0 + round) % names.len();
            let hogs = Hogs::start(2);
            std::thread::sleep(Duration::from_millis(20));
            let (h0, hc0) = hogs.snapshot();
            let c0 = process_cpu_ns();
            let t = Instant::now();
            let client = |run: &(dyn Fn() + Sync)| {
                for _ in 0..tasks {
                    run();
                    std::thread::sleep(Duration::from_micros(100));
                }
            };
            match k {
                0 => std::thread::sleep(Duration::from_millis(300)),
                1 => {
                    let pools: Vec<_> = (0..8)
                        .map(|_| ThreadPoolExecutor::new(4).unwrap())
                        .collect();
                    std::thread::scope(|s| {
                        for p in &pools {
                            s.spawn(move || {
                                client(&|| {
                                    black_box(p.spawn(|| busy(5.0)).unwrap().result(None).unwrap());
                                })
                            });
                        }
                    });
                }
                2 => {
                    let rts: Vec<_> = (0..8)
                        .map(|_| {
                            tokio::runtime::Builder::new_current_thread()
                                .max_blocking_threads(4)
                                .build()
                                .unwrap()
                        })
                        .collect();
                    std::thread::scope(|s| {
                        for rt in &rts {
                            s.spawn(move || {
                                client(&|| {
                                    black_box(
                                        rt.block_on(rt.spawn_blocking(|| busy(5.0))).unwrap(),
                                    );
                                })
                            });
                        }
                    });
                }
                _ => {
                    let pools: Vec<_> = (0..8).map(|_| super::rayon_pool(4)).collect();
                    std::thread::scope(|s| {
                        for p in &pools {
                            s.spawn(move || {
                                client(&|| {
                                    let (tx, rx) = oneshot::channel();
                                    p.spawn(move || {
                                        let _ = tx.send(busy(5.0));
                                    });
                                    black_box(rx.recv().unwrap());
                                })
                            });
                        }
                    });
                }
            }
            let wall = t.elapsed().as_secs_f64();
            let (h1, hc1) = hogs.snapshot();
            let cpu = (process_cpu_ns() - c0) as f64 - (hc1 - hc0) as f64;
            hogs.stop();
            let per_task = if k == 0 {
                f64::NAN
            } else {
                cpu * 1e-9 / (8 * tasks) as f64
            };
            eprintln!(
                "    {:<60} hogs {:>8.0} chunks/s  wall {:>9}  cpu/task {:>9}",
                names[k],
                (h1 - h0) as f64 / wall,
                fmt_time(wall),
                fmt_time(per_task)
            );
            res[k].push(((h1 - h0) as f64 / wall, wall, per_task));
        }
    }
    let hog = |k: usize| med(res[k].iter().map(|x| x.0).collect());
    record(r, "s9.neighbours_cf".into(), hog(1) / hog(2));
    let mut out = format!(
        "### 9. Many pools, CPU-bound neighbours (issue #9 (c))\n\n8 pools × 4 workers; one client thread per pool submits {tasks} tasks of 5 µs, each awaited (blocking) and followed by a 100 µs sleep; 2 CPU-bound neighbour threads in the same process compute throughout. Neighbours' throughput is measured over the pool work's wall time; CPU per task is the process's minus the neighbours'. Medians of {rounds} rounds, contenders interleaved.\n\n| | neighbours' chunks/s | vs with `spawn_blocking` pools | pool work wall | CPU/task |\n|---|---:|---:|---:|---:|\n"
    );
    for (k, name) in names.iter().enumerate() {
        out.push_str(&format!(
            "| {name} | {:.0} | {} | {} | {} |\n",
            hog(k),
            if k == 2 {
                "anchor".into()
            } else {
                ratio(hog(k), hog(2))
            },
            if k == 0 {
                "—".into()
            } else {
                fmt_time(med(res[k].iter().map(|r| r.1).collect()))
            },
            if k == 0 {
                "—".into()
            } else {
                fmt_time(med(res[k].iter().map(|r| r.2).collect()))
            },
        ));
    }
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------------------
// §10 (d) CPU per task at low rates
// ---------------------------------------------------------------------------------------------------

pub(crate) fn section10(cfg: &Cfg, r: &mut Results) -> String {
    let rounds = reps(cfg);
    let secs = lowrate_secs(cfg);
    eprintln!(
        "§10 low rates: one trivial task per 100 µs and per 1 ms for {secs} s, {rounds} rounds"
    );
    tight_timer_slack();
    let pool = ThreadPoolExecutor::new(2).expect("pool");
    let rp = super::rayon_pool(2);
    let ct = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let names = [
        "the pacing loop alone",
        "cf `.await` (current-thread)",
        "cf `result()` (blocking)",
        "tokio `spawn_blocking` `.await` (current-thread)",
        "`blocking::unblock` `.await` (current-thread)",
        "rayon + oneshot `.await` (current-thread)",
    ];
    let mut out = format!(
        "### 10. CPU per task at low rates (issue #9 (d))\n\nOne trivial task at a time, submitted at a fixed pace (sleeps with 1 µs timer slack) for {secs} s, awaited (or `result()`); pools of 2 threads. CPU of the whole process per task, pacing loop included (its own row shows what it costs alone); round trip = submit to result. Medians of {rounds} rounds, contenders interleaved.\n\n"
    );
    for period_us in [100u64, 1000] {
        let period = Duration::from_micros(period_us);
        let n = (secs * 1e6 / period_us as f64) as usize;
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        let mut p50: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        for round in 0..rounds {
            for k0 in 0..names.len() {
                let k = (k0 + round) % names.len();
                let mut lat = Vec::with_capacity(n);
                std::thread::sleep(Duration::from_millis(2));
                let c0 = process_cpu_ns();
                let start = Instant::now();
                let mut one = |i: usize, rt_body: &mut dyn FnMut()| {
                    sleep_until(start + period * i as u32);
                    let t = Instant::now();
                    rt_body();
                    lat.push(t.elapsed().as_nanos() as u64);
                };
                match k {
                    0 => (0..n).for_each(|i| one(i, &mut || {})),
                    1 => ct.block_on(async {
                        for i in 0..n {
                            sleep_until(start + period * i as u32);
                            let t = Instant::now();
                            black_box(pool.spawn(|| 1u64).unwrap().await.unwrap());
                            lat.push(t.elapsed().as_nanos() as u64);
                        }
                    }),
                    2 => (0..n).for_each(|i| {
                        one(i, &mut || {
                            black_box(pool.spawn(|| 1u64).unwrap().result(None).unwrap());
                        })
                    }),
                    3 => ct.block_on(async {
                        for i in 0..n {
                            sleep_until(start + period * i as u32);
                            let t = Instant::now();
                            black_box(tokio::task::spawn_blocking(|| 1u64).await.unwrap());
                            lat.push(t.elapsed().as_nanos() as u64);
                        }
                    }),
                    4 => ct.block_on(async {
                        for i in 0..n {
                            sleep_until(start + period * i as u32);
                            let t = Instant::now();
                            black_box(blocking::unblock(|| 1u64).await);
                            lat.push(t.elapsed().as_nanos() as u64);
                        }
                    }),
                    _ => ct.block_on(async {
                        for i in 0..n {
                            sleep_until(start + period * i as u32);
                            let t = Instant::now();
                            let (tx, rx) = oneshot::channel();
                            rp.spawn(move || {
                                let _ = tx.send(1u64);
                            });
                            black_box(rx.await.unwrap());
                            lat.push(t.elapsed().as_nanos() as u64);
                        }
                    }),
                }
                std::thread::sleep(Duration::from_millis(2));
                let c = (process_cpu_ns() - c0) as f64 * 1e-9 / n as f64;
                lat.sort_unstable();
                cpu[k].push(c);
                p50[k].push(pct(&lat, 0.5));
            }
        }
        let sb = med(cpu[3].clone());
        record(
            r,
            format!("s10.{period_us}.cf_await"),
            med(cpu[1].clone()) / sb,
        );
        record(
            r,
            format!("s10.{period_us}.cf_block"),
            med(cpu[2].clone()) / sb,
        );
        out.push_str(&format!(
            "**One task per {}**\n\n| | CPU/task | round trip p50 | CPU vs `spawn_blocking` |\n|---|---:|---:|---|\n",
            fmt_time(period.as_secs_f64())
        ));
        for (k, name) in names.iter().enumerate() {
            out.push_str(&format!(
                "| {name} | {} | {} | {} |\n",
                fmt_time(med(cpu[k].clone())),
                if k == 0 {
                    "—".into()
                } else {
                    fmt_time(med(p50[k].clone()))
                },
                if k == 3 {
                    "anchor".into()
                } else {
                    ratio(med(cpu[k].clone()), sb)
                }
            ));
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// §11 (e) The process pool's parent CPU per task
// ---------------------------------------------------------------------------------------------------

pub(crate) fn section11(cfg: &Cfg, r: &mut Results) -> String {
    let rounds = reps(cfg);
    let n: u64 = if cfg.quick { 200 } else { 1000 };
    eprintln!("§11 process pool parent CPU: tasks of 0 and 200 µs ×{n}, {rounds} rounds");
    let pool = ProcessPoolExecutor::new(1).expect("process pool");
    black_box(pool.submit(busy_task, 0).unwrap().result(None).unwrap());
    let mut raw = EchoChild::spawn_busy(200);
    let mut raw0 = EchoChild::spawn_busy(0);
    let frame = super::frame_of(&0u64.to_le_bytes());
    let mut out = format!(
        "### 11. Process pool: the parent's CPU per task (issue #9 (e))\n\nOne worker process, one task in flight, sequential ×{n}; the worker (or the raw echo child) busy-loops for the task's time before replying. CPU = the parent process's only (`CLOCK_PROCESS_CPUTIME_ID`; children are not counted). Raw reference: a length-prefixed frame ping-ponged over a socketpair with a child that busy-loops as long before echoing (placed by the kernel). Medians of {rounds} rounds.\n\n| task | | wall/task | parent CPU/task | CPU vs raw |\n|---|---|---:|---:|---|\n"
    );
    for us in [0u64, 200] {
        // (wall, cpu) per round for cf and raw
        let (mut cf, mut rw) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for which in 0..2 {
                std::thread::sleep(Duration::from_millis(2));
                let c0 = process_cpu_ns();
                let t = Instant::now();
                for _ in 0..n {
                    if which == 0 {
                        black_box(pool.submit(busy_task, us).unwrap().result(None).unwrap());
                    } else if us == 0 {
                        black_box(raw0.round_trip(&frame));
                    } else {
                        black_box(raw.round_trip(&frame));
                    }
                }
                let wall = t.elapsed().as_secs_f64() / n as f64;
                std::thread::sleep(Duration::from_millis(2));
                let cpu = (process_cpu_ns() - c0) as f64 * 1e-9 / n as f64;
                if which == 0 {
                    cf.push((wall, cpu));
                } else {
                    rw.push((wall, cpu));
                }
            }
        }
        let m = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| med(v.iter().map(f).collect());
        let raw_cpu = m(&rw, |x| x.1);
        record(r, format!("s11.{us}"), m(&cf, |x| x.1) / raw_cpu);
        out.push_str(&format!(
            "| {us} µs | cf `ProcessPoolExecutor(1)`: `submit().result()` | {} | {} | {} |\n| {us} µs | raw socketpair ping-pong | {} | {} | anchor |\n",
            fmt_time(m(&cf, |x| x.0)),
            fmt_time(m(&cf, |x| x.1)),
            ratio(m(&cf, |x| x.1), raw_cpu),
            fmt_time(m(&rw, |x| x.0)),
            fmt_time(raw_cpu),
        ));
    }
    out.push('\n');
    out
}
