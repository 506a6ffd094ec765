"""Benchmark: our per-voxel ridge versus scikit-learn's RidgeCV(alpha_per_target=True).

    .venv/bin/python bench/ridge_vs_sklearn.py [--samples 5000] [--features 512] [--targets 20000]

Same data, same alphas. Each fit runs in its own process so peak memory (max RSS) is its own.
Prints time, peak memory, test R^2 and agreement of chosen alphas for: scikit-learn (exact LOO),
ours with exact LOO (the same criterion), ours with GCV; and the speed ratios.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_data(n, p, t, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + 1000, p)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)  # unit-normalised embeddings, as the encoder uses
    W = rng.normal(size=(p, t)).astype(np.float32) * rng.uniform(0, 1, t).astype(np.float32)
    snr = rng.uniform(0.05, 1.0, t).astype(np.float32)
    S = X @ W
    Y = S / S.std(0) * snr + rng.normal(size=S.shape).astype(np.float32)
    return X[:n], Y[:n], X[n:], Y[n:]


def worker(method, n, p, t, out):
    sys.path.insert(0, str(ROOT))
    from backend.encoders.ridge import DEFAULT_ALPHAS, fit_ridge_cv, r2_columns

    X, Y, Xt, Yt = make_data(n, p, t)
    t0 = time.perf_counter()
    if method == "sklearn":
        from sklearn.linear_model import RidgeCV

        m = RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True).fit(X, Y)
        pred, alpha = m.predict(Xt), np.asarray(m.alpha_)
    else:
        fit = fit_ridge_cv(X, Y, cv=method)
        pred, alpha = fit.predict(Xt), fit.alpha
    dt = time.perf_counter() - t0
    np.save(out + ".alpha.npy", alpha)
    json.dump({"seconds": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "test_r2": float(np.nanmean(r2_columns(Yt, pred)))}, open(out, "w"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--features", type=int, default=512)
    ap.add_argument("--targets", type=int, default=20000)
    ap.add_argument("--worker", nargs=2)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker[0], a.samples, a.features, a.targets, a.worker[1])
    import tempfile

    res = {}
    with tempfile.TemporaryDirectory() as d:
        for method in ("sklearn", "loo", "gcv"):
            out = os.path.join(d, method + ".json")
            subprocess.run([sys.executable, __file__, "--samples", str(a.samples), "--features", str(a.features),
                            "--targets", str(a.targets), "--worker", method, out], check=True)
            res[method] = json.load(open(out))
            res[method]["alpha"] = np.load(out + ".alpha.npy")
    sys.path.insert(0, str(ROOT))
    from backend.encoders.ridge import DEFAULT_ALPHAS

    print(f"ridge, {a.samples:,} samples x {a.features} features -> {a.targets:,} targets, "
          f"{len(DEFAULT_ALPHAS)} alphas ({DEFAULT_ALPHAS[0]:g}..{DEFAULT_ALPHAS[-1]:g}), {os.cpu_count()} cores")
    base = res["sklearn"]
    for name, label in (("sklearn", "scikit-learn RidgeCV(alpha_per_target=True)"), ("loo", "ours, exact LOO"),
                        ("gcv", "ours, GCV")):
        r = res[name]
        same = float(np.mean(np.isclose(r["alpha"], base["alpha"], rtol=1e-3)))
        print(f"  {label:45s} {r['seconds']:7.1f} s  peak {r['peak_mb']:7.0f} MB  test R2 {r['test_r2']:.5f}  "
              f"alpha = sklearn's for {100 * same:.1f}% of targets")
    print(f"  speed-up vs scikit-learn: exact LOO {base['seconds'] / res['loo']['seconds']:.1f}x, "
          f"GCV {base['seconds'] / res['gcv']['seconds']:.1f}x")


if __name__ == "__main__":
    main()
