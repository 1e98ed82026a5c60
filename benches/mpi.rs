//! The MPI pool against its anchor, Python's `mpi4py.futures.MPIPoolExecutor`, and against this
//! crate's own process pool, on the same machine (issue 11).
//!
//! ```sh
//! cargo bench --features mpi --bench mpi                # full run (~1 min on 2 cores)
//! BENCH_QUICK=1 cargo bench --features mpi --bench mpi  # smoke run: counts / 10
//! ```
//!
//! Both MPI pools run in spawn mode with 2 workers, over Open MPI's TCP transport on loopback (set
//! `OMPI_MCA_btl=tcp,self` and friends in the environment, as `.ci/run` does; as root Open MPI also
//! needs `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`). Sections: 1 round trip of a
//! trivial task, one in flight; 2 throughput of many small tasks submitted at once; 3 round trip of
//! a 1 MiB echo; 4 an idle pool's CPU. Each row gives wall time and the CPU the client process and
//! the workers spent per task (the workers report their own `getrusage`), and its ratio to the
//! mpi4py row measured in this run. The Python anchor is `benches/mpi_anchor.py`, run with
//! `/usr/bin/python3` (Debian's, which has `python3-mpi4py`); skipped if it fails.
//!
//! Nothing here runs under `cargo test` or gates CI.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use concurrent_futures::{ByteBlock, Executor, MpiPoolExecutor, ProcessPoolExecutor, Queued};

fn ident(x: u64) -> u64 {
    x
}

fn echo(b: ByteBlock) -> ByteBlock {
    b
}

/// This process's CPU seconds (user + system).
fn cpu() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `getrusage` fills the struct it is given.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn pid_cpu(_: u32) -> (u32, f64) {
    (std::process::id(), cpu())
}

/// The workers' CPU seconds: many asks, the largest answer per pid (one ask per worker is not
/// guaranteed to reach each).
fn workers_cpu(pool: &impl Executor) -> f64 {
    let mut seen: HashMap<u32, f64> = HashMap::new();
    for r in pool.map(pid_cpu, 0..16).unwrap() {
        let (pid, t) = r.unwrap();
        let e = seen.entry(pid).or_default();
        *e = e.max(t);
    }
    seen.values().sum()
}

#[derive(Default, Debug)]
struct Row {
    round_trip_s: f64,
    round_trip_client_cpu_s: f64,
    round_trip_workers_cpu_s: f64,
    throughput_per_s: f64,
    throughput_client_cpu_s: f64,
    throughput_workers_cpu_s: f64,
    mib_echo_s: f64,
    idle_client_cpu_frac: f64,
    idle_workers_cpu_frac: f64,
}

struct Counts {
    rounds: u64,
    tasks: u64,
    big_rounds: u64,
    idle_secs: u64,
}

fn measure(pool: &impl Executor, n: &Counts, idle: bool) -> Row {
    let mut row = Row::default();
    pool.submit(ident, 0).unwrap().result(None).unwrap();
    pool.map(ident, 0..100).unwrap().into_iter().for_each(|r| {
        r.unwrap();
    });

    let (c0, w0, t0) = (cpu(), workers_cpu(pool), Instant::now());
    for i in 0..n.rounds {
        assert_eq!(pool.submit(ident, i).unwrap().result(None).unwrap(), i);
    }
    let t = t0.elapsed().as_secs_f64();
    let (c1, w1) = (cpu(), workers_cpu(pool));
    row.round_trip_s = t / n.rounds as f64;
    row.round_trip_client_cpu_s = (c1 - c0) / n.rounds as f64;
    row.round_trip_workers_cpu_s = (w1 - w0) / n.rounds as f64;

    let (c0, w0, t0) = (cpu(), workers_cpu(pool), Instant::now());
    let fs: Vec<_> = (0..n.tasks)
        .map(|i| pool.submit(ident, i).unwrap())
        .collect();
    for mut f in fs {
        f.result(None).unwrap();
    }
    let t = t0.elapsed().as_secs_f64();
    let (c1, w1) = (cpu(), workers_cpu(pool));
    row.throughput_per_s = n.tasks as f64 / t;
    row.throughput_client_cpu_s = (c1 - c0) / n.tasks as f64;
    row.throughput_workers_cpu_s = (w1 - w0) / n.tasks as f64;

    let big: ByteBlock = (0..1u32 << 20).map(|i| (i * 7) as u8).collect();
    pool.submit(echo, big.clone())
        .unwrap()
        .result(None)
        .unwrap();
    let t0 = Instant::now();
    for _ in 0..n.big_rounds {
        let back = pool
            .submit(echo, big.clone())
            .unwrap()
            .result(None)
            .unwrap();
        assert_eq!(back.len(), big.len());
    }
    row.mib_echo_s = t0.elapsed().as_secs_f64() / n.big_rounds as f64;

    if idle {
        let (c0, w0) = (cpu(), workers_cpu(pool));
        std::thread::sleep(Duration::from_secs(n.idle_secs));
        let (c1, w1) = (cpu(), workers_cpu(pool));
        row.idle_client_cpu_frac = (c1 - c0) / n.idle_secs as f64;
        row.idle_workers_cpu_frac = (w1 - w0) / n.idle_secs as f64;
    }
    row
}

fn python(n: &Counts) -> Option<Row> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/mpi_anchor.py");
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .args([n.rounds, n.tasks, n.big_rounds, n.idle_secs].map(|v| v.to_string()))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "mpi4py anchor failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rfind(|l| l.starts_with('{'))?;
    let field = |name: &str| -> f64 {
        let at = line.find(&format!("\"{name}\": ")).expect(name) + name.len() + 4;
        let rest = &line[at..];
        let end = rest.find([',', '}']).unwrap();
        rest[..end].trim().parse().unwrap()
    };
    Some(Row {
        round_trip_s: field("round_trip_s"),
        round_trip_client_cpu_s: field("round_trip_client_cpu_s"),
        round_trip_workers_cpu_s: field("round_trip_workers_cpu_s"),
        throughput_per_s: field("throughput_per_s"),
        throughput_client_cpu_s: field("throughput_client_cpu_s"),
        throughput_workers_cpu_s: field("throughput_workers_cpu_s"),
        mib_echo_s: field("mib_echo_s"),
        idle_client_cpu_frac: field("idle_client_cpu_frac"),
        idle_workers_cpu_frac: field("idle_workers_cpu_frac"),
    })
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let div = if quick { 10 } else { 1 };
    let n = Counts {
        rounds: 2000 / div,
        tasks: 20_000 / div,
        big_rounds: 100 / div,
        idle_secs: if quick { 2 } else { 10 },
    };
    println!(
        "MPI pool vs mpi4py.futures vs the process pool: 2 workers, spawn mode; {} round trips, {} \
         tasks at once, {} 1 MiB echoes, {} s idle",
        n.rounds, n.tasks, n.big_rounds, n.idle_secs
    );
    let py = python(&n);
    let mpi = {
        let pool = MpiPoolExecutor::new(2).unwrap();
        let row = measure(&pool, &n, true);
        pool.shutdown(Queued::Run);
        row
    };
    let procs = {
        let pool = ProcessPoolExecutor::new(2).unwrap();
        let row = measure(&pool, &n, true);
        pool.shutdown(Queued::Run);
        row
    };

    let ratio = |ours: f64, theirs: Option<f64>| match theirs {
        Some(t) if t > 0.0 => format!("{:.2}x", ours / t),
        _ => "-".into(),
    };
    let us = |s: f64| format!("{:.1} µs", s * 1e6);
    let missing = Row::default();
    let rows: [(&str, &Row); 3] = [
        ("MpiPoolExecutor", &mpi),
        ("ProcessPoolExecutor", &procs),
        ("mpi4py.futures", py.as_ref().unwrap_or(&missing)),
    ];
    println!("\n1. round trip of a trivial task (one in flight)");
    println!("| pool | wall per task | vs mpi4py | client CPU per task | workers' CPU per task |");
    println!("|---|---|---|---|---|");
    for (name, r) in rows {
        println!(
            "| {name} | {} | {} | {} | {} |",
            us(r.round_trip_s),
            ratio(r.round_trip_s, py.as_ref().map(|p| p.round_trip_s)),
            us(r.round_trip_client_cpu_s),
            us(r.round_trip_workers_cpu_s)
        );
    }
    println!(
        "\n2. throughput: {} trivial tasks submitted at once",
        n.tasks
    );
    println!("| pool | tasks/s | vs mpi4py | client CPU per task | workers' CPU per task |");
    println!("|---|---|---|---|---|");
    for (name, r) in rows {
        println!(
            "| {name} | {:.0} | {} | {} | {} |",
            r.throughput_per_s,
            ratio(r.throughput_per_s, py.as_ref().map(|p| p.throughput_per_s)),
            us(r.throughput_client_cpu_s),
            us(r.throughput_workers_cpu_s)
        );
    }
    println!("\n3. round trip of a 1 MiB echo");
    println!("| pool | wall per echo | vs mpi4py |");
    println!("|---|---|---|");
    for (name, r) in rows {
        println!(
            "| {name} | {} | {} |",
            us(r.mib_echo_s),
            ratio(r.mib_echo_s, py.as_ref().map(|p| p.mib_echo_s))
        );
    }
    println!(
        "\n4. an idle pool, {} s: CPU as a share of one core",
        n.idle_secs
    );
    println!("| pool | client | workers (together) |");
    println!("|---|---|---|");
    for (name, r) in rows {
        println!(
            "| {name} | {:.2} % | {:.2} % |",
            r.idle_client_cpu_frac * 100.0,
            r.idle_workers_cpu_frac * 100.0
        );
    }
}
