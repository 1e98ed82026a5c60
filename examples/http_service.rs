//! An axum service that does CPU-heavy work through a `ThreadPoolExecutor`, with a per-request deadline.
//!
//! - `GET /cheap` answers at once: it must stay fast while the CPU endpoint is saturated, which is what
//!   the pool is for (the runtime's threads only wait for the work, they never run it).
//! - `GET /cpu/{iterations}` burns CPU on the pool. The `x-deadline-ms` header (default 1000) bounds the
//!   whole request, queue wait included. `503 Service Unavailable` when the pool's bounded queue is full
//!   (the work is refused at once: `try_spawn`), `504 Gateway Timeout` when the deadline expires, and
//!   then the work is stopped: cancelled if still queued (`PoolFuture::interrupt`), or told to stop
//!   through a tokio-util `CancellationToken` it polls if running. A client that goes away stops its work
//!   the same way, and so does shutting the service down (each request's token is a child of the
//!   service's).
//!
//! Run with no arguments, it starts on an ephemeral loopback port, sends itself a few requests (a cheap
//! one, a CPU one, one past its deadline, a burst that overfills the queue), prints the answers and
//! exits. With `--serve ADDR` (e.g. `--serve 127.0.0.1:3000`) it serves until Ctrl-C:
//!
//! ```text
//! cargo run --release --example http_service -- --serve 127.0.0.1:3000
//! curl -i localhost:3000/cpu/50000000 -H 'x-deadline-ms: 100'
//! ```
//!
//! `tests/http_service.rs` and `benches/http_load.rs` include this file as a module for its router, its
//! CPU work and its small HTTP client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use concurrent_futures::{Error, ThreadPoolExecutor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Where the CPU endpoint runs its work: the point of the example is `Pool`; the other two are what a
/// service does without it, measured by `benches/http_load.rs`.
#[derive(Clone, Debug)]
pub enum Backend {
    /// On the pool, with the deadline and the bounded queue.
    Pool(ThreadPoolExecutor),
    /// On the runtime's own threads, inside the handler (what not to do).
    Inline,
    /// On tokio's blocking pool (`spawn_blocking`: up to 512 threads, no bound on the queue).
    SpawnBlocking,
}

/// The service's state.
#[derive(Clone, Debug)]
pub struct App {
    pub backend: Backend,
    /// Cancelled when the service shuts down; each CPU request's token is a child of it.
    pub shutdown: CancellationToken,
    pub default_deadline: Duration,
    /// Work that noticed its token and stopped early.
    pub stopped: Arc<AtomicU64>,
}

impl App {
    pub fn new(backend: Backend) -> Self {
        App {
            backend,
            shutdown: CancellationToken::new(),
            default_deadline: Duration::from_millis(1000),
            stopped: Arc::new(AtomicU64::new(0)),
        }
    }
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/cheap", get(cheap))
        .route("/cpu/{iterations}", get(cpu))
        .with_state(app)
}

async fn cheap() -> &'static str {
    "ok"
}

/// The CPU work: a chain of xorshift steps, polling `stop` every 4096 steps. `None` if it stopped.
pub fn burn(iterations: u64, stop: &CancellationToken) -> Option<u64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..iterations {
        if i % 4096 == 0 && stop.is_cancelled() {
            return None;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(i);
    }
    Some(x)
}

async fn cpu(
    State(app): State<App>,
    Path(iterations): Path<u64>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let deadline = headers
        .get("x-deadline-ms")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(app.default_deadline);
    let started = Instant::now();
    let token = app.shutdown.child_token();
    // Dropped with the handler (the client went away) or at its end: either way the work stops.
    let _stop_when_done = token.clone().drop_guard();
    let stop = token.clone();
    let stopped = app.stopped.clone();
    let work = move || {
        let out = burn(iterations, &stop);
        if out.is_none() {
            stopped.fetch_add(1, Ordering::Relaxed);
        }
        out
    };
    let pool = match &app.backend {
        Backend::Pool(pool) => pool,
        Backend::Inline => return answer(Ok(work()), iterations),
        Backend::SpawnBlocking => {
            let outcome = tokio::task::spawn_blocking(work).await;
            return answer(
                outcome.map_err(|e| Error::Panicked(e.to_string().into())),
                iterations,
            );
        }
    };
    // Never blocks the runtime: a full queue is an immediate 503.
    let mut fut = match pool.try_spawn(work) {
        Ok(fut) => fut,
        Err(rejected) if rejected.is_full() => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: the pool's queue is full\n".into(),
            )
        }
        Err(rejected) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{}\n", rejected.error()),
            )
        }
    };
    tokio::select! {
        outcome = &mut fut => answer(outcome, iterations),
        _ = tokio::time::sleep(deadline) => {
            // Cancelled if it never started; otherwise its token tells the running work to stop.
            let never_ran = fut.interrupt();
            token.cancel();
            let what = if never_ran { "cancelled before it started" } else { "stopped while running" };
            (
                StatusCode::GATEWAY_TIMEOUT,
                format!("deadline of {} ms expired after {} ms; the work was {what}\n",
                    deadline.as_millis(), started.elapsed().as_millis()),
            )
        }
    }
}

fn answer(outcome: Result<Option<u64>, Error>, iterations: u64) -> (StatusCode, String) {
    match outcome {
        Ok(Some(checksum)) => (
            StatusCode::OK,
            format!("iterations={iterations} checksum={checksum:016x}\n"),
        ),
        Ok(None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "stopped: the service is shutting down\n".into(),
        ),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// Serves `app` on `listener` until `app.shutdown` is cancelled.
pub async fn serve(listener: TcpListener, app: App) -> std::io::Result<()> {
    let shutdown = app.shutdown.clone();
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// A minimal HTTP/1.1 client (one request per connection): the status code and the body.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    deadline_ms: Option<u64>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let extra = deadline_ms
        .map(|ms| format!("x-deadline-ms: {ms}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n{extra}connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The pool the example serves with: two workers and a queue of two, so a burst overfills it.
pub fn demo_pool() -> Result<ThreadPoolExecutor, Error> {
    ThreadPoolExecutor::builder()
        .max_workers(2)
        .queue_capacity(2)
        .thread_name_prefix("cpu")
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let app = App::new(Backend::Pool(demo_pool()?));
    if let [flag, addr] = args.as_slice() {
        if flag == "--serve" {
            let listener = TcpListener::bind(addr.as_str()).await?;
            println!(
                "serving on http://{}  (Ctrl-C stops)",
                listener.local_addr()?
            );
            let shutdown = app.shutdown.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
            });
            serve(listener, app).await?;
            return Ok(());
        }
    }
    if !args.is_empty() {
        return Err("usage: http_service [--serve ADDR]".into());
    }

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("serving on http://{addr}, sending a few requests to itself");
    let server = tokio::spawn(serve(listener, app.clone()));

    let show = |what: &str, (status, body): (u16, String)| {
        println!("{what:<44} -> {status} {}", body.trim_end());
    };
    show("GET /cheap", http_get(addr, "/cheap", None).await?);
    show(
        "GET /cpu/2000000",
        http_get(addr, "/cpu/2000000", None).await?,
    );
    show(
        "GET /cpu/10000000000 (deadline 100 ms)",
        http_get(addr, "/cpu/10000000000", Some(100)).await?,
    );

    // A burst of six long requests on two workers and a queue of two: the overflow is refused at once
    // (503), the rest are stopped at their deadline (504).
    let burst: Vec<_> = (0..6)
        .map(|_| tokio::spawn(http_get(addr, "/cpu/10000000000", Some(300))))
        .collect();
    let mut by_status = std::collections::BTreeMap::new();
    for request in burst {
        let (status, _) = request.await??;
        *by_status.entry(status).or_insert(0) += 1;
    }
    println!(
        "{:<44} -> by status: {by_status:?}",
        "burst of 6 long requests (deadline 300 ms)"
    );
    show(
        "GET /cheap (during and after all that)",
        http_get(addr, "/cheap", None).await?,
    );

    app.shutdown.cancel();
    server.await??;
    if let Backend::Pool(pool) = &app.backend {
        pool.shutdown_async(concurrent_futures::Queued::Cancel)
            .await;
        println!(
            "stopped early: {} running, {} cancelled in the queue; pool {:?}",
            app.stopped.load(Ordering::Relaxed),
            pool.metrics().cancelled,
            pool.metrics()
        );
    }
    Ok(())
}
