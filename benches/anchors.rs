//! Benchmarks of the thread pool against its anchors (issue #4).
//!
//! Run everything, side by side, with one command:
//!
//! ```sh
//! cargo bench --bench anchors                         # full run (~7 min on 2 cores; report on stdout)
//! BENCH_SERVICE_SECS=2 cargo bench --bench anchors    # the run BENCHMARKS.md reports (~16 min)
//! BENCH_QUICK=1 cargo bench --bench anchors           # smoke run: counts / 10, 2–3 rounds (~1 min)
//! cargo bench --bench anchors -- 1 3                  # only sections 1 and 3
//! ```
//!
//! The report ends with every target of issue #9 (then issue #4's others), each met or missed by so
//! much in this run (`support/targets.rs`); its header says what the machine was and whether other
//! processes used it during the run (`support/machine.rs`, sampled every 10 s).
//!
//! One §5 scenario alone, for `strace -f -c` or `perf` (the bench binary, built by `cargo bench
//! --no-run`): `target/release/deps/anchors-* --probe s5 rt|raw|echo|echo_vec|raw_echo <n>` (`raw`:
//! the raw socketpair ping-pong of §5 and §11, a trivial frame; `raw_echo`: the same with §5's
//! 1 MiB body). Under `taskset -c 0`, every process of the probe shares one CPU, as §5's pinned rows.
//!
//! One §7 contender in one setting alone (its capacity measured first, or given), with its context
//! switches per request by thread role: `anchors-* --probe s7 cf|spawn_blocking|unblock|rayon+oneshot
//! <hogs> <W µs> <load> [secs] [capacity req/s]`; under `perf stat -e 'syscalls:sys_enter_futex'`
//! give the capacity, so that only the contender runs. Its sustained throughput (a closed loop, 16
//! requests in flight as §7's capacity, the pool never short of work), with CPU and switches per
//! request: `anchors-* --probe s7closed <contender> <hogs> <W µs> [secs] [in flight]`. Both also
//! report how often the pool's two threads were found on one CPU. Every §7 run, the probes' too,
//! starts the contender's two pool threads first (`warm` in `support/service.rs`).
//!
//! §3's "one finishing late" `wait(FIRST_COMPLETED)` alone, for instruction counts:
//! `valgrind --tool=callgrind --toggle-collect='*s3_late_one*' target/release/deps/anchors-* --probe
//! s3late cf|select_all 10000 20` (see `s3_late_probe`); both side by side in CPU time per call, which
//! a loaded machine disturbs less than the wall clock: `--probe s3pair 10000 20 10` (`s3_pair_probe`).
//! Likewise §1's round trips (`--probe s1 await|block <n>`, collect `*s1_round_trips*`) and §3a's drain
//! of done futures (`--probe s3drain <n> <rounds>`, collect `*s3_drain_one*`).
//!
//! One §4 configuration alone, with each thread's CPU time and switches over its timed part (the
//! worker processes' too): `--probe s4 threads|processes|rayon|plain <workers> <tasks> [terms]`.
//!
//! Every measurement is warmed up, then repeated (`BENCH_REPS`, default 7); the tables show the median
//! and the minimum per operation, and each row's ratio to its anchor *measured in the same run*. The
//! Python anchors come from `benches/python_anchors.py`, which this binary runs with `python3` (skipped
//! if there is none). Peak RSS and idle CPU are measured in fresh child processes (this binary re-run
//! with `--probe …`) so that earlier scenarios do not pollute them.
//!
//! Sections follow the issue's numbering: 1 round trip, 2 throughput and memory, 3 `as_completed` and
//! `wait`, 4 CPU-bound scaling (threads and processes), 5 the process pool's round trip (a trivial task
//! and a 1 MiB echo, against procspawn, Python and a raw socketpair ping-pong between two processes),
//! 6 thread references for the physical limit. Sections 7–11 (issue #9, `support/service.rs`, reported
//! first): 7 an async service under open-loop load, 8 the round trip on one CPU, 9 many pools next to
//! CPU-bound neighbours, 10 CPU per task at low rates, 11 the process pool's parent CPU per task.
//!
//! Three kinds of child process run this same binary: our own process-pool workers (a constructor in
//! the library takes them before `main`), procspawn's pool workers (`procspawn::init()`, the first line
//! of `main`, takes them), and the raw echo reference of §5 (`--echo`).
//!
//! Nothing here runs under `cargo test` or gates CI.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::hint::black_box;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant};

#[path = "support/machine.rs"]
mod machine;
#[path = "support/service.rs"]
mod service;
#[path = "support/targets.rs"]
mod targets;

use concurrent_futures::{
    as_completed, wait, ByteBlock, Executor, ProcessPoolExecutor, Promise, Queued, ReturnWhen,
    ThreadPoolExecutor,
};
use futures::stream::{FuturesUnordered, StreamExt};

// ---------------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------------

struct Cfg {
    quick: bool,
    reps: usize,
    warmup: usize,
    sections: Vec<u32>,
    /// §1, §6: sequential round trips per sample.
    rt_n: u64,
    /// §2: tasks submitted at once.
    tp_n: u64,
    /// §3: futures drained by as_completed.
    ac_n: u64,
    /// §3: pending futures in wait(FIRST_COMPLETED).
    wait_n: usize,
    /// §3: wait calls per sample (each on a fresh set of futures).
    wait_inner: usize,
    /// §4: tasks and terms per task.
    pi_tasks: u64,
    pi_terms: u64,
    /// §4: terms per task for Python (pure Python is ~50x slower per term).
    py_pi_terms: u64,
    /// §5: sequential round trips of a trivial task per sample.
    proc_rt_n: u64,
    /// §5: sequential 1 MiB echoes per sample (the plain `Vec<u8>` row does a tenth of them).
    echo_n: u64,
    /// §5: the echoed payload's size.
    echo_bytes: usize,
    py_reps: usize,
}

impl Cfg {
    fn from_env(args: &[String]) -> Cfg {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let scale = if quick { 10 } else { 1 };
        let reps = std::env::var("BENCH_REPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 3 } else { 7 });
        let sections = args
            .iter()
            .filter_map(|a| a.parse::<u32>().ok())
            .collect::<Vec<_>>();
        Cfg {
            quick,
            reps,
            warmup: 1,
            sections: if sections.is_empty() {
                vec![7, 8, 9, 10, 11, 1, 2, 3, 4, 5, 6]
            } else {
                sections
            },
            rt_n: 20_000 / scale,
            tp_n: 200_000 / scale,
            ac_n: 100_000 / scale,
            wait_n: 10_000,
            wait_inner: if quick { 4 } else { 10 },
            pi_tasks: 8,
            pi_terms: 20_000_000 / scale,
            py_pi_terms: 1_000_000 / scale,
            proc_rt_n: 5_000 / scale,
            echo_n: 500 / scale,
            echo_bytes: 1 << 20,
            py_reps: if quick { 2 } else { reps.min(3) },
        }
    }

    fn runs(&self, section: u32) -> bool {
        self.sections.contains(&section)
    }
}

// ---------------------------------------------------------------------------------------------------
// Measurement and results
// ---------------------------------------------------------------------------------------------------

/// Seconds per operation: the median and the minimum over the repetitions, and the CPU time the whole
/// process used per operation (median; every thread: the caller's, the pool's, and any spinning).
#[derive(Clone, Debug)]
struct Stat {
    median: f64,
    min: f64,
    cpu: Option<f64>,
    /// Every sample, in order, seconds per operation (for the log).
    samples: Vec<f64>,
}

impl Stat {
    fn one(x: f64) -> Stat {
        Stat {
            median: x,
            min: x,
            cpu: None,
            samples: vec![x],
        }
    }
}

/// Warm up, then take `reps` samples. Each sample runs `ops` operations and returns the time it
/// measured itself (so per-sample setup stays out of the timing). The CPU time is measured around the
/// whole sample, setup included.
fn bench(cfg: &Cfg, ops: u64, mut sample: impl FnMut() -> Duration) -> Stat {
    for _ in 0..cfg.warmup {
        black_box(sample());
    }
    let (mut samples, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..cfg.reps {
        settle();
        let c0 = process_cpu_ns();
        samples.push(sample().as_secs_f64() / ops as f64);
        settle();
        cpu.push((process_cpu_ns() - c0) as f64 * 1e-9 / ops as f64);
    }
    stat(samples, cpu)
}

/// The kernel brings another thread's CPU time up to date only when it leaves the CPU (or at a
/// tick), so let spinning threads go to sleep before each reading; their tail spin is counted, as it
/// is spent.
fn settle() {
    std::thread::sleep(Duration::from_millis(2));
}

/// [`bench`] for a sample that measures its own CPU time (over its timed part alone, other
/// processes it uses included) and returns it next to its wall time.
fn bench_cpu(cfg: &Cfg, mut sample: impl FnMut() -> (Duration, Duration)) -> Stat {
    for _ in 0..cfg.warmup {
        black_box(sample());
    }
    let (samples, cpu) = (0..cfg.reps)
        .map(|_| {
            let (wall, cpu) = sample();
            (wall.as_secs_f64(), cpu.as_secs_f64())
        })
        .unzip();
    stat(samples, cpu)
}

/// The medians and the minimum of samples (seconds per operation) and their CPU times.
fn stat(samples: Vec<f64>, mut cpu: Vec<f64>) -> Stat {
    let mut xs = samples.clone();
    xs.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    Stat {
        median: median(&xs),
        min: xs[0],
        cpu: Some(median(&cpu)),
        samples,
    }
}

/// A single sample, no warm-up: for a row too slow to repeat.
fn bench_once(ops: u64, sample: impl FnOnce() -> Duration) -> Stat {
    Stat::one(sample().as_secs_f64() / ops as f64)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[derive(Default)]
struct Results {
    /// Seconds per operation.
    times: HashMap<String, Stat>,
    /// Other measured values (bytes per task, CPU %, …).
    values: HashMap<String, f64>,
}

impl Results {
    fn time(&mut self, key: &str, stat: Stat) {
        let samples: Vec<String> = stat.samples.iter().map(|&x| fmt_time(x)).collect();
        let line = format!(
            "  {key:<28} median {:>10}/op  min {:>10}/op  cpu {:>10}/op  samples [{}]\n",
            fmt_time(stat.median),
            fmt_time(stat.min),
            stat.cpu.map_or("—".into(), fmt_time),
            samples.join(", ")
        );
        eprint!("{line}");
        self.times.insert(key.to_owned(), stat);
    }

    fn value(&mut self, key: &str, v: f64) {
        let line = format!("  {key:<28} {v:.3}\n");
        eprint!("{line}");
        self.values.insert(key.to_owned(), v);
    }

    fn t(&self, key: &str) -> Option<Stat> {
        self.times.get(key).cloned()
    }

    fn v(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied()
    }
}

fn fmt_time(secs: f64) -> String {
    if secs < 1e-6 {
        format!("{:.1} ns", secs * 1e9)
    } else if secs < 1e-3 {
        format!("{:.2} µs", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{secs:.2} s")
    }
}

fn fmt_rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M/s", per_sec / 1e6)
    } else {
        format!("{:.0} k/s", per_sec / 1e3)
    }
}

// ---------------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------------

/// `n` round trips of a trivial task, one after another: `trip(i)` runs `inc(i)` somewhere and
/// waits for its result. Returns the time they took.
#[inline(always)]
fn round_trips(n: u64, mut trip: impl FnMut(u64) -> u64) -> Duration {
    let t = Instant::now();
    let mut acc = 0;
    for i in 0..n {
        acc += trip(i);
    }
    black_box(acc);
    t.elapsed()
}

/// The trivial task.
fn inc(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// The CPU-bound task: Σ 1/i² for i in 1..=terms (→ π²/6). Never inlined, so every runner executes the
/// same machine code (inlined into different callers, the same loop measured up to 2.5× apart here,
/// from code placement alone).
#[inline(never)]
fn pi_series(terms: u64) -> f64 {
    let mut s = 0.0f64;
    for i in 1..=black_box(terms) {
        let x = i as f64;
        s += 1.0 / (x * x);
    }
    s
}

fn current_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn multi_thread_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn rayon_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

fn cf_pool(workers: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::new(workers).expect("pool")
}

/// Runs `body` as a task on a multi-thread runtime's worker (not on the `block_on` thread).
fn on_worker<F>(rt: &tokio::runtime::Runtime, body: F) -> Duration
where
    F: std::future::Future<Output = Duration> + Send + 'static,
{
    rt.block_on(rt.spawn(body)).expect("task")
}

/// Fields from /proc/self/status, in bytes.
fn proc_status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// CPU time of every thread of this process so far, in nanoseconds (`CLOCK_PROCESS_CPUTIME_ID`: exact,
/// where /proc's per-thread schedstat lags for threads that spin without leaving the CPU).
fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---------------------------------------------------------------------------------------------------
// Probes: run in a fresh child process (`anchors --probe …`) so earlier scenarios do not pollute them
// ---------------------------------------------------------------------------------------------------

/// Runs this binary as `--probe <args>` and returns the number it prints on its `PROBE` line.
fn run_probe(args: &[&str]) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new(exe)
        .arg("--probe")
        .args(args)
        .env("BLOCKING_MAX_THREADS", "2")
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PROBE "))
        .and_then(|v| v.trim().parse().ok());
    if v.is_none() {
        eprintln!(
            "  probe {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    v
}

/// Fresh processes per peak-RSS figure (issue #9 asks for medians of at least 5 rounds).
const RSS_PROBES: usize = 5;

/// Median of a few probe runs.
fn probe_median(args: &[&str], runs: usize) -> Option<f64> {
    let mut xs: Vec<f64> = (0..runs).filter_map(|_| run_probe(args)).collect();
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    Some(median(&xs))
}

fn probe_main(args: &[String]) {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = match a.as_slice() {
        ["rss", kind, n, mode] => rss_probe(kind, n.parse().expect("n"), *mode == "gated"),
        ["idle", kind] => idle_probe(kind),
        ["s5", kind, n] => s5_probe(kind, n.parse().expect("n")),
        ["s7", rest @ ..] => {
            // As in `main`: blocking's pool reads this once, on first use.
            if std::env::var_os("BLOCKING_MAX_THREADS").is_none() {
                std::env::set_var("BLOCKING_MAX_THREADS", "2");
            }
            service::s7_probe(rest)
        }
        ["s7closed", rest @ ..] => {
            if std::env::var_os("BLOCKING_MAX_THREADS").is_none() {
                std::env::set_var("BLOCKING_MAX_THREADS", "2");
            }
            service::s7_closed_probe(rest)
        }
        ["s3late", kind, n, rounds] => {
            s3_late_probe(kind, n.parse().expect("n"), rounds.parse().expect("rounds"))
        }
        ["s3pair", n, rounds, sets] => s3_pair_probe(
            n.parse().expect("n"),
            rounds.parse().expect("rounds"),
            sets.parse().expect("sets"),
        ),
        ["s1", kind, n] => s1_probe(kind, n.parse().expect("n")),
        ["s4", kind, workers, tasks, terms @ ..] => s4_probe(
            kind,
            workers.parse().expect("workers"),
            tasks.parse().expect("tasks"),
            terms
                .first()
                .map_or(20_000_000, |t| t.parse().expect("terms")),
        ),
        ["s3drain", n, rounds] => {
            s3_drain_probe(n.parse().expect("n"), rounds.parse().expect("rounds"))
        }
        _ => panic!("unknown probe {a:?}"),
    };
    println!("PROBE {v}");
}

/// Peak RSS growth per task while `n` trivial tasks are submitted at once to 2 workers and then all
/// awaited. With `gated`, both workers are held busy until every task is queued, so all `n` tasks sit
/// in the queue together (the "per queued task" figure); otherwise the workers drain while we submit.
/// The handles (futures, receivers) are kept in a Vec, as a caller would.
fn rss_probe(kind: &str, n: u64, gated: bool) -> f64 {
    let gate = Arc::new(RwLock::new(()));
    let closed = gate.write().expect("gate");
    let started = Arc::new(Barrier::new(3));
    let blocker = {
        let gate = gate.clone();
        let started = started.clone();
        move || {
            started.wait();
            drop(gate.read());
        }
    };
    // Start the workers (and hold them, if gated), then reset the high-water mark.
    let baseline = || {
        if gated {
            started.wait();
        }
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        proc_status_kb("VmRSS:")
    };
    let base;
    let mut sum = 0u64;
    match kind {
        "cf" => {
            let pool = cf_pool(2);
            let mut hold = Vec::new();
            if gated {
                hold.push(pool.spawn(blocker.clone()).expect("submit"));
                hold.push(pool.spawn(blocker).expect("submit"));
            } else {
                warm_cf(&pool);
            }
            base = baseline();
            let futs: Vec<_> = (0..n)
                .map(|i| pool.submit(inc, i).expect("submit"))
                .collect();
            drop(closed);
            for mut f in futs {
                sum += f.result(None).expect("result");
            }
            drop(hold);
        }
        "blocking" => {
            let mut hold = Vec::new();
            if gated {
                hold.push(blocking::unblock(blocker.clone()));
                hold.push(blocking::unblock(blocker));
            }
            base = baseline();
            let tasks: Vec<_> = (0..n).map(|i| blocking::unblock(move || inc(i))).collect();
            drop(closed);
            for t in tasks {
                sum += futures::executor::block_on(t);
            }
            drop(hold);
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .max_blocking_threads(2)
                .enable_all()
                .build()
                .expect("rt");
            let mut hold = Vec::new();
            if gated {
                hold.push(rt.spawn_blocking(blocker.clone()));
                hold.push(rt.spawn_blocking(blocker));
            }
            base = baseline();
            let handles: Vec<_> = (0..n).map(|i| rt.spawn_blocking(move || inc(i))).collect();
            drop(closed);
            rt.block_on(async {
                for h in handles {
                    sum += h.await.expect("join");
                }
            });
            drop(hold);
        }
        "rayon" => {
            let rp = rayon_pool(2);
            if gated {
                rp.spawn(blocker.clone());
                rp.spawn(blocker);
            }
            base = baseline();
            let rxs: Vec<_> = (0..n)
                .map(|i| {
                    let (tx, rx) = oneshot::channel();
                    rp.spawn(move || {
                        let _ = tx.send(inc(i));
                    });
                    rx
                })
                .collect();
            drop(closed);
            for rx in rxs {
                sum += rx.recv().expect("recv");
            }
        }
        _ => panic!("unknown kind {kind}"),
    }
    black_box(sum);
    let peak = proc_status_kb("VmHWM:");
    peak.saturating_sub(base) as f64 / n as f64
}

fn warm_cf(pool: &ThreadPoolExecutor) {
    // Two overlapping tasks so that both workers exist.
    let b = Arc::new(Barrier::new(2));
    let fs: Vec<_> = (0..2)
        .map(|_| {
            let b = b.clone();
            pool.spawn(move || {
                b.wait();
            })
            .expect("submit")
        })
        .collect();
    for mut f in fs {
        f.result(None).expect("warm");
    }
}

/// CPU used by the whole process (as % of one core) over 1 s while the pool's 2 workers are idle.
fn idle_probe(kind: &str) -> f64 {
    let measure = || {
        std::thread::sleep(Duration::from_millis(200));
        let c0 = process_cpu_ns();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let used = process_cpu_ns() - c0;
        100.0 * used as f64 / t0.elapsed().as_nanos() as f64
    };
    match kind {
        "cf" => {
            let pool = cf_pool(2);
            warm_cf(&pool);
            for i in 0..1000 {
                pool.submit(inc, i)
                    .expect("submit")
                    .result(None)
                    .expect("r");
            }
            assert_eq!(pool.metrics().workers, 2);
            measure()
        }
        "rayon" => {
            let rp = rayon_pool(2);
            for i in 0..1000 {
                let (tx, rx) = oneshot::channel();
                rp.spawn(move || {
                    let _ = tx.send(inc(i));
                });
                rx.recv().expect("recv");
            }
            measure()
        }
        _ => panic!("unknown kind {kind}"),
    }
}

// ---------------------------------------------------------------------------------------------------
// §1 Round trip of a trivial task, sequential
// ---------------------------------------------------------------------------------------------------

fn section1(cfg: &Cfg, r: &mut Results) {
    let n = cfg.rt_n;
    eprintln!("§1 round trip ×{n}");
    let pool = cf_pool(2);
    let rp = Arc::new(rayon_pool(2));
    let ct = current_thread_rt();
    let mt = multi_thread_rt(2);

    r.time(
        "s1.cf_ct",
        bench(cfg, n, || {
            ct.block_on(async {
                let t = Instant::now();
                let mut acc = 0;
                for i in 0..n {
                    acc += pool.submit(inc, i).unwrap().await.unwrap();
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s1.cf_mt",
        bench(cfg, n, || {
            let pool = pool.clone();
            on_worker(&mt, async move {
                let t = Instant::now();
                let mut acc = 0;
                for i in 0..n {
                    acc += pool.submit(inc, i).unwrap().await.unwrap();
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s1.cf_block",
        bench(cfg, n, || {
            round_trips(n, |i| pool.submit(inc, i).unwrap().result(None).unwrap())
        }),
    );
    r.time(
        "s1.rayon_ct",
        bench(cfg, n, || {
            ct.block_on(async {
                let t = Instant::now();
                let mut acc = 0;
                for i in 0..n {
                    let (tx, rx) = oneshot::channel();
                    rp.spawn(move || {
                        let _ = tx.send(inc(i));
                    });
                    acc += rx.await.unwrap();
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s1.rayon_mt",
        bench(cfg, n, || {
            let rp = rp.clone();
            on_worker(&mt, async move {
                let t = Instant::now();
                let mut acc = 0;
                for i in 0..n {
                    let (tx, rx) = oneshot::channel();
                    rp.spawn(move || {
                        let _ = tx.send(inc(i));
                    });
                    acc += rx.await.unwrap();
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s1.rayon_block",
        bench(cfg, n, || {
            let t = Instant::now();
            let mut acc = 0;
            for i in 0..n {
                let (tx, rx) = oneshot::channel();
                rp.spawn(move || {
                    let _ = tx.send(inc(i));
                });
                acc += rx.recv().unwrap();
            }
            black_box(acc);
            t.elapsed()
        }),
    );
    r.time(
        "s1.tokio_ct",
        bench(cfg, n, || {
            ct.block_on(async {
                let t = Instant::now();
                let mut acc = 0;
                for i in 0..n {
                    acc += tokio::task::spawn_blocking(move || inc(i)).await.unwrap();
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s1.tokio_mt",
        bench(cfg, n, || {
            on_worker(&mt, async move {
                let t = Instant::now();
                let mut acc = 0;
                for i in 0..n {
                    acc += tokio::task::spawn_blocking(move || inc(i)).await.unwrap();
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s1.unblock_ct",
        bench(cfg, n, || {
            ct.block_on(async {
                let t = Instant::now();
                let mut acc = 0;
                for i in 0..n {
                    acc += blocking::unblock(move || inc(i)).await;
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    pool.shutdown(Queued::Run);
    drop((ct, mt, rp));

    eprintln!("  idle probes (1 s each, in child processes)");
    for kind in ["cf", "rayon"] {
        if let Some(v) = run_probe(&["idle", kind]) {
            r.value(&format!("s1.idle_{kind}"), v);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// §2 Throughput: N trivial tasks submitted at once, then all awaited, 2 workers; peak RSS
// ---------------------------------------------------------------------------------------------------

fn section2(cfg: &Cfg, r: &mut Results) {
    let n = cfg.tp_n;
    eprintln!("§2 throughput ×{n}, 2 workers");
    let pool = cf_pool(2);
    let rp = rayon_pool(2);
    let ct = current_thread_rt();
    let ct_tokio2 = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .expect("rt");

    r.time(
        "s2.cf_await",
        bench(cfg, n, || {
            ct.block_on(async {
                let t = Instant::now();
                let futs: Vec<_> = (0..n).map(|i| pool.submit(inc, i).unwrap()).collect();
                let mut acc = 0;
                for f in futs {
                    acc += f.await.unwrap();
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s2.cf_block",
        bench(cfg, n, || {
            let t = Instant::now();
            let futs: Vec<_> = (0..n).map(|i| pool.submit(inc, i).unwrap()).collect();
            let mut acc = 0;
            for mut f in futs {
                acc += f.result(None).unwrap();
            }
            black_box(acc);
            t.elapsed()
        }),
    );
    r.time(
        "s2.unblock",
        bench(cfg, n, || {
            ct.block_on(async {
                let t = Instant::now();
                let tasks: Vec<_> = (0..n).map(|i| blocking::unblock(move || inc(i))).collect();
                let mut acc = 0;
                for task in tasks {
                    acc += task.await;
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s2.tokio",
        bench(cfg, n, || {
            ct_tokio2.block_on(async {
                let t = Instant::now();
                let handles: Vec<_> = (0..n)
                    .map(|i| tokio::task::spawn_blocking(move || inc(i)))
                    .collect();
                let mut acc = 0;
                for h in handles {
                    acc += h.await.unwrap();
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s2.rayon",
        bench(cfg, n, || {
            ct.block_on(async {
                let t = Instant::now();
                let rxs: Vec<_> = (0..n)
                    .map(|i| {
                        let (tx, rx) = oneshot::channel();
                        rp.spawn(move || {
                            let _ = tx.send(inc(i));
                        });
                        rx
                    })
                    .collect();
                let mut acc = 0;
                for rx in rxs {
                    acc += rx.await.unwrap();
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    pool.shutdown(Queued::Run);
    drop((ct, ct_tokio2, rp));

    eprintln!("  peak-RSS probes (child processes, median of {RSS_PROBES})");
    let n_s = n.to_string();
    for kind in ["cf", "blocking", "tokio", "rayon"] {
        for mode in ["gated", "free"] {
            if let Some(v) = probe_median(&["rss", kind, &n_s, mode], RSS_PROBES) {
                r.value(&format!("s2.rss_{mode}_{kind}"), v);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// §3 as_completed and wait(FIRST_COMPLETED)
// ---------------------------------------------------------------------------------------------------

fn submit_all(pool: &ThreadPoolExecutor, n: u64) -> Vec<concurrent_futures::PoolFuture<u64>> {
    (0..n).map(|i| pool.submit(inc, i).unwrap()).collect()
}

fn until_done(futs: &[concurrent_futures::PoolFuture<u64>]) {
    for f in futs {
        while !f.done() {
            std::thread::yield_now();
        }
    }
}

/// Spawns `n` trivial blocking tasks on `rt` and waits until every one has run.
fn tokio_all_done(rt: &tokio::runtime::Runtime, n: u64) -> Vec<tokio::task::JoinHandle<u64>> {
    let ran = Arc::new(AtomicU64::new(0));
    let hs = (0..n)
        .map(|i| {
            let ran = ran.clone();
            rt.spawn_blocking(move || {
                ran.fetch_add(1, Ordering::Release);
                inc(i)
            })
        })
        .collect();
    while ran.load(Ordering::Acquire) < n {
        std::thread::yield_now();
    }
    // The closure returning is not yet the handle completing: give the last ones a moment.
    std::thread::sleep(Duration::from_millis(2));
    hs
}

/// Drains JoinHandles through a `FuturesUnordered` (collecting them included); returns the time taken.
///
/// With tokio's cooperative budget (`unconstrained == false`) this is quadratic at 100k handles: once a
/// poll has used the budget (128 polls), every further JoinHandle answers `Pending` with a *deferred*
/// wake-up, which FuturesUnordered does not see as a yield, so it polls its whole ready queue before
/// giving up. Measured here: ~40 JoinHandle polls per item at 10k, ~120 at 30k, ~390 at 100k.
fn fu_drain(
    rt: &tokio::runtime::Runtime,
    hs: Vec<tokio::task::JoinHandle<u64>>,
    unconstrained: bool,
) -> Duration {
    let drain = async move {
        let t = Instant::now();
        let mut acc = 0;
        {
            let mut fu: FuturesUnordered<_> = hs.into_iter().collect();
            while let Some(v) = fu.next().await {
                acc += v.unwrap();
            }
        }
        black_box(acc);
        t.elapsed()
    };
    if unconstrained {
        rt.block_on(tokio::task::unconstrained(drain))
    } else {
        rt.block_on(drain)
    }
}

fn section3(cfg: &Cfg, r: &mut Results) {
    let n = cfg.ac_n;
    eprintln!(
        "§3 as_completed ×{n}, wait(FIRST_COMPLETED) over {}",
        cfg.wait_n
    );
    let pool = cf_pool(2);
    let ct = current_thread_rt();
    let rt2 = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .expect("rt");

    // 3a: drain futures that are all done already (the set's own cost: build, yield, take the value).
    let cf_done_stream = |n: u64| {
        let futs = submit_all(&pool, n);
        until_done(&futs);
        ct.block_on(async {
            let t = Instant::now();
            let mut acc = 0;
            {
                let mut s = as_completed(futs);
                while let Some(f) = s.next().await {
                    acc += f.unwrap().await.unwrap();
                }
            }
            black_box(acc);
            t.elapsed()
        })
    };
    r.time("s3.done_cf_stream", bench(cfg, n, || cf_done_stream(n)));
    let n_small = n / 10;
    r.time(
        "s3.done_cf_stream_small",
        bench(cfg, n_small, || cf_done_stream(n_small)),
    );
    r.time(
        "s3.done_cf_iter",
        bench(cfg, n, || {
            let futs = submit_all(&pool, n);
            until_done(&futs);
            let t = Instant::now();
            let mut acc = 0;
            for f in as_completed(futs) {
                acc += f.unwrap().result(None).unwrap();
            }
            black_box(acc);
            t.elapsed()
        }),
    );
    r.time(
        "s3.done_joinset",
        bench(cfg, n, || {
            let ran = Arc::new(AtomicU64::new(0));
            let mut set = tokio::task::JoinSet::new();
            for i in 0..n {
                let ran = ran.clone();
                set.spawn_blocking_on(
                    move || {
                        ran.fetch_add(1, Ordering::Release);
                        inc(i)
                    },
                    rt2.handle(),
                );
            }
            while ran.load(Ordering::Acquire) < n {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(2));
            rt2.block_on(async {
                let t = Instant::now();
                let mut acc = 0;
                while let Some(v) = set.join_next().await {
                    acc += v.unwrap();
                }
                drop(set);
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    // FuturesUnordered over JoinHandles goes quadratic under tokio's cooperative budget (see
    // `fu_drain`), so it is measured without the budget, plus one sample with it for the record.
    r.time(
        "s3.done_fu",
        bench(cfg, n, || fu_drain(&rt2, tokio_all_done(&rt2, n), true)),
    );
    r.time(
        "s3.done_fu_coop",
        bench_once(n, || fu_drain(&rt2, tokio_all_done(&rt2, n), false)),
    );

    // 3b: submit N and drain them as they complete (the completion-order path, with wakers).
    let cf_live_stream = |n: u64| {
        ct.block_on(async {
            let t = Instant::now();
            let futs = submit_all(&pool, n);
            let mut acc = 0;
            {
                let mut s = as_completed(futs);
                while let Some(f) = s.next().await {
                    acc += f.unwrap().await.unwrap();
                }
            }
            black_box(acc);
            t.elapsed()
        })
    };
    r.time("s3.live_cf_stream", bench(cfg, n, || cf_live_stream(n)));
    r.time(
        "s3.live_cf_stream_small",
        bench(cfg, n_small, || cf_live_stream(n_small)),
    );
    r.time(
        "s3.live_cf_iter",
        bench(cfg, n, || {
            let t = Instant::now();
            let futs = submit_all(&pool, n);
            let mut acc = 0;
            for f in as_completed(futs) {
                acc += f.unwrap().result(None).unwrap();
            }
            black_box(acc);
            t.elapsed()
        }),
    );
    r.time(
        "s3.live_joinset",
        bench(cfg, n, || {
            rt2.block_on(async {
                let t = Instant::now();
                let mut set = tokio::task::JoinSet::new();
                for i in 0..n {
                    set.spawn_blocking(move || inc(i));
                }
                let mut acc = 0;
                while let Some(v) = set.join_next().await {
                    acc += v.unwrap();
                }
                drop(set);
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s3.live_fu",
        bench(cfg, n, || {
            let _guard = rt2.enter();
            let t = Instant::now();
            let hs = (0..n)
                .map(|i| tokio::task::spawn_blocking(move || inc(i)))
                .collect();
            fu_drain(&rt2, hs, true) + t.elapsed()
        }),
    );
    pool.shutdown(Queued::Run);

    // 3c: wait(FIRST_COMPLETED) over `wait_n` pending futures plus one done (last in the list). Each
    // call gets a fresh set, made outside the timing.
    let (m, k) = (cfg.wait_n, cfg.wait_inner);
    type Set = (Vec<Promise<u64>>, Vec<concurrent_futures::PoolFuture<u64>>);
    let fresh = |done_last: bool| -> Set {
        let (mut ps, mut fs): Set = (0..m).map(|_| Promise::new()).unzip();
        let (p, f) = Promise::new();
        if done_last {
            p.set_result(7).unwrap();
        }
        ps.push(p);
        fs.push(f);
        (ps, fs)
    };
    let per_call = |mut one: Box<dyn FnMut(Set) -> Duration + '_>| {
        bench(cfg, k as u64, || {
            (0..k)
                .map(|_| fresh(true))
                .collect::<Vec<_>>()
                .into_iter()
                .map(&mut one)
                .sum()
        })
    };
    r.time(
        "s3.wait_cf_block",
        per_call(Box::new(|(_ps, fs)| {
            let t = Instant::now();
            let done = wait(&fs).return_when(ReturnWhen::FirstCompleted).blocking();
            assert_eq!(done.done.len(), 1);
            drop(done);
            t.elapsed()
        })),
    );
    r.time(
        "s3.wait_cf_await",
        per_call(Box::new(|(_ps, fs)| {
            ct.block_on(async {
                let t = Instant::now();
                let done = wait(&fs).return_when(ReturnWhen::FirstCompleted).await;
                assert_eq!(done.done.len(), 1);
                drop(done);
                t.elapsed()
            })
        })),
    );
    r.time(
        "s3.wait_select_all",
        per_call(Box::new(|(_ps, mut fs)| {
            ct.block_on(async {
                let t = Instant::now();
                let (v, i, rest) = futures::future::select_all(fs.iter_mut()).await;
                assert_eq!((v.unwrap(), i), (7, m));
                drop(rest);
                t.elapsed()
            })
        })),
    );
    // The same, but the one future finishes after the wait has started watching all of them: every
    // pending future gets a waker, then loses it again.
    let per_call_late = |mut one: Box<dyn FnMut(Set) -> Duration + '_>| {
        bench(cfg, k as u64, || {
            (0..k)
                .map(|_| fresh(false))
                .collect::<Vec<_>>()
                .into_iter()
                .map(&mut one)
                .sum()
        })
    };
    r.time(
        "s3.wait_late_cf_await",
        per_call_late(Box::new(|(ps, fs)| {
            ct.block_on(async {
                let t = Instant::now();
                let mut w = std::pin::pin!(wait(&fs)
                    .return_when(ReturnWhen::FirstCompleted)
                    .into_future());
                assert!(futures::poll!(w.as_mut()).is_pending());
                ps[m].set_result(7).unwrap();
                let done = w.await;
                assert_eq!(done.done.len(), 1);
                drop(done);
                t.elapsed()
            })
        })),
    );
    r.time(
        "s3.wait_late_select_all",
        per_call_late(Box::new(|(ps, mut fs)| {
            ct.block_on(async {
                let t = Instant::now();
                let mut sel = futures::future::select_all(fs.iter_mut());
                assert!(futures::poll!(&mut sel).is_pending());
                ps[m].set_result(7).unwrap();
                let (v, i, rest) = sel.await;
                assert_eq!((v.unwrap(), i), (7, m));
                drop(rest);
                t.elapsed()
            })
        })),
    );
}

/// §3's "one finishing late" rows alone, for `valgrind --tool=callgrind --toggle-collect='*s3_late_one*'`:
/// `rounds` times, over a fresh set of `n` pending [`Promise`]s plus one (made outside the collected
/// function), poll the wait once (every future pending), finish the last one, poll again to the end,
/// and take the outcome apart. `kind` is `cf` (`wait(FIRST_COMPLETED).await`) or `select_all`
/// (`futures::future::select_all` over the same futures, the anchor). Returns the mean time per round
/// in µs (meaningless under valgrind; the instruction count is the figure).
fn s3_late_probe(kind: &str, n: usize, rounds: usize) -> f64 {
    let ct = current_thread_rt();
    type One =
        fn(&tokio::runtime::Runtime, &[Promise<u64>], &mut [concurrent_futures::PoolFuture<u64>]);
    let one: One = match kind {
        "cf" => s3_late_one_cf,
        "select_all" => s3_late_one_select_all,
        _ => panic!("unknown s3late probe {kind}"),
    };
    let mut total = Duration::ZERO;
    for _ in 0..rounds {
        let (ps, mut fs): (Vec<_>, Vec<_>) = (0..=n).map(|_| Promise::<u64>::new()).unzip();
        let t = Instant::now();
        one(&ct, &ps, &mut fs);
        total += t.elapsed();
    }
    total.as_secs_f64() * 1e6 / rounds as f64
}

/// §3's "one finishing late" rows side by side, in the CPU time of the calling thread (which a loaded
/// machine disturbs far less than the wall clock): `rounds` times, make `sets` fresh sets of `n`
/// pending futures plus one for each contender (all of them before any call, as §3c does, so a set
/// is no longer in the nearest caches when its turn comes), then run the two contenders' calls
/// alternately, one set each. Prints each contender's median and minimum per call to stderr;
/// returns the ratio of the medians, `wait` ÷ `select_all`.
fn s3_pair_probe(n: usize, rounds: usize, sets: usize) -> f64 {
    let ct = current_thread_rt();
    type Set = (Vec<Promise<u64>>, Vec<concurrent_futures::PoolFuture<u64>>);
    let fresh = || -> Set { (0..=n).map(|_| Promise::<u64>::new()).unzip() };
    let (mut cf, mut sa) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut made: Vec<(Set, Set)> = (0..sets).map(|_| (fresh(), fresh())).collect();
        for ((cps, mut cfs), (sps, mut sfs)) in made.drain(..) {
            let t = service::thread_cpu_ns();
            s3_late_one_cf(&ct, &cps, &mut cfs);
            let u = service::thread_cpu_ns();
            s3_late_one_select_all(&ct, &sps, &mut sfs);
            let v = service::thread_cpu_ns();
            cf.push((u - t) as f64 / 1e3);
            sa.push((v - u) as f64 / 1e3);
        }
    }
    cf.sort_by(f64::total_cmp);
    sa.sort_by(f64::total_cmp);
    eprintln!(
        "s3pair n={n}: wait median {:.1} µs (min {:.1}), select_all median {:.1} µs (min {:.1}) CPU per call",
        median(&cf),
        cf[0],
        median(&sa),
        sa[0]
    );
    median(&cf) / median(&sa)
}

/// One round of [`s3_late_probe`] for `wait` (the futures are made and dropped outside it).
#[inline(never)]
fn s3_late_one_cf(
    ct: &tokio::runtime::Runtime,
    ps: &[Promise<u64>],
    fs: &mut [concurrent_futures::PoolFuture<u64>],
) {
    let last = ps.len() - 1;
    ct.block_on(async {
        let mut w = std::pin::pin!(wait(&*fs)
            .return_when(ReturnWhen::FirstCompleted)
            .into_future());
        assert!(futures::poll!(w.as_mut()).is_pending());
        ps[last].set_result(7).unwrap();
        let done = w.await;
        assert_eq!(done.done.len(), 1);
        drop(done);
    });
}

/// One round of [`s3_late_probe`] for `select_all` (the futures are made and dropped outside it).
#[inline(never)]
fn s3_late_one_select_all(
    ct: &tokio::runtime::Runtime,
    ps: &[Promise<u64>],
    fs: &mut [concurrent_futures::PoolFuture<u64>],
) {
    let last = ps.len() - 1;
    ct.block_on(async {
        let mut sel = futures::future::select_all(fs.iter_mut());
        assert!(futures::poll!(&mut sel).is_pending());
        ps[last].set_result(7).unwrap();
        let (v, i, rest) = sel.await;
        assert_eq!((v.unwrap(), i), (7, last));
        drop(rest);
    });
}

/// §1's round trips alone, for `valgrind --tool=callgrind --toggle-collect='*s1_round_trips*'`: `n`
/// sequential trivial tasks on a warmed 2-worker pool, each `.await`ed on a current-thread runtime
/// (`kind` `await`, §1's `cf_ct`) or waited for with `result(None)` (`block`, §1's `cf_block`).
/// Returns the mean time per round trip in µs (meaningless under valgrind; the instruction count is
/// the figure).
fn s1_probe(kind: &str, n: u64) -> f64 {
    let pool = cf_pool(2);
    warm_cf(&pool);
    let ct = current_thread_rt();
    let awaited = match kind {
        "await" => true,
        "block" => false,
        _ => panic!("unknown s1 probe {kind}"),
    };
    let t = Instant::now();
    black_box(s1_round_trips(&ct, &pool, n, awaited));
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// The collected part of [`s1_probe`].
#[inline(never)]
fn s1_round_trips(
    ct: &tokio::runtime::Runtime,
    pool: &ThreadPoolExecutor,
    n: u64,
    awaited: bool,
) -> u64 {
    let mut acc = 0;
    if awaited {
        ct.block_on(async {
            for i in 0..n {
                acc += pool.submit(inc, i).unwrap().await.unwrap();
            }
        });
    } else {
        for i in 0..n {
            acc += pool.submit(inc, i).unwrap().result(None).unwrap();
        }
    }
    acc
}

/// §3a's drain alone, for `valgrind --tool=callgrind --toggle-collect='*s3_drain_one*'`: `rounds`
/// times, submit `n` trivial tasks and wait until all are done (outside the collected function), then
/// drain them through the `as_completed` stream, awaiting each (§3a's `done_cf_stream`). Returns the
/// mean time per future in µs (meaningless under valgrind).
fn s3_drain_probe(n: u64, rounds: usize) -> f64 {
    let pool = cf_pool(2);
    let ct = current_thread_rt();
    let mut total = Duration::ZERO;
    for _ in 0..rounds {
        let futs = submit_all(&pool, n);
        until_done(&futs);
        let t = Instant::now();
        black_box(s3_drain_one(&ct, futs));
        total += t.elapsed();
    }
    total.as_secs_f64() * 1e6 / (n as f64 * rounds as f64)
}

/// One round of [`s3_drain_probe`].
#[inline(never)]
fn s3_drain_one(
    ct: &tokio::runtime::Runtime,
    futs: Vec<concurrent_futures::PoolFuture<u64>>,
) -> u64 {
    ct.block_on(async {
        let mut acc = 0;
        let mut s = as_completed(futs);
        while let Some(f) = s.next().await {
            acc += f.unwrap().await.unwrap();
        }
        acc
    })
}

// ---------------------------------------------------------------------------------------------------
// §4 CPU-bound scaling
// ---------------------------------------------------------------------------------------------------

/// §4's contenders, by the name their rows are keyed by.
fn cpu_runners() -> [&'static str; 4] {
    ["cf_threads", "rayon", "plain_threads", "cf_processes"]
}

/// One way to run `tasks` pi-series tasks on `workers` workers; returns the wall time and the CPU
/// time of the timed part (every thread of this process and of the pool's worker processes, each
/// read once its threads are idle again, so that any spin after the last task counts).
fn cpu_run(name: &str, workers: usize, tasks: u64, terms: u64) -> (Duration, Duration) {
    let pool = CpuPool::start(name, workers);
    let pids = pool.worker_pids();
    let cpu = || process_cpu_ns() + pids.iter().map(|&p| proc_cpu_ns(p)).sum::<u64>();
    settle();
    let c0 = cpu();
    let el = pool.run(tasks, terms);
    settle();
    let c1 = cpu();
    pool.finish();
    (el, Duration::from_nanos(c1 - c0))
}

/// The CPU time of every thread of process `pid` so far (from `/proc`, brought up to date by the
/// kernel when each thread last left its CPU: read it while they sleep), in ns; 0 once it is gone.
fn proc_cpu_ns(pid: u32) -> u64 {
    ThreadCounters::of(&format!("/proc/{pid}"))
        .iter()
        .map(|t| t.cpu_ns)
        .sum()
}

/// A §4 contender's pool, started as §4 starts it, before the timed part. cf's pools are warmed
/// (every worker exists and has run a task, so neither thread nor process start-up is timed, as in
/// Python's rows); rayon's is not (its threads start with the pool).
enum CpuPool {
    Threads(ThreadPoolExecutor),
    Processes(ProcessPoolExecutor),
    Rayon(rayon::ThreadPool),
    /// No pool: the reference for what the machine gives. The timed part starts this many plain
    /// threads and gives each an equal share of the tasks up front (no queue, no hand-off, no
    /// waiting thread woken per task).
    Plain(usize),
}

impl CpuPool {
    fn start(name: &str, workers: usize) -> CpuPool {
        match name {
            "cf_threads" => {
                let pool = cf_pool(workers);
                let fs: Vec<_> = (0..workers)
                    .map(|_| pool.spawn(|| std::thread::sleep(Duration::from_millis(5))))
                    .collect::<Result<_, _>>()
                    .unwrap();
                for mut f in fs {
                    f.result(None).unwrap();
                }
                CpuPool::Threads(pool)
            }
            "cf_processes" => {
                let pool = ProcessPoolExecutor::new(workers).expect("process pool");
                let fs: Vec<_> = (0..workers)
                    .map(|_| pool.submit(sleep_ms, 20))
                    .collect::<Result<_, _>>()
                    .unwrap();
                for mut f in fs {
                    f.result(None).unwrap();
                }
                assert_eq!(pool.worker_pids().len(), workers);
                CpuPool::Processes(pool)
            }
            "rayon" => CpuPool::Rayon(rayon_pool(workers)),
            "plain_threads" => CpuPool::Plain(workers),
            other => panic!("unknown §4 contender {other}"),
        }
    }

    /// The timed part: submits all `tasks` pi-series tasks at once, then waits for each in
    /// submission order.
    fn run(&self, tasks: u64, terms: u64) -> Duration {
        let (el, outs) = self.run_with(tasks, terms, pi_series);
        black_box(outs.into_iter().sum::<f64>());
        el
    }

    /// [`CpuPool::run`] with another task; returns the wall time and the outputs.
    fn run_with<R>(&self, tasks: u64, terms: u64, task: fn(u64) -> R) -> (Duration, Vec<R>)
    where
        R: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        let t = Instant::now();
        let outs: Vec<R> = match self {
            CpuPool::Threads(pool) => run_all(pool, tasks, terms, task),
            CpuPool::Processes(pool) => run_all(pool, tasks, terms, task),
            CpuPool::Rayon(rp) => {
                let rxs: Vec<_> = (0..tasks)
                    .map(|_| {
                        let (tx, rx) = oneshot::channel();
                        rp.spawn(move || {
                            let _ = tx.send(task(terms));
                        });
                        rx
                    })
                    .collect();
                rxs.into_iter().map(|rx| rx.recv().unwrap()).collect()
            }
            &CpuPool::Plain(threads) => std::thread::scope(|s| {
                let shares: Vec<_> = (0..threads as u64)
                    .map(|i| {
                        let share = tasks / threads as u64 + u64::from(i < tasks % threads as u64);
                        s.spawn(move || (0..share).map(|_| task(terms)).collect::<Vec<R>>())
                    })
                    .collect();
                shares.into_iter().flat_map(|h| h.join().unwrap()).collect()
            }),
        };
        (t.elapsed(), outs)
    }

    /// The worker processes, whose CPU the parent's own clock does not see.
    fn worker_pids(&self) -> Vec<u32> {
        match self {
            CpuPool::Processes(pool) => pool.worker_pids(),
            _ => Vec::new(),
        }
    }

    fn finish(self) {
        match self {
            CpuPool::Threads(pool) => pool.shutdown(Queued::Run),
            CpuPool::Processes(pool) => pool.shutdown(Queued::Run),
            CpuPool::Rayon(_) | CpuPool::Plain(_) => {}
        }
    }
}

/// Submits `tasks` copies of `task(terms)` to `pool` (either of cf's pools), then waits for each.
fn run_all<E: Executor, R>(pool: &E, tasks: u64, terms: u64, task: fn(u64) -> R) -> Vec<R>
where
    R: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let fs: Vec<_> = (0..tasks)
        .map(|_| pool.submit(task, terms).unwrap())
        .collect();
    fs.into_iter()
        .map(|mut f| f.result(None).unwrap())
        .collect()
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn section4(cfg: &Cfg, r: &mut Results) {
    eprintln!(
        "§4 CPU scaling: {} tasks × {} terms",
        cfg.pi_tasks, cfg.pi_terms
    );
    for name in cpu_runners() {
        for workers in [1usize, 2] {
            r.time(
                &format!("s4.{name}_{workers}"),
                bench_cpu(cfg, || cpu_run(name, workers, cfg.pi_tasks, cfg.pi_terms)),
            );
        }
    }
}

/// [`pi_series`], also returning the CPU time it took on its thread (ns): the work's own share of
/// a worker's CPU, which the §4 probe tells apart from the pool's.
fn pi_series_clocked(terms: u64) -> (f64, u64) {
    let t0 = service::thread_cpu_ns();
    let s = pi_series(terms);
    (s, service::thread_cpu_ns() - t0)
}

/// One §4 configuration alone, for `perf stat` or `valgrind --tool=callgrind`: `kind` `threads`
/// (§4's `cf_threads`), `processes` (`cf_processes`), `rayon` or `plain` (`plain_threads`), on
/// `workers` workers, `tasks` tasks of `terms` terms (§4's 20 M unless given), the pool started as
/// §4 starts it. Each task is [`pi_series_clocked`], so that the CPU spent outside the work itself
/// (the pool's share, and whatever the kernel charges its threads) is told apart. Over the timed
/// part alone, prints on stderr each thread's CPU time and switches (the worker processes' threads
/// too), the sums, the submitting thread's CPU, and that split. Returns the wall time of the timed
/// part in ms.
fn s4_probe(kind: &str, workers: usize, tasks: u64, terms: u64) -> f64 {
    let name = match kind {
        "threads" => "cf_threads",
        "processes" => "cf_processes",
        "rayon" => "rayon",
        "plain" => "plain_threads",
        other => panic!("unknown §4 probe {other}"),
    };
    let pool = CpuPool::start(name, workers);
    let pids = pool.worker_pids();
    let dirs: Vec<String> = std::iter::once("/proc/self".to_owned())
        .chain(pids.iter().map(|p| format!("/proc/{p}")))
        .collect();
    let workers_cpu = || pids.iter().map(|&p| proc_cpu_ns(p)).sum::<u64>();
    let before: Vec<_> = dirs.iter().map(|d| ThreadCounters::of(d)).collect();
    settle();
    let (process0, workers0) = (process_cpu_ns(), workers_cpu());
    let mine = service::thread_cpu_ns();
    let (wall, outs) = pool.run_with(tasks, terms, pi_series_clocked);
    let mine = service::thread_cpu_ns() - mine;
    settle();
    let all = process_cpu_ns() - process0 + workers_cpu() - workers0;
    let after: Vec<_> = dirs.iter().map(|d| ThreadCounters::of(d)).collect();
    pool.finish();
    black_box(outs.iter().map(|o| o.0).sum::<f64>());
    let work_ns: u64 = outs.iter().map(|o| o.1).sum();
    let ms = |ns: u64| ns as f64 / 1e6;
    eprintln!(
        "s4 {kind}, {workers} worker(s), {tasks} tasks × {terms} terms: wall {:.3} ms",
        wall.as_secs_f64() * 1e3
    );
    // Threads that lived through the timed part; plain threads start and end within it, and show
    // only in the sums below.
    let mut switches = ThreadCounters::default();
    for ((dir, was), now) in dirs.iter().zip(&before).zip(&after) {
        eprintln!("  {dir}:");
        switches.add(&ThreadCounters::report_between(was, now, tasks));
    }
    eprintln!(
        "  all: CPU {:.3} ms ({:.3} ms per task, {:.3} cores over the wall time); switches of the \
         threads above {} voluntary, {} involuntary",
        ms(all),
        ms(all) / tasks as f64,
        all as f64 / wall.as_nanos() as f64,
        switches.voluntary,
        switches.involuntary,
    );
    eprintln!(
        "  the work itself {:.3} ms ({:.3} ms per task); the submitting thread {:.1} µs per task; \
         the rest {:.1} µs per task",
        ms(work_ns),
        ms(work_ns) / tasks as f64,
        mine as f64 / 1e3 / tasks as f64,
        (all as f64 - work_ns as f64 - mine as f64) / 1e3 / tasks as f64,
    );
    wall.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------------
// §5 Process-pool round trip: a trivial task and a 1 MiB echo, sequential
// ---------------------------------------------------------------------------------------------------

/// The raw reference of §5: this binary re-run as `--echo`, with one end of a socketpair as its stdin,
/// echoing length-prefixed frames (`u32` little-endian length, then the body). Both sides read as much
/// as is there into one reusable buffer (so a small frame is one `read`) and write a whole frame with
/// one `write`: the least two processes can do per round trip over a socket.
struct EchoChild {
    child: std::process::Child,
    sock: UnixStream,
    buf: Vec<u8>,
}

impl EchoChild {
    /// With `pinned`, the child runs on CPU 0 only (the caller pins its own thread there too).
    fn spawn(pinned: bool) -> EchoChild {
        Self::spawn_with(if pinned { &["pin"] } else { &[] })
    }

    /// A child that busy-loops `us` microseconds before echoing each frame (§11's raw reference).
    fn spawn_busy(us: u64) -> EchoChild {
        Self::spawn_with(&["busy", &us.to_string()])
    }

    fn spawn_with(args: &[&str]) -> EchoChild {
        let (mine, theirs) = UnixStream::pair().expect("socketpair");
        let child = Command::new(std::env::current_exe().expect("current exe"))
            .arg("--echo")
            .args(args)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .spawn()
            .expect("start the echo child");
        EchoChild {
            child,
            sock: mine,
            buf: vec![0; 64 * 1024],
        }
    }

    /// Sends `frame` (header included) and reads the echo back; returns the body's length.
    fn round_trip(&mut self, frame: &[u8]) -> usize {
        (&self.sock).write_all(frame).expect("send");
        let len = read_frame(&self.sock, &mut self.buf).expect("the echo child ended");
        debug_assert_eq!(len + 4, frame.len());
        len
    }
}

impl Drop for EchoChild {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}

/// Reads one frame into `buf` (grown as needed, never shrunk): header and body, as few `read`s as the
/// kernel allows. Returns the body's length, or `None` at end-of-file.
fn read_frame(mut sock: &UnixStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut have = 0;
    let mut need = 4;
    loop {
        while have < need {
            match sock.read(&mut buf[have..]) {
                Ok(0) | Err(_) => return None,
                Ok(n) => have += n,
            }
        }
        if need == 4 {
            need = 4 + u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
            if buf.len() < need {
                buf.resize(need, 0);
            }
            if have >= need {
                return Some(need - 4);
            }
        } else {
            return Some(need - 4);
        }
    }
}

/// Restricts the calling thread to CPU 0; returns its previous CPU set, for [`set_cpus`].
fn pin_to_cpu0() -> libc::cpu_set_t {
    // SAFETY: `cpu_set_t` is plain data; all-zero bytes are an empty set.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `old` is a valid, writable cpu_set_t of `size` bytes; pid 0 is the calling thread.
    unsafe { libc::sched_getaffinity(0, size, &mut old) };
    // SAFETY: as above, for a set holding CPU 0.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU 0 is within the set's bounds; `one` is a valid, writable cpu_set_t.
    unsafe { libc::CPU_SET(0, &mut one) };
    set_cpus(&one);
    old
}

/// The ids of this process's process-pool driver threads (named `process-pool-driver-<n>`, which
/// the kernel cuts to 15 bytes).
fn driver_tids() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let path = e.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).ok()?;
        comm.starts_with("process-pool-dr")
            .then(|| path.file_name()?.to_str().map(str::to_owned))?
    })
    .collect()
}

/// The `Cpus_allowed_list` line of a `/proc/…/status` file.
fn cpus_allowed(status: &str) -> Option<String> {
    let status = std::fs::read_to_string(status).ok()?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    Some(line.trim().to_owned())
}

/// Checks that `pool`'s worker processes and the driver threads started since `before` (see
/// [`driver_tids`]) may run on CPU 0 only, as the thread that created the pool ([`pin_to_cpu0`]).
fn pool_cpus(pool: &ProcessPoolExecutor, before: &[String]) -> Result<(), String> {
    let workers = pool.worker_pids();
    let drivers: Vec<String> = driver_tids()
        .into_iter()
        .filter(|t| !before.contains(t))
        .collect();
    if workers.is_empty() || drivers.is_empty() {
        return Err(format!(
            "found {} workers and {} new driver threads",
            workers.len(),
            drivers.len()
        ));
    }
    let statuses = workers.iter().map(|p| format!("/proc/{p}/status")).chain(
        drivers
            .iter()
            .map(|t| format!("/proc/self/task/{t}/status")),
    );
    for status in statuses {
        match cpus_allowed(&status) {
            Some(cpus) if cpus == "0" => {}
            other => return Err(format!("{status}: Cpus_allowed_list {other:?}, not 0")),
        }
    }
    eprintln!("  pinned pool: workers {workers:?} and driver threads {drivers:?} on CPU 0 only");
    Ok(())
}

fn set_cpus(set: &libc::cpu_set_t) {
    // SAFETY: `set` is a valid cpu_set_t of the size given; pid 0 is the calling thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
}

/// `--echo [pin | busy <µs>]`: the child side of [`EchoChild`].
fn echo_main(pinned: bool, busy_us: u64) {
    if pinned {
        pin_to_cpu0();
    }
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .expect("stdin");
    let sock = UnixStream::from(fd);
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(len) = read_frame(&sock, &mut buf) {
        if busy_us > 0 {
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(busy_us) {
                std::hint::spin_loop();
            }
        }
        if (&sock).write_all(&buf[..4 + len]).is_err() {
            break;
        }
    }
}

fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// The 1 MiB payload: every byte depends on its position.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i ^ (i >> 8)) as u8).collect()
}

/// `count` sequential echoes; returns the time spent in `echo` alone. Each argument is built (a copy of
/// the payload, so it is as hot in the cache as the raw reference's reused frame) just before its
/// round trip, outside the timing; dropping the echoed value is inside it.
fn echo_loop<A>(
    count: u64,
    mut arg: impl FnMut() -> A,
    mut echo: impl FnMut(A) -> usize,
) -> Duration {
    let mut spent = Duration::ZERO;
    let mut acc = 0;
    for _ in 0..count {
        let a = arg();
        let t = Instant::now();
        acc += echo(a);
        spent += t.elapsed();
    }
    black_box(acc);
    spent
}

fn echo_bytes(b: ByteBlock) -> ByteBlock {
    b
}

fn echo_vec(v: Vec<u8>) -> Vec<u8> {
    v
}

/// One of §5's scenarios alone, `n` times, for `strace -f -c` or `valgrind --tool=callgrind` (the
/// worker is started and warmed first): `rt` (trivial task, `result()`), `raw` (its raw reference,
/// [`raw_probe`]), `echo` (1 MiB `ByteBlock`), `raw_echo` (its raw reference),
/// `echo_vec` (1 MiB `Vec<u8>`). Returns the time per operation in µs.
fn s5_probe(kind: &str, n: u64) -> f64 {
    match kind {
        "raw" => return raw_probe(&0u64.to_le_bytes(), n),
        "raw_echo" => return raw_probe(&payload(1 << 20), n),
        _ => {}
    }
    let pool = ProcessPoolExecutor::new(1).expect("process pool");
    let data = payload(1 << 20);
    let one = |i: u64| match kind {
        "rt" => pool.submit(inc, i).unwrap().result(None).unwrap() as usize,
        "echo" => {
            let b = ByteBlock::from(data.clone());
            pool.submit(echo_bytes, b)
                .unwrap()
                .result(None)
                .unwrap()
                .len()
        }
        "echo_vec" => pool
            .submit(echo_vec, data.clone())
            .unwrap()
            .result(None)
            .unwrap()
            .len(),
        _ => panic!("unknown §5 probe {kind}"),
    };
    black_box(one(0));
    let before = ThreadCounters::all();
    let t = Instant::now();
    let mut acc = 0;
    for i in 0..n {
        acc += one(i);
    }
    black_box(acc);
    let per_op = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    ThreadCounters::report(&before, n);
    per_op
}

/// What the kernel counts for one thread (`/proc/<pid>/task/<tid>/`): switches off the CPU
/// (voluntary: it slept; involuntary: preempted), CPU time and its name. Load-independent counts for
/// the §4 and §5 probes: a thread woken per operation shows one voluntary switch per operation.
#[derive(Default)]
struct ThreadCounters {
    tid: String,
    name: String,
    voluntary: u64,
    involuntary: u64,
    cpu_ns: u64,
}

impl ThreadCounters {
    /// This process's threads.
    fn all() -> Vec<ThreadCounters> {
        Self::of("/proc/self")
    }

    /// The threads of the process whose `/proc` directory is `proc` (none once it has exited).
    fn of(proc: &str) -> Vec<ThreadCounters> {
        let Ok(dir) = std::fs::read_dir(format!("{proc}/task")) else {
            return Vec::new();
        };
        let mut out: Vec<ThreadCounters> = dir
            .filter_map(|e| {
                let path = e.ok()?.path();
                let status = std::fs::read_to_string(path.join("status")).ok()?;
                let field = |name: &str| -> u64 {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0)
                };
                let schedstat = std::fs::read_to_string(path.join("schedstat")).ok()?;
                Some(ThreadCounters {
                    tid: path.file_name()?.to_string_lossy().into_owned(),
                    name: std::fs::read_to_string(path.join("comm"))
                        .ok()?
                        .trim()
                        .to_owned(),
                    voluntary: field("voluntary_ctxt_switches:"),
                    involuntary: field("nonvoluntary_ctxt_switches:"),
                    cpu_ns: schedstat.split_whitespace().next()?.parse().ok()?,
                })
            })
            .collect();
        out.sort_by(|a, b| a.tid.cmp(&b.tid));
        out
    }

    /// Prints, on stderr, each of this process's threads' counts per operation since `before`.
    fn report(before: &[ThreadCounters], n: u64) {
        Self::report_between(before, &Self::all(), n);
    }

    /// Prints, on stderr, each thread's counts per operation from `before` to `after` (a thread
    /// started meanwhile counts from zero); returns their sums.
    fn report_between(
        before: &[ThreadCounters],
        after: &[ThreadCounters],
        n: u64,
    ) -> ThreadCounters {
        let mut sum = ThreadCounters::default();
        for now in after {
            let was = before.iter().find(|b| b.tid == now.tid);
            let d = |f: fn(&ThreadCounters) -> u64| f(now) - was.map_or(0, f);
            let per_op = |f: fn(&ThreadCounters) -> u64| d(f) as f64 / n as f64;
            eprintln!(
                "  thread {:<24} switches/op: {:.3} voluntary, {:.3} involuntary; CPU/op {:.2} µs",
                now.name,
                per_op(|c| c.voluntary),
                per_op(|c| c.involuntary),
                per_op(|c| c.cpu_ns) / 1e3,
            );
            sum.voluntary += d(|c| c.voluntary);
            sum.involuntary += d(|c| c.involuntary);
            sum.cpu_ns += d(|c| c.cpu_ns);
        }
        sum
    }

    fn add(&mut self, other: &ThreadCounters) {
        self.voluntary += other.voluntary;
        self.involuntary += other.involuntary;
        self.cpu_ns += other.cpu_ns;
    }
}

/// §5's raw reference alone: `n` frames of `body` ping-ponged with an `--echo` child (placed by the
/// kernel, or as `taskset` says), for the same counters as `rt` and `echo`. Returns the time per
/// round trip in µs.
fn raw_probe(body: &[u8], n: u64) -> f64 {
    let mut raw = EchoChild::spawn_busy(0);
    let frame = frame_of(body);
    black_box(raw.round_trip(&frame));
    let before = ThreadCounters::all();
    let t = Instant::now();
    for _ in 0..n {
        black_box(raw.round_trip(&frame));
    }
    let per_op = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    ThreadCounters::report(&before, n);
    per_op
}

fn section5(cfg: &Cfg, r: &mut Results) {
    let (n, e) = (cfg.proc_rt_n, cfg.echo_n);
    eprintln!(
        "§5 process round trip ×{n}, {} B echo ×{e}, one worker",
        cfg.echo_bytes
    );
    let data = payload(cfg.echo_bytes);

    // The raw reference: two processes ping-ponging frames over a socketpair.
    // Unpinned, the kernel places the two processes as it likes: on one CPU a round trip is two
    // cheap switches; on two, each hand-off wakes an idle CPU (tens of µs on this VM). Pinned to one
    // CPU, every hand-off is a switch: the least a socket ping-pong can cost here.
    let small = frame_of(&0u64.to_le_bytes());
    let big = frame_of(&data);
    for pinned in [false, true] {
        let old = pinned.then(pin_to_cpu0);
        let mut raw = EchoChild::spawn(pinned);
        let suffix = if pinned { "_pinned" } else { "" };
        r.time(
            &format!("s5.raw{suffix}"),
            bench(cfg, n, || {
                let t = Instant::now();
                let mut acc = 0;
                for _ in 0..n {
                    acc += raw.round_trip(&small);
                }
                black_box(acc);
                t.elapsed()
            }),
        );
        r.time(
            &format!("s5.raw_echo{suffix}"),
            bench(cfg, e, || {
                let t = Instant::now();
                let mut acc = 0;
                for _ in 0..e {
                    acc += raw.round_trip(&big);
                }
                black_box(acc);
                t.elapsed()
            }),
        );
        assert!(raw.buf[4..4 + data.len()] == data[..], "raw echo corrupted");
        drop(raw);
        if let Some(old) = old {
            set_cpus(&old);
        }
    }

    // This crate: one worker process, started (and warmed) by the first sample.
    let pool = ProcessPoolExecutor::new(1).expect("process pool");
    let ct = current_thread_rt();
    r.time(
        "s5.cf",
        bench(cfg, n, || {
            round_trips(n, |i| pool.submit(inc, i).unwrap().result(None).unwrap())
        }),
    );
    r.time(
        "s5.cf_await",
        bench(cfg, n, || {
            ct.block_on(async {
                let t = Instant::now();
                let mut acc = 0;
                for i in 0..n {
                    acc += pool.submit(inc, i).unwrap().await.unwrap();
                }
                black_box(acc);
                t.elapsed()
            })
        }),
    );
    r.time(
        "s5.cf_echo",
        bench(cfg, e, || {
            echo_loop(
                e,
                || ByteBlock::from(data.clone()),
                |b| {
                    pool.submit(echo_bytes, b)
                        .unwrap()
                        .result(None)
                        .unwrap()
                        .len()
                },
            )
        }),
    );
    let back = pool
        .submit(echo_bytes, ByteBlock::from(data.clone()))
        .unwrap()
        .result(None)
        .unwrap();
    assert!(back[..] == data[..], "cf echo corrupted");
    let e_vec = (e / 10).max(1);
    r.time(
        "s5.cf_echo_vec",
        bench(cfg, e_vec, || {
            echo_loop(
                e_vec,
                || data.clone(),
                |v| {
                    pool.submit(echo_vec, v)
                        .unwrap()
                        .result(None)
                        .unwrap()
                        .len()
                },
            )
        }),
    );
    pool.shutdown(Queued::Run);
    drop(ct);

    // This crate with both processes on one CPU, like for like with the pinned raw rows: the
    // calling thread is pinned before the pool exists, so the driver thread the pool starts from it
    // and the worker process that driver spawns inherit the one-CPU set (checked below).
    let drivers_before = driver_tids();
    let old = pin_to_cpu0();
    let pool = ProcessPoolExecutor::new(1).expect("process pool");
    black_box(pool.submit(inc, 0).unwrap().result(None).unwrap());
    match pool_cpus(&pool, &drivers_before) {
        Ok(()) => {
            r.time(
                "s5.cf_pinned",
                bench(cfg, n, || {
                    round_trips(n, |i| pool.submit(inc, i).unwrap().result(None).unwrap())
                }),
            );
            r.time(
                "s5.cf_echo_pinned",
                bench(cfg, e, || {
                    echo_loop(
                        e,
                        || ByteBlock::from(data.clone()),
                        |b| {
                            pool.submit(echo_bytes, b)
                                .unwrap()
                                .result(None)
                                .unwrap()
                                .len()
                        },
                    )
                }),
            );
        }
        Err(why) => eprintln!("  cf pinned rows skipped: {why}"),
    }
    pool.shutdown(Queued::Run);
    set_cpus(&old);

    // procspawn's pool (ipc-channel + bincode); `ByteBlock` serializes with `serialize_bytes`, as
    // `serde_bytes` does, so the MiB crosses as one block there too.
    match procspawn::Pool::new(1) {
        Ok(pp) => {
            r.time(
                "s5.procspawn",
                bench(cfg, n, || {
                    round_trips(n, |i| pp.spawn(i, inc).join().expect("procspawn"))
                }),
            );
            r.time(
                "s5.procspawn_echo",
                bench(cfg, e, || {
                    echo_loop(
                        e,
                        || ByteBlock::from(data.clone()),
                        |b| pp.spawn(b, echo_bytes).join().expect("procspawn").len(),
                    )
                }),
            );
            pp.shutdown();
        }
        Err(err) => eprintln!("  procspawn pool could not start: {err}"),
    }
}

// ---------------------------------------------------------------------------------------------------
// §6 Thread references: the physical limit of a cross-thread round trip
// ---------------------------------------------------------------------------------------------------

fn section6(cfg: &Cfg, r: &mut Results) {
    let n = cfg.rt_n;
    eprintln!("§6 thread references ×{n}");
    r.time(
        "s6.mpsc",
        bench(cfg, n, || {
            let (to_b, from_a) = std::sync::mpsc::channel::<u64>();
            let (to_a, from_b) = std::sync::mpsc::channel::<u64>();
            let b = std::thread::spawn(move || {
                for v in from_a {
                    if to_a.send(inc(v)).is_err() {
                        break;
                    }
                }
            });
            let t = Instant::now();
            let mut acc = 0;
            for i in 0..n {
                to_b.send(i).unwrap();
                acc += from_b.recv().unwrap();
            }
            let el = t.elapsed();
            drop(to_b);
            b.join().unwrap();
            black_box(acc);
            el
        }),
    );
    r.time(
        "s6.park",
        bench(cfg, n, || {
            // `turn` odd: B's move; even: A's. A hands over by storing 2i+1 and unparking B; B answers
            // by storing 2i+2 and unparking A. u64::MAX stops B.
            let turn = Arc::new(AtomicU64::new(0));
            let a = std::thread::current();
            let tb = turn.clone();
            let b = std::thread::spawn(move || loop {
                let v = tb.load(Ordering::Acquire);
                if v == u64::MAX {
                    break;
                }
                if v % 2 == 1 {
                    tb.store(v + 1, Ordering::Release);
                    a.unpark();
                } else {
                    std::thread::park();
                }
            });
            let t = Instant::now();
            for i in 0..n {
                turn.store(2 * i + 1, Ordering::Release);
                b.thread().unpark();
                while turn.load(Ordering::Acquire) != 2 * i + 2 {
                    std::thread::park();
                }
            }
            let el = t.elapsed();
            turn.store(u64::MAX, Ordering::Release);
            b.thread().unpark();
            b.join().unwrap();
            el
        }),
    );
}

// ---------------------------------------------------------------------------------------------------
// Python anchors
// ---------------------------------------------------------------------------------------------------

fn python(cfg: &Cfg, r: &mut Results) -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_anchors.py");
    let version = Command::new("python3").arg("--version").output();
    let version = match version {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => {
            eprintln!("python3 not found: Python anchors skipped");
            return None;
        }
    };
    let sections: Vec<String> = cfg.sections.iter().map(u32::to_string).collect();
    eprintln!("Python anchors ({version}), {} repetitions", cfg.py_reps);
    let mut child = match Command::new("python3")
        .arg(script)
        .args(["--reps", &cfg.py_reps.to_string()])
        .args(["--rt-n", &cfg.rt_n.to_string()])
        .args(["--tp-n", &cfg.tp_n.to_string()])
        .args(["--ac-n", &cfg.ac_n.to_string()])
        .args(["--wait-n", &cfg.wait_n.to_string()])
        .args(["--wait-inner", &cfg.wait_inner.to_string()])
        .args(["--pi-tasks", &cfg.pi_tasks.to_string()])
        .args(["--pi-terms", &cfg.py_pi_terms.to_string()])
        .args(["--proc-rt-n", &cfg.proc_rt_n.to_string()])
        .args(["--echo-n", &cfg.echo_n.to_string()])
        .args(["--echo-bytes", &cfg.echo_bytes.to_string()])
        .args(["--sections", &sections.join(",")])
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("could not run {script}: {e}");
            return None;
        }
    };
    let stdout = child.stdout.take().expect("piped");
    use std::io::BufRead as _;
    for line in std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
    {
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some("TIME"), Some(key), Some(med), Some(min)) => {
                if let (Ok(median), Ok(min)) = (med.parse(), min.parse()) {
                    let cpu = it.next().and_then(|c| c.parse().ok());
                    let samples = vec![median];
                    r.time(
                        key,
                        Stat {
                            median,
                            min,
                            cpu,
                            samples,
                        },
                    );
                }
            }
            (Some("VALUE"), Some(key), Some(v), None) => {
                if let Ok(v) = v.parse() {
                    r.value(key, v);
                }
            }
            _ => eprintln!("  python: {line}"),
        }
    }
    let status = child.wait().ok();
    if !status.is_some_and(|s| s.success()) {
        eprintln!("python anchors exited with {status:?}");
    }
    Some(version)
}

// ---------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------

/// One line of a table: the measurement's key, its label, and the key of the anchor it is compared with.
type Line = (&'static str, &'static str, Option<&'static str>);

fn ratio(r: &Results, key: &str, anchor: &str) -> Option<f64> {
    Some(r.t(key)?.median / r.t(anchor)?.median)
}

fn label_of<'a>(lines: &'a [Line], key: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.0 == key)
        .map_or("?", |l| l.1.split(" (").next().unwrap_or(l.1))
}

/// A table of per-operation times; with `cpu`, also the CPU time the process used per operation.
fn time_table(out: &mut String, r: &Results, lines: &[Line], cpu: bool) {
    if cpu {
        out.push_str(
            "| | median/op | min/op | CPU/op | median vs anchor |\n|---|---:|---:|---:|---|\n",
        );
    } else {
        out.push_str("| | median/op | min/op | median vs anchor |\n|---|---:|---:|---|\n");
    }
    for &(key, label, anchor) in lines {
        let Some(s) = r.t(key) else {
            let dashes = if cpu { "— | — | —" } else { "— | —" };
            out.push_str(&format!("| {label} | {dashes} | not run |\n"));
            continue;
        };
        let vs = match anchor.and_then(|a| ratio(r, key, a).map(|x| (a, x))) {
            Some((a, x)) => format!("{x:.2}× {}", label_of(lines, a)),
            None if anchor.is_none() => "anchor".to_owned(),
            None => "anchor not measured".to_owned(),
        };
        let cpu_col = if cpu {
            format!(" {} |", s.cpu.map_or("—".into(), fmt_time))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| {label} | {} | {} |{cpu_col} {vs} |\n",
            fmt_time(s.median),
            fmt_time(s.min)
        ));
    }
    out.push('\n');
}

const S1: &[Line] = &[
    (
        "s1.cf_ct",
        "cf `.await` (tokio current-thread)",
        Some("s1.rayon_ct"),
    ),
    (
        "s1.cf_mt",
        "cf `.await` (tokio multi-thread, 2 workers)",
        Some("s1.rayon_mt"),
    ),
    (
        "s1.cf_block",
        "cf `result()` (blocking)",
        Some("s1.rayon_block"),
    ),
    (
        "s1.rayon_ct",
        "rayon + oneshot `.await` (current-thread)",
        None,
    ),
    (
        "s1.rayon_mt",
        "rayon + oneshot `.await` (multi-thread)",
        None,
    ),
    ("s1.rayon_block", "rayon + oneshot blocking `recv()`", None),
    (
        "s1.tokio_ct",
        "tokio `spawn_blocking` `.await` (current-thread)",
        Some("s1.rayon_ct"),
    ),
    (
        "s1.tokio_mt",
        "tokio `spawn_blocking` `.await` (multi-thread)",
        Some("s1.rayon_mt"),
    ),
    (
        "s1.unblock_ct",
        "`blocking::unblock` `.await` (current-thread)",
        Some("s1.rayon_ct"),
    ),
    (
        "s1.py",
        "Python `ThreadPoolExecutor(2)`: `submit().result()`",
        Some("s1.rayon_block"),
    ),
    (
        "s6.park",
        "park/unpark round trip (§6, the floor)",
        Some("s1.rayon_block"),
    ),
];

fn print_section1(out: &mut String, cfg: &Cfg, r: &Results) {
    out.push_str(&format!(
        "### 1. Round trip of a trivial task, sequential ×{}\n\nPools of 2 threads; one task in flight at a time.\n\n",
        cfg.rt_n
    ));
    time_table(out, r, S1, true);
    let idle = |k: &str| r.v(k).map_or("—".into(), |v| format!("{v:.2} %"));
    out.push_str(&format!(
        "Idle CPU of the whole process over 1 s with 2 idle workers: cf {}, rayon {} (of one core).\n\n",
        idle("s1.idle_cf"),
        idle("s1.idle_rayon")
    ));
}

fn print_section2(out: &mut String, cfg: &Cfg, r: &Results) {
    out.push_str(&format!(
        "### 2. Throughput: {} trivial tasks submitted at once, then all awaited, 2 workers\n\n",
        cfg.tp_n
    ));
    out.push_str("| | median total | tasks/s (median) | best tasks/s | CPU/task | vs `blocking::unblock` (tasks/s) | peak RSS / queued task | peak RSS / task, workers draining |\n|---|---:|---:|---:|---:|---|---:|---:|\n");
    let lines: &[(&str, &str, &str)] = &[
        ("s2.cf_await", "cf, submit all then `.await` each", "cf"),
        ("s2.cf_block", "cf, submit all then `result()` each", "cf"),
        (
            "s2.unblock",
            "`blocking::unblock` (`BLOCKING_MAX_THREADS=2`)",
            "blocking",
        ),
        (
            "s2.tokio",
            "tokio `spawn_blocking` (`max_blocking_threads(2)`)",
            "tokio",
        ),
        ("s2.rayon", "rayon(2) + oneshot `.await`", "rayon"),
        ("s2.py", "Python `ThreadPoolExecutor(2)`", "py"),
    ];
    let bytes = |k: String| r.v(&k).map_or("—".into(), |v| format!("{v:.0} B"));
    for &(key, label, kind) in lines {
        let Some(s) = r.t(key) else {
            out.push_str(&format!("| {label} | — | — | — | — | not run | — | — |\n"));
            continue;
        };
        let vs = ratio(r, "s2.unblock", key).map_or("—".into(), |x| format!("{x:.2}×"));
        out.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {vs} | {} | {} |\n",
            fmt_time(s.median * cfg.tp_n as f64),
            fmt_rate(1.0 / s.median),
            fmt_rate(1.0 / s.min),
            s.cpu.map_or("—".into(), fmt_time),
            bytes(format!("s2.rss_gated_{kind}")),
            bytes(format!("s2.rss_free_{kind}")),
        ));
    }
    out.push_str(&format!("\nPeak RSS: growth of VmHWM over VmRSS just before submitting, in a fresh child process, divided by the task count, handles (futures/receivers) kept in a `Vec` as a caller would; median of {RSS_PROBES} runs (Python: 1 run). CPU/task: CPU time of the whole process (all threads) per task. \"Queued\": both workers held busy until every task is queued.\n\n"));
}

const S3_DONE: &[Line] = &[
    (
        "s3.done_cf_stream",
        "cf `as_completed` stream + `.await` each (current-thread)",
        Some("s3.done_joinset"),
    ),
    (
        "s3.done_cf_iter",
        "cf `as_completed` iterator + `result()` each",
        Some("s3.done_joinset"),
    ),
    (
        "s3.done_joinset",
        "tokio `JoinSet::join_next` (spawn_blocking tasks)",
        None,
    ),
    (
        "s3.done_fu",
        "`FuturesUnordered` over tokio `JoinHandle`s (incl. collect; `unconstrained`)",
        Some("s3.done_joinset"),
    ),
    (
        "s3.done_fu_coop",
        "the same under tokio's coop budget (1 sample: quadratic, see `fu_drain`)",
        Some("s3.done_joinset"),
    ),
    (
        "s3.py_done",
        "Python `as_completed` + `result()`",
        Some("s3.done_joinset"),
    ),
];

const S3_LIVE: &[Line] = &[
    (
        "s3.live_cf_stream",
        "cf: submit + `as_completed` stream",
        Some("s3.live_joinset"),
    ),
    (
        "s3.live_cf_iter",
        "cf: submit + `as_completed` iterator",
        Some("s3.live_joinset"),
    ),
    (
        "s3.live_joinset",
        "tokio `JoinSet` (spawn_blocking, 2 threads)",
        None,
    ),
    (
        "s3.live_fu",
        "`FuturesUnordered` over `spawn_blocking` handles (`unconstrained`)",
        Some("s3.live_joinset"),
    ),
    (
        "s3.py_live",
        "Python: submit + `as_completed`",
        Some("s3.live_joinset"),
    ),
];

const S3_WAIT: &[Line] = &[
    (
        "s3.wait_cf_block",
        "cf `wait(..).blocking()`",
        Some("s3.wait_select_all"),
    ),
    (
        "s3.wait_cf_await",
        "cf `wait(..).await` (current-thread)",
        Some("s3.wait_select_all"),
    ),
    (
        "s3.wait_select_all",
        "`futures::future::select_all` (same futures, `.await`)",
        None,
    ),
    (
        "s3.py_wait",
        "Python `wait(FIRST_COMPLETED)`",
        Some("s3.wait_select_all"),
    ),
];

const S3_WAIT_LATE: &[Line] = &[
    (
        "s3.wait_late_cf_await",
        "cf `wait(..).await`: poll, finish the one, poll",
        Some("s3.wait_late_select_all"),
    ),
    (
        "s3.wait_late_select_all",
        "`select_all`: poll, finish the one, poll",
        None,
    ),
];

fn print_section3(out: &mut String, cfg: &Cfg, r: &Results) {
    let n = cfg.ac_n;
    out.push_str(&format!(
        "### 3. `as_completed` and `wait`\n\n**3a. Drain {n} futures that are all done already** (per future; timing covers building the set, yielding every future and taking its value, and dropping the set)\n\n"
    ));
    time_table(out, r, S3_DONE, false);
    out.push_str(&format!(
        "**3b. Submit {n} trivial tasks to 2 workers and drain them in completion order** (per future, submission included)\n\n"
    ));
    time_table(out, r, S3_LIVE, false);
    let growth = |big: &str, small: &str| match (r.t(big), r.t(small)) {
        (Some(b), Some(s)) => format!(
            "{} → {} per future ({:.2}×)",
            fmt_time(s.median),
            fmt_time(b.median),
            b.median / s.median
        ),
        _ => "—".into(),
    };
    out.push_str(&format!(
        "**O(1) per completion**: cf stream, {} → {} futures: already done {}; live {}.\n\n",
        n / 10,
        n,
        growth("s3.done_cf_stream", "s3.done_cf_stream_small"),
        growth("s3.live_cf_stream", "s3.live_cf_stream_small"),
    ));
    out.push_str(&format!(
        "**3c. `wait(FIRST_COMPLETED)` over {} pending futures + 1 done (last in the list)** (per call, each on a fresh set)\n\n",
        cfg.wait_n
    ));
    time_table(out, r, S3_WAIT, false);
    out.push_str("The same where the one future finishes only after the first poll (every pending future is watched, then unwatched):\n\n");
    time_table(out, r, S3_WAIT_LATE, false);
}

fn print_section4(out: &mut String, cfg: &Cfg, r: &Results) {
    // The rows run here measure the timed part's CPU, worker processes included; Python's report
    // their parent's alone, which for its process pool is not the work's: they show none.
    let cpu_per_task = |one: Option<f64>, two: Option<f64>| match (one, two) {
        (Some(a), Some(b)) if a > 0.0 => format!(
            "{} → {} ({:+.1} %)",
            fmt_time(a / cfg.pi_tasks as f64),
            fmt_time(b / cfg.pi_tasks as f64),
            (b / a - 1.0) * 100.0
        ),
        _ => "—".to_owned(),
    };
    out.push_str(&format!(
        "### 4. CPU-bound scaling: {} tasks of Σ1/i² over {} terms (Python: {} terms)\n\n",
        cfg.pi_tasks, cfg.pi_terms, cfg.py_pi_terms
    ));
    out.push_str("| | 1 worker (median) | 2 workers (median) | scaling 1→2 (medians) | scaling (best times) | CPU per task, 1 → 2 workers (medians) |\n|---|---:|---:|---:|---:|---:|\n");
    let mut rows: Vec<(String, String)> = cpu_runners()
        .into_iter()
        .map(|name| {
            let label = match name {
                "cf_threads" => "cf `ThreadPoolExecutor`".to_owned(),
                "rayon" => "rayon (reference)".to_owned(),
                "plain_threads" => {
                    "plain threads, the tasks split evenly up front (no pool: the machine's own 1→2)"
                        .to_owned()
                }
                "cf_processes" => "cf `ProcessPoolExecutor`".to_owned(),
                other => other.to_owned(),
            };
            (format!("s4.{name}"), label)
        })
        .collect();
    rows.push((
        "s4.py_threads".into(),
        "Python `ThreadPoolExecutor` (GIL)".into(),
    ));
    rows.push((
        "s4.py_processes".into(),
        "Python `ProcessPoolExecutor`".into(),
    ));
    for (key, label) in rows {
        let (one, two) = (r.t(&format!("{key}_1")), r.t(&format!("{key}_2")));
        let python = key.starts_with("s4.py_");
        match (one, two) {
            (Some(a), Some(b)) => out.push_str(&format!(
                "| {label} | {} | {} | {:.2}× | {:.2}× | {} |\n",
                fmt_time(a.median),
                fmt_time(b.median),
                a.median / b.median,
                a.min / b.min,
                cpu_per_task(a.cpu.filter(|_| !python), b.cpu),
            )),
            _ => out.push_str(&format!("| {label} | — | — | — | — | — |\n")),
        }
    }
    out.push('\n');
}

const S5_TRIVIAL: &[Line] = &[
    (
        "s5.cf",
        "cf `ProcessPoolExecutor(1)`: `submit().result()`",
        Some("s5.raw_pinned"),
    ),
    (
        "s5.cf_await",
        "cf `ProcessPoolExecutor(1)`: `submit().await` (tokio current-thread)",
        Some("s5.raw_pinned"),
    ),
    (
        "s5.cf_pinned",
        "cf `ProcessPoolExecutor(1)`, both processes on one CPU: `submit().result()`",
        Some("s5.raw_pinned"),
    ),
    (
        "s5.raw_pinned",
        "raw, both processes on one CPU: a length-prefixed frame ping-ponged over a socketpair",
        None,
    ),
    (
        "s5.raw",
        "raw, placed by the kernel (see below)",
        Some("s5.raw_pinned"),
    ),
    (
        "s5.procspawn",
        "procspawn `Pool(1)`: `spawn().join()`",
        Some("s5.raw_pinned"),
    ),
    (
        "s5.py",
        "Python `ProcessPoolExecutor(1)`: `submit().result()`",
        Some("s5.raw_pinned"),
    ),
];

const S5_ECHO: &[Line] = &[
    (
        "s5.cf_echo",
        "cf `ProcessPoolExecutor(1)`, `ByteBlock` → `ByteBlock`",
        Some("s5.raw_echo_pinned"),
    ),
    (
        "s5.cf_echo_vec",
        "cf `ProcessPoolExecutor(1)`, plain `Vec<u8>` → `Vec<u8>`",
        Some("s5.raw_echo_pinned"),
    ),
    (
        "s5.cf_echo_pinned",
        "cf `ProcessPoolExecutor(1)`, both processes on one CPU, `ByteBlock` → `ByteBlock`",
        Some("s5.raw_echo_pinned"),
    ),
    (
        "s5.raw_echo_pinned",
        "raw, both processes on one CPU: the same ping-pong with a 1 MiB body",
        None,
    ),
    (
        "s5.raw_echo",
        "raw, placed by the kernel",
        Some("s5.raw_echo_pinned"),
    ),
    (
        "s5.procspawn_echo",
        "procspawn `Pool(1)`, bytes serialized with `serialize_bytes` (as `serde_bytes`)",
        Some("s5.raw_echo_pinned"),
    ),
    (
        "s5.py_echo",
        "Python `ProcessPoolExecutor(1)`, `bytes` → `bytes`",
        Some("s5.raw_echo_pinned"),
    ),
];

fn print_section5(out: &mut String, cfg: &Cfg, r: &Results) {
    out.push_str(&format!(
        "### 5. Process-pool round trip (one worker process, one task in flight)\n\n**Trivial task** (`u64` → `u64`), sequential ×{}\n\n",
        cfg.proc_rt_n
    ));
    time_table(out, r, S5_TRIVIAL, false);
    out.push_str("The raw reference is this binary re-run as `--echo`: each side reads a frame into a reused buffer and writes it back whole, blocking. Placed by the kernel, its two processes sometimes share a CPU (each hand-off a cheap switch) and sometimes not (each hand-off wakes an idle CPU, tens of µs on this VM), so its samples are bimodal; pinned to one CPU it is stable, and no faster placement was seen: that is the anchor. cf's pinned row pins the thread that creates its pool the same way, before the pool exists: its driver thread and worker process inherit the one CPU (checked), so that row and the pinned raw one compare like for like.\n\n");
    let speedup = |slow: &str| match ratio(r, slow, "s5.cf") {
        Some(x) => format!("{x:.1}×"),
        None => "—".into(),
    };
    out.push_str(&format!(
        "cf `result()` is {} faster than procspawn and {} faster than Python (medians).\n\n",
        speedup("s5.procspawn"),
        speedup("s5.py")
    ));
    out.push_str(&format!(
        "**{} B echoed back** (argument and result), sequential ×{} (plain `Vec<u8>`: ×{})\n\n",
        cfg.echo_bytes,
        cfg.echo_n,
        (cfg.echo_n / 10).max(1)
    ));
    time_table(out, r, S5_ECHO, false);
}

fn print_section6(out: &mut String, cfg: &Cfg, r: &Results) {
    out.push_str(&format!(
        "### 6. Thread references for the physical limit ×{}\n\n",
        cfg.rt_n
    ));
    time_table(
        out,
        r,
        &[
            (
                "s6.mpsc",
                "`std::sync::mpsc` ping-pong between two threads",
                None,
            ),
            ("s6.park", "park/unpark round trip", None),
            (
                "s1.cf_block",
                "cf `result()` round trip (§1)",
                Some("s6.park"),
            ),
        ],
        true,
    );
}

/// One of issue #9's sections: measures, records what the targets need, and returns its own report.
type ReportFn = fn(&Cfg, &mut Results) -> String;

/// One section of the suite: measures and records into `Results`.
type SectionFn = fn(&Cfg, &mut Results);

fn main() {
    // procspawn's pool workers are this binary re-run: they start serving here and never return. (Our
    // own process-pool workers never get this far: a constructor in the library takes them before
    // `main`, by a different environment marker.)
    procspawn::init();
    // `cargo bench` passes `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--probe") {
        probe_main(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--echo") {
        let busy_us = match args.get(1).map(String::as_str) {
            Some("busy") => args.get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
            _ => 0,
        };
        echo_main(args.get(1).map(String::as_str) == Some("pin"), busy_us);
        return;
    }
    // blocking's pool reads this once, on first use: give it the same 2 threads as the other pools
    // (§1 keeps one task in flight, so only §2 and the probes depend on it).
    if std::env::var_os("BLOCKING_MAX_THREADS").is_none() {
        std::env::set_var("BLOCKING_MAX_THREADS", "2");
    }
    let cfg = Cfg::from_env(&args);
    let started = machine::utc_now();
    let monitor = machine::Monitor::start();
    let start = Instant::now();
    eprintln!(
        "anchors: {} mode, {} repetitions after {} warm-up, sections {:?}",
        if cfg.quick { "QUICK" } else { "full" },
        cfg.reps,
        cfg.warmup,
        cfg.sections
    );
    let mut r = Results::default();
    let sections: [(u32, SectionFn); 6] = [
        (1, section1),
        (2, section2),
        (3, section3),
        (4, section4),
        (5, section5),
        (6, section6),
    ];
    // Each section's label and its start and end, in seconds from the start of the run.
    let mut spent: Vec<(String, f64, f64)> = Vec::new();
    let mut timed = |label: String, run: &mut dyn FnMut()| {
        let from = start.elapsed().as_secs_f64();
        run();
        spent.push((label, from, start.elapsed().as_secs_f64()));
    };
    // Issue #9's sections, on what a pool costs the program around it: reported first.
    let service_sections: [(u32, ReportFn); 5] = [
        (7, service::section7),
        (8, service::section8),
        (9, service::section9),
        (10, service::section10),
        (11, service::section11),
    ];
    let mut service_out = String::new();
    for (id, run) in service_sections {
        if cfg.runs(id) {
            timed(format!("§{id}"), &mut || {
                service_out.push_str(&run(&cfg, &mut r))
            });
        }
    }
    for (id, run) in sections {
        if cfg.runs(id) {
            timed(format!("§{id}"), &mut || run(&cfg, &mut r));
        }
    }
    let mut py = None;
    timed("Python".into(), &mut || py = python(&cfg, &mut r));
    let elapsed = start.elapsed();
    let load = monitor.finish(&spent);

    let mut out = String::new();
    out.push_str(if cfg.quick {
        "## Results (QUICK smoke run: smaller counts and fewer rounds, not for conclusions)\n\n"
    } else {
        "## Results (full run)\n\n"
    });
    out.push_str(&machine::facts(&cfg, py.as_deref(), &started));
    out.push_str(&load);
    let spent: Vec<String> = spent
        .iter()
        .map(|(label, from, to)| format!("{label} {:.0} s", to - from))
        .collect();
    out.push_str(&format!(
        "- total time: {:.0} s ({})\n\ncf = this crate (`concurrent_futures`). Ratios are of medians from this run; below 1.0× means faster than the anchor.\n\n",
        elapsed.as_secs_f64(),
        spent.join(", ")
    ));
    out.push_str(&service_out);
    if cfg.runs(1) {
        print_section1(&mut out, &cfg, &r);
    }
    if cfg.runs(2) {
        print_section2(&mut out, &cfg, &r);
    }
    if cfg.runs(3) {
        print_section3(&mut out, &cfg, &r);
    }
    if cfg.runs(4) {
        print_section4(&mut out, &cfg, &r);
    }
    if cfg.runs(5) {
        print_section5(&mut out, &cfg, &r);
    }
    if cfg.runs(6) {
        print_section6(&mut out, &cfg, &r);
    }
    targets::print_targets(&mut out, &r);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}
