"""Command line: ``hsr-xr simulate | demo | run | ff5 | info``."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import pandas as pd
import xarray as xr
import zarr.errors

from . import pipeline
from .errors import IncompleteStoreError, ValidationError
from .ff5 import ff5_factors
from .resample import resample
from .simulate import simulate_market
from .store import open_store, store_groups, to_store

MODEL_GROUP = "model"  # pipeline outputs; raw inputs stay at the store root

pd.set_option("display.width", 120)
pd.set_option("display.max_columns", 12)


PRESETS = ("seed", "use4s", "use4l")


def _positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_size(p: argparse.ArgumentParser, dates: int, assets: int) -> None:
    p.add_argument(
        "--dates", type=_positive, default=dates, help=f"trading dates (default {dates})"
    )
    p.add_argument("--assets", type=_positive, default=assets, help=f"assets (default {assets})")
    p.add_argument("--industries", type=_positive, default=30, help="industries (default 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _simulate(args) -> xr.Dataset:
    return simulate_market(
        n_dates=args.dates, n_assets=args.assets, n_industries=args.industries, seed=args.seed
    )


def cmd_simulate(args) -> int:
    if Path(args.store).exists() and not args.overwrite:
        raise ValidationError("store", f"{args.store!r} already exists", "pass --overwrite")
    t0 = time.perf_counter()
    ds = _simulate(args)
    print(f"simulated T={args.dates} N={args.assets} in {time.perf_counter() - t0:.1f} s")
    to_store(ds, args.store, mode="w" if args.overwrite else "w-", progress=True)
    print(f"wrote {args.store}")
    return 0


def cmd_demo(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.figures and importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is not installed, so no figures (pip install 'hsr_xr[plot]')")
        args.figures = False
    steps = pipeline.Steps(7 if args.figures else 6, progress=not args.quiet)
    ds = steps.run(f"simulate market T={args.dates} N={args.assets}", _simulate, args)
    before = set(ds.data_vars)
    ds = pipeline.risk_steps(ds, steps, preset=args.preset)
    model_vars = [v for v in ds.data_vars if v not in before]
    table = steps.run("forecast validation: bias statistics, seed vs use4s",
                      pipeline.validation_tables, ds)  # fmt: skip
    ff = steps.run("Fama-French five factors at D/W/M", pipeline.ff5_by_frequency, ds)
    store = out / "market.zarr"
    raw = [v for v in ds.data_vars if v not in model_vars]
    to_store(ds[raw], store, mode="w", progress=not args.quiet)
    to_store(ds[model_vars], store, group=MODEL_GROUP, mode="w", progress=not args.quiet)
    for freq, f in ff.items():
        to_store(f, store, group=f"ff5_{freq}", mode="w")
    figures = steps.run("figures", pipeline.write_figures, ds, ff, out) if args.figures else []

    print("\n== factor returns (country and styles) vs planted truth ==")
    print(pipeline.factor_summary(ds).to_string())
    status = ds["regression_status"]
    print(
        f"\nregression: {int((status == 0).sum())}/{status.size} dates ok, "
        f"mean weighted R² {float(ds['regression_r2'].mean()):.3f}, "
        f"mean assets per date {float(ds['regression_n_assets'].mean()):.0f}"
    )
    print("\n== forecast validation (bias statistic; 1 is perfect) ==")
    print(table.to_string())
    print("\n== Fama-French factors (annualized, %) ==")
    print(pipeline.ff5_summary(ff).to_string())
    print("\n== rolling 60-day FF5 betas on the last date ==")
    print(pipeline.rolling_summary(ds, ff["D"]).to_string())
    print(f"\nstore: {store}  (groups: {', '.join(store_groups(store))})")
    for path in figures:
        print(f"figure: {path}")
    return 0


def cmd_run(args) -> int:
    names, inputs = pipeline.run_to_store(args.store, MODEL_GROUP, args.preset)
    model = open_store(args.store, group=MODEL_GROUP)
    if "truth_factor_returns" in inputs:  # a simulated store: compare with the planted truth
        model = model.assign(truth_factor_returns=inputs["truth_factor_returns"])
    print(pipeline.factor_summary(model, styles=inputs.indexes["style"]).to_string())
    print(f"wrote group {MODEL_GROUP!r} of {args.store}: {', '.join(sorted(names))}")
    return 0


def cmd_ff5(args) -> int:
    ds = open_store(args.store)
    missing = [v for v in pipeline.FF5_INPUTS if v not in ds]
    if missing:
        raise ValidationError(
            args.store, f"has no {', '.join(missing)}", "store the FF5 inputs at its root first"
        )
    ds = ds[list(pipeline.FF5_INPUTS)]
    panel = ds if args.freq == "D" else resample(ds, args.freq)
    ff = ff5_factors(panel, design=args.design).compute()
    group = f"ff5_{args.freq}" + ("" if args.design == "2x3" else f"_{args.design}")
    to_store(ff, args.store, group=group, mode="w")
    print(ff[pipeline.FF5_COLUMNS].to_dataframe().to_string(max_rows=args.rows))
    print(pipeline.ff5_summary({args.freq: ff}).to_string())
    print(f"wrote group {group!r} of {args.store}")
    return 0


def cmd_info(args) -> int:
    root_last = None  # a group that ends before the root predates an append to it
    for group in [None, *store_groups(args.store)]:
        print(f"== {'/' if group is None else group} ==")
        try:
            ds = open_store(args.store, group=group)
        except IncompleteStoreError as err:  # report it, and go on with the others
            print(f"incomplete: {err}")
            continue
        print("dims: " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
        if "date" in ds.indexes and len(ds.indexes["date"]):
            d = ds.indexes["date"]
            print(f"dates: {d[0]:%Y-%m-%d} .. {d[-1]:%Y-%m-%d} ({len(d)})")
            if group is None:
                root_last = d[-1]
            elif root_last is not None and d[-1] < root_last:
                print(f"stale: ends before the root's last date {root_last:%Y-%m-%d}; "
                      "re-run the command that wrote it")  # fmt: skip
        for name, var in ds.data_vars.items():
            chunks = "x".join(str(c[0]) for c in var.chunks) if var.chunks else "-"
            print(f"  {name:<24} {var.dtype!s:<8} ({', '.join(var.dims)})  chunks {chunks}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hsr-xr", description="Equity factor models on xarray/Zarr")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="simulate a market and write it to a Zarr store")
    s.add_argument("store", help="output store path, e.g. market.zarr")
    _add_size(s, 756, 3000)
    s.add_argument("--overwrite", action="store_true", help="replace an existing store")
    s.set_defaults(func=cmd_simulate)

    d = sub.add_parser("demo", help="simulate, run the full pipeline, store, print, plot")
    d.add_argument("--out", default="hsr_xr_run", help="run folder (default ./hsr_xr_run)")
    _add_size(d, 504, 1000)
    d.add_argument("--preset", choices=PRESETS, default="seed", help="risk-model preset stored")
    d.add_argument("--no-figures", dest="figures", action="store_false", help="skip PNGs")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser(
        "run",
        help="loadings (unless stored), regression and risk model on a store; writes its "
        "'model' group",
    )
    r.add_argument(
        "store", help="store with returns, market_cap, industry, and descriptors or loadings"
    )
    r.add_argument("--preset", choices=PRESETS, default="seed", help="risk-model preset")
    r.set_defaults(func=cmd_run)

    f = sub.add_parser("ff5", help="Fama-French five factors from a store")
    f.add_argument("store", help="store with returns, market_cap and FF5 characteristics")
    f.add_argument("--freq", choices=["D", "W", "M"], default="D", help="frequency")
    f.add_argument(
        "--design",
        choices=["2x3", "2x2", "2x2x2x2"],
        default="2x3",
        help="sort design (default 2x3; others go to group ff5_<freq>_<design>)",
    )
    f.add_argument("--rows", type=_positive, default=20, help="rows to print (default 20)")
    f.set_defaults(func=cmd_ff5)

    i = sub.add_parser("info", help="dims, variables, date range and chunking of a store")
    i.add_argument("store", help="store path")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValidationError, OSError, zarr.errors.BaseZarrError) as err:
        # bad input or paths (e.g. a path to an array inside a store): one line, no traceback
        print(f"hsr-xr: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
