//! A bounded load run on loopback against the axum example service (examples/http_service.rs): the
//! cheap endpoint's latency while the CPU endpoint is saturated, with the CPU work run
//!
//! - on a `ThreadPoolExecutor` of one worker per core (the example's way), and of one worker fewer (a
//!   core left to the runtime: less CPU throughput, for a shorter tail),
//! - inline on the runtime's threads (the mistake the pool exists to avoid),
//! - on tokio's `spawn_blocking` pool.
//!
//! The server runs on a multi-thread runtime with one worker per core. The load comes from a
//! current-thread runtime on another thread: `2 × cores` closed-loop clients keep the CPU endpoint
//! saturated (each request about 5 ms of work), while an open-loop client sends the cheap endpoint
//! `RATE` requests per second, each timed from its *scheduled* send time (so a stalled server cannot hide
//! its stall by slowing the client down). Every request is a new loopback connection.
//!
//! `cargo bench --bench http_load` (about 20 s). `HTTP_LOAD_SECS` changes the length of each run.

#[path = "../examples/http_service.rs"]
#[allow(dead_code)]
mod http_service;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concurrent_futures::ThreadPoolExecutor;
use http_service::{burn, http_get, serve, App, Backend};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Cheap requests per second.
const RATE: u64 = 200;
/// How long one CPU request works.
const CPU_WORK: Duration = Duration::from_millis(5);

struct Outcome {
    cheap: Vec<Duration>,
    cheap_failed: u64,
    cpu_done: u64,
    cpu_failed: u64,
    secs: f64,
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let secs: u64 = std::env::var("HTTP_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let iterations = calibrate();
    println!(
        "http_load: {cores} cores, server runtime {cores} workers, {} CPU clients of {} iterations (~{} ms), \
         cheap at {RATE}/s for {secs} s per backend",
        2 * cores,
        iterations,
        CPU_WORK.as_millis()
    );
    println!("load average before: {}", loadavg());
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10}",
        "backend", "cheap p50", "cheap p99", "cheap max", "cheap n", "failed", "cpu req/s"
    );
    for name in ["pool", "pool (cores-1)", "inline", "spawn_blocking"] {
        let pool = |workers: usize| {
            ThreadPoolExecutor::builder()
                .max_workers(workers.max(1))
                .queue_capacity(4 * cores)
                .build()
                .expect("pool")
        };
        let backend = match name {
            "pool" => Backend::Pool(pool(cores)),
            "pool (cores-1)" => Backend::Pool(pool(cores - 1)),
            "inline" => Backend::Inline,
            _ => Backend::SpawnBlocking,
        };
        let mut out = run(backend, cores, iterations, Duration::from_secs(secs));
        out.cheap.sort();
        let pct = |p: f64| {
            let i = ((out.cheap.len() as f64 * p).ceil() as usize).clamp(1, out.cheap.len()) - 1;
            out.cheap[i]
        };
        println!(
            "{:<16} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10.0}",
            name,
            fmt(pct(0.50)),
            fmt(pct(0.99)),
            fmt(*out.cheap.last().expect("samples")),
            out.cheap.len(),
            out.cheap_failed + out.cpu_failed,
            out.cpu_done as f64 / out.secs,
        );
    }
    println!("load average after: {}", loadavg());
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The iterations of `burn` that take about `CPU_WORK` on this machine.
fn calibrate() -> u64 {
    let token = CancellationToken::new();
    let probe = 20_000_000;
    let start = Instant::now();
    std::hint::black_box(burn(probe, &token));
    let per_iteration = start.elapsed().as_secs_f64() / probe as f64;
    (CPU_WORK.as_secs_f64() / per_iteration) as u64
}

fn run(backend: Backend, cores: usize, iterations: u64, length: Duration) -> Outcome {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("server runtime");
    let app = App::new(backend.clone());
    let listener = server_rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = server_rt.spawn(serve(listener, app.clone()));

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let out = std::thread::scope(|s| {
        s.spawn(|| client_rt.block_on(load(addr, cores, iterations, length)))
            .join()
            .expect("client")
    });

    app.shutdown.cancel();
    let _ = server_rt.block_on(server);
    if let Backend::Pool(pool) = &backend {
        pool.shutdown(concurrent_futures::Queued::Cancel);
    }
    server_rt.shutdown_timeout(Duration::from_secs(10));
    out
}

async fn load(addr: SocketAddr, cores: usize, iterations: u64, length: Duration) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_done = Arc::new(AtomicU64::new(0));
    let cpu_failed = Arc::new(AtomicU64::new(0));
    let path = format!("/cpu/{iterations}");
    let saturators: Vec<_> = (0..2 * cores)
        .map(|_| {
            let (stop, done, failed, path) = (
                stop.clone(),
                cpu_done.clone(),
                cpu_failed.clone(),
                path.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match http_get(addr, &path, Some(10_000)).await {
                        Ok((200, _)) => done.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    // Let the CPU endpoint reach saturation before measuring.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let done_before = cpu_done.load(Ordering::Relaxed);

    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / RATE));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut cheap = Vec::new();
    while started.elapsed() < length {
        let scheduled = ticks.tick().await;
        cheap.push(tokio::spawn(async move {
            let answer = http_get(addr, "/cheap", None).await;
            (matches!(answer, Ok((200, _))), scheduled.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(cheap.len());
    let mut cheap_failed = 0;
    for request in cheap {
        let (ok, latency) = request.await.expect("cheap request task");
        if ok {
            latencies.push(latency);
        } else {
            cheap_failed += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let done = cpu_done.load(Ordering::Relaxed) - done_before;
    stop.store(true, Ordering::Relaxed);
    for s in saturators {
        let _ = s.await;
    }
    Outcome {
        cheap: latencies,
        cheap_failed,
        cpu_done: done,
        cpu_failed: cpu_failed.load(Ordering::Relaxed),
        secs,
    }
}
