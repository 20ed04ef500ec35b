"""The README's Python example runs as written, and .ci/run uses the README's test command."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import hsr_xr as hx

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        exec(compile(block, "README.md", "exec"), namespace)
    assert {"factor_cov", "specific_var", "loadings"} <= set(hx.open_store("run.zarr").data_vars)
    assert set(namespace["rb"]["betas"].factor.values) == {"MKT", "SMB", "HML", "RMW", "CMA"}
    # the cap-weighted portfolio's daily vol is a number of the market's size, not NaN
    assert 0.002 < float(namespace["risk"]["total_risk"]) < 0.05


def test_ci_runs_the_readme_test_command():
    marked = re.search(r"<!-- ci:test -->\n```bash\n(.*?)\n```\n<!-- /ci:test -->", README, re.S)
    assert marked and "pytest" in marked.group(1)
    assert "<!-- ci:test -->" in (ROOT / ".ci" / "run").read_text()
