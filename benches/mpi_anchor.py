"""The anchor of benches/mpi.rs: mpi4py.futures.MPIPoolExecutor on the same machine.

Run by the bench with Debian's /usr/bin/python3 (which has python3-mpi4py), in spawn mode with
two workers, as `python3 benches/mpi_anchor.py ROUNDS TASKS BIG_ROUNDS IDLE_SECS`. Prints one JSON
object: seconds per round trip (trivial task, 1 MiB echo), tasks per second (many small tasks
submitted at once), and the CPU seconds the client and the workers spent, per phase.
"""
import json
import os
import resource
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def ident(x):
    return x


def cpu(_=None):
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def workers_cpu(ex, n):
    # One call per worker is not guaranteed to reach each worker, so ask many times and keep the
    # largest value per pid.
    seen = {}
    for pid, t in ex.map(pid_cpu, range(8 * n)):
        seen[pid] = max(seen.get(pid, 0.0), t)
    return sum(seen.values())


def pid_cpu(_):
    return os.getpid(), cpu()


def main():
    rounds, tasks, big_rounds, idle = (int(a) for a in sys.argv[1:5])
    out = {}
    with MPIPoolExecutor(max_workers=2) as ex:
        ex.submit(ident, 0).result()
        list(ex.map(ident, range(100)))
        # 1. round trip of a trivial task
        c0, w0, t0 = cpu(), workers_cpu(ex, 2), time.perf_counter()
        for i in range(rounds):
            ex.submit(ident, i).result()
        t1 = time.perf_counter()
        c1, w1 = cpu(), workers_cpu(ex, 2)
        out["round_trip_s"] = (t1 - t0) / rounds
        out["round_trip_client_cpu_s"] = (c1 - c0) / rounds
        out["round_trip_workers_cpu_s"] = (w1 - w0) / rounds
        # 2. many small tasks submitted at once
        c0, w0, t0 = cpu(), workers_cpu(ex, 2), time.perf_counter()
        fs = [ex.submit(ident, i) for i in range(tasks)]
        for f in fs:
            f.result()
        t1 = time.perf_counter()
        c1, w1 = cpu(), workers_cpu(ex, 2)
        out["throughput_per_s"] = tasks / (t1 - t0)
        out["throughput_client_cpu_s"] = (c1 - c0) / tasks
        out["throughput_workers_cpu_s"] = (w1 - w0) / tasks
        # 3. 1 MiB echo
        big = os.urandom(1 << 20)
        ex.submit(ident, big).result()
        t0 = time.perf_counter()
        for _ in range(big_rounds):
            assert len(ex.submit(ident, big).result()) == len(big)
        out["mib_echo_s"] = (time.perf_counter() - t0) / big_rounds
        # 4. an idle pool
        c0, w0 = cpu(), workers_cpu(ex, 2)
        time.sleep(idle)
        c1, w1 = cpu(), workers_cpu(ex, 2)
        out["idle_client_cpu_frac"] = (c1 - c0) / idle
        out["idle_workers_cpu_frac"] = (w1 - w0) / idle
    print(json.dumps(out))


if __name__ == "__main__":
    main()
