"""Training speed over time: is the second core there for the whole run?

Trains one of bench_train's nets with fastcnn (native) for many short intervals
of about a second each and prints, per interval, the images/s and, for every
thread of the process, the CPU it last ran on and its CPU time so far
(/proc/self/task, Linux only). On a shared VM the speed with 2 threads can switch
between stretches near 2x the 1-thread speed and stretches at the 1-thread speed
while both threads stay busy on their own CPUs; the median of a short benchmark
then depends on which stretch it fell into. With --threads 1 2 the intervals
alternate between the thread counts, so both see the same stretches.

    python bench/bench_stretches.py                       # N2, batch 10, 2 threads, 40 intervals
    python bench/bench_stretches.py --threads 1 2 --intervals 30
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastcnn  # noqa: E402
from fastcnn import optim  # noqa: E402
from fastcnn.io.files import atomic_write  # noqa: E402
from _harness import RESULTS_DIR, machine_info  # noqa: E402
from bench_train import NETS, build  # noqa: E402


def threads_now() -> list:
    """[(thread id, last CPU, CPU seconds)] of this process's threads."""
    out = []
    tick = os.sysconf("SC_CLK_TCK")
    task_dir = "/proc/self/task"
    if not os.path.isdir(task_dir):
        return out
    for tid in sorted(os.listdir(task_dir), key=int):
        try:
            with open(f"{task_dir}/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        # after the command: state is field 3 of stat(5), utime 14, stime 15, processor 39
        out.append((int(tid), int(fields[36]), (int(fields[11]) + int(fields[12])) / tick))
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--net", default="N2", choices=NETS)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--threads", type=int, nargs="+", default=[2])
    p.add_argument("--intervals", type=int, default=40, help="timed intervals in all")
    p.add_argument("--seconds", type=float, default=1.0, help="about this long each")
    p.add_argument("--out", default=None, help="JSON file (default: bench/results/...)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.batch < 1 or args.intervals < 1 or args.seconds <= 0:
        raise SystemExit("--batch and --intervals must be >= 1, --seconds > 0")
    if any(t < 1 for t in args.threads):
        raise SystemExit("--threads must be >= 1")
    (x, y), _, _ = fastcnn.datasets.load_mnist(dtype="uint8")
    model = build(args.net)
    opt = optim.SGD(0.01)

    def train(steps, start):
        n = steps * args.batch
        lo = start % (x.shape[0] - n)
        model.fit(x[lo:lo + n], y[lo:lo + n], epochs=1, batch_size=args.batch, optimizer=opt,
                  shuffle=False, verbose=0)
        return n

    # steps per interval, from a short run at the first thread count
    fastcnn.set_num_threads(args.threads[0])
    train(20, 0)
    t = time.perf_counter()
    train(50, 0)
    steps = max(1, int(args.seconds * 50 / (time.perf_counter() - t)))
    print(f"{args.net}, mini-batch {args.batch}, {steps} steps per interval, threads "
          f"{' / '.join(map(str, args.threads))} in turn")
    rows, done = [], 0
    for i in range(args.intervals):
        threads = args.threads[i % len(args.threads)]
        fastcnn.set_num_threads(threads)
        t = time.perf_counter()
        done += train(steps, done)
        rate = steps * args.batch / (time.perf_counter() - t)
        state = threads_now()
        rows.append({"interval": i, "threads": threads, "images_per_s": rate,
                     "tasks": [{"tid": tid, "cpu": cpu, "cpu_seconds": s}
                               for tid, cpu, s in state]})
        where = " ".join(f"cpu{cpu}:{s:.1f}s" for _, cpu, s in state)
        print(f"{i:3d}  threads {threads}  {rate:8.0f} images/s   {where}", flush=True)
    summary = {}
    for threads in args.threads:
        rates = [r["images_per_s"] for r in rows if r["threads"] == threads]
        summary[threads] = {"median": statistics.median(rates), "min": min(rates),
                            "max": max(rates)}
        print(f"threads {threads}: median {summary[threads]['median']:.0f} images/s, "
              f"min {min(rates):.0f}, max {max(rates):.0f} over {len(rates)} intervals")
    out = args.out or os.path.join(RESULTS_DIR, f"stretches-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    text = json.dumps({"command": " ".join(sys.argv), "machine": machine_info(),
                       "net": args.net, "batch": args.batch, "steps_per_interval": steps,
                       "summary": summary, "intervals": rows}, indent=1)
    atomic_write(out, lambda f: f.write(text.encode()))
    print(f"results written to {os.path.relpath(out)}")


if __name__ == "__main__":
    main()
