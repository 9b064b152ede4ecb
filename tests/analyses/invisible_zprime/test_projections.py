"""Tests of zprime.analyses.invisible_zprime.projections: expected limits scaled to other
luminosities."""

from __future__ import annotations

import csv
import dataclasses
import math

import hist
import numpy as np
import pytest

from zprime.analyses.invisible_zprime.binning import Window
from zprime.analyses.invisible_zprime.projections import (
    ProjectionTable,
    project_limits,
    project_systematics,
    project_templates,
    projections_from_config,
    scale_window,
    smooth_background,
    write_projection,
)
from zprime.analyses.invisible_zprime.templates import (
    SystematicsTable,
    TemplateSet,
    WindowTemplates,
    write_templates,
)
from zprime.config import default_config
from zprime.errors import InputError
from zprime.stats import build_workspace, scan_limits

L0 = 79.7
NBINS = 12


def _table(
    bkg_shape: float = 0.0, *, eff: float = 0.0, sig_shape: float = 0.0, lumi: float = 0.0
) -> SystematicsTable:
    return SystematicsTable(
        m2_ranges=((-0.5, 81.0),),
        signal_efficiency=(eff,),
        signal_shape=sig_shape,
        background_shape=(bkg_shape,),
        photon_veto_split=1.0,
        photon_veto_shape=(0.0, 0.0),
        photon_veto_samples=("mumu",),
        luminosity=lumi,
        mc_stat=True,
    )


def _hist(edges_m2: np.ndarray, values: np.ndarray, variances: np.ndarray) -> hist.Hist:
    h = hist.Hist(
        hist.axis.Variable(edges_m2, name="m_recoil2", flow=False),
        hist.axis.Variable([0.0, math.pi], name="theta_recoil_cm", flow=False),
        storage=hist.storage.Weight(),
    )
    view = h.view()
    view.value = np.asarray(values, dtype=float).reshape(-1, 1)
    view.variance = np.asarray(variances, dtype=float).reshape(-1, 1)
    return h


def _window(
    mass: float = 2.0,
    *,
    signal_total: float = 10.0,
    bkg_per_bin: float = 1000.0,
    bkg: np.ndarray | None = None,
    mc_rel: float = 0.0,
    syst: SystematicsTable | None = None,
    index: int = 0,
) -> WindowTemplates:
    """A 12-bin window: Gaussian signal peak (``signal_total`` events per fb at L0) on a flat
    background; MC variances ``(mc_rel * content)^2``."""
    edges = mass**2 + np.linspace(-0.6, 0.6, NBINS + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    shape = np.exp(-0.5 * ((centres - mass**2) / 0.15) ** 2)
    s = signal_total * shape / shape.sum()
    b = np.full(NBINS, bkg_per_bin) if bkg is None else np.asarray(bkg, dtype=float)
    win = Window(index=index, mass_gev=mass, m2_edges=edges, theta_edges=np.array([0.0, math.pi]))
    return WindowTemplates(
        window=win,
        luminosity_fb=L0,
        signal=_hist(edges, s, (mc_rel * s) ** 2),
        backgrounds={"bkg": _hist(edges, b, (mc_rel * b) ** 2)},
        observed=None,
        signal_efficiency=0.05,
        systematics=syst if syst is not None else _table(),
    )


def _medians(tset: TemplateSet, lums, config=None, **kw) -> np.ndarray:
    t = project_templates(
        tset,
        config or default_config(),
        luminosities_fb=lums,
        masses_gev=[tset.windows[0].mass_gev],
        **kw,
    )
    assert all(r.status == "ok" for r in t.rows), [r.message for r in t.rows]
    return np.array([r.median_fb for r in t.rows])


def test_statistics_only_background_dominated_scales_as_inverse_sqrt_l():
    tset = TemplateSet(windows=[_window(bkg_per_bin=1000.0)])
    med = _medians(tset, [L0, 10 * L0, 100 * L0], systematics="none", mc_stat="drop")
    assert med[1] / med[0] == pytest.approx(1 / math.sqrt(10), rel=0.02)
    assert med[2] / med[0] == pytest.approx(0.1, rel=0.02)


def test_background_free_scales_as_inverse_l_with_asymptotic_value():
    cfg = default_config()
    cfg = cfg.model_copy(update={"fit": cfg.fit.model_copy(update={"background_floor": 1e-9})})
    w = _window(bkg_per_bin=1e-7, signal_total=10.0)
    tset = TemplateSet(windows=[w])
    med = _medians(tset, [L0, 10 * L0], cfg, systematics="none", mc_stat="drop")
    assert med[1] / med[0] == pytest.approx(0.1, rel=0.03)
    # b -> 0: q~_A(mu) = 2 mu S, median where sqrt(q_A) = Phi^-1(1 - 0.1/2) = 1.645
    assert med[0] == pytest.approx(1.6449**2 / (2 * 10.0), rel=0.03)


def test_kept_large_background_shape_systematic_saturates():
    syst = _table(bkg_shape=0.3)
    w = _window(bkg_per_bin=1000.0, syst=syst)
    med = _medians(
        TemplateSet(windows=[w]), [10 * L0, 100 * L0], systematics="kept", mc_stat="drop"
    )
    assert med[1] / med[0] > 0.9  # statistics alone would give 0.316


def test_scaled_lies_between_kept_and_none():
    syst = _table(bkg_shape=0.3, eff=0.1, sig_shape=0.1, lumi=0.01)
    tset = TemplateSet(windows=[_window(bkg_per_bin=1000.0, syst=syst)])
    lums = [L0, 100 * L0]
    kept, scaled, none = (
        _medians(tset, lums, systematics=s, mc_stat="drop") for s in ("kept", "scaled", "none")
    )
    assert scaled[0] == kept[0]  # at L0 nothing is scaled
    assert none[1] < scaled[1] < kept[1]
    assert none[0] < scaled[0]
    # statistics and the control-sample systematics both shrink as 1/sqrt(L): the limit too
    # (up to the luminosity uncertainty, which is kept)
    assert scaled[1] / scaled[0] == pytest.approx(0.1, rel=0.1)
    assert kept[1] / kept[0] > 0.8


def test_l0_reproduces_fit_stage_expected_limit(tmp_path):
    cfg = default_config()
    syst = _table(bkg_shape=0.05, eff=0.027, sig_shape=0.1, lumi=0.01)
    rng = np.random.default_rng(7)
    b = rng.uniform(50.0, 150.0, NBINS)
    w = _window(bkg=b, mc_rel=0.05, syst=syst)
    tset = TemplateSet(windows=[w], info={"luminosity_fb": L0})
    write_templates(tmp_path / "tpl", tset)
    # the fit stage (fitting._fit_scan): workspace_inputs -> build_workspace -> scan_limits
    spec = build_workspace(
        **w.workspace_inputs(cfg.templates.merge_backgrounds),
        background_floor=cfg.fit.background_floor,
    )
    ref = scan_limits([spec])[0]
    table = project_limits(
        tmp_path / "tpl", cfg, luminosities_fb=[L0], masses_gev=[2.0], systematics="kept"
    )
    (row,) = table.rows
    assert table.luminosity0_fb == L0
    np.testing.assert_allclose(row.expected_fb, ref.expected, rtol=1e-9)
    assert row.signal_per_fb == pytest.approx(10.0)
    assert row.background == pytest.approx(b.sum())


def test_scale_window_keeps_relative_mc_uncertainty():
    w = _window(bkg_per_bin=100.0, mc_rel=0.2, syst=_table(bkg_shape=0.1))
    w10 = scale_window(w, 10 * L0, "kept")
    np.testing.assert_allclose(w10.signal.values(), 10 * w.signal.values())
    np.testing.assert_allclose(w10.total_background(), 10 * w.total_background())
    rel = np.sqrt(w10.backgrounds["bkg"].variances()) / w10.backgrounds["bkg"].values()
    np.testing.assert_allclose(rel, 0.2)
    assert w10.luminosity_fb == 10 * L0
    assert w10.observed is None
    assert w10.systematics.mc_stat
    assert not scale_window(w, 10 * L0, "kept", mc_stat="drop").systematics.mc_stat
    assert "signal_mc_unc" not in scale_window(w, L0, mc_stat="drop").workspace_inputs()


def test_project_systematics_options():
    t = _table(bkg_shape=0.2, eff=0.08, sig_shape=0.1, lumi=0.01)
    sc = project_systematics(t, 4.0, "scaled")
    assert sc.background_shape == pytest.approx((0.1,))
    assert sc.signal_efficiency == pytest.approx((0.04,))
    assert sc.signal_shape == pytest.approx(0.05)
    assert sc.luminosity == 0.01  # not from control samples: kept
    floored = project_systematics(t, 10_000.0, "scaled", floor=0.05)
    assert floored.background_shape == pytest.approx((0.05,))
    assert floored.signal_efficiency == pytest.approx((0.05,))
    assert floored.luminosity == 0.01
    low = project_systematics(t, 0.001, "scaled")  # L << L0: grown, capped below 100%
    assert low.background_shape == pytest.approx((0.99,))
    none = project_systematics(t, 4.0, "none")
    assert none.background_shape == (0.0,)
    assert none.luminosity == 0.0
    assert none.mc_stat
    assert project_systematics(t, 4.0, "kept") == t


def test_nearest_hypothesis_and_table_outputs(tmp_path):
    tset = TemplateSet(
        windows=[_window(m, index=i, bkg_per_bin=200.0) for i, m in enumerate((1.0, 2.0, 3.0))]
    )
    table = project_templates(
        tset,
        default_config(),
        luminosities_fb=[L0, 1000.0],
        masses_gev=[2.2, 3.0],
        systematics="none",
    )
    assert isinstance(table, ProjectionTable)
    assert table.masses() == [2.2, 3.0]
    assert [r.mass_gev for r in table.for_mass(2.2)] == [2.0, 2.0]
    lum, ex = table.expected(3.0)
    assert lum.tolist() == [L0, 1000.0]
    assert ex.shape == (2, 5)
    assert np.all(np.diff(ex[0]) > 0)  # -2 sigma < ... < +2 sigma
    paths = write_projection(table, tmp_path, others=[table])
    assert {k: p.name for k, p in paths.items()} == {
        "csv": "projections.csv",
        "md": "projections.md",
        "png": "projection_limits.png",
        "pdf": "projection_limits.pdf",
    }
    with paths["csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 2
    assert float(rows[1]["expected_median_fb"]) == pytest.approx(table.for_mass(2.2)[1].median_fb)
    assert "1000 fb^-1" in paths["md"].read_text()
    assert paths["png"].stat().st_size > 10_000


def test_smooth_background_conserves_yield():
    b = np.zeros(NBINS)
    b[3] = 90.0
    w = _window(bkg=b, mc_rel=1.0)
    sm = smooth_background(w)
    vals = sm.backgrounds["bkg"].values().ravel()
    assert vals.sum() == pytest.approx(90.0)
    np.testing.assert_allclose(vals, 90.0 / NBINS)  # equal-width M^2 bins
    assert np.all(sm.backgrounds["bkg"].variances() == 0.0)
    # one simulated event: its empty bins are background-free and the limit falls as 1/L;
    # smoothed, it falls as 1/sqrt(L)
    tset = TemplateSet(windows=[w])
    raw = _medians(tset, [100 * L0, 1000 * L0], systematics="none", mc_stat="drop")
    smooth = _medians(tset, [100 * L0, 1000 * L0], systematics="none", mc_stat="drop", smooth=True)
    assert raw[1] / raw[0] < 0.25  # 1/sqrt(10) = 0.316
    assert smooth[1] / smooth[0] == pytest.approx(1 / math.sqrt(10), rel=0.05)


@pytest.mark.parametrize("lum", [0.0, -5.0, float("nan"), "many"])
def test_bad_luminosity_is_one_line_error(lum):
    tset = TemplateSet(windows=[_window()])
    with pytest.raises(InputError, match=r"projections\.luminosities_fb") as err:
        project_templates(tset, default_config(), luminosities_fb=[L0, lum], masses_gev=[2.0])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("mass", [0.5, 9.0, float("nan")])
def test_mass_outside_grid_is_one_line_error(mass):
    tset = TemplateSet(windows=[_window(1.0), _window(3.0, index=1)])
    with pytest.raises(InputError, match=r"projections\.masses_gev: .* outside the template grid"):
        project_templates(tset, default_config(), luminosities_fb=[L0], masses_gev=[mass])


def test_bad_options_and_inputs():
    tset = TemplateSet(windows=[_window()])
    cfg = default_config()
    with pytest.raises(InputError, match=r"projections\.systematics: 'some'"):
        project_templates(tset, cfg, luminosities_fb=[L0], masses_gev=[2.0], systematics="some")
    with pytest.raises(InputError, match=r"projections\.mc_stat"):
        project_templates(tset, cfg, luminosities_fb=[L0], masses_gev=[2.0], mc_stat="half")
    with pytest.raises(InputError, match="no luminosity"):
        project_templates(tset, cfg, luminosities_fb=[], masses_gev=[2.0])
    with pytest.raises(InputError, match="no usable window"):
        project_templates(TemplateSet(windows=[]), cfg, luminosities_fb=[L0], masses_gev=[2.0])
    bad = dataclasses.replace(_window(), luminosity_fb=0.0)
    with pytest.raises(InputError, match="not positive"):
        project_templates(TemplateSet(windows=[bad]), cfg, luminosities_fb=[L0], masses_gev=[2.0])


def test_projections_from_config(tmp_path):
    tset = TemplateSet(windows=[_window(1.0), _window(3.0, index=1)])
    write_templates(tmp_path / "tpl", tset)
    cfg = default_config()
    assert projections_from_config(tmp_path / "tpl", cfg, tmp_path / "out") == {}
    pc = cfg.projections.model_copy(
        update={"luminosities_fb": [L0, 800.0], "masses_gev": [1.0], "systematics": "none"}
    )
    paths = projections_from_config(
        tmp_path / "tpl", cfg.model_copy(update={"projections": pc}), tmp_path / "out"
    )
    with paths["csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["luminosity_fb"]) for r in rows] == [L0, 800.0]
    assert {r["systematics"] for r in rows} == {"none"}
