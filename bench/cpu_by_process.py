#!/usr/bin/env python3
"""Whose CPU a benchmark phase spends, per item committed.

    bench/cpu_by_process.py sample [PORT] > cpu.txt     # beside bench/run.sh; Ctrl-C to stop
    bench/cpu_by_process.py window cpu.txt START END    # seconds from the first sample

`sample` prints, every 0.5 s: the time, the CPU seconds used so far by PostgreSQL's processes,
by `onramp` and by `onramp-load` (from /proc/<pid>/stat), the machine's total and idle CPU
seconds (/proc/stat), and the changes the app's DB writer has committed (the sum of its
`onramp_writer_batch_size` histogram on http://127.0.0.1:PORT/metrics, default 18080, the port
bench/run.sh gives the app). `window` turns two of those lines (the first and last sample
between START and END) into milliseconds of CPU per committed change for each of them: pick
the window of a phase from the changes per second `sample` printed (BENCHMARKS.md, "Eleventh
session"). Processes that exit inside the window make it wrong: take windows inside one run.
"""
import os
import sys
import time
import urllib.request

HZ = os.sysconf("SC_CLK_TCK")


def cpu_by_group():
    groups = {"postgres": 0.0, "onramp": 0.0, "onramp-load": 0.0}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        used = sum(int(x) for x in fields[11:15]) / HZ  # utime stime cutime cstime
        if comm.startswith("postgres"):
            groups["postgres"] += used
        elif comm.startswith("onramp-load"):
            groups["onramp-load"] += used
        elif comm.startswith("onramp"):
            groups["onramp"] += used
    return groups


def machine():
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return sum(ticks) / HZ, (ticks[3] + ticks[4]) / HZ


def committed(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=0.3) as r:
            text = r.read().decode()
    except OSError:
        return -1
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("onramp_writer_batch_size_sum")
    )


def sample(port):
    while True:
        g = cpu_by_group()
        total, idle = machine()
        print(
            f"{time.time():.2f} {g['postgres']:.2f} {g['onramp']:.2f} {g['onramp-load']:.2f} "
            f"{total:.2f} {idle:.2f} {committed(port):.0f}",
            flush=True,
        )
        time.sleep(0.5)


def window(path, start, end):
    rows = [list(map(float, line.split())) for line in open(path) if len(line.split()) == 7]
    first_time = rows[0][0]
    inside = [r for r in rows if start <= r[0] - first_time <= end]
    a, b = inside[0], inside[-1]
    secs, changes = b[0] - a[0], b[6] - a[6]
    if changes <= 0:
        sys.exit("nothing was committed in that window")
    busy = (b[4] - a[4]) - (b[5] - a[5])
    parts = {"postgres": b[1] - a[1], "app": b[2] - a[2], "load tool": b[3] - a[3], "machine": busy}
    print(f"{secs:.1f} s, {changes:.0f} changes ({changes / secs:.0f}/s)")
    for name, used in parts.items():
        print(f"  {name:10} {used / changes * 1000:.3f} ms of CPU per change, {used / secs:.2f} cores")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "sample":
        sample(sys.argv[2] if len(sys.argv) > 2 else "18080")
    elif len(sys.argv) == 5 and sys.argv[1] == "window":
        window(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(__doc__)
