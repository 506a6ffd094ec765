"""Caption precompute and BrainDiVE throughput: the local executor vs Ray with 1 and 2 worker CPUs on this machine
(captions and guided images per second, and Ray's overhead per task measured with an empty task). Prints tables;
not a test.

    .venv/bin/python bench/executor_speed.py --workspace /tmp/full --voxels 2048 --batch 256 \
        --braindive 16 --steps 10 --syn-batch 4

Each configuration captions the same voxels of subj01 with both methods into a scratch copy of the workspace's
tables (a copy of the folder under --scratch), so the workspace itself is not changed.
"""
import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def _noop(x):
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", required=True)
    p.add_argument("--scratch", default="/tmp/executor_speed")
    p.add_argument("--subject", default="subj01")
    p.add_argument("--voxels", type=int, default=2048)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--braindive", type=int, default=0, help="also synthesize this many PPA seeds per executor")
    p.add_argument("--steps", type=int, default=10, help="BrainDiVE denoising steps")
    p.add_argument("--syn-batch", type=int, default=4, help="BrainDiVE seeds per batch (= per Ray task)")
    a = p.parse_args()

    import backend.captions as C
    from backend.executor import LocalExecutor, RayExecutor
    from backend.models import load_role
    from backend.store import Workspace

    from backend.synthesis import GuidanceConfig, parse_target, synthesize, target_objectives

    emb = load_role("embedder")
    voxels = list(range(a.voxels))
    spec = parse_target("PPA", [a.subject])
    if a.braindive:
        target_objectives(Workspace(a.workspace), spec)  # the half-data encoders, fitted once before the copies
    rows, syn_rows = [], []
    for label, cpus in (("local", None), ("ray, 1 CPU", 1), ("ray, 2 CPUs", 2)):
        dst = Path(a.scratch) / label.replace(" ", "_").replace(",", "")
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(a.workspace, dst, ignore=shutil.ignore_patterns("write.lock", "jobs.sqlite3*", "previews"))
        ws = Workspace(dst)
        with ws.writer() as tx:
            tx.sql("DELETE FROM voxel_captions WHERE subject = ?", [a.subject])
        t0 = time.perf_counter()
        ex = LocalExecutor() if cpus is None else RayExecutor(num_cpus=cpus)
        start = time.perf_counter() - t0
        overhead = float("nan")
        if cpus is not None:
            list(ex.map(_noop, [(i,) for i in range(20)]))  # warm the workers
            t = time.perf_counter()
            list(ex.map(_noop, [(i,) for i in range(200)]))
            overhead = (time.perf_counter() - t) / 200 * 1000
        t = time.perf_counter()
        C.precompute(ws, a.subject, models={"embedder": emb}, voxels=voxels, batch=a.batch, executor=ex)
        secs = time.perf_counter() - t
        rows.append((label, start, overhead, secs, 2 * len(voxels) / secs))
        if a.braindive:
            t = time.perf_counter()
            synthesize(ws, spec, n_seeds=a.braindive, config=GuidanceConfig(steps=a.steps, batch=a.syn_batch),
                       executor=ex, previews=False)
            secs = time.perf_counter() - t
            syn_rows.append((label, secs, a.braindive / secs))
        if cpus is not None:
            ex.shutdown()
        shutil.rmtree(dst, ignore_errors=True)
    print(f"\n{len(voxels):,} voxels x 2 methods, batches of {a.batch}")
    print("| executor | start (s) | empty task (ms) | caption time (s) | captions / s |")
    print("|---|---|---|---|---|")
    for label, start, over, secs, rate in rows:
        print(f"| {label} | {start:.1f} | {'' if np.isnan(over) else f'{over:.1f}'} | {secs:.1f} | {rate:,.0f} |")
    if syn_rows:
        print(f"\nBrainDiVE: {a.braindive} seeds of PPA [{a.subject}], {a.steps} steps, batches of {a.syn_batch} "
              "(scores and storage included)")
        print("| executor | time (s) | guided images / s |")
        print("|---|---|---|")
        for label, secs, rate in syn_rows:
            print(f"| {label} | {secs:.1f} | {rate:.2f} |")


if __name__ == "__main__":
    main()
