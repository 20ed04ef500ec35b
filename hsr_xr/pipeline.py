"""The end-to-end pipeline behind ``hsr-xr demo`` and ``hsr-xr run``.

descriptors → loadings → cross-sectional regression → risk model, then
forecast validation, Fama–French factors and rolling betas. Each step is
timed and logged; Dask work shows Dask's progress bar.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .analytics import bias_statistics, portfolio_risk, portfolio_sets, validation_table
from .errors import ValidationError
from .ff5 import ff5_factors
from .loadings import compute_loadings
from .regression import factor_regression
from .resample import resample
from .risk import chunk_length, risk_model
from .rolling import rolling_regression
from .store import mark_incomplete, open_store, stored_date_chunk, to_store

FF5_COLUMNS = ["MKT", "SMB", "HML", "RMW", "CMA"]
PERIODS_PER_YEAR = {"D": 252, "W": 52, "M": 12}


def _progress(enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(minimum=1.0)


class Steps:
    """Runs named steps, printing ``[i/n] name ... seconds`` for each.

    With ``compute=False`` the steps only build the (lazy) graph, to be
    computed by the caller, e.g. streamed into a store by ``to_store``.
    """

    def __init__(
        self,
        n: int,
        log: Callable[[str], None] = print,
        progress: bool = True,
        compute: bool = True,
    ):
        self.n, self.i, self.log, self.progress, self.compute = n, 0, log, progress, compute
        self.timings: dict[str, float] = {}

    def run(self, name: str, fn: Callable, *args, **kwargs):
        self.i += 1
        self.log(f"[{self.i}/{self.n}] {name} ...")
        t0 = time.perf_counter()
        with _progress(self.progress):
            out = fn(*args, **kwargs)
            if self.compute and isinstance(out, xr.Dataset | xr.DataArray):
                out = out.compute()
        self.timings[name] = time.perf_counter() - t0
        self.log(f"      done in {self.timings[name]:.1f} s")
        return out


def cross_sectional_steps(ds: xr.Dataset, steps: Steps) -> tuple[xr.Dataset, list[str]]:
    """Loadings (if descriptors are present) → regression: ``ds`` with the outputs
    added, and the names of the outputs (some may replace stored variables).

    Loadings orthogonalize ``nonlinear_size`` against ``size`` (the Barra
    convention; the seed leaves the two nearly collinear).
    """
    made: list[str] = []
    if "descriptors" in ds and "loadings" not in ds:
        out = steps.run("loadings: winsorize + standardize descriptors -> styles",
                        compute_loadings, ds, orthogonalize=True, coverage=True,
                        merge=False)  # fmt: skip
        ds, made = _replace(ds, out), [str(v) for v in out.data_vars]
    out = steps.run("factor regression: constrained WLS per date", factor_regression, ds,
                    merge=False)  # fmt: skip
    return _replace(ds, out), made + [str(v) for v in out.data_vars]


def _replace(ds: xr.Dataset, out: xr.Dataset) -> xr.Dataset:
    """``ds`` with the variables of ``out`` added or replaced; labels must agree exactly
    (``assign`` alone would silently align new outputs to stale labels)."""
    ds = ds.drop_vars([v for v in out.data_vars if v in ds.data_vars])
    for dim, index in out.indexes.items():
        if dim in ds.indexes and not ds.indexes[dim].equals(index):
            users = [str(v) for v in ds.data_vars if dim in ds[v].dims]
            if users:
                raise ValidationError(
                    dim,
                    f"the input's {dim} labels differ from the new outputs' (used by {users[:4]})",
                    "drop those stale variables, or run on a store without them",
                )
            ds = ds.drop_dims(dim)
    return ds.assign(out.data_vars)


def risk_steps(ds: xr.Dataset, steps: Steps, preset: str = "seed") -> xr.Dataset:
    """Loadings → regression → risk model, in one graph (see :func:`risk_inputs` for
    the bounded-memory route through a store)."""
    ds = time_series_layout(cross_sectional_steps(ds, steps)[0])
    return steps.run(f"risk model (preset={preset!r})", risk_model, ds, preset=preset)


#: The risk model's time-series inputs (whole ``date`` axis per chunk).
TIME_SERIES = ("factor_returns", "specific_returns")


def time_series_chunks(n_dates: int) -> dict[str, int]:
    """Chunks of the time-series layout: whole dates, about :data:`hsr_xr.risk.CHUNK_BYTES`
    of float64 per chunk (fewer assets per chunk as the history grows)."""
    return {"date": -1, "asset": chunk_length(8 * n_dates)}


def time_series_layout(ds: xr.Dataset, names: tuple[str, ...] = TIME_SERIES) -> xr.Dataset:
    """Rechunk the risk model's time-series inputs to :func:`time_series_chunks`.

    The regression writes them in the cross-sectional layout (chunked over
    ``date``); the EWMAs need every date of an asset in one chunk. NumPy-backed
    and single-date-chunk variables are left as they are.
    """
    out = {}
    for name in names:
        var = ds.get(name)
        if var is None or var.chunks is None or len(var.chunksizes.get("date", ())) <= 1:
            continue
        out[name] = var.chunk({d: time_series_chunks(var.sizes["date"]).get(d, -1)
                               for d in var.dims})  # fmt: skip
    return ds.assign(out) if out else ds


def run_to_store(
    store: str | Path,
    group: str = "model",
    preset: str = "seed",
    *,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> tuple[list[str], xr.Dataset]:
    """Loadings → regression → risk model on a store, into its ``group``, streamed.

    Two passes: the cross-sectional outputs are written in the store's date
    chunks (memory bounded by the chunks), then the risk model reads the stored
    returns back in its time-series layout (:func:`risk_inputs`) and its outputs
    are added with ``mode="update"`` (this pass still needs memory in proportion
    to the history: the one-task factor side holds the T x K x K covariance and
    its temporaries, and the specific side about 4 x T x N float64; README,
    Performance).
    The risk model's options and inputs are checked (its graph is built) before
    anything is written; if the second pass fails, ``group`` is left marked
    incomplete.

    Returns the names written and the risk model's inputs (for summaries).
    """
    ds = open_store(store)
    fresh_loadings = "descriptors" in ds and "loadings" not in ds
    steps = Steps(3 if fresh_loadings else 2, log=log, progress=progress, compute=False)
    cross, made = cross_sectional_steps(ds, steps)
    risk_model(time_series_layout(cross), preset=preset, merge=False)  # checks, computes nothing
    log(f"computing and writing {len(made)} cross-sectional variables ...")
    chunk = stored_date_chunk(store)  # stream the outputs out block by block
    to_store(cross[made], store, group=group, mode="w", chunks=chunk and {"date": chunk},
             progress=progress)  # fmt: skip
    try:
        inputs = risk_inputs(store, group)
        risk = steps.run(f"risk model (preset={preset!r})", risk_model, inputs, preset=preset,
                         merge=False)  # fmt: skip
        log(f"computing and writing {len(risk.data_vars)} risk variables ...")
        to_store(risk, store, group=group, mode="update", progress=progress)
    except BaseException:  # the group holds the first pass only: never read it as complete
        with contextlib.suppress(Exception):  # the original error is the one to see
            mark_incomplete(store, group)
        raise
    return made + [str(v) for v in risk.data_vars], inputs


def risk_inputs(store: str | Path, group: str) -> xr.Dataset:
    """A store's root plus its ``group`` (the regression's outputs) as the risk model
    reads them: the time-series inputs read straight from Zarr in the time-series
    layout, everything else in the stored layout.

    Writing the regression first and reading it back this way (``hsr-xr run``)
    keeps memory bounded by the chunk sizes; one graph that rechunks the
    regression's outputs in memory holds far more of the history at once. The
    price is decoding: Zarr decodes whole stored chunks, so each stored date
    chunk of the returns is decoded once per asset chunk read from it.
    """
    ds = open_store(store)
    model = open_store(store, group=group)
    missing = [n for n in TIME_SERIES if n not in model]
    if missing:
        raise ValidationError(
            group, f"has no {missing}", "write the regression's outputs into it first"
        )
    ds = _replace(ds, model)  # the group's variables (and labels) win over the root's
    spec = time_series_chunks(ds.sizes["date"])
    ts = open_store(store, group=group, chunks=spec)
    return ds.assign({n: ts[n] for n in TIME_SERIES})


FF5_INPUTS = ("returns", "market_cap", "book_to_price", "profitability", "investment")


def ff5_by_frequency(ds: xr.Dataset, freqs=("D", "W", "M")) -> dict[str, xr.Dataset]:
    """FF5 factors at each frequency; weekly/monthly panels via :func:`resample`."""
    panel = ds[list(FF5_INPUTS)]
    return {
        freq: ff5_factors(panel if freq == "D" else resample(panel, freq)).compute()
        for freq in freqs
    }


def factor_summary(ds: xr.Dataset, styles: Sequence[str] | None = None) -> pd.DataFrame:
    """Annualized mean/vol and t-stat of country and style factor returns (+ truth corr).

    ``styles``: the style factor names (default: the ``style`` coordinate of ``ds``).
    """
    if styles is None:
        if "style" not in ds.coords:
            raise ValidationError("style", "no style coordinate", "pass styles=[...] names")
        styles = ds["style"].values
    names = ["country", *[str(s) for s in styles]]
    f = ds["factor_returns"].sel(factor=names)
    table = pd.DataFrame(
        {
            "ann_mean_%": f.mean("date").values * 252 * 100,
            "ann_vol_%": f.std("date").values * np.sqrt(252) * 100,
            "t_mean": (f.mean("date") / f.std("date") * np.sqrt(f.count("date"))).values,
        },
        index=names,
    )
    if "truth_factor_returns" in ds:
        truth = ds["truth_factor_returns"].sel(factor=names)
        ok = f.notnull() & truth.notnull()
        table["corr_truth"] = xr.corr(f.where(ok), truth.where(ok), dim="date").values
    return table.round(3)


def ff5_summary(ff: dict[str, xr.Dataset]) -> pd.DataFrame:
    """Annualized mean and vol (%) of the five factors per frequency.

    Periods that the panel cuts (``complete`` False, from :func:`resample`) are left
    out: a partial week or month is not a full period's return.
    """
    rows = {}
    for freq, f in ff.items():
        k = PERIODS_PER_YEAR.get(freq, 252)
        if "complete" in f.coords:
            f = f.sel(date=f["complete"].values)
        for col in FF5_COLUMNS:
            s = f[col].to_series()
            rows[(freq, col)] = {
                "periods": int(s.count()),
                "ann_mean_%": s.mean() * k * 100,
                "ann_vol_%": s.std() * np.sqrt(k) * 100,
            }
    return pd.DataFrame(rows).T.round(2)


def write_figures(ds: xr.Dataset, ff: dict[str, xr.Dataset], out: Path) -> list[Path]:
    """The demo's PNG figures (needs the ``plot`` extra)."""
    from . import plots

    weights = portfolio_sets(ds, sets=("cap", "equal", "mimicking"))
    bias = bias_statistics(ds, weights, window=63).compute()
    last = ds["date"].values[-1]
    risk = portfolio_risk(ds, weights.sel(date=last), date=last)
    paths = {
        "factor_returns.png": lambda p: plots.plot_factor_returns(ds, path=p),
        "ff5_factors.png": lambda p: plots.plot_factor_returns(
            ff["D"][FF5_COLUMNS].to_dataarray("factor").transpose("date", "factor"), path=p
        ),
        "predicted_vs_realized_vol.png": lambda p: plots.plot_predicted_vs_realized(
            bias, ["cap", "equal"], path=p
        ),
        "rolling_bias.png": lambda p: plots.plot_bias(bias, path=p),
        "exposure_heatmap.png": lambda p: plots.plot_exposure_heatmap(risk, path=p),
    }
    written = []
    for name, draw in paths.items():
        draw(out / name)
        written.append(out / name)
    return written


def rolling_summary(ds: xr.Dataset, ff: xr.Dataset, window: int = 60) -> pd.DataFrame:
    """Cross-sectional mean and dispersion of the latest rolling FF5 betas."""
    rb = rolling_regression(ds["returns"], ff[FF5_COLUMNS], window=window).compute()
    last = rb["betas"].isel(date=-1)
    return pd.DataFrame(
        {"mean_beta": last.mean("asset").values, "std_beta": last.std("asset").values,
         "n_assets": int(last.isel(factor=0).count())},
        index=[str(f) for f in last["factor"].values],
    ).round(3)  # fmt: skip


def validation_tables(ds: xr.Dataset, presets=("seed", "use4s"), warmup: int = 126) -> pd.DataFrame:
    """Bias-statistic validation table per risk-model preset, on the same dates.

    Each preset is evaluated after ``warmup`` dates so that both are scored on
    the same outcomes.
    """
    period = slice(ds["date"].values[min(warmup, ds.sizes["date"] - 2)], None)
    tables = []
    for preset in presets:
        model = risk_model(ds, preset=preset).compute()
        t = validation_table(model, window=63, date=period)
        t.insert(0, "preset", preset)
        tables.append(t)
    return pd.concat(tables).round(3)
