"""Simulator speed and Zarr store write/read throughput.

Baseline: a NumPy lower bound that only draws the same number of normal
variates the simulator needs (T×N×(styles + descriptors + 3)), so the ratio
says how close the full simulation comes to raw random-number generation.
Store throughput is reported in MB/s of uncompressed data written and read.

    python benchmarks/bench_simulate.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
from _common import peak_rss_mib, report, timed

import hsr_xr as hx


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = p.parse_args()
    T, N = (252, 500) if args.quick else (2520, 3000)
    size = f"T={T} N={N}"

    t_sim, ds = timed(lambda: hx.simulate_market(n_dates=T, n_assets=N, seed=0))
    n_draws = T * N * (ds.sizes["style"] + ds.sizes["descriptor"] + 3)
    rng = np.random.default_rng(0)
    t_rng, _ = timed(lambda: rng.standard_normal(n_draws))
    rows = [
        {"case": "simulate_market vs RNG lower bound", "size": size, "ours_s": t_sim,
         "baseline_s": t_rng, "ratio": t_rng / t_sim},
    ]  # fmt: skip

    tmp = Path(tempfile.mkdtemp())
    try:
        mb = ds.nbytes / 1e6
        t_write, _ = timed(lambda: hx.to_store(ds, tmp / "s.zarr", mode="w"))
        t_read, _ = timed(lambda: hx.open_store(tmp / "s.zarr").load())
        disk = sum(f.stat().st_size for f in (tmp / "s.zarr").rglob("*") if f.is_file()) / 1e6
        t_np, _ = timed(lambda: [np.array(v.values, copy=True) for v in ds.data_vars.values()])
    finally:
        shutil.rmtree(tmp)
    rows += [
        {"case": "to_store vs in-memory copy", "size": f"{size} {mb:.0f} MB", "ours_s": t_write,
         "baseline_s": t_np, "ratio": t_np / t_write},
        {"case": "open_store().load vs in-memory copy", "size": f"{size} {mb:.0f} MB",
         "ours_s": t_read, "baseline_s": t_np, "ratio": t_np / t_read},
    ]  # fmt: skip
    print(
        f"write {mb / t_write:.0f} MB/s, read {mb / t_read:.0f} MB/s, on disk {disk:.0f} MB "
        f"(compression {mb / disk:.1f}x), peak RSS {peak_rss_mib():.0f} MiB"
    )
    report(
        "simulate",
        rows,
        {"write_MBps": mb / t_write, "read_MBps": mb / t_read, "dataset_MB": mb,
         "disk_MB": disk, "peak_rss_MiB": peak_rss_mib()},
    )  # fmt: skip


if __name__ == "__main__":
    main()
