"""Workspace export: pyhf accepts it unchanged (API and CLI), metadata sidecar, bad input;
and the ``zprime limit`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_stats_engine import window_spec
from test_stats_limits import mini_spec

from zprime.errors import InputError
from zprime.stats import (
    build_workspace,
    compile_workspace,
    hypotest,
    metadata_path,
    read_workspace,
    upper_limit,
    write_workspace,
)

pyhf = pytest.importorskip("pyhf")
BIN = Path(sys.executable).parent


def test_workspace_structure_and_pyhf_validation() -> None:
    spec = window_spec(seed=3, nbins=6)
    ws = pyhf.Workspace(spec)  # validates against the 1.0.0 schema
    model = ws.model()
    assert model.config.poi_name == "xsec_fb"
    names = set(model.config.parameters)
    # one histosys per bin per sample with a non-zero template in that bin
    sig_bins = {n for n in names if n.startswith("shape_signal_bin")}
    assert len(sig_bins) == 6
    ee = {n for n in names if n.startswith("shape_eegamma_bin")}
    assert len(ee) == 4  # eegamma is zero in two bins: no parameter there
    assert {"bkg_norm", "sig_eff", "lumi", "mcstat", "xsec_fb"} <= names
    ht = next(
        m
        for s in spec["channels"][0]["samples"]
        if s["name"] == "mumu"
        for m in s["modifiers"]
        if m["name"] == "shape_mumu_bin2"
    )
    nom = np.asarray(next(s["data"] for s in spec["channels"][0]["samples"] if s["name"] == "mumu"))
    hi, lo = np.asarray(ht["data"]["hi_data"]), np.asarray(ht["data"]["lo_data"])
    np.testing.assert_allclose((hi - nom)[2], 0.086 * nom[2])
    np.testing.assert_allclose((nom - lo)[2], 0.086 * nom[2])
    assert np.count_nonzero(hi - nom) == 1
    assert len(model.config.par_names) == compile_workspace(spec).n_parameters()


def test_schema_rejects_extra_keys_hence_sidecar(tmp_path) -> None:
    spec = window_spec()
    with pytest.raises(pyhf.exceptions.InvalidSpecification):
        pyhf.Workspace(spec | {"zprime": {"mass": 1.0}})
    meta = {"mass_gev": 2.352, "bin_map": [[0, 0], [0, 1]], "m2_edges": np.array([0.0, 1.0])}
    path = write_workspace(tmp_path / "m2.352.json", spec, meta)
    assert metadata_path(path) == tmp_path / "m2.352.meta.json"
    spec2, meta2 = read_workspace(path)
    assert spec2 == json.loads(json.dumps(spec))
    assert meta2 == {"mass_gev": 2.352, "bin_map": [[0, 0], [0, 1]], "m2_edges": [0.0, 1.0]}


def test_pyhf_cli_accepts_export(tmp_path) -> None:
    """``pyhf inspect`` and ``pyhf cls`` run on the exported file unchanged, and pyhf's CLs at
    the default test POI equals ours."""
    path = write_workspace(tmp_path / "mini.json", mini_spec())
    ins = subprocess.run(
        [str(BIN / "pyhf"), "inspect", str(path)], capture_output=True, text=True, timeout=300
    )
    assert ins.returncode == 0, ins.stderr
    assert "xsec_fb" in ins.stdout
    assert "histosys" in ins.stdout
    cls = subprocess.run(
        [str(BIN / "pyhf"), "cls", str(path)], capture_output=True, text=True, timeout=300
    )
    assert cls.returncode == 0, cls.stderr
    out = json.loads(cls.stdout)
    ours, band = hypotest(compile_workspace(mini_spec()), 1.0)
    assert out["CLs_obs"] == pytest.approx(ours[0], rel=1e-4)
    np.testing.assert_allclose(out["CLs_exp"], band[0], rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"signal": [1.0, np.nan]}, "NaN"),
        ({"backgrounds": {"bkg": [-1.0, 2.0]}}, "negative"),
        ({"backgrounds": {"bkg": [0.0, 0.0]}}, "zero expected background in every bin"),
        ({"backgrounds": {"bkg": [0.0, 3.0]}}, "bins \\[0\\]"),
        ({"observed": [1.0, 2.0, 3.0]}, "3 bins"),
        ({"signal": [0.0, 0.0]}, "signal template is zero"),
        ({"signal_shape_unc": -0.1}, "relative uncertainty"),
    ],
)
def test_bad_templates_are_refused(kwargs, word) -> None:
    args = {"signal": [1.0, 2.0], "backgrounds": {"bkg": [5.0, 3.0]}, "observed": [4.0, 2.0]}
    args.update(kwargs)
    with pytest.raises(InputError, match=word) as err:
        build_workspace(
            args.pop("signal"), args.pop("backgrounds"), args.pop("observed"), name="m1.234", **args
        )
    assert "m1.234" in str(err.value)
    assert "\n" not in str(err.value)


def test_background_floor() -> None:
    spec = build_workspace([1.0, 2.0], {"bkg": [0.0, 3.0]}, [0, 2], name="f", background_floor=1e-3)
    assert spec["channels"][0]["samples"][1]["data"][0] == pytest.approx(1e-3)
    assert upper_limit(spec).ok


def _zprime(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zprime.cli", "limit", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_limit_json(tmp_path) -> None:
    path = write_workspace(tmp_path / "w.json", window_spec(seed=2))
    res = _zprime(str(path), "--json")
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(rec) == {"observed", "expected", "engine", "seconds"}
    assert rec["engine"] == "fast"
    assert len(rec["expected"]) == 5
    ref = upper_limit(window_spec(seed=2))
    assert rec["observed"] == pytest.approx(ref.observed, rel=1e-9)
    np.testing.assert_allclose(rec["expected"], ref.expected, rtol=1e-9)


def test_cli_limit_pyhf_engine(tmp_path) -> None:
    path = write_workspace(tmp_path / "mini.json", mini_spec())
    res = _zprime(str(path), "--engine", "pyhf", "--json")
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    assert rec["engine"] == "pyhf"
    assert rec["observed"] == pytest.approx(upper_limit(mini_spec()).observed, rel=1e-4)


def test_cli_limit_errors(tmp_path) -> None:
    res = _zprime(str(tmp_path / "missing.json"))
    assert res.returncode == 2
    assert "no such workspace" in res.stderr
    spec = window_spec()
    spec["channels"][0]["samples"][0]["modifiers"].append(
        {"name": "cm", "type": "custom_mod", "data": None}
    )
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    res = _zprime(str(path))
    assert res.returncode == 2
    assert "custom_mod" in res.stderr
    from zprime.cli import limit_cmd
    from zprime.errors import ConfigError

    with pytest.raises(ConfigError, match="--engine"):
        limit_cmd(path, engine="roofit")
