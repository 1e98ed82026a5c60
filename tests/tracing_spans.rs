//! The `tracing` feature: one span per task, captured here by a layer of our own. Run with
//! `cargo test --features tracing --test tracing_spans`; without the feature this file is empty.
#![cfg(feature = "tracing")]

mod common;

use std::collections::HashMap;
use std::fmt;
use std::sync::{mpsc, Mutex, OnceLock};

use common::LONG;
use concurrent_futures::{Error, PoolFuture, ThreadPoolExecutor};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A span as it was when it closed.
#[derive(Clone, Debug, Default)]
struct Captured {
    name: String,
    fields: HashMap<String, String>,
    parent: Option<String>,
    /// Names of the threads it was entered on.
    entered_on: Vec<String>,
}

impl Visit for Captured {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.fields
            .insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields
            .insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields
            .insert(field.name().to_owned(), value.to_string());
    }
}

struct Capture;

fn closed() -> &'static Mutex<Vec<Captured>> {
    static CLOSED: OnceLock<Mutex<Vec<Captured>>> = OnceLock::new();
    CLOSED.get_or_init(|| Mutex::new(Vec::new()))
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a new span exists");
        let mut captured = Captured {
            name: span.name().to_owned(),
            parent: span.parent().map(|p| p.name().to_owned()),
            ..Captured::default()
        };
        attrs.record(&mut captured);
        span.extensions_mut().insert(captured);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a recorded span exists");
        if let Some(c) = span.extensions_mut().get_mut::<Captured>() {
            values.record(c);
        };
    }
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("an entered span exists");
        if let Some(c) = span.extensions_mut().get_mut::<Captured>() {
            let thread = std::thread::current();
            c.entered_on.push(thread.name().unwrap_or("?").to_owned());
        };
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).expect("a closing span exists");
        let captured = span.extensions_mut().remove::<Captured>();
        if let Some(c) = captured {
            closed().lock().unwrap().push(c);
        }
    }
}

/// Installs the capturing subscriber once for the whole test binary; tests tell their spans apart by
/// their pool's name.
fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
    });
}

/// The closed `task` span of the future with this id, waiting (bounded) for it to close: a worker
/// closes a span right after the task's closure returns, which may be just after the future is done.
fn task_span_of<T>(f: &PoolFuture<T>) -> Captured {
    let id = f.id().to_string().trim_start_matches('#').to_owned();
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let found = closed()
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.name == "task" && c.fields.get("task.id") == Some(&id))
            .cloned();
        if let Some(c) = found {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no closed span for task {id}"
        );
        std::thread::yield_now();
    }
}

fn pool(name: &str, workers: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(workers)
        .thread_name_prefix(name)
        .build()
        .unwrap()
}

#[test]
fn a_task_span_is_entered_on_the_worker_under_the_submitters_span() {
    install();
    let pool = pool("spans-basic", 1);
    let mut f = tracing::info_span!("request").in_scope(|| pool.spawn(|| 6 * 7).unwrap());
    assert_eq!(f.result(LONG).unwrap(), 42);
    let span = task_span_of(&f);
    assert_eq!(span.parent.as_deref(), Some("request"));
    assert_eq!(span.fields["pool"], "spans-basic");
    assert_eq!(span.fields["pool.kind"], "thread");
    assert_eq!(span.fields["outcome"], "returned");
    for field in ["queue_wait_us", "run_us"] {
        let micros: u64 = span.fields[field].parse().unwrap();
        assert!(micros < LONG.as_micros() as u64, "{field} = {micros}");
    }
    assert_eq!(span.entered_on.len(), 1);
    assert!(
        span.entered_on[0].starts_with("spans-basic"),
        "{:?}",
        span.entered_on
    );
}

#[test]
fn outcomes_are_recorded() {
    install();
    let pool = pool("spans-outcomes", 1);

    let mut panicked = pool.spawn(|| -> u8 { panic!("no") }).unwrap();
    assert!(matches!(panicked.result(LONG), Err(Error::Panicked(_))));
    assert_eq!(task_span_of(&panicked).fields["outcome"], "panicked");

    let mut failed = pool.spawn_fallible(|| "x".parse::<u8>()).unwrap();
    assert!(matches!(failed.result(LONG), Err(Error::Failed(_))));
    assert_eq!(task_span_of(&failed).fields["outcome"], "failed");

    // Held by a running task, a queued one is cancelled: its span closes without running.
    let (started_tx, started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let mut busy = pool
        .spawn_cancellable(move |token| {
            started_tx.send(()).unwrap();
            released.recv_timeout(LONG).unwrap();
            token.check()
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    let queued = pool.spawn(|| ()).unwrap();
    assert!(queued.cancel());
    let span = task_span_of(&queued);
    assert_eq!(span.fields["outcome"], "cancelled");
    assert!(span.fields.contains_key("queue_wait_us"));
    assert!(!span.fields.contains_key("run_us"));
    assert!(span.entered_on.is_empty());

    assert!(busy.interrupt());
    release.send(()).unwrap();
    assert!(matches!(busy.result(LONG), Err(Error::Interrupted)));
    assert_eq!(task_span_of(&busy).fields["outcome"], "interrupted");
}

#[test]
fn map_and_async_submits_have_spans() {
    install();
    let pool = pool("spans-map", 2);
    let results: Vec<u32> = pool
        .map(|n: u32| n + 1, 0..4)
        .unwrap()
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results, [1, 2, 3, 4]);
    let mut f = futures::executor::block_on(pool.spawn_async(|| 1)).unwrap();
    f.result(LONG).unwrap();
    assert_eq!(task_span_of(&f).fields["pool"], "spans-map");
    pool.shutdown(concurrent_futures::Queued::Run);
    let map_spans = closed()
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.fields.get("pool").map(String::as_str) == Some("spans-map"))
        .count();
    assert_eq!(map_spans, 5, "four map tasks and one spawn_async");
}

#[test]
fn scoped_tasks_have_spans() {
    install();
    let pool = pool("spans-scope", 2);
    let data = [1u32, 2, 3];
    let sum: u32 = pool.scope(|s| {
        let h = s.spawn(|| data.iter().sum::<u32>()).unwrap();
        h.join().unwrap()
    });
    assert_eq!(sum, 6);
    pool.shutdown(concurrent_futures::Queued::Run);
    let spans: Vec<Captured> = closed()
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.fields.get("pool").map(String::as_str) == Some("spans-scope"))
        .cloned()
        .collect();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].fields["outcome"], "returned");
}

fn triple(n: u64) -> u64 {
    n * 3
}

#[cfg(target_os = "linux")]
#[test]
fn a_process_pool_task_has_a_span_on_the_parent() {
    install();
    let pool = concurrent_futures::ProcessPoolExecutor::new(1).unwrap();
    let mut f = tracing::info_span!("batch").in_scope(|| pool.submit(triple, 14).unwrap());
    assert_eq!(f.result(LONG).unwrap(), 42);
    let span = task_span_of(&f);
    assert_eq!(span.parent.as_deref(), Some("batch"));
    assert_eq!(span.fields["pool.kind"], "process");
    assert_eq!(span.fields["outcome"], "returned");
    assert!(span.fields.contains_key("queue_wait_us"));
    assert!(span.fields.contains_key("run_us"));
    pool.shutdown(concurrent_futures::Queued::Run);
}
