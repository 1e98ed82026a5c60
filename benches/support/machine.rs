//! The report's header: the machine, the settings, and whether anything else used the machine during
//! the run.
//!
//! The load average alone cannot say whether the machine was quiet, since the run's own threads (the
//! pools, the hogs, the runtimes) are most of it. So a background thread also samples, every 10 s, the
//! machine's busy CPU time (`/proc/stat`) and this run's own (this process and every descendant, living
//! or reaped, from `/proc/<pid>/stat`): the difference is what other processes used.

use std::collections::HashMap;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::service;
use super::Cfg;

const EVERY: Duration = Duration::from_secs(10);

/// One look at the machine.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    /// 1, 5 and 15 minute load averages.
    load: [f64; 3],
    /// CPU time spent by anyone, in clock ticks: busy (steal included) and stolen by the hypervisor.
    busy: u64,
    steal: u64,
    /// CPU time of this run's processes, in clock ticks.
    ours: u64,
}

impl Sample {
    fn take() -> Sample {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let mut l = load
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(f64::NAN));
        let mut next = || l.next().unwrap_or(f64::NAN);
        let (busy, steal) = machine_ticks();
        Sample {
            at: Instant::now(),
            load: [next(), next(), next()],
            busy,
            steal,
            ours: run_ticks(),
        }
    }
}

/// (busy, steal) from the first line of /proc/stat: user nice system idle iowait irq softirq steal.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    (at(0) + at(1) + at(2) + at(5) + at(6) + at(7), at(7))
}

/// CPU ticks of this process and all its descendants: each one's own time plus its reaped children's
/// (`utime + stime + cutime + cstime`). A child that exits and is reaped moves from being counted
/// itself to its parent's `cutime`, so the sum does not jump.
fn run_ticks() -> u64 {
    // pid → (parent, ticks)
    let mut procs: HashMap<u32, (u32, u64)> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: fields are counted after it.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if f.len() > 13 {
            procs.insert(pid, (f[0] as u32, f[10] + f[11] + f[12] + f[13]));
        }
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, &(parent, _)) in &procs {
        children.entry(parent).or_default().push(pid);
    }
    let (mut total, mut todo) = (0, vec![std::process::id()]);
    while let Some(pid) = todo.pop() {
        total += procs.get(&pid).map_or(0, |p| p.1);
        todo.extend(children.get(&pid).into_iter().flatten());
    }
    total
}

/// Samples the machine every 10 s until finished.
pub(crate) struct Monitor {
    before: Sample,
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl Monitor {
    pub(crate) fn start() -> Monitor {
        let before = Sample::take();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("load monitor".into())
            .spawn(move || {
                let mut samples = Vec::new();
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    samples.push(Sample::take());
                }
                samples
            })
            .expect("load monitor thread");
        Monitor {
            before,
            stop,
            thread,
        }
    }

    /// Stops sampling and describes the run's machine load, naming the sections that ran when other
    /// processes were busiest (`sections`: label, start and end, in seconds from the start).
    pub(crate) fn finish(self, sections: &[(String, f64, f64)]) -> String {
        let _ = self.stop.send(());
        let during = self.thread.join().unwrap_or_default();
        let after = Sample::take();
        let hz = clock_ticks_per_sec();
        let mut windows = Vec::new();
        let mut prev = self.before;
        for s in during.iter().chain([&after]) {
            let secs = (s.at - prev.at).as_secs_f64();
            if secs > 0.5 {
                let cores = |ticks: i64| ticks.max(0) as f64 / hz / secs;
                let others =
                    cores((s.busy - prev.busy) as i64 - (s.ours as i64 - prev.ours as i64));
                let steal = cores((s.steal - prev.steal) as i64);
                let from = (prev.at - self.before.at).as_secs_f64();
                windows.push((from, from + secs, others, steal));
                eprintln!(
                    "  machine {from:>5.0}–{:>5.0} s: load {:.2}, other processes {others:.2} cores, steal {steal:.2} cores",
                    from + secs,
                    s.load[0]
                );
            }
            prev = *s;
        }
        let total = (after.at - self.before.at).as_secs_f64();
        let mean = |f: fn(&(f64, f64, f64, f64)) -> f64| {
            windows.iter().map(|w| f(w) * (w.1 - w.0)).sum::<f64>() / total.max(1e-9)
        };
        let (others, steal) = (mean(|w| w.2), mean(|w| w.3));
        let busiest = windows.iter().max_by(|a, b| a.2.total_cmp(&b.2));
        let (lo, hi) = during
            .iter()
            .map(|s| s.load[0])
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            });
        let load3 = |s: &Sample| format!("{:.2} {:.2} {:.2}", s.load[0], s.load[1], s.load[2]);
        let mut out = format!(
            "- load average (1, 5, 15 min) before: {}; during (1 min, every {} s): {}; after: {} (the run's own threads count here: up to 2 hogs, 2 runtime workers and the pools' threads)\n",
            load3(&self.before),
            EVERY.as_secs(),
            if during.is_empty() {
                "no sample (a run under 10 s)".into()
            } else {
                format!("{lo:.2}–{hi:.2} over {} samples", during.len())
            },
            load3(&after),
        );
        let busiest = busiest.map_or(String::new(), |&(from, to, cores, _)| {
            let during: Vec<&str> = sections
                .iter()
                .filter(|(_, start, end)| *start < to && *end > from)
                .map(|(label, _, _)| label.as_str())
                .collect();
            format!(
                "; busiest {:.0} s: {cores:.2} cores, at {from:.0}–{to:.0} s ({})",
                to - from,
                if during.is_empty() {
                    "between sections".into()
                } else {
                    during.join(", ")
                }
            )
        });
        let quiet = windows.iter().all(|w| w.2 < 0.2);
        out.push_str(&format!(
            "- other processes' CPU during the run (the machine's busy time minus this run's processes'): {others:.2} cores on average{busiest}; stolen by the hypervisor: {steal:.2} cores on average. **{}**\n",
            if quiet {
                "Quiet: others stayed under 0.2 of a core in every 10 s."
            } else {
                "Not quiet: others used 0.2 of a core or more in some sampled window; read the ratios of the sections that ran then with care."
            }
        ));
        out
    }
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

fn command_line(c: &str, a: &[&str]) -> String {
    Command::new(c)
        .args(a)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// Now, in UTC (`date -u`), for the report's header.
pub(crate) fn utc_now() -> String {
    command_line("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"])
}

/// What the run was: the machine, the tools, the source, and every setting that changes the figures.
pub(crate) fn facts(cfg: &Cfg, python: Option<&str>, started: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let dir = env!("CARGO_MANIFEST_DIR");
    let env: Vec<String> = [
        "BENCH_QUICK",
        "BENCH_REPS",
        "BENCH_SERVICE_SECS",
        "BENCH_LOWRATE_SECS",
        "CONCURRENT_FUTURES_SPIN",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v} ")))
    .collect();
    let all = [7, 8, 9, 10, 11, 1, 2, 3, 4, 5, 6];
    let sections = if cfg.sections == all {
        String::new()
    } else {
        let s: Vec<String> = cfg.sections.iter().map(u32::to_string).collect();
        format!(" -- {}", s.join(" "))
    };
    format!(
        "- command: `{}cargo bench --bench anchors{sections}`; started {started}\n- rounds: §1–§6 {} repetitions after {} warm-up (median and min); §7–§11 medians of {} rounds; peak RSS medians of {} fresh processes; Python {} repetitions; §7 {} s per open-loop run, §10 {} s per paced run\n- cores: {} ({cpu})\n- {}\n- {}\n- source: commit {}\n",
        env.concat(),
        cfg.reps,
        cfg.warmup,
        service::reps(cfg),
        super::RSS_PROBES,
        cfg.py_reps,
        service::service_secs(cfg),
        service::lowrate_secs(cfg),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        command_line("rustc", &["--version"]),
        python.unwrap_or("python3: not found"),
        command_line("git", &["-C", dir, "describe", "--always", "--dirty"]),
    )
}
