//! Starting MPI and deciding who is the client: the owner thread, the two start modes, and the
//! constructor that catches spawned workers before `main`.
//!
//! MPI is initialized *in the owner thread* with `MPI_THREAD_FUNNELED`: every MPI call of the process
//! is then made by the thread that initialized it, which is all that level allows, and all a single
//! owner needs (mpi4py.futures makes the same choice). The owner thread also finalizes MPI when the
//! pool is done, so a process has one MPI pool in its life.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mpi::environment::Threading;
use mpi::topology::Communicator;

use super::client::{self, Peers};
use super::link::Link;
use super::shared::Shared;
use super::{server, Config};
use crate::error::Error;

/// How the argument that makes a spawned copy of the program an MPI worker begins; this copy of the
/// crate's tag follows (two copies linked into one program each serve only their own pool's spawns),
/// then `=<backoff cap in microseconds>:<heartbeat timeout in milliseconds>`.
const WORKER_ARG: &str = "--concurrent-futures-mpi-worker";

/// This copy's whole worker argument, up to the `=`.
fn worker_arg() -> String {
    format!(
        "{WORKER_ARG}-{:016x}",
        crate::process_pool::handshake::copy_tag()
    )
}

/// How the ranks come to be.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Start {
    /// `MPI_Comm_spawn` this many copies of the program.
    Spawn(usize),
    /// Every rank of `MPI_COMM_WORLD` other than 0 serves rank 0.
    World,
}

/// What the owner thread found this process to be.
pub(crate) enum Role {
    /// The client: the owner serves the pool through `shared`.
    Client { ranks: usize },
    /// A worker rank of a static job: the calling thread must run tasks from `run`, replying on
    /// `done`, until `run` closes, then exit the process.
    Worker {
        run: mpsc::Receiver<Vec<u8>>,
        done: mpsc::Sender<Vec<u8>>,
    },
}

/// Starts the owner thread and waits until it knows this process's role.
pub(crate) fn start(
    start: Start,
    config: Arc<Config>,
    shared: Arc<Shared>,
) -> Result<(Role, JoinHandle<()>), Error> {
    // The constructor below must be linked into every program that can start a pool.
    std::hint::black_box(&WORKER_ENTRY);
    let (role_tx, role_rx) = mpsc::sync_channel::<Result<Role, Error>>(1);
    let owner = std::thread::Builder::new()
        .name("mpi-owner".into())
        .spawn(move || {
            let _ = shared.owner.set(std::thread::current().id());
            let run = std::panic::AssertUnwindSafe(|| owner(start, &config, &shared, role_tx));
            if let Err(p) = std::panic::catch_unwind(run) {
                // The running tasks were failed as the loop unwound; the queued ones fail here, and
                // `shutdown` must not wait for an owner that is gone.
                shared.break_pool(crate::error::BrokenCause::Protocol(format!(
                    "the MPI owner thread panicked: {}",
                    crate::error::panic_message(&*p)
                )));
                shared.owner_exited();
            }
        })
        .map_err(|e| Error::ProcessSetup(format!("could not start the MPI owner thread: {e}")))?;
    match role_rx.recv() {
        Ok(Ok(role)) => Ok((role, owner)),
        Ok(Err(e)) => {
            let _ = owner.join();
            Err(e)
        }
        Err(_) => match owner.join() {
            Err(p) => Err(Error::ProcessSetup(format!(
                "the MPI owner thread panicked: {}",
                crate::error::panic_message(&*p)
            ))),
            Ok(_) => Err(Error::ProcessSetup("the MPI owner thread ended".into())),
        },
    }
}

/// The owner thread. On a worker rank it ends the process.
fn owner(
    start: Start,
    config: &Config,
    shared: &Shared,
    role: mpsc::SyncSender<Result<Role, Error>>,
) {
    let Some((universe, level)) = mpi::initialize_with_threading(Threading::Funneled) else {
        let _ = role.send(Err(Error::ProcessSetup(
            "MPI is already initialized in this process: an MPI pool owns MPI, so a process \
             has at most one, and no other MPI use"
                .into(),
        )));
        shared.owner_exited();
        return;
    };
    if level < Threading::Funneled {
        let _ = role.send(Err(Error::ProcessSetup(format!(
            "the MPI library offers thread level {level:?}; the pool needs Funneled"
        ))));
        drop(universe);
        shared.owner_exited();
        return;
    }
    let peers = match start {
        Start::World => {
            let world = universe.world();
            let (rank, size) = (world.rank(), world.size());
            if rank != 0 {
                let ending = worker_rank(Link::new(world), 0, config, &role);
                worker_exit(universe, ending)
            } else if size < 2 {
                let _ = role.send(Err(Error::InvalidArgument(
                    "MPI_COMM_WORLD has one rank, so no worker: start the program with \
                     `mpirun -n N` (N ≥ 2), or use spawn mode"
                        .into(),
                )));
                Peers::AllStopped
            } else {
                let _ = role.send(Ok(Role::Client {
                    ranks: size as usize - 1,
                }));
                // `MPI_COMM_WORLD` is never freed nor disconnected: nothing to leak.
                client::run(Link::new(world), 1..size, shared, config).1
            }
        }
        Start::Spawn(n) => match spawn(n, config) {
            Ok(inter) => {
                let _ = role.send(Ok(Role::Client { ranks: n }));
                match client::run(Link::new(inter), 0..n as i32, shared, config) {
                    (link, Peers::AllStopped) => {
                        drop(link);
                        Peers::AllStopped
                    }
                    (link, Peers::SomeLost) => {
                        link.leak();
                        Peers::SomeLost
                    }
                }
            }
            Err(e) => {
                let _ = role.send(Err(e));
                Peers::AllStopped
            }
        },
    };
    match peers {
        Peers::AllStopped => drop(universe),
        // `MPI_Finalize` synchronizes with every process still connected, a lost one included, and
        // would wait for it for ever. Skipped: the process's exit releases MPI's resources (in static
        // mode `mpirun` then reports that rank 0 did not finalize, which is true).
        Peers::SomeLost => std::mem::forget(universe),
    }
    shared.owner_exited();
}

/// Spawns `n` copies of this program as workers.
///
/// `MPI_Comm_spawn` is called directly rather than through rsmpi's `spawn`: under MPI's default error
/// handler a failed spawn (more workers than the job has slots, say) aborts the whole program, and
/// rsmpi's wrapper ignores the call's return code. Here the error handler of `MPI_COMM_SELF` (the
/// communicator the spawn is made on) is set to return errors, and both the return code and every
/// worker's error code are checked, so a failed spawn is an `Err` from the pool's constructor.
fn spawn(n: usize, config: &Config) -> Result<mpi::topology::InterCommunicator, Error> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    use mpi::ffi;

    let exe = std::env::current_exe()
        .map_err(|e| Error::ProcessSetup(format!("cannot find this program's file: {e}")))?;
    let failed =
        |why: String| Error::ProcessSetup(format!("MPI_Comm_spawn of {n} workers failed: {why}"));
    let n = i32::try_from(n)
        .map_err(|_| Error::InvalidArgument(format!("{n} workers is more than MPI can spawn")))?;
    let program = CString::new(exe.as_os_str().as_bytes())
        .map_err(|_| failed("the program's path holds a NUL byte".into()))?;
    let arg = CString::new(format!(
        "{}={}:{}",
        worker_arg(),
        config.backoff.as_micros(),
        config.heartbeat_timeout.as_millis()
    ))
    .expect("the worker argument is ASCII");
    let mut argv = [arg.as_ptr().cast_mut(), std::ptr::null_mut()];
    let mut errcodes = vec![0; n as usize];
    #[allow(unsafe_code)]
    // SAFETY: MPI is initialized on this thread (the owner, the only one making MPI calls).
    // `program` and `arg` outlive the call, `argv` is NULL-terminated as MPI requires, and
    // `errcodes` has room for `n` codes; MPI reads the strings and writes only `inter` and `errcodes`.
    let (code, inter) = unsafe {
        ffi::MPI_Comm_set_errhandler(ffi::RSMPI_COMM_SELF, ffi::RSMPI_ERRORS_RETURN);
        let mut inter = ffi::RSMPI_COMM_NULL;
        let code = ffi::MPI_Comm_spawn(
            program.as_ptr(),
            argv.as_mut_ptr(),
            n,
            ffi::RSMPI_INFO_NULL,
            0,
            ffi::RSMPI_COMM_SELF,
            &mut inter,
            errcodes.as_mut_ptr(),
        );
        (code, inter)
    };
    if code != ffi::MPI_SUCCESS as i32 {
        return Err(failed(format!(
            "MPI error {code} (too few slots for the workers? `mpirun --oversubscribe`, a hostfile \
             with more slots, or fewer workers)"
        )));
    }
    let lost = errcodes
        .iter()
        .filter(|&&c| c != ffi::MPI_SUCCESS as i32)
        .count();
    if lost > 0 {
        return Err(failed(format!("{lost} of them did not start")));
    }
    // SAFETY: `inter` is the intercommunicator the successful spawn just made, used nowhere else.
    #[allow(unsafe_code)]
    unsafe { mpi::topology::InterCommunicator::try_from_raw(inter) }
        .ok_or_else(|| failed("MPI gave no intercommunicator".into()))
}

/// A worker rank's owner: hands the task channels to the calling thread, then serves.
fn worker_rank<C>(
    mut link: Link<C>,
    client: i32,
    config: &Config,
    role: &mpsc::SyncSender<Result<Role, Error>>,
) -> server::Ending
where
    C: Communicator + mpi::raw::AsRaw<Raw = mpi::ffi::MPI_Comm>,
{
    let (run_tx, run_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    if role
        .send(Ok(Role::Worker {
            run: run_rx,
            done: done_tx,
        }))
        .is_err()
    {
        return server::Ending::Refused;
    }
    // Covers the service and the finalize after it: a stuck MPI call ends the process.
    let watchdog = server::Watchdog::start(config.heartbeat_timeout + Duration::from_secs(5));
    let ending = server::serve(
        &mut link,
        client,
        run_tx,
        done_rx,
        config.backoff,
        config.heartbeat_timeout,
        &watchdog,
    );
    watchdog.turn();
    match ending {
        server::Ending::Stopped => drop(link),
        server::Ending::StoppedAfterLoss | server::Ending::Refused | server::Ending::ClientLost => {
            link.leak()
        }
    }
    ending
}

/// Ends a worker rank's process from its owner thread: a task still running on the other thread (the
/// client stopped the rank mid-task, or is gone) must not keep it alive. MPI is finalized only
/// after an orderly stop: finalizing disconnects from the client, which waits for a client that may
/// be dead.
fn worker_exit(universe: mpi::environment::Universe, ending: server::Ending) -> ! {
    if ending == server::Ending::Stopped {
        drop(universe);
    } else {
        std::mem::forget(universe);
    }
    let code = ending.exit_code();
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(code)
}

/// Runs a worker rank's tasks on this thread until the client stops it; the owner thread then ends
/// the process, so `main` goes no further on a worker rank.
pub(crate) fn serve_then_exit(
    run: mpsc::Receiver<Vec<u8>>,
    done: mpsc::Sender<Vec<u8>>,
    owner: JoinHandle<()>,
) -> ! {
    server::run_tasks(run, done);
    // The owner exits the process; it returns only if it panicked.
    let _ = owner.join();
    std::process::exit(1)
}

/// The constructor: a spawned worker (its argv carries [`WORKER_ARG`]) serves its parent and exits
/// before `main`; any other start returns at once. See `process_pool/entry.rs` for how a
/// constructor is linked, and why one rather than a setup line.
#[used]
#[allow(unsafe_code)] // `link_section` places the pointer where the C runtime looks for constructors.
#[link_section = ".init_array"]
static WORKER_ENTRY: extern "C" fn() = worker_entry;

extern "C" fn worker_entry() {
    let Some(arg) = std::env::args_os().nth(1) else {
        return;
    };
    // Every start of every program linking the crate gets here: look at the cheap prefix first.
    let Some(arg) = arg.to_str().filter(|a| a.starts_with(WORKER_ARG)) else {
        return;
    };
    let Some(config) = arg
        .strip_prefix(worker_arg().as_str())
        .and_then(|a| a.strip_prefix('='))
        .and_then(|a| a.split_once(':'))
        .and_then(|(us, ms)| Some((us.parse::<u64>().ok()?, ms.parse::<u64>().ok()?)))
    else {
        return;
    };
    let config = Config {
        backoff: Duration::from_micros(config.0),
        heartbeat_timeout: Duration::from_millis(config.1),
        // Only the client uses these.
        heartbeat_interval: Duration::ZERO,
        task_deadline: None,
        tasks_per_rank: 1,
    };
    // Nothing may unwind into the C runtime.
    let code = std::panic::catch_unwind(|| spawned_worker(config)).unwrap_or(1);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(code)
}

/// A spawned worker: serves the parent (rank 0 of the parent's group) on the parent intercommunicator.
fn spawned_worker(config: Config) -> i32 {
    let (role_tx, role_rx) = mpsc::sync_channel::<Result<Role, Error>>(1);
    let owner = std::thread::spawn(move || {
        let Some((universe, _)) = mpi::initialize_with_threading(Threading::Funneled) else {
            return 1;
        };
        let Some(parent) = universe.world().parent() else {
            eprintln!(
                "concurrent_futures: started as a spawned MPI worker, but there is no parent \
                 to serve"
            );
            return 1;
        };
        let ending = worker_rank(Link::new(parent), 0, &config, &role_tx);
        worker_exit(universe, ending)
    });
    match role_rx.recv() {
        Ok(Ok(Role::Worker { run, done })) => {
            server::run_tasks(run, done);
            owner.join().unwrap_or(1)
        }
        _ => owner.join().unwrap_or(1),
    }
}
