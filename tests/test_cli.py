"""The hsr-xr command line, end to end on small data."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import hsr_xr as hx
from hsr_xr import pipeline
from hsr_xr.cli import build_parser, main

SMALL = ["--dates", "300", "--assets", "300", "--industries", "10"]


@pytest.mark.parametrize("command", ["simulate", "demo", "run", "ff5", "info"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: hsr-xr" in capsys.readouterr().out


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["demo", "--out", str(out), "--quiet", *SMALL]) == 0
    text = capsys.readouterr().out
    for heading in ("vs planted truth", "forecast validation", "Fama-French", "rolling 60-day"):
        assert heading in text
    assert "[1/7] simulate market" in text  # step progress
    for png in ("factor_returns", "ff5_factors", "predicted_vs_realized_vol", "rolling_bias",
                "exposure_heatmap"):  # fmt: skip
        assert (out / f"{png}.png").stat().st_size > 10_000
    store = out / "market.zarr"
    raw, model = hx.open_store(store), hx.open_store(store, group="model")
    assert {"returns", "descriptors", "truth_factor_returns"} <= set(raw.data_vars)
    assert {"loadings", "factor_returns", "factor_cov", "specific_var"} <= set(model.data_vars)
    months = raw.indexes["date"].to_period("M").nunique()
    assert hx.open_store(store, group="ff5_M").sizes["date"] == months


def test_simulate_info_run_ff5(tmp_path, capsys):
    store = tmp_path / "m.zarr"
    assert main(["simulate", str(store), *SMALL]) == 0
    assert main(["simulate", str(store), *SMALL]) == 2  # exists: clear error, exit code 2
    assert "already exists" in capsys.readouterr().err
    assert main(["run", str(store), "--preset", "seed"]) == 0
    model = hx.open_store(store, group="model").load()
    assert np.isfinite(model.factor_returns).all()
    assert main(["ff5", str(store), "--freq", "W"]) == 0
    weekly = hx.open_store(store, group="ff5_W")
    assert {"MKT", "SMB", "HML", "RMW", "CMA", "portfolio_count"} <= set(weekly.data_vars)
    assert main(["ff5", str(store), "--freq", "M", "--design", "2x2x2x2"]) == 0
    joint = hx.open_store(store, group="ff5_M_2x2x2x2")
    assert joint.portfolio_returns.dims == ("date", "portfolio") and joint.sizes["portfolio"] == 16
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    text = capsys.readouterr().out
    assert "descriptors" in text and "== model ==" in text and "== ff5_W ==" in text
    assert "dates: 2015-01-02" in text


def test_missing_store_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.zarr")]) == 2
    assert "no store" in capsys.readouterr().err


def test_bad_arguments_and_paths_are_one_line_errors(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for argv, words in [
        (["info", str(afile)], "not a Zarr store"),
        (["info", str(tmp_path)], "not a Zarr store"),
        (["demo", "--out", str(afile), "--quiet", "--no-figures"], "afile"),
    ]:
        assert main(argv) == 2
        assert words in capsys.readouterr().err
    store = tmp_path / "m.zarr"
    hx.to_store(hx.simulate_market(n_dates=20, n_assets=30, seed=0)[["returns"]], store)
    assert main(["ff5", str(store)]) == 2  # no FF5 inputs: named, no KeyError
    assert "market_cap" in capsys.readouterr().err
    assert main(["simulate", str(store), *SMALL]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["info", str(store / "returns")]) == 2  # an array inside a store
    assert "hsr-xr: error" in capsys.readouterr().err
    for argv in (["demo", "--dates", "0"], ["demo", "--assets", "-3"], ["demo", "--preset", "x"]):
        with pytest.raises(SystemExit) as info:  # argparse: usage line and exit code 2
            main(argv)
        assert info.value.code == 2
        assert "error" in capsys.readouterr().err
    hx.to_store(hx.simulate_market(n_dates=20, n_assets=30, seed=0)[["returns"]], store, group="g")
    zarr.open_group(str(store), path="g", mode="r+").attrs["hsr_xr_complete"] = False
    assert main(["info", str(store)]) == 0  # an incomplete group is reported, not fatal
    assert "incomplete" in capsys.readouterr().out


def test_parser_lists_commands():
    text = build_parser().format_help()
    for command in ("simulate", "demo", "run", "ff5", "info"):
        assert command in text


def test_run_on_a_date_chunked_store_equals_in_memory(tmp_path, capsys):
    # the stored layout is chunked over date (as default_chunks gives for long histories);
    # the risk model's EWMAs need whole dates, so the pipeline rechunks in between
    market = hx.simulate_market(n_dates=120, n_assets=150, n_industries=5, seed=1)
    market = market[["returns", "market_cap", "industry", "descriptors"]]  # no style coordinate
    store = tmp_path / "c.zarr"
    hx.to_store(market, store, chunks={"date": 40})
    assert main(["run", str(store), "--preset", "use4s"]) == 0
    model = hx.open_store(store, group="model").load()
    ref = hx.compute_loadings(market, orthogonalize=True, coverage=True)
    ref = hx.risk_model(hx.factor_regression(ref), preset="use4s")
    for name in ("factor_returns", "specific_returns", "factor_cov", "specific_var"):
        np.testing.assert_allclose(model[name].values, ref[name].values, rtol=1e-12, atol=0)


def test_run_on_a_store_with_loadings_and_no_descriptors(tmp_path, capsys):
    market = hx.compute_loadings(hx.simulate_market(n_dates=80, n_assets=100, seed=1))
    store = tmp_path / "l.zarr"
    hx.to_store(market[["returns", "market_cap", "industry", "loadings"]], store)
    assert main(["run", str(store)]) == 0
    text = capsys.readouterr().out
    assert "dividend_yield" in text  # the style summary, printed after the write
    assert "specific_var" in hx.open_store(store, group="model")


def test_info_flags_a_group_that_predates_an_append(tmp_path, capsys):
    market = hx.simulate_market(n_dates=60, n_assets=150, n_industries=5, seed=2)[
        ["returns", "market_cap", "industry", "descriptors"]
    ]
    store = tmp_path / "s.zarr"
    hx.to_store(market.isel(date=slice(0, 40)), store)
    assert main(["run", str(store)]) == 0
    hx.to_store(market.isel(date=slice(40, None)), store, mode="append")
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    text = capsys.readouterr().out
    assert "stale: ends before the root's last date" in text.split("== model ==")[1]
    assert "stale" not in text.split("== model ==")[0]


def test_run_recomputes_stale_outputs_and_marks_a_failed_second_pass(tmp_path, capsys, monkeypatch):
    market = hx.simulate_market(n_dates=80, n_assets=150, n_industries=5, seed=4)
    market = market[["returns", "market_cap", "industry", "descriptors"]]
    stale = market.assign(
        factor_returns=hx.factor_regression(hx.compute_loadings(market)).factor_returns * 0 + 1,
        specific_returns=market.returns * 0,
    )  # outputs of an older run stored at the root: the run must not reuse them
    store = tmp_path / "s.zarr"
    hx.to_store(stale, store, chunks={"date": 30})
    assert main(["run", str(store), "--preset", "seed"]) == 0
    ref = hx.compute_loadings(market, orthogonalize=True, coverage=True)
    ref = hx.risk_model(hx.factor_regression(ref), preset="seed")
    model = hx.open_store(store, group="model").load()
    for name in ("factor_returns", "specific_returns", "factor_cov", "specific_var"):
        np.testing.assert_allclose(model[name].values, ref[name].values, rtol=1e-12, atol=0)
    # a second pass that fails leaves the group refused, not a readable half
    real = pipeline.to_store

    def failing(ds, path, **kw):
        if kw.get("mode") == "update":
            raise RuntimeError("disk full")
        return real(ds, path, **kw)

    monkeypatch.setattr(pipeline, "to_store", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        main(["run", str(store), "--preset", "seed"])
    with pytest.raises(hx.IncompleteStoreError):
        hx.open_store(store, group="model")
