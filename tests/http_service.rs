//! The axum example service (examples/http_service.rs), started on an ephemeral loopback port and sent
//! real HTTP requests: the answers, the deadline path (504, and the work stopped), the full queue (503)
//! and shutdown stopping in-flight work.

mod common;

// The example's router, CPU work and client; its `main` is not used here.
#[path = "../examples/http_service.rs"]
#[allow(dead_code)]
mod http_service;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::LONG;
use concurrent_futures::ThreadPoolExecutor;
use http_service::{burn, http_get, serve, App, Backend};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Far more work than any test waits for: only a stop ends it.
const FOREVER: u64 = u64::MAX;

async fn start(pool: &ThreadPoolExecutor) -> (App, SocketAddr, JoinHandle<std::io::Result<()>>) {
    let app = App::new(Backend::Pool(pool.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, app.clone()));
    (app, addr, server)
}

fn pool(workers: usize, queue: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(workers)
        .queue_capacity(queue)
        .build()
        .unwrap()
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(LONG, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

async fn get(addr: SocketAddr, path: &str, deadline_ms: Option<u64>) -> (u16, String) {
    tokio::time::timeout(LONG, http_get(addr, path, deadline_ms))
        .await
        .expect("the request hung")
        .expect("the request failed")
}

#[tokio::test]
async fn cheap_and_cpu_requests_are_answered() {
    let pool = pool(2, 4);
    let (app, addr, server) = start(&pool).await;
    assert_eq!(get(addr, "/cheap", None).await, (200, "ok".into()));
    let expected = burn(100_000, &CancellationToken::new()).unwrap();
    let (status, body) = get(addr, "/cpu/100000", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!("iterations=100000 checksum={expected:016x}\n")
    );
    app.shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_expired_deadline_answers_504_and_stops_the_work() {
    let pool = pool(1, 4);
    let (app, addr, server) = start(&pool).await;
    let (status, body) = get(addr, &format!("/cpu/{FOREVER}"), Some(50)).await;
    assert_eq!(status, 504, "{body}");
    assert!(body.starts_with("deadline of 50 ms expired"), "{body}");
    // Stopped: either it was running and noticed its token, or it was cancelled in the queue.
    until("the work has stopped", || {
        let m = pool.metrics();
        m.running == 0 && app.stopped.load(Ordering::Relaxed) + m.cancelled == 1
    })
    .await;
    // The worker is free again.
    assert_eq!(get(addr, "/cpu/1000", None).await.0, 200);
    app.shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_full_queue_answers_503_and_shutdown_stops_in_flight_work() {
    // One worker and a queue of one: a running request and a queued one fill the pool.
    let pool = pool(1, 1);
    let (app, addr, server) = start(&pool).await;
    let path = format!("/cpu/{FOREVER}");
    let running = tokio::spawn({
        let path = path.clone();
        async move { get(addr, &path, Some(60_000)).await }
    });
    until("one request runs", || pool.metrics().running == 1).await;
    let queued = tokio::spawn({
        let path = path.clone();
        async move { get(addr, &path, Some(60_000)).await }
    });
    until("one request is queued", || pool.metrics().queued == 1).await;

    let (status, body) = get(addr, &path, Some(60_000)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, "busy: the pool's queue is full\n");
    // The cheap endpoint does not wait for the pool.
    assert_eq!(get(addr, "/cheap", None).await.0, 200);

    // Shutting the service down cancels every request's token: the running work stops, the queued
    // work stops as soon as it starts, and both requests are answered before the server ends.
    app.shutdown.cancel();
    for request in [running, queued] {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body, "stopped: the service is shutting down\n");
    }
    server.await.unwrap().unwrap();
    assert_eq!(app.stopped.load(Ordering::Relaxed), 2);
}
