//! The client's MPI owner thread: the one thread that talks to the ranks.
//!
//! Each turn of its loop it (1) takes every message that has arrived, (2) completes finished sends,
//! (3) gives queued tasks to idle ranks, (4) checks that every rank still answers, then (5) waits:
//! while something is expected from a rank it sleeps by [`Backoff`] (MPI has nothing to block on
//! without spinning); when nothing is, it sleeps until the next heartbeat is due. Submits and
//! shutdowns wake it at once either way, so an idle client costs one wake-up per heartbeat interval.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::Communicator;

use super::identity;
use super::link::{tag, Backoff, Link, Received};
use super::shared::{Lifecycle, Shared};
use super::Config;
use crate::error::{BrokenCause, Error, RankLost, RankSilence};
use crate::pool::Backend;
use crate::process_pool::task::ProcTask;
use crate::process_pool::Counters;

/// Where one rank is in its life, as the client sees it.
enum Phase {
    /// Started; its `HELLO` has not arrived yet.
    Greeting,
    /// Shook hands: takes tasks.
    Ready,
    /// Told to exit, or given up on.
    Gone,
}

struct Rank {
    rank: i32,
    phase: Phase,
    /// The tasks sent to it, in order: it runs them one at a time and replies in that order.
    tasks: VecDeque<Arc<dyn ProcTask>>,
    /// Since when the first of `tasks` has been running there (it was sent to an empty rank, or
    /// the reply before it arrived).
    front_since: Instant,
    /// When anything last came from it.
    heard: Instant,
    /// When the unanswered `PING` to it was sent.
    pinged: Option<Instant>,
}

/// Serves the pool until it is shut down and drained, or broken; then stops every rank. Gives the
/// link back with whether every rank was stopped in order, or some rank was lost.
pub(crate) fn run<C>(
    link: Link<C>,
    ranks: impl IntoIterator<Item = i32>,
    shared: &Shared,
    config: &Config,
) -> (Link<C>, Peers)
where
    C: Communicator + AsRaw<Raw = ffi::MPI_Comm>,
{
    let now = Instant::now();
    let mut client = Client {
        link: Some(link),
        ranks: ranks
            .into_iter()
            .map(|rank| Rank {
                rank,
                phase: Phase::Greeting,
                tasks: VecDeque::new(),
                front_since: now,
                heard: now,
                pinged: None,
            })
            .collect(),
        shared,
        config,
        backoff: Backoff::new(config.backoff),
        peers: Peers::AllStopped,
    };
    client.serve();
    client.stop_all();
    let peers = client.peers;
    let link = client.link.take().expect("the link is taken once, here");
    (link, peers)
}

/// A panic in the loop must not leave the running tasks' futures pending for ever: they fail as in a
/// broken pool. (At an orderly end no rank is busy, and this does nothing.)
impl<C: Communicator + AsRaw<Raw = ffi::MPI_Comm>> Drop for Client<'_, C> {
    fn drop(&mut self) {
        if self.ranks.iter().all(|r| r.tasks.is_empty()) {
            return;
        }
        self.break_pool(BrokenCause::Protocol(
            "the MPI owner thread panicked".into(),
        ));
    }
}

/// How the ranks were left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peers {
    /// Every rank was told to stop and the message left.
    AllStopped,
    /// A rank was given up on, or a stop did not leave in time: a collective call with the ranks
    /// (a disconnect) could wait for ever.
    SomeLost,
}

struct Client<'a, C: Communicator + AsRaw<Raw = ffi::MPI_Comm>> {
    /// There until `run` takes it back at the end.
    link: Option<Link<C>>,
    ranks: Vec<Rank>,
    shared: &'a Shared,
    config: &'a Config,
    backoff: Backoff,
    /// How the ranks are being left: `SomeLost` once one was given up on.
    peers: Peers,
}

impl<C: Communicator + AsRaw<Raw = ffi::MPI_Comm>> Client<'_, C> {
    fn serve(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(msg) = self.link().receive() {
                progressed = true;
                self.on_message(msg);
            }
            progressed |= self.link().progress();
            progressed |= self.dispatch();
            self.check_liveness(Instant::now());
            if self.finished() {
                return;
            }
            if progressed {
                self.backoff.reset();
            }
            let expecting = self.link().sending(None)
                || self.ranks.iter().any(|r| {
                    r.pinged.is_some() || matches!(r.phase, Phase::Greeting) || !r.tasks.is_empty()
                });
            let pause = if expecting {
                self.backoff.pause()
            } else {
                self.next_heartbeat()
                    .saturating_duration_since(Instant::now())
            };
            self.shared.idle(pause);
        }
    }

    fn link(&mut self) -> &mut Link<C> {
        self.link
            .as_mut()
            .expect("the link is there until `run` ends")
    }

    fn rank_mut(&mut self, rank: i32) -> Option<&mut Rank> {
        self.ranks.iter_mut().find(|r| r.rank == rank)
    }

    fn on_message(&mut self, msg: Received) {
        let now = Instant::now();
        let Some(r) = self.rank_mut(msg.from) else {
            log::warn!(
                "concurrent_futures: a message (tag {}) from rank {}, which is not a worker of this pool",
                msg.tag,
                msg.from
            );
            return;
        };
        r.heard = now;
        match msg.tag {
            tag::HELLO => match identity::refusal(&msg.body) {
                None => {
                    r.phase = Phase::Ready;
                    let rank = r.rank;
                    self.link().send(rank, tag::WELCOME, identity::encoded());
                    self.shared.lock().ranks += 1;
                }
                Some(why) => {
                    let rank = r.rank;
                    self.fail_start(format!(
                        "MPI rank {rank} is not the same build as the client: {why}"
                    ));
                }
            },
            tag::REPLY => {
                if let Some(task) = r.tasks.pop_front() {
                    r.front_since = now;
                    self.shared.lock().busy -= 1;
                    let body = msg
                        .body
                        .get(crate::process_pool::wire::HEADER..)
                        .unwrap_or(&[]);
                    task.finish(body.into(), &self.shared.counters);
                    // A detached task's value is dropped here; its `Drop` may panic.
                    crate::panic::contain(|| drop(task));
                }
            }
            tag::PONG => r.pinged = None,
            tag::REFUSED => {
                let rank = r.rank;
                let why = String::from_utf8_lossy(&msg.body).into_owned();
                self.fail_start(format!("MPI rank {rank} refused to serve: {why}"));
            }
            other => log::warn!(
                "concurrent_futures: a message of unknown tag {other} from rank {}",
                msg.from
            ),
        }
    }

    /// Gives queued tasks to ranks with room (fewer than `tasks_per_rank` sent), the emptiest first;
    /// `true` if any was given.
    fn dispatch(&mut self) -> bool {
        let window = self.config.tasks_per_rank;
        let mut given = false;
        loop {
            let Some(i) = (0..self.ranks.len())
                .filter(|&i| {
                    matches!(self.ranks[i].phase, Phase::Ready)
                        && self.ranks[i].tasks.len() < window
                })
                .min_by_key(|&i| self.ranks[i].tasks.len())
            else {
                return given;
            };
            // The next task that is not cancelled; RUNNING from here on means dispatched.
            let task = {
                let mut st = self.shared.lock();
                let mut taken = 0;
                let task = loop {
                    match st.queue.pop_front() {
                        None => break None,
                        Some(t) => {
                            taken += 1;
                            if t.start() {
                                st.busy += 1;
                                break Some(t);
                            }
                            Counters::add(&self.shared.counters.cancelled, 1);
                        }
                    }
                };
                self.shared.made_room(&st, taken);
                task
            };
            let Some(task) = task else { return given };
            let Some(frame) = task.take_frame() else {
                // Only a cancel takes the frame, and a started task cannot be cancelled.
                self.shared.lock().busy -= 1;
                task.fail(Error::InvalidState("a dispatched task had no frame".into()));
                continue;
            };
            let rank = self.ranks[i].rank;
            self.link().send(rank, tag::RUN, frame);
            let r = &mut self.ranks[i];
            if r.tasks.is_empty() {
                r.front_since = Instant::now();
            }
            r.tasks.push_back(task);
            given = true;
        }
    }

    /// Pings ranks that have been quiet for an interval; gives up on one quiet for the timeout, or
    /// holding a task past the deadline.
    fn check_liveness(&mut self, now: Instant) {
        let (interval, timeout) = (
            self.config.heartbeat_interval,
            self.config.heartbeat_timeout,
        );
        let mut lost = None;
        let link = self
            .link
            .as_mut()
            .expect("the link is there until `run` ends");
        for r in &mut self.ranks {
            if matches!(r.phase, Phase::Gone) {
                continue;
            }
            let quiet = now.saturating_duration_since(r.heard);
            if quiet >= timeout {
                lost = Some(RankLost {
                    rank: r.rank,
                    why: RankSilence::Heartbeat(timeout),
                });
                break;
            }
            if let (false, Some(deadline)) = (r.tasks.is_empty(), self.config.task_deadline) {
                if now.saturating_duration_since(r.front_since) >= deadline {
                    lost = Some(RankLost {
                        rank: r.rank,
                        why: RankSilence::TaskDeadline(deadline),
                    });
                    break;
                }
            }
            if quiet >= interval && r.pinged.is_none() && !matches!(r.phase, Phase::Greeting) {
                r.pinged = Some(now);
                link.send(r.rank, tag::PING, Vec::new());
            }
        }
        if let Some(lost) = lost {
            self.peers = Peers::SomeLost;
            self.link().abandon(lost.rank);
            // First, so the lost rank's own task fails with the others.
            self.break_pool(BrokenCause::RankLost(lost));
            if let Some(r) = self.rank_mut(lost.rank) {
                r.phase = Phase::Gone;
            }
        }
    }

    /// When the next heartbeat is due: the earliest moment a rank has been quiet for an interval.
    fn next_heartbeat(&self) -> Instant {
        self.ranks
            .iter()
            .filter(|r| !matches!(r.phase, Phase::Gone))
            .map(|r| r.heard + self.config.heartbeat_interval)
            .min()
            .unwrap_or_else(|| Instant::now() + self.config.heartbeat_interval)
    }

    fn fail_start(&mut self, why: String) {
        self.break_pool(BrokenCause::StartFailed(why));
    }

    /// Breaks the pool: fails the queued tasks and every running one.
    fn break_pool(&mut self, cause: BrokenCause) {
        let broken = self.shared.break_pool(cause);
        for r in &mut self.ranks {
            for task in r.tasks.drain(..) {
                task.fail(Error::BrokenProcessPool(broken.clone()));
            }
        }
        self.shared.lock().busy = 0;
    }

    /// Whether the loop is done: broken, or shut down with nothing queued or running.
    fn finished(&self) -> bool {
        let st = self.shared.lock();
        match st.lifecycle {
            Lifecycle::Open => false,
            Lifecycle::Broken(_) => true,
            Lifecycle::ShutDown => {
                st.queue.is_empty() && self.ranks.iter().all(|r| r.tasks.is_empty())
            }
        }
    }

    /// Tells every rank still there to exit, and waits (at most a heartbeat timeout) for the
    /// messages to leave.
    fn stop_all(&mut self) {
        let link = self
            .link
            .as_mut()
            .expect("the link is there until `run` ends");
        // After a lost rank the others must not finalize MPI either: it waits for the lost one.
        let stop = if self.peers == Peers::SomeLost {
            vec![tag::STOP_LOST]
        } else {
            Vec::new()
        };
        for r in &mut self.ranks {
            if !matches!(r.phase, Phase::Gone) {
                r.phase = Phase::Gone;
                link.send(r.rank, tag::STOP, stop.clone());
            }
        }
        let until = Instant::now() + self.config.heartbeat_timeout;
        self.backoff.reset();
        while self.link().sending(None) && Instant::now() < until {
            // Answers to earlier pings may still come; they need no reply.
            while self.link().receive().is_some() {}
            if !self.link().progress() {
                std::thread::sleep(self.backoff.pause());
            }
        }
        if self.link().sending(None) {
            self.peers = Peers::SomeLost;
        }
    }
}
