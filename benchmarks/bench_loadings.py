"""Benchmark: descriptors -> style loadings, hx.compute_loadings vs a seed-style pandas loop.

The baseline follows seed 000 (steps 1-2): per descriptor, filter the long
(date, ticker, descriptor, val) table, pivot it to date x ticker, winsorize at the
row-wise 0.1%/99.9% quantiles, clip at the cap-weighted mean +- 3 std, z-score,
stack back to long; per style, average its descriptor columns, pivot again and
winsorize/standardize again. At full size the pandas loop is timed on a subset of
descriptors (and one style) and scaled linearly to all descriptors and styles;
the per-descriptor filter then scans a smaller long table than the seed's, so the
scaled baseline is an underestimate (conservative for the ratio).

Usage: python benchmarks/bench_loadings.py [--quick] [--chunks 4,16] [--style NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import hsr_xr as hx

N_STYLES_DESCS = {  # 12 seed styles, 40 descriptors
    "beta": 4,
    "volatility": 4,
    "momentum": 4,
    "size": 1,
    "nonlinear_size": 1,
    "trading_activity": 4,
    "growth": 4,
    "earnings_yield": 4,
    "value": 4,
    "earnings_variability": 4,
    "leverage": 3,
    "dividend_yield": 3,
}


def descriptor_names() -> list[str]:
    names = []
    for style, k in N_STYLES_DESCS.items():
        names += (
            [style] if style in ("size", "nonlinear_size") else [f"{style}_{i}" for i in range(k)]
        )
    return names


def make_data(n_dates: int, n_assets: int, seed: int = 0) -> xr.Dataset:
    """Heavy-tailed descriptors with NaNs (float32 in memory) and log-normal caps."""
    rng = np.random.default_rng(seed)
    names = descriptor_names()
    desc = np.empty((n_dates, n_assets, len(names)), dtype=np.float32)
    for t0 in range(0, n_dates, 64):  # generate in slabs to keep the peak low
        t1 = min(t0 + 64, n_dates)
        block = rng.standard_t(3, size=(t1 - t0, n_assets, len(names)))
        block *= rng.uniform(0.2, 5.0, len(names))
        block[rng.random(block.shape) < 0.1] = np.nan
        desc[t0:t1] = block
    cap = np.exp(rng.normal(21, 1.6, size=(n_dates, n_assets)))
    cap[:, : n_assets // 50] = np.nan  # not listed
    return xr.Dataset(
        {
            "descriptors": (("date", "asset", "descriptor"), desc),
            "market_cap": (("date", "asset"), cap),
        },
        coords={
            "date": pd.bdate_range("2010-01-01", periods=n_dates),
            "asset": [f"A{i:05d}" for i in range(n_assets)],
            "descriptor": names,
        },
    )


# ----------------------------------------------------------------------------- seed-style loop


def seed_winsorize_and_standardize(
    df: pd.DataFrame, mcap: pd.DataFrame, lower=0.001, upper=0.999, n_std=3.0, min_valid=25
) -> pd.Series:
    """Seed-style row-wise winsorize/standardize of a date x ticker frame -> long z-scores."""
    q = df.quantile([lower, upper], axis=1)
    df = df.clip(q.loc[lower], q.loc[upper], axis=0)
    w = mcap.reindex_like(df).where(df.notna())
    n_valid = w.notna().sum(axis=1)
    w = w.div(w.sum(axis=1), axis=0)
    m = (df * w).sum(axis=1)
    s = np.sqrt((df.sub(m, axis=0) ** 2 * w).sum(axis=1))
    df = df.clip(m - n_std * s, m + n_std * s, axis=0)
    m = (df * w).sum(axis=1)
    s = np.sqrt((df.sub(m, axis=0) ** 2 * w).sum(axis=1))
    z = df.sub(m, axis=0).div(s.where(s > 0), axis=0)
    z.loc[n_valid < min_valid] = np.nan
    return z.stack()


def long_frame(ds: xr.Dataset, descs: list[str]) -> pd.DataFrame:
    """The seed's long descriptor table for ``descs`` (float64 values)."""
    sub = ds.descriptors.sel(descriptor=descs).astype(float).compute()
    frame = sub.to_dataframe().reset_index().rename(columns={"asset": "ticker"})
    return frame.rename(columns={"descriptors": "val"})


def seed_loop(long: pd.DataFrame, mcap: pd.DataFrame, styles: dict[str, list[str]]):
    """Seed steps 1-2. Returns (loadings frame, seconds in step 1, seconds in step 2)."""
    t0 = time.perf_counter()
    zs = []
    for d in long["descriptor"].unique():
        df = long[long["descriptor"] == d].pivot(index="date", columns="ticker", values="val")
        z = seed_winsorize_and_standardize(df, mcap)
        z.name = d
        zs.append(z)
    zscore_df = pd.concat(zs, axis=1)
    t1 = time.perf_counter()
    out = []
    for style, cols in styles.items():
        s = zscore_df[cols].mean(axis=1)
        s.name = style
        df = s.reset_index().pivot(index="date", columns="ticker", values=style)
        z = seed_winsorize_and_standardize(df, mcap)
        z.name = style
        out.append(z)
    t2 = time.perf_counter()
    return pd.concat(out, axis=1), t1 - t0, t2 - t1


# ----------------------------------------------------------------------------- memory


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_gb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _rss_gb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (T=126, N=600)")
    ap.add_argument("--chunks", default="4,16", help="dates per Dask chunk, comma-separated")
    ap.add_argument(
        "--style", default="leverage", help="full size: the style whose descriptors pandas times"
    )
    args = ap.parse_args()
    chunks = [int(c) for c in args.chunks.split(",")]
    T, N = (126, 600) if args.quick else (2520, 3000)
    # dask copies NumPy data into its chunks: keep only the chunked copy
    ds = make_data(T, N).chunk({"date": min(chunks), "asset": -1, "descriptor": -1})
    names = list(ds.descriptor.values)
    D, S = len(names), len(N_STYLES_DESCS)
    size = f"T={T} N={N} D={D} S={S}"
    warnings.simplefilter("ignore", hx.ZeroStdWarning)
    print(f"# load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    # ours: Dask over date chunks, threaded scheduler (rechunked from the smallest chunks)
    runs = []
    hx.compute_loadings(ds.isel(date=slice(0, 2 * max(chunks))), merge=False).load()  # warm-up
    ours = None
    for chunk in chunks:
        ours = None
        data = ds.chunk({"date": chunk})
        rss0 = _rss_gb()
        _reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        ours = hx.compute_loadings(data, merge=False).load()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = _peak_gb()
        runs.append(dict(chunk=chunk, ours_s=wall, ours_cpu_s=cpu, peak_gb=peak, rss_before=rss0))
        print(
            f"# ours chunk={chunk}: wall {wall:.2f}s, cpu {cpu:.2f}s; RSS before {rss0:.2f} GB "
            f"(input {ds.nbytes / 2**30:.2f} GB, output {ours.nbytes / 2**30:.2f} GB), "
            f"peak {peak:.2f} GB"
        )

    # baseline: seed-style pandas loop, on a subset of descriptors when full size
    # (full size: the descriptors of one style, so that its loadings can be compared too)
    members = {s: [d for d in names if d == s or d.startswith(s + "_")] for s in N_STYLES_DESCS}
    styles = members if args.quick else {args.style: members[args.style]}
    subset = names if args.quick else members[args.style]
    ours = ours.loadings.sel(style=list(styles)).copy()  # free the rest before the baseline
    mcap = ds.market_cap.compute().to_pandas()
    long = long_frame(ds, subset)
    mcap.columns.name = "ticker"
    _reset_peak()
    c0 = time.process_time()
    base, t_desc, t_style = seed_loop(long, mcap, styles)
    base_cpu = time.process_time() - c0
    base_peak = _peak_gb()
    scaled = not args.quick
    baseline_s = t_desc * D / len(subset) + t_style * S / len(styles)
    note = (
        f"pandas timed on {len(subset)}/{D} descriptors and {len(styles)}/{S} styles, "
        "scaled linearly"
        if scaled
        else "pandas timed on all descriptors and styles"
    )
    print(
        f"# baseline: {note}; step1 {t_desc:.2f}s, step2 {t_style:.2f}s "
        f"(cpu {base_cpu:.2f}s); peak {base_peak:.2f} GB"
    )

    # agreement on what both computed (styles whose descriptors are all in the subset)
    diffs = []
    for style in styles:
        ref = (
            base[style].unstack("ticker").reindex(index=ds.date.to_index(), columns=ds.asset.values)
        )
        got = ours.sel(style=style).to_pandas()
        diffs.append(float(np.nanmax(np.abs(ref.to_numpy() - got.to_numpy()))))
    print(f"# max |ours - pandas| on {list(styles)}: {max(diffs):.2e}")

    print(f"{'case':<28} {'size':<28} {'ours_s':>9} {'baseline_s':>11} {'ratio':>7}")
    results = []
    for run in runs:
        case = f"compute_loadings chunk={run['chunk']}"
        ratio = baseline_s / run["ours_s"]
        print(f"{case:<28} {size:<28} {run['ours_s']:>9.2f} {baseline_s:>11.2f} {ratio:>7.1f}")
        results.append(
            dict(
                case=case,
                size=size,
                ours_s=run["ours_s"],
                baseline_s=baseline_s,
                ratio=ratio,
                ours_cpu_s=run["ours_cpu_s"],
                ours_peak_rss_gb=run["peak_gb"],
                rss_before_gb=run["rss_before"],
            )
        )
    meta = dict(
        baseline_note=note,
        baseline_step1_s=t_desc,
        baseline_step2_s=t_style,
        baseline_peak_rss_gb=base_peak,
        input_gb=ds.nbytes / 2**30,
        max_abs_diff=max(diffs),
        quick=args.quick,
    )
    out = Path(__file__).parent / "results" / "loadings.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(cases=results, **meta), indent=2))


if __name__ == "__main__":
    main()
