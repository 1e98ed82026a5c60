#!/usr/bin/env python3
"""Python's concurrent.futures as an anchor for benches/anchors.rs (issue #4).

Run by `cargo bench --bench anchors`, which passes the same counts as its own measurements and reads the
lines this prints on stdout:

    TIME <key> <median seconds per op> <min seconds per op>
    VALUE <key> <number>

It can also be run by hand, e.g. `python3 benches/python_anchors.py --sections 1,3`. Only the standard
library is used. Peak RSS is measured in a child process (this script with --rss-probe) so that earlier
sections do not pollute it.
"""

import argparse
import concurrent.futures as cf
import statistics
import subprocess
import sys
import threading
import time


def inc(x):
    return x + 1


def echo(b):
    return b


def pi_series(terms):
    s = 0.0
    for i in range(1, terms + 1):
        s += 1.0 / (i * i)
    return s


def bench(reps, ops, sample, warmup=1):
    """Warm up, then `reps` samples; each sample returns the seconds it measured itself. Returns the
    median and min seconds per op, and the median CPU seconds per op of the whole process (all threads,
    measured around the whole sample)."""
    for _ in range(warmup):
        sample()
    xs, cpu = [], []
    for _ in range(reps):
        c0 = time.process_time()
        xs.append(sample() / ops)
        cpu.append((time.process_time() - c0) / ops)
    xs.sort()
    return statistics.median(xs), xs[0], statistics.median(cpu)


def emit_time(key, stat):
    print(f"TIME {key} {stat[0]:.6e} {stat[1]:.6e} {stat[2]:.6e}", flush=True)


def emit_value(key, value):
    print(f"VALUE {key} {value:.3f}", flush=True)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# §1 -------------------------------------------------------------------------------------------------


def round_trip(args):
    n = args.rt_n
    log(f"  python §1 round trip x{n}")
    with cf.ThreadPoolExecutor(2) as ex:

        def sample():
            t = time.perf_counter()
            for i in range(n):
                ex.submit(inc, i).result()
            return time.perf_counter() - t

        emit_time("s1.py", bench(args.reps, n, sample))


# §2 -------------------------------------------------------------------------------------------------


def throughput(args):
    n = args.tp_n
    log(f"  python §2 throughput x{n}")
    with cf.ThreadPoolExecutor(2) as ex:

        def sample():
            t = time.perf_counter()
            fs = [ex.submit(inc, i) for i in range(n)]
            for f in fs:
                f.result()
            return time.perf_counter() - t

        emit_time("s2.py", bench(args.reps, n, sample))
    for mode in ("gated", "free"):
        out = subprocess.run(
            [sys.executable, __file__, "--rss-probe", str(n), mode],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for line in out.splitlines():
            if line.startswith("PROBE "):
                emit_value(f"s2.rss_{mode}_py", float(line.split()[1]))


def status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def rss_probe(n, gated):
    """Peak RSS growth per task: n trivial tasks submitted at once to 2 workers, then all awaited."""
    gate = threading.Event()
    started = threading.Barrier(3)

    def blocker():
        started.wait()
        gate.wait()

    with cf.ThreadPoolExecutor(2) as ex:
        hold = []
        if gated:
            hold = [ex.submit(blocker), ex.submit(blocker)]
            started.wait()
        else:
            list(ex.map(inc, range(1000)))
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        base = status_bytes("VmRSS:")
        fs = [ex.submit(inc, i) for i in range(n)]
        gate.set()
        for f in fs:
            f.result()
        for f in hold:
            f.result()
        peak = status_bytes("VmHWM:")
    print(f"PROBE {(peak - base) / n}")


# §3 -------------------------------------------------------------------------------------------------


def as_completed_and_wait(args):
    n = args.ac_n
    log(f"  python §3 as_completed x{n}, wait over {args.wait_n}")
    with cf.ThreadPoolExecutor(2) as ex:

        def done_sample():
            fs = [ex.submit(inc, i) for i in range(n)]
            cf.wait(fs)
            t = time.perf_counter()
            for f in cf.as_completed(fs):
                f.result()
            return time.perf_counter() - t

        emit_time("s3.py_done", bench(args.reps, n, done_sample))

        def live_sample():
            t = time.perf_counter()
            fs = [ex.submit(inc, i) for i in range(n)]
            for f in cf.as_completed(fs):
                f.result()
            return time.perf_counter() - t

        emit_time("s3.py_live", bench(args.reps, n, live_sample))

    m, k = args.wait_n, args.wait_inner

    def fresh():
        fs = [cf.Future() for _ in range(m)]
        last = cf.Future()
        last.set_result(7)
        fs.append(last)
        return fs

    def wait_sample():
        sets = [fresh() for _ in range(k)]
        total = 0.0
        for fs in sets:
            t = time.perf_counter()
            done, _ = cf.wait(fs, return_when=cf.FIRST_COMPLETED)
            total += time.perf_counter() - t
            assert len(done) == 1
        return total

    emit_time("s3.py_wait", bench(args.reps, k, wait_sample))


# §4 -------------------------------------------------------------------------------------------------


def cpu_scaling(args):
    tasks, terms = args.pi_tasks, args.pi_terms
    log(f"  python §4 cpu scaling: {tasks} tasks x {terms} terms")
    for name, executor in (
        ("threads", cf.ThreadPoolExecutor),
        ("processes", cf.ProcessPoolExecutor),
    ):
        for workers in (1, 2):
            with executor(workers) as ex:
                # Start every worker before timing.
                list(ex.map(time.sleep, [0.05] * workers))

                def sample():
                    t = time.perf_counter()
                    fs = [ex.submit(pi_series, terms) for _ in range(tasks)]
                    for f in fs:
                        f.result()
                    return time.perf_counter() - t

                emit_time(f"s4.py_{name}_{workers}", bench(args.reps, 1, sample))


# §5 -------------------------------------------------------------------------------------------------


def process_round_trip(args):
    n, e, size = args.proc_rt_n, args.echo_n, args.echo_bytes
    log(f"  python §5 process round trip x{n}, {size} B echo x{e}")
    payload = bytes((i ^ (i >> 8)) & 0xFF for i in range(size))
    with cf.ProcessPoolExecutor(1) as ex:
        ex.submit(inc, 0).result()  # start the worker

        def trivial():
            t = time.perf_counter()
            for i in range(n):
                ex.submit(inc, i).result()
            return time.perf_counter() - t

        emit_time("s5.py", bench(args.reps, n, trivial))

        def echoes():
            t = time.perf_counter()
            for _ in range(e):
                ex.submit(echo, payload).result()
            return time.perf_counter() - t

        emit_time("s5.py_echo", bench(args.reps, e, echoes))
        assert ex.submit(echo, payload).result() == payload


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--rt-n", type=int, default=20_000)
    p.add_argument("--tp-n", type=int, default=200_000)
    p.add_argument("--ac-n", type=int, default=100_000)
    p.add_argument("--wait-n", type=int, default=10_000)
    p.add_argument("--wait-inner", type=int, default=10)
    p.add_argument("--pi-tasks", type=int, default=8)
    p.add_argument("--pi-terms", type=int, default=1_000_000)
    p.add_argument("--proc-rt-n", type=int, default=5_000)
    p.add_argument("--echo-n", type=int, default=500)
    p.add_argument("--echo-bytes", type=int, default=1 << 20)
    p.add_argument("--sections", default="1,2,3,4,5")
    p.add_argument("--rss-probe", nargs=2, metavar=("N", "MODE"))
    args = p.parse_args()
    if args.rss_probe:
        rss_probe(int(args.rss_probe[0]), args.rss_probe[1] == "gated")
        return
    sections = {s.strip() for s in args.sections.split(",")}
    for sec, run in (
        ("1", round_trip),
        ("2", throughput),
        ("3", as_completed_and_wait),
        ("4", cpu_scaling),
        ("5", process_round_trip),
    ):
        if sec in sections:
            run(args)


if __name__ == "__main__":
    main()
