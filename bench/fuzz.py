"""The slow fuzz run: N mutated specs through dlspec.load and source generation, with counts.

    PYTHONPATH=. python bench/fuzz.py [N] [--seed S] [--workers W] [--show INDEX]

Each case i is drawn from ``random.Random(f"{seed}:{i}")``, so any case reproduces alone (``--show i``
prints it and its outcome). Every worker runs under a memory limit; a case past its time guard is a hang.
Prints the counts of ok, located errors, crashes and hangs, the time, and the first crashes and hangs.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import random
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzzlib  # noqa: E402

MEMORY = 4 * 2**30  # address space of one worker


def _case(seed: int, i: int, corpus) -> fuzzlib.Case:
    return fuzzlib.make_case(fuzzlib.Source(random.Random(f"{seed}:{i}")), corpus)


def _work(args):
    seed, start, stop, seconds = args
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    corpus, workdir = fuzzlib.seeds(), fuzzlib.new_workdir()
    counts, bad = collections.Counter(), []
    for i in range(start, stop):
        case = _case(seed, i, corpus)
        t = time.perf_counter()
        out = fuzzlib.run_case(case, workdir, seconds)
        counts[out.status] += 1
        counts["slowest_ms"] = max(counts["slowest_ms"], int((time.perf_counter() - t) * 1000))
        if out.status in ("crash", "hang"):
            bad.append((i, case.kind, case.seed, out.status, out.detail))
            print(f"!!! case {i} ({case.kind} of {case.seed}): {out.status}: {out.detail[:300]}", file=sys.stderr,
                  flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return counts, bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=fuzzlib.CASE_SECONDS, help="time guard of one case")
    parser.add_argument("--show", type=int, help="print case INDEX and its outcome")
    args = parser.parse_args(argv)
    if args.show is not None:
        case = _case(args.seed, args.show, fuzzlib.seeds())
        print(f"# case {args.show}: {case.kind} mutation of {case.seed}; base files: {sorted(case.files)}")
        print(case.text)
        out = fuzzlib.run_case(case, fuzzlib.new_workdir(), args.seconds)
        print(f"# outcome: {out.status} {out.detail}")
        return 0
    chunk = 500
    jobs = [(args.seed, a, min(a + chunk, args.n), args.seconds) for a in range(0, args.n, chunk)]
    start = time.time()
    counts, bad = collections.Counter(), []
    with multiprocessing.get_context("fork").Pool(args.workers, maxtasksperchild=4) as pool:
        for done, (c, b) in enumerate(pool.imap_unordered(_work, jobs), 1):
            slowest = max(counts["slowest_ms"], c.pop("slowest_ms", 0))
            counts.update(c)
            counts["slowest_ms"] = slowest
            bad += b
            if done % 4 == 0:
                print(f"... {sum(counts[k] for k in ('ok', 'error', 'crash', 'hang'))} cases: ok {counts['ok']}, "
                      f"errors {counts['error']}, crashes {counts['crash']}, hangs {counts['hang']}; "
                      f"{time.time() - start:.0f} s", file=sys.stderr, flush=True)
    elapsed = time.time() - start
    total = sum(counts[k] for k in ("ok", "error", "crash", "hang"))
    print(f"cases {total}: ok {counts['ok']}, located errors {counts['error']}, crashes {counts['crash']}, "
          f"hangs {counts['hang']}; {elapsed:.0f} s with {args.workers} worker(s) "
          f"({1000 * elapsed * args.workers / max(total, 1):.1f} ms per case), slowest case {counts['slowest_ms']} ms")
    for i, kind, seed, status, detail in sorted(bad)[:40]:
        print(f"  case {i} ({kind} of {seed}): {status}: {detail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
