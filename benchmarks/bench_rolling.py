"""Benchmark: rolling per-asset factor regressions (issue 8, DESIGN.md §7).

Data: N=5000 assets, T=2520 dates, K=5 factors, window=252, 5% of (date, asset)
returns missing at random (so every window of every asset has gaps);
``--quick``: N=400, T=756, window=126.

Cases (ours = ``hx.rolling_regression`` on NumPy-backed input, one process):

* ``dates_vs_statsmodels``: ours with ``window_type="dates", stderr=True`` vs a
  per-asset loop of ``statsmodels RollingOLS(y, [1, X], window, missing="drop").fit()``
  (params, bse, R²: the same outputs). The loop is timed on the first
  ``--sm-assets`` assets (default 20) and scaled linearly to N
  (baseline_s = elapsed * N / n_subset). Its params are checked against ours.
* ``observations_vs_seed_sklearn``: ours with ``window_type="observations"`` (the
  seed's semantics) vs the seed's ``ff5_analysis`` loop (pandas groupby per asset,
  one ``sklearn LinearRegression`` fit + predict + score per window), run verbatim
  on a long frame of ``--sk-assets`` assets (default 4), each cut to its first
  ``window + --sk-windows - 1`` valid observations (default 100 windows each).
  baseline_s = elapsed / (windows timed) * (windows in the full panel), where the
  full panel's windows are sum over assets of max(0, valid_obs - window + 1).
  Its betas, alpha and R² are checked against ours on those windows.

ratio = baseline_s / ours_s (targets: >= 30 vs statsmodels, >= 1000 vs sklearn).
The process peak RSS is reported at the end (``resource`` ru_maxrss).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from _common import peak_rss_mib, report, timed

import hsr_xr as hx

FACTORS = ["MKT", "SMB", "HML", "RMW", "CMA"]


def make_panel(n_assets: int, n_dates: int, gap: float, seed: int = 0):
    """Returns (date, asset) from planted betas on 5 factors, with random gaps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0003, 0.01, (n_dates, len(FACTORS)))
    betas = rng.normal([1.0, 0.3, 0.0, 0.1, 0.0], 0.4, (n_assets, len(FACTORS)))
    y = x @ betas.T + rng.normal(0.0, 0.015, (n_dates, n_assets))
    y[rng.random(y.shape) < gap] = np.nan
    dates = pd.bdate_range("2010-01-04", periods=n_dates)
    assets = [f"S{i:05d}" for i in range(n_assets)]
    returns = xr.DataArray(y, dims=("date", "asset"), coords={"date": dates, "asset": assets})
    factors = xr.Dataset({f: ("date", x[:, i]) for i, f in enumerate(FACTORS)}, {"date": dates})
    return returns, factors


def statsmodels_loop(returns: xr.DataArray, factors: xr.Dataset, window: int) -> np.ndarray:
    """Per-asset statsmodels RollingOLS(missing='drop'); params (asset, date, 1 + K)."""
    from statsmodels.regression.rolling import RollingOLS

    x = np.column_stack([np.ones(returns.sizes["date"])] + [factors[f].values for f in FACTORS])
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a in range(returns.sizes["asset"]):
            fit = RollingOLS(returns.values[:, a], x, window=window, missing="drop").fit()
            out.append(fit.params)
    return np.stack(out)


def ff5_analysis(df, n):
    """The seed's loop (seed 003, section 3), unchanged except for formatting."""
    from sklearn.linear_model import LinearRegression

    results = []
    for _instrument, group in df.groupby("instrument"):
        group = group.sort_values("date")
        beta_icp, beta_mkt, beta_smb, beta_hml, beta_rmw, beta_cma = [], [], [], [], [], []
        alpha, regr_resd, regr_pred, regr_r2 = [], [], [], []
        if len(group) < n:
            for c in ["beta_ICP", "beta_MKT", "beta_SMB", "beta_HML", "beta_RMW", "beta_CMA"]:
                group[c] = [None] * len(group)
            for c in ["alpha", "regr_resd", "regr_pred", "regr_r2"]:
                group[c] = [None] * len(group)
        else:
            for i in range(len(group) - n + 1):
                window = group.iloc[i : i + n]
                y = window["Return"].values
                X = window[["MKT", "SMB", "HML", "RMW", "CMA"]].values
                model = LinearRegression()
                model.fit(X, y)
                yhat_last = model.predict(X)[-1]
                beta_icp.append(model.intercept_)
                beta_mkt.append(model.coef_[0])
                beta_smb.append(model.coef_[1])
                beta_hml.append(model.coef_[2])
                beta_rmw.append(model.coef_[3])
                beta_cma.append(model.coef_[4])
                regr_pred.append(yhat_last)
                regr_resd.append(y[-1] - yhat_last)
                regr_r2.append(model.score(X, y))
                alpha.append(model.intercept_ + (y[-1] - yhat_last))
            pad = [None] * (n - 1)
            group["beta_ICP"] = pad + beta_icp
            group["beta_MKT"] = pad + beta_mkt
            group["beta_SMB"] = pad + beta_smb
            group["beta_HML"] = pad + beta_hml
            group["beta_RMW"] = pad + beta_rmw
            group["beta_CMA"] = pad + beta_cma
            group["alpha"] = pad + alpha
            group["regr_resd"] = pad + regr_resd
            group["regr_pred"] = pad + regr_pred
            group["regr_r2"] = pad + regr_r2
        results.append(group)
    return pd.concat(results).sort_index()


def seed_frame(returns: xr.DataArray, factors: xr.Dataset, n_keep: int) -> pd.DataFrame:
    """The seed's long frame (date, instrument, Return, MKT..CMA): valid rows only
    (the seed's inner merge), each asset cut to its first ``n_keep`` rows."""
    df = returns.rename("Return").to_dataframe().reset_index()
    df = df.rename(columns={"asset": "instrument"}).dropna(subset=["Return"])
    df = df.merge(factors.to_dataframe().reset_index(), on="date", how="inner")
    df = df.sort_values(["instrument", "date"]).groupby("instrument").head(n_keep)
    return df.reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--sm-assets", type=int, default=20, help="assets timed for statsmodels")
    parser.add_argument("--sk-assets", type=int, default=4, help="assets timed for sklearn")
    parser.add_argument("--sk-windows", type=int, default=100, help="windows per sklearn asset")
    args = parser.parse_args()
    if args.quick:
        n_assets, n_dates, window = 400, 756, 126
        args.sm_assets, args.sk_assets, args.sk_windows = 5, 2, 40
    else:
        n_assets, n_dates, window = 5000, 2520, 252
    gap = 0.05
    returns, factors = make_panel(n_assets, n_dates, gap)
    size = f"N={n_assets} T={n_dates} w={window}"
    rows = []

    # --- "dates" windows vs statsmodels ----------------------------------------------
    ours_s, ours = timed(
        lambda: hx.rolling_regression(
            returns, factors, window=window, window_type="dates", stderr=True
        )
    )
    sub = returns.isel(asset=slice(0, args.sm_assets))
    sm_s, sm_params = timed(lambda: statsmodels_loop(sub, factors, window))
    base_s = sm_s * n_assets / args.sm_assets
    ours_sub = ours.isel(asset=slice(0, args.sm_assets))
    sm_diff = float(
        np.nanmax(np.abs(ours_sub.betas.transpose("asset", ...).values - sm_params[..., 1:]))
    )
    same_nan = bool(
        np.array_equal(
            np.isnan(ours_sub.betas.transpose("asset", ...).values), np.isnan(sm_params[..., 1:])
        )
    )
    rows.append(
        dict(
            case="dates_vs_statsmodels",
            size=size,
            ours_s=ours_s,
            baseline_s=base_s,
            ratio=base_s / ours_s,
            baseline_subset_assets=args.sm_assets,
            baseline_subset_s=sm_s,
            max_abs_beta_diff=sm_diff,
            same_nan_pattern=same_nan,
        )
    )
    del ours, ours_sub

    # --- "observations" windows vs the seed's sklearn loop --------------------------
    ours_s, ours = timed(lambda: hx.rolling_regression(returns, factors, window=window))
    n_valid = returns.notnull().sum("date").values
    total_windows = int(np.maximum(n_valid - window + 1, 0).sum())
    n_keep = window + args.sk_windows - 1
    df = seed_frame(returns.isel(asset=slice(0, args.sk_assets)), factors, n_keep)
    t0 = time.perf_counter()
    seed_out = ff5_analysis(df, window)
    sk_s = time.perf_counter() - t0
    timed_windows = args.sk_assets * args.sk_windows
    base_s = sk_s / timed_windows * total_windows
    fitted = seed_out.dropna(subset=["beta_MKT"])
    ours_long = (
        ours[["betas", "alpha", "r2"]]
        .sel(asset=fitted.instrument.to_xarray(), date=fitted.date.to_xarray())
        .compute()
    )
    betas_ref = fitted[[f"beta_{f}" for f in FACTORS]].to_numpy(float)
    sk_diff = float(
        max(
            np.abs(ours_long.betas.values - betas_ref).max(),
            np.abs(ours_long.alpha.values - fitted.alpha.to_numpy(float)).max(),
            np.abs(ours_long.r2.values - fitted.regr_r2.to_numpy(float)).max(),
        )
    )
    rows.append(
        dict(
            case="observations_vs_seed_sklearn",
            size=size,
            ours_s=ours_s,
            baseline_s=base_s,
            ratio=base_s / ours_s,
            baseline_timed_windows=timed_windows,
            baseline_timed_s=sk_s,
            baseline_s_per_window=sk_s / timed_windows,
            full_panel_windows=total_windows,
            max_abs_diff_betas_alpha_r2=sk_diff,
            windows_compared=len(fitted),
        )
    )
    rss = peak_rss_mib()
    report(
        "rolling",
        rows,
        extra=dict(gap_fraction=gap, n_factors=len(FACTORS), peak_rss_mib=rss, quick=args.quick),
    )
    print(
        f"statsmodels: {args.sm_assets} assets in {rows[0]['baseline_subset_s']:.2f} s, scaled x"
        f"{n_assets / args.sm_assets:.0f}; max |beta diff| {rows[0]['max_abs_beta_diff']:.2e}, "
        f"same NaN pattern: {rows[0]['same_nan_pattern']}"
    )
    print(
        f"sklearn seed loop: {timed_windows} windows in {sk_s:.2f} s "
        f"({1e3 * sk_s / timed_windows:.3f} ms/window), scaled to {total_windows} windows; "
        f"max |diff| (betas, alpha, R2) over {len(fitted)} windows {sk_diff:.2e}"
    )
    print(f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
