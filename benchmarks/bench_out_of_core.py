"""Out-of-core: peak memory of the cross-sectional pipeline on stores of growing length.

Builds Zarr stores of T1 and 4×T1 dates by appending yearly blocks (so building
them never holds the whole history), then, each in a fresh subprocess:

* ours: ``open_store`` (lazy, date-chunked) → ``compute_loadings`` →
  ``factor_regression`` → ``to_store``, streamed chunk by chunk;
* baseline: the same steps after loading the whole store into memory;
* the whole ``hsr-xr run --preset use4s`` (loadings, regression, then the risk
  model reading the stored returns back in its time-series layout), streamed.

Prints peak RSS per case, the baseline/ours RSS ratio, and how the streamed
cases grow from T1 to 4×T1 (bounded by the chunk size means ≈ 1).

    python benchmarks/bench_out_of_core.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import peak_rss_mib, report

import hsr_xr as hx

BLOCK = 252


def build_store(path: Path, n_dates: int, n_assets: int) -> float:
    """Append yearly blocks of a simulated market; returns the store's size in MB."""
    start = pd.Timestamp("2000-01-03")
    for k in range(n_dates // BLOCK):
        block = hx.simulate_market(
            n_dates=BLOCK, n_assets=n_assets, seed=0, start=str(start.date())
        )
        block = block[["returns", "market_cap", "industry", "descriptors"]]
        hx.to_store(block, path, mode="w" if k == 0 else "append", chunks={"date": 63})
        start = block.indexes["date"][-1] + pd.offsets.BDay(1)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def child(store: str, out: str, in_memory: bool, run: bool = False) -> None:
    import contextlib
    import io
    import warnings

    import dask

    from hsr_xr.cli import main as cli

    warnings.simplefilter("ignore")
    dask.config.set(scheduler="threads", num_workers=2)
    t0 = time.perf_counter()
    if run:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert cli(["run", store, "--preset", "use4s"]) == 0
        print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_MiB": peak_rss_mib()}))
        return
    ds = hx.open_store(store)
    if in_memory:
        ds = ds.load()
    ds = hx.compute_loadings(ds)
    res = hx.factor_regression(ds, merge=False)
    hx.to_store(res, out, mode="w")
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_MiB": peak_rss_mib()}))


def run_child(store: Path, tmp: Path, in_memory: bool, run: bool = False) -> dict:
    out = tmp / ("mem.zarr" if in_memory else "ooc.zarr")
    cmd = [sys.executable, __file__, "--child", str(store), str(out)]
    cmd += ["--in-memory"] if in_memory else []
    cmd += ["--run"] if run else []
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    p.add_argument("--child", nargs=2, metavar=("STORE", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child, in_memory=args.in_memory, run=args.run)
        return
    n_assets, t1 = (300, 252) if args.quick else (2000, 504)
    tmp = Path(tempfile.mkdtemp())
    rows, extra = [], {}
    try:
        for T in (t1, 4 * t1):
            store = tmp / f"market_{T}.zarr"
            mb = build_store(store, T, n_assets)
            ours = run_child(store, tmp, in_memory=False)
            base = run_child(store, tmp, in_memory=True)
            size = f"T={T} N={n_assets} store={mb:.0f}MB"
            print(f"{size}: out-of-core peak {ours['peak_rss_MiB']:.0f} MiB "
                  f"({ours['seconds']:.1f} s), in-memory peak {base['peak_rss_MiB']:.0f} MiB "
                  f"({base['seconds']:.1f} s)")  # fmt: skip
            full = run_child(store, tmp, in_memory=False, run=True)
            print(f"{size}: hsr-xr run --preset use4s peak {full['peak_rss_MiB']:.0f} MiB "
                  f"({full['seconds']:.1f} s)")  # fmt: skip
            rows.append({"case": "peak RSS MiB: streamed vs loaded", "size": size,
                         "ours_s": ours["peak_rss_MiB"], "baseline_s": base["peak_rss_MiB"],
                         "ratio": base["peak_rss_MiB"] / ours["peak_rss_MiB"],
                         "ours_seconds": ours["seconds"], "baseline_seconds": base["seconds"],
                         "run_use4s_peak_MiB": full["peak_rss_MiB"],
                         "run_use4s_seconds": full["seconds"], "store_MB": mb})  # fmt: skip
            shutil.rmtree(store)
    finally:
        shutil.rmtree(tmp)
    growth = rows[1]["ours_s"] / rows[0]["ours_s"]
    base_growth = rows[1]["baseline_s"] / rows[0]["baseline_s"]
    run_growth = rows[1]["run_use4s_peak_MiB"] / rows[0]["run_use4s_peak_MiB"]
    print(f"history x4: streamed peak RSS x{growth:.2f}, loaded peak RSS x{base_growth:.2f}, "
          f"hsr-xr run (use4s) peak RSS x{run_growth:.2f}")  # fmt: skip
    extra.update(streamed_growth=growth, loaded_growth=base_growth, run_growth=run_growth)
    report("out_of_core", rows, extra, unit="MiB")


if __name__ == "__main__":
    main()
