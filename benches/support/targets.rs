//! The report's verdicts: every target of issue #9 in one table, then issue #4's others, each computed
//! from this run's medians (a row whose section did not run says so).
//!
//! The sections record what the targets need into `Results`: §1–§6 their timings and values, §7–§11
//! (`service.rs`) their ratios, §7 one per setting.

use super::service::{setting_key, HOG_COUNTS, LOADS, WS};
use super::{ratio, Results};

/// Which way a target's measured value must lie from its threshold.
#[derive(Clone, Copy)]
enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

impl Bound {
    fn met(self, m: f64) -> bool {
        match self {
            Bound::AtMost(b) => m <= b,
            Bound::AtLeast(b) => m >= b,
        }
    }

    /// How far a value misses, in percent of the threshold.
    fn missed_by(self, m: f64) -> f64 {
        match self {
            Bound::AtMost(b) => (m / b - 1.0) * 100.0,
            Bound::AtLeast(b) => (1.0 - m / b) * 100.0,
        }
    }

    fn show(self, unit: &str) -> String {
        let (op, b) = match self {
            Bound::AtMost(b) => ("≤", b),
            Bound::AtLeast(b) => ("≥", b),
        };
        // Ratios with one decimal (1.0×, 1.5×), sizes and percentages as they are (96 B, 1 %).
        if unit == "×" {
            format!("{op} {b:.1}{unit}")
        } else {
            format!("{op} {b}{unit}")
        }
    }
}

/// What a target's row measured in this run.
enum Measured {
    /// Its section did not run (or an anchor it needs did not).
    NotRun,
    One(f64),
    /// One value per setting, each held to the bound on its own (§7's 18 settings).
    PerSetting(Vec<(String, f64)>),
}

struct Target {
    what: String,
    measured: Measured,
    bound: Bound,
    unit: &'static str,
}

impl Target {
    fn new(what: &str, measured: Option<f64>, bound: Bound, unit: &'static str) -> Target {
        Target {
            what: what.into(),
            measured: measured
                .filter(|m| m.is_finite())
                .map_or(Measured::NotRun, Measured::One),
            bound,
            unit,
        }
    }

    /// A same-run ratio that must not exceed `max`.
    fn ratio(what: &str, measured: Option<f64>, max: f64) -> Target {
        Target::new(what, measured, Bound::AtMost(max), "×")
    }

    /// The table's measured and status cells, and whether the target was met (`None`: not run).
    fn cells(&self) -> (String, String, Option<bool>) {
        let unit = self.unit;
        match &self.measured {
            Measured::NotRun => ("—".into(), "not run".into(), None),
            Measured::One(m) => {
                let met = self.bound.met(*m);
                let status = if met {
                    "met".into()
                } else {
                    format!("**missed** by {:.0} %", self.bound.missed_by(*m))
                };
                (format!("{m:.2}{unit}"), status, Some(met))
            }
            Measured::PerSetting(values) => {
                let n = values.len();
                let met = values.iter().filter(|(_, v)| self.bound.met(*v)).count();
                let (lo, hi) = values
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
                        (lo.min(*v), hi.max(*v))
                    });
                let measured = format!("met in {met} of {n}; {lo:.2}–{hi:.2}{unit}");
                let worst = values
                    .iter()
                    .map(|(label, v)| (label, self.bound.missed_by(*v)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let status = match worst {
                    Some((label, by)) if met < n => format!(
                        "**missed** in {} of {n}, by up to {by:.0} % ({label})",
                        n - met
                    ),
                    _ => "met".into(),
                };
                (measured, status, Some(met == n))
            }
        }
    }
}

/// How many times faster `fast` ran than `slow` (a throughput or a speed-up).
fn speedup(r: &Results, slow: &str, fast: &str) -> Option<f64> {
    Some(r.t(slow)?.median / r.t(fast)?.median)
}

/// §7's ratio for `metric` in each of the 18 settings that ran.
fn service(r: &Results, what: &str, metric: &str) -> Target {
    let mut values = Vec::new();
    for hogs in HOG_COUNTS {
        for w in WS {
            for load in LOADS {
                if let Some(v) = r
                    .v(&setting_key(hogs, w, load, metric))
                    .filter(|v| v.is_finite())
                {
                    let label = format!("{hogs} hogs, W {w} µs, {:.0} %", load * 100.0);
                    values.push((label, v));
                }
            }
        }
    }
    Target {
        what: what.into(),
        measured: if values.is_empty() {
            Measured::NotRun
        } else {
            Measured::PerSetting(values)
        },
        bound: Bound::AtMost(1.0),
        unit: "×",
    }
}

/// Issue #9's targets, in the issue's order.
fn issue9(r: &Results) -> Vec<Target> {
    let at_least =
        |what: &str, m: Option<f64>, min: f64| Target::new(what, m, Bound::AtLeast(min), "×");
    vec![
        service(r, "(a) service p50 ÷ best anchor (W 5/50/500 µs × load 30/70/95 % × 0 or 2 hogs)", "p50"),
        service(r, "(a) service p99 ÷ best anchor", "p99"),
        service(r, "(a) service CPU per request ÷ `spawn_blocking`", "cpu"),
        service(r, "(a) service ticker lateness p99 ÷ best anchor's", "tick"),
        Target::ratio("(b) one CPU, 1 µs task: cf `result()` ÷ `spawn_blocking`", r.v("s8.cf_block"), 1.2),
        Target::ratio("(b) one CPU, 1 µs task: cf `.await` ÷ `spawn_blocking`", r.v("s8.cf_await"), 1.2),
        at_least(
            "(c) many pools: neighbours' throughput next to cf pools ÷ next to `spawn_blocking` pools",
            r.v("s9.neighbours_cf"),
            0.9,
        ),
        Target::ratio("(d) CPU per task, one per 100 µs: cf `.await` ÷ `spawn_blocking`", r.v("s10.100.cf_await"), 1.1),
        Target::ratio("(d) CPU per task, one per 100 µs: cf `result()` ÷ `spawn_blocking`", r.v("s10.100.cf_block"), 1.1),
        Target::ratio("(d) CPU per task, one per 1 ms: cf `.await` ÷ `spawn_blocking`", r.v("s10.1000.cf_await"), 1.1),
        Target::ratio("(d) CPU per task, one per 1 ms: cf `result()` ÷ `spawn_blocking`", r.v("s10.1000.cf_block"), 1.1),
        Target::ratio("(e) process pool parent CPU per task ÷ raw socketpair, 200 µs task", r.v("s11.200"), 1.2),
        Target::ratio("(e) process pool parent CPU per task ÷ raw socketpair, trivial task", r.v("s11.0"), 1.2),
        Target::ratio("idle: awaited round trip ÷ rayon+oneshot, current-thread runtime", ratio(r, "s1.cf_ct", "s1.rayon_ct"), 1.0),
        Target::ratio("idle: awaited round trip ÷ rayon+oneshot, multi-thread runtime", ratio(r, "s1.cf_mt", "s1.rayon_mt"), 1.0),
        at_least("idle: 200k burst throughput (`.await`) ÷ `blocking::unblock`", speedup(r, "s2.unblock", "s2.cf_await"), 1.0),
        at_least("idle: 200k burst throughput (`result()`) ÷ `blocking::unblock`", speedup(r, "s2.unblock", "s2.cf_block"), 1.0),
        Target::new("idle: peak RSS per queued trivial task", r.v("s2.rss_gated_cf"), Bound::AtMost(96.0), " B"),
        Target::ratio(
            "idle: submit + `as_completed` drain of 100k ÷ `spawn_blocking` + unconstrained `FuturesUnordered`",
            ratio(r, "s3.live_cf_stream", "s3.live_fu"),
            1.0,
        ),
        Target::ratio("idle: `wait(FIRST_COMPLETED)`, one of 10k ready (`.await`) ÷ `select_all`", ratio(r, "s3.wait_cf_await", "s3.wait_select_all"), 1.0),
        Target::ratio("idle: `wait(FIRST_COMPLETED)`, one of 10k ready (`blocking()`) ÷ `select_all`", ratio(r, "s3.wait_cf_block", "s3.wait_select_all"), 1.0),
        Target::ratio(
            "idle: `wait(FIRST_COMPLETED)`, none of 10k ready (one finishes late) ÷ `select_all`",
            ratio(r, "s3.wait_late_cf_await", "s3.wait_late_select_all"),
            1.0,
        ),
        Target::ratio("idle: process round trip, pinned ÷ raw socketpair, pinned (both on one CPU)", ratio(r, "s5.cf_pinned", "s5.raw_pinned"), 1.5),
        Target::ratio("idle: process round trip, placed by the kernel ÷ raw socketpair, placed by the kernel", ratio(r, "s5.cf", "s5.raw"), 1.5),
        Target::ratio("idle: 1 MiB `ByteBlock` echo, pinned ÷ raw socketpair, pinned (both on one CPU)", ratio(r, "s5.cf_echo_pinned", "s5.raw_echo_pinned"), 1.5),
        Target::ratio("idle: 1 MiB `ByteBlock` echo, placed by the kernel ÷ raw socketpair, placed by the kernel", ratio(r, "s5.cf_echo", "s5.raw_echo"), 1.5),
        Target::ratio("idle: 1 MiB plain `Vec<u8>` echo ÷ `ByteBlock` echo", ratio(r, "s5.cf_echo_vec", "s5.cf_echo"), 1.5),
        at_least("idle: CPU scaling 1→2 workers, threads", speedup(r, "s4.cf_threads_1", "s4.cf_threads_2"), 1.9),
        at_least("idle: CPU scaling 1→2 workers, processes", speedup(r, "s4.cf_processes_1", "s4.cf_processes_2"), 1.9),
    ]
}

/// Issue #4's targets that issue #9 did not restate.
fn issue4(r: &Results) -> Vec<Target> {
    let growth = |big: &str, small: &str| Some(r.t(big)?.median / r.t(small)?.median);
    vec![
        Target::ratio(
            "§1 blocking `result()` round trip ÷ rayon+oneshot blocking `recv()`",
            ratio(r, "s1.cf_block", "s1.rayon_block"),
            1.5,
        ),
        Target::new(
            "§1 idle workers' CPU (whole process, 2 idle workers)",
            r.v("s1.idle_cf"),
            Bound::AtMost(1.0),
            " % of a core",
        ),
        Target::new(
            "§2 peak RSS per queued trivial task (issue #4's bound)",
            r.v("s2.rss_gated_cf"),
            Bound::AtMost(128.0),
            " B",
        ),
        Target::ratio(
            "§3 `as_completed` drain of 100k already done (stream) ÷ tokio `JoinSet`",
            ratio(r, "s3.done_cf_stream", "s3.done_joinset"),
            1.0,
        ),
        Target::ratio(
            "§3 `as_completed` drain of 100k already done (iterator) ÷ tokio `JoinSet`",
            ratio(r, "s3.done_cf_iter", "s3.done_joinset"),
            1.0,
        ),
        Target::ratio(
            "§3 submit + `as_completed` drain (stream) ÷ tokio `JoinSet`",
            ratio(r, "s3.live_cf_stream", "s3.live_joinset"),
            1.0,
        ),
        Target::ratio(
            "§3 O(1) per completion: per-future time at 100k ÷ at 10k, live (O(n) would be ~10×)",
            growth("s3.live_cf_stream", "s3.live_cf_stream_small"),
            3.0,
        ),
        Target::ratio(
            "§3 O(1) per completion: per-future time at 100k ÷ at 10k, already done",
            growth("s3.done_cf_stream", "s3.done_cf_stream_small"),
            3.0,
        ),
        Target::new(
            "§5 process round trip: how many times faster than procspawn",
            speedup(r, "s5.procspawn", "s5.cf"),
            Bound::AtLeast(2.0),
            "×",
        ),
        Target::new(
            "§5 process round trip: how many times faster than Python",
            speedup(r, "s5.py", "s5.cf"),
            Bound::AtLeast(8.0),
            "×",
        ),
    ]
}

fn table(out: &mut String, targets: &[Target]) -> (usize, usize) {
    out.push_str("| target | measured | bound | status |\n|---|---:|---:|---|\n");
    let (mut met, mut measured) = (0, 0);
    for t in targets {
        let (m, status, verdict) = t.cells();
        if let Some(ok) = verdict {
            measured += 1;
            met += usize::from(ok);
        }
        out.push_str(&format!(
            "| {} | {m} | {} | {status} |\n",
            t.what,
            t.bound.show(t.unit)
        ));
    }
    out.push('\n');
    (met, measured)
}

/// The closing tables: issue #9's targets, then issue #4's others.
pub(crate) fn print_targets(out: &mut String, r: &Results) {
    let t9 = issue9(r);
    let mut body = String::new();
    let (met, measured) = table(&mut body, &t9);
    let not_run = match t9.len() - measured {
        0 => String::new(),
        n => format!("; {n} not run"),
    };
    out.push_str(&format!(
        "## Issue #9's targets\n\nEvery row from this run's medians (§7's rows: each of its settings against the bound on its own; \"missed by\" is in percent of the bound). Met {met} of the {measured} rows measured{not_run}.\n\n"
    ));
    out.push_str(&body);
    let t4 = issue4(r);
    let mut body = String::new();
    let (met, measured) = table(&mut body, &t4);
    out.push_str(&if measured == 0 {
        "### Issue #4's other targets\n\nNone measured in this run.\n\n".to_owned()
    } else {
        format!("### Issue #4's other targets\n\nMet {met} of the {measured} rows measured.\n\n")
    });
    out.push_str(&body);
}
