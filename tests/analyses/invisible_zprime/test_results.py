"""Tests of zprime.analyses.invisible_zprime.results (results table, g' translation, recast) and the
result figures (zprime.analyses.invisible_zprime.figures)."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import subprocess
import sys
from importlib import resources
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from typer.testing import CliRunner

from zprime.analyses.invisible_zprime.figures import (
    gprime_limit_figure,
    result_figures,
    xsec_limit_figure,
)
from zprime.analyses.invisible_zprime.results import (
    BANDS,
    COLUMNS,
    ResultsTable,
    build_results,
    read_results,
    recast,
    summary_markdown,
    write_results,
)
from zprime.cli import app
from zprime.config import default_config
from zprime.errors import ConfigError, InputError
from zprime.physics.constants import M_MUON, M_TAU
from zprime.physics.model import g2_band

FIT_HEADER = [
    "name",
    "mass_gev",
    "status",
    "message",
    "observed_fb",
    "expected_m2_fb",
    "expected_m1_fb",
    "expected_median_fb",
    "expected_p1_fb",
    "expected_p2_fb",
    "mu_hat_fb",
    "signal_efficiency",
    "extrapolated",
    "q0",
    "p0",
    "z_local",
    "gof_p",
    "gof_ndof",
]
NAN = float("nan")


def _fit_row(mass: float, obs: float, scale: float = 1.0, **kw: object) -> dict[str, object]:
    """A fit-stage row: expected band = scale x (0.5, 0.7, 1, 1.4, 2) x obs."""
    row: dict[str, object] = {
        "name": f"M{mass:.4f}",
        "mass_gev": mass,
        "status": "ok",
        "message": "",
        "observed_fb": obs,
        "expected_m2_fb": 0.5 * scale * obs,
        "expected_m1_fb": 0.7 * scale * obs,
        "expected_median_fb": scale * obs,
        "expected_p1_fb": 1.4 * scale * obs,
        "expected_p2_fb": 2.0 * scale * obs,
        "mu_hat_fb": 0.1,
        "signal_efficiency": 0.05,
        "extrapolated": False,
        "q0": 1.0,
        "p0": 0.158655,
        "z_local": 1.0,
        "gof_p": 0.4,
        "gof_ndof": 18,
    }
    row.update(kw)
    return row


def _write_fit_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIT_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _table_node(mass: float) -> float:
    """sigma(g'=1) at a node of the shipped table, read from the CSV text directly."""
    text = resources.files("zprime").joinpath("data/xsec_table.csv").read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    for row in csv.DictReader(lines):
        if float(row["mass_gev"]) == mass:
            return float(row["sigma_fb"])
    raise AssertionError(f"{mass} GeV is not a node of the table")


def _br_vanilla_analytic(mass: float) -> float:
    """Gamma_nunu / Gamma_tot with Gamma_ll = M/(12 pi)(1+2x)beta, Gamma_nunu = 2 M/(24 pi)."""

    def lep(m_l: float) -> float:
        x = (m_l / mass) ** 2
        return (1 + 2 * x) * math.sqrt(1 - 4 * x) if 4 * x < 1 else 0.0

    nunu = 1.0  # in units of M/(12 pi): 2 flavours x 1/2
    return nunu / (nunu + lep(M_MUON) + lep(M_TAU))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    narrow = [
        _fit_row(0.1, 2.0),
        _fit_row(1.0, 0.5, mu_hat_fb=-0.2, z_local=0.0, p0=0.5, q0=0.0),
        _fit_row(2.0, 0.3, z_local=2.5, p0=0.0062),
        _fit_row(3.0, NAN, status="failed", message="window M3.0000: no background"),
        _fit_row(5.0, 0.2, z_local=0.7),
        _fit_row(8.0, 1.0),
    ]
    wide = [_fit_row(m, 1.5 * obs) for m, obs in [(0.1, 2.0), (1.0, 0.5), (2.0, 0.3), (5.0, 0.2)]]
    _write_fit_csv(run / "limits_narrow.csv", narrow)
    _write_fit_csv(run / "limits_wide.csv", wide)
    sig = {
        "hypotheses": 6,
        "failed": 1,
        "largest_local_z": 2.5,
        "at_mass_gev": 2.0,
        "global_p": 0.3,
        "global_z": 0.524,
        "worst_gof_p": 0.4,
    }
    (run / "significance_narrow.json").write_text(json.dumps(sig))
    return run


@pytest.fixture
def table(run_dir: Path) -> ResultsTable:
    return build_results(run_dir, default_config())


# --------------------------------------------------------------------------- build_results
def test_columns_and_order(table: ResultsTable) -> None:
    assert list(table.columns()) == list(COLUMNS)
    assert len(table) == 10
    assert list(table.width) == ["narrow"] * 6 + ["wide"] * 4
    assert np.all(np.diff(table.narrow.mass_gev) > 0)
    assert table.luminosity_fb == pytest.approx(79.7)
    assert table.significance["global_p"] == 0.3


def test_gprime_reproduces_xsec_limit(table: ResultsTable) -> None:
    """g'^2 sigma_g1 B == sigma x B limit (to 1e-10) for every band and both models."""
    ok = table.ok
    assert ok.sum() == 9
    n = table.width == "narrow"
    for obs_x, suffix in [("obs_xsec_fb", "")] + [
        (f"exp_xsec_fb{s}", s) for s in ("_m2", "_m1", "", "_p1", "_p2")
    ]:
        lim = getattr(table, obs_x)
        kind = "obs" if obs_x.startswith("obs") else "exp"
        g_inv = getattr(table, f"{kind}_gprime_invisible{suffix}")
        g_van = getattr(table, f"{kind}_gprime_vanilla{suffix}")
        np.testing.assert_allclose(g_inv[ok] ** 2 * table.sigma_g1_fb[ok], lim[ok], rtol=1e-10)
        sel = ok & n
        np.testing.assert_allclose(
            g_van[sel] ** 2 * table.sigma_g1_fb[sel] * table.br_inv_vanilla[sel],
            lim[sel],
            rtol=1e-10,
        )
        assert np.all(np.isnan(g_van[table.width == "wide"]))


def test_known_numbers_at_table_node(table: ResultsTable) -> None:
    i = int(np.flatnonzero((table.width == "narrow") & (table.mass_gev == 1.0))[0])
    sigma = _table_node(1.0)
    br = _br_vanilla_analytic(1.0)
    assert table.sigma_g1_fb[i] == pytest.approx(sigma, rel=1e-10)
    assert table.br_inv_vanilla[i] == pytest.approx(br, rel=1e-12)
    assert table.obs_gprime_vanilla[i] == pytest.approx(math.sqrt(0.5 / (sigma * br)), rel=1e-10)
    assert table.obs_gprime_invisible[i] == pytest.approx(math.sqrt(0.5 / sigma), rel=1e-10)
    # below 2 m_mu the vanilla Z' decays only to neutrinos
    j = int(np.flatnonzero((table.width == "narrow") & (table.mass_gev == 0.1))[0])
    assert table.br_inv_vanilla[j] == 1.0
    assert table.obs_gprime_vanilla[j] == table.obs_gprime_invisible[j]


def test_bands_ordered(table: ResultsTable) -> None:
    ok = table.ok
    for prefix in ("exp_xsec_fb", "exp_gprime_invisible"):
        cols = [getattr(table, f"{prefix}_{b}" if b else prefix)[ok] for b in BANDS]
        for lo, hi in itertools.pairwise(cols):
            assert np.all(lo < hi)
    sel = ok & (table.width == "narrow")
    cols = [
        getattr(table, f"exp_gprime_vanilla_{b}" if b else "exp_gprime_vanilla")[sel] for b in BANDS
    ]
    for lo, hi in itertools.pairwise(cols):
        assert np.all(lo < hi)


def test_fully_invisible_below_vanilla(table: ResultsTable) -> None:
    sel = table.ok & (table.width == "narrow")
    below = sel & (table.br_inv_vanilla < 1.0)
    assert below.sum() == 4  # 1, 2, 5, 8 GeV are above 2 m_mu
    assert np.all(table.obs_gprime_invisible[below] < table.obs_gprime_vanilla[below])
    ratio = table.obs_gprime_vanilla[below] / table.obs_gprime_invisible[below]
    np.testing.assert_allclose(ratio, 1.0 / np.sqrt(table.br_inv_vanilla[below]), rtol=1e-12)
    # above 2 m_tau B -> 1/3 (PRL: "between ~33% and ~100%")
    k = (table.width == "narrow") & (table.mass_gev == 8.0)
    assert 0.33 < table.br_inv_vanilla[k][0] < 0.4


def test_failed_rows_and_significance(table: ResultsTable) -> None:
    k = int(np.flatnonzero(table.mass_gev == 3.0)[0])
    assert table.status[k] == "failed"
    assert "no background" in table.message[k]
    for c in ("obs_xsec_fb", "exp_xsec_fb", "obs_gprime_vanilla", "obs_gprime_invisible"):
        assert np.isnan(getattr(table, c)[k])
    assert np.isnan(table.z_local[k])
    # mu_hat <= 0 -> z_local = 0 (the contract)
    i = int(np.flatnonzero((table.width == "narrow") & (table.mass_gev == 1.0))[0])
    assert table.z_local[i] == 0.0
    j = int(np.flatnonzero((table.width == "narrow") & (table.mass_gev == 2.0))[0])
    assert table.z_local[j] == 2.5


def test_wide_rows(table: ResultsTable) -> None:
    w = table.wide
    assert np.all(w.br_inv_vanilla == 1.0)
    np.testing.assert_allclose(w.obs_gprime_invisible, np.sqrt(w.obs_xsec_fb / w.sigma_g1_fb))


def test_ok_row_with_bad_mass_fails(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    _write_fit_csv(run / "limits_narrow.csv", [_fit_row(1.0, 0.5), _fit_row(12.0, 0.5)])
    t = build_results(run, default_config())
    assert list(t.status) == ["ok", "failed"]
    assert "outside the cross-section table" in t.message[1]
    assert t.significance == {}


def test_build_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"limits_narrow\.csv: no such"):
        build_results(tmp_path, default_config())
    (tmp_path / "limits_narrow.csv").write_text("mass_gev,status\n1.0,ok\n")
    with pytest.raises(InputError, match="missing column 'observed_fb'"):
        build_results(tmp_path, default_config())


# --------------------------------------------------------------------------- write / read
def test_write_read_roundtrip_atomic(table: ResultsTable, tmp_path: Path) -> None:
    out = tmp_path / "results"
    paths = write_results(table, out)
    assert set(paths) == {"csv", "parquet", "summary", "significance"}
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    assert not list(out.glob(".*"))  # no temporary files left
    for source in (paths["parquet"], paths["csv"], out):
        back = read_results(source)
        for c, a in table.columns().items():
            b = getattr(back, c)
            if a.dtype.kind == "f":
                np.testing.assert_array_equal(a, b)
            else:
                assert list(a) == list(b)
        assert back.significance == table.significance
    assert read_results(paths["parquet"]).luminosity_fb == pytest.approx(79.7)
    assert json.loads(paths["significance"].read_text())["global_z"] == 0.524
    header = paths["csv"].read_text().splitlines()[0].split(",")
    assert header == list(COLUMNS)


def test_write_failure_leaves_no_partial_file(table: ResultsTable, tmp_path: Path) -> None:
    out = tmp_path / "results"
    write_results(table, out)
    before = (out / "limits.parquet").read_bytes()
    broken = ResultsTable.from_columns(table.columns(), significance={"x": object()})
    with pytest.raises(TypeError):
        write_results(broken, out)  # json cannot encode object(): the Parquet step fails
    assert (out / "limits.parquet").read_bytes() == before
    assert not list(out.glob(".*"))


def test_summary(table: ResultsTable) -> None:
    text = summary_markdown(table)
    assert "6 hypotheses, 1 failed" in text
    assert "global significance 0.52 sigma (p = 0.3)" in text
    assert "| 1 | 0.5 |" in text  # the 1 GeV row: observed 0.5 fb
    assert "failed: window M3.0000: no background" in text
    # the nearest hypothesis to 4 GeV is 3 or 5 GeV; a mass is never listed twice
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    narrow_rows = rows[: len(set(rows))]
    assert len(narrow_rows) == len(set(narrow_rows))


def test_a_smoke_test_summary_reports_no_significance(table: ResultsTable) -> None:
    """Issue 16: a quick run's summary showed a 12.9 sigma "excess" with no signal injected."""
    smoke = dataclasses.replace(table, smoke_test=True)
    text = summary_markdown(smoke)
    assert text.startswith("# zprime results: smoke test\n")
    assert "not physics results" in text
    for word in ("Z_local", "GoF", "global", "sigma at"):
        assert word not in text, word
    assert "Z_local" in summary_markdown(table)


def test_read_results_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such results file"):
        read_results(tmp_path / "nope.parquet")
    bad = tmp_path / "limits.csv"
    bad.write_text("mass_gev,width\n1,narrow\n")
    with pytest.raises(InputError, match="missing column"):
        read_results(bad)


# --------------------------------------------------------------------------- recast
def _user_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_recast_known_numbers(tmp_path: Path) -> None:
    src = _user_csv(
        tmp_path / "user.csv", "mass_gev,observed_fb,expected_median_fb\n1.0,0.5,0.6\n2.0,0.3,0.2\n"
    )
    out = tmp_path / "out" / "g.csv"
    res = recast(src, "vanilla", out)
    s1, s2 = _table_node(1.0), _table_node(2.0)
    b1, b2 = _br_vanilla_analytic(1.0), _br_vanilla_analytic(2.0)
    np.testing.assert_allclose(
        res.columns["obs_gprime_vanilla"],
        [math.sqrt(0.5 / (s1 * b1)), math.sqrt(0.3 / (s2 * b2))],
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        res.columns["exp_gprime_vanilla"],
        [math.sqrt(0.6 / (s1 * b1)), math.sqrt(0.2 / (s2 * b2))],
        rtol=1e-10,
    )
    assert res.gprime_columns() == ["obs_gprime_vanilla", "exp_gprime_vanilla"]
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert float(rows[0]["obs_gprime_vanilla"]) == pytest.approx(math.sqrt(0.5 / (s1 * b1)))
    assert float(rows[1]["obs_xsec_fb"]) == 0.3
    inv = recast(src, "fully_invisible")
    np.testing.assert_allclose(inv.columns["br_inv"], 1.0)
    np.testing.assert_allclose(inv.columns["obs_gprime_invisible"] ** 2 * [s1, s2], [0.5, 0.3])


def test_recast_results_table(table: ResultsTable, tmp_path: Path) -> None:
    """Our own limits.csv (failed rows and wide rows included) recasts to the same g'."""
    paths = write_results(table, tmp_path / "results")
    res = recast(paths["csv"], "vanilla")
    np.testing.assert_allclose(res.columns["obs_gprime_vanilla"], table.obs_gprime_vanilla)
    inv = recast(paths["csv"], "fully_invisible")
    for b in ("m2", "m1", "", "p1", "p2"):
        name = f"exp_gprime_invisible_{b}" if b else "exp_gprime_invisible"
        np.testing.assert_allclose(inv.columns[name], getattr(table, name))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("mass,observed_fb\n1,0.5\n", "missing column 'mass_gev'"),
        ("mass_gev,limit\n1,0.5\n", "no cross-section limit column"),
        ("mass_gev,observed_fb\n1,-0.5\n", r"column 'observed_fb', row 1 .*got -0\.5"),
        ("mass_gev,observed_fb\n1,nan\n", r"column 'observed_fb', row 1 .*got nan"),
        ("mass_gev,obs_xsec_fb\n1,0.5\n2,\n", r"column 'obs_xsec_fb', row 2"),
        ("mass_gev,observed_fb\n9.5,0.5\n", r"'mass_gev', row 1: 9\.5 GeV is outside"),
        ("mass_gev,observed_fb\n0.001,0.5\n", "outside the cross-section table range"),
        ("mass_gev,observed_fb\n1,abc\n", "'abc' is not a number"),
        ("mass_gev,observed_fb\n", "no rows"),
    ],
)
def test_recast_bad_input(tmp_path: Path, text: str, match: str) -> None:
    src = _user_csv(tmp_path / "bad.csv", text)
    with pytest.raises(InputError, match=match) as info:
        recast(src, "vanilla")
    assert "\n" not in str(info.value)
    assert "bad.csv" in str(info.value)


def test_recast_missing_file_and_model(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.csv: no such limit table file"):
        recast(tmp_path / "missing.csv", "vanilla")
    src = _user_csv(tmp_path / "u.csv", "mass_gev,observed_fb\n1,0.5\n")
    with pytest.raises(ConfigError, match="unknown model 'dark'"):
        recast(src, "dark")


def test_recast_cli(tmp_path: Path) -> None:
    src = _user_csv(tmp_path / "u.csv", "mass_gev,observed_fb\n1,0.5\n2,0.3\n")
    out = tmp_path / "g.csv"
    runner = CliRunner()
    res = runner.invoke(app, ["recast", str(src), "--model", "fully_invisible", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file()
    assert "obs. g'" in res.output
    g = math.sqrt(0.5 / _table_node(1.0))
    assert f"{g:.4g}" in res.output
    default = tmp_path / "u_gprime_vanilla.csv"
    res = runner.invoke(app, ["recast", str(src), "--model", "vanilla"])
    assert res.exit_code == 0, res.output
    assert default.is_file()


def test_recast_cli_error_exit(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from zprime.cli import main; main()",
            "recast",
            str(tmp_path / "x.csv"),
            "--model",
            "vanilla",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "x.csv: no such limit table file" in proc.stderr


# --------------------------------------------------------------------------- figures
def test_figures_written(table: ResultsTable, tmp_path: Path) -> None:
    written = result_figures(table, tmp_path / "figs")
    assert len(written) == 12
    for p in written:
        assert p.is_file()
        assert p.stat().st_size > 1000
    assert {p.suffix for p in written} == {".png", ".pdf"}
    assert not list((tmp_path / "figs").glob(".*"))


def test_figures_gaps_and_bands(table: ResultsTable) -> None:
    fig = xsec_limit_figure(table)
    ax = fig.axes[0]
    obs = next(ln for ln in ax.get_lines() if ln.get_label().startswith("observed, narrow"))
    y = np.asarray(obs.get_ydata(), dtype=float)
    x = np.asarray(obs.get_xdata(), dtype=float)
    assert np.isnan(y[x == 3.0]).all()  # failed row is a gap, never 0
    assert np.all(y[np.isfinite(y)] > 0)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("0.1" in lab for lab in labels)  # the wide curve
    assert ax.get_yscale() == "log"
    plt.close(fig)
    fig = gprime_limit_figure(table, "fully_invisible", logx=False)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("g-2" in lab for lab in labels)
    assert ax.get_xscale() == "linear"
    # the (g-2) band is g2_band's: its lower edge at the band's first mass
    band = next(c for c in ax.collections if "g-2" in c.get_label())
    verts = band.get_paths()[0].vertices
    m0 = verts[:, 0].min()
    lo = verts[np.isclose(verts[:, 0], m0), 1].min()
    assert lo == pytest.approx(g2_band(m0).low, rel=1e-9)
    plt.close(fig)
    with pytest.raises(ConfigError, match="unknown model"):
        gprime_limit_figure(table, "dark", logx=True)
