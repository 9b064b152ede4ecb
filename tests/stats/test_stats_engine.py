"""The fast engine's likelihood and fits against pyhf 0.7.6 on the same workspaces."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

from zprime.errors import InputError
from zprime.stats import (
    Params,
    build_workspace,
    compile_workspace,
    expected_main,
    fit,
    stack_models,
    twice_nll,
)

pyhf = pytest.importorskip("pyhf")


def rich_spec() -> dict:
    """Every supported modifier: asymmetric normsys shared by two samples, lumi, a multi-bin
    asymmetric histosys, single-bin asymmetric and symmetric histosys, two staterror sets
    (one shared by two samples), a decoupled histosys, a fixed normfactor, near-empty bins."""
    sig = [0.5, 3.0, 6.0, 2.0, 0.01]
    b1 = [40.0, 30.0, 20.0, 8.0, 0.2]
    b2 = [5.0, 4.0, 0.0, 1.0, 0.05]
    return {
        "version": "1.0.0",
        "channels": [
            {
                "name": "win",
                "samples": [
                    {
                        "name": "signal",
                        "data": sig,
                        "modifiers": [
                            {"name": "mu", "type": "normfactor", "data": None},
                            {"name": "eff", "type": "normsys", "data": {"hi": 1.1, "lo": 0.85}},
                            {"name": "lumi", "type": "lumi", "data": None},
                            {
                                "name": "stat_a",
                                "type": "staterror",
                                "data": [0.1, 0.3, 0.4, 0.2, 0.01],
                            },
                            {
                                "name": "sig_b1",
                                "type": "histosys",
                                "data": {
                                    "hi_data": [0.5, 3.4, 6.0, 2.0, 0.01],
                                    "lo_data": [0.5, 2.9, 6.0, 2.0, 0.01],
                                },
                            },
                            {
                                "name": "shape_g",
                                "type": "histosys",
                                "data": {
                                    "hi_data": [0.6, 3.3, 5.5, 1.8, 0.01],
                                    "lo_data": [0.45, 2.6, 6.2, 2.3, 0.02],
                                },
                            },
                        ],
                    },
                    {
                        "name": "bkg1",
                        "data": b1,
                        "modifiers": [
                            {"name": "bnorm", "type": "normfactor", "data": None},
                            {"name": "eff", "type": "normsys", "data": {"hi": 1.05, "lo": 0.97}},
                            {
                                "name": "shape_g",
                                "type": "histosys",
                                "data": {
                                    "hi_data": [42.0, 31.0, 19.0, 7.0, 0.25],
                                    "lo_data": [39.0, 29.5, 21.0, 8.5, 0.18],
                                },
                            },
                            {
                                "name": "b1_bin2",
                                "type": "histosys",
                                "data": {
                                    "hi_data": [40.0, 30.0, 23.0, 8.0, 0.2],
                                    "lo_data": [40.0, 30.0, 18.5, 8.0, 0.2],
                                },
                            },
                            {
                                "name": "b1_bin4",
                                "type": "histosys",
                                "data": {
                                    "hi_data": [40.0, 30.0, 20.0, 8.0, 0.3],
                                    "lo_data": [40.0, 30.0, 20.0, 8.0, 0.1],
                                },
                            },
                            {
                                "name": "stat_a",
                                "type": "staterror",
                                "data": [2.0, 1.5, 1.0, 0.8, 0.1],
                            },
                            {
                                "name": "stat_b",
                                "type": "staterror",
                                "data": [1.0, 0.5, 0.5, 0.3, 0.05],
                            },
                        ],
                    },
                    {
                        "name": "bkg2",
                        "data": b2,
                        "modifiers": [
                            {"name": "fixnorm", "type": "normfactor", "data": None},
                            {
                                "name": "stat_b",
                                "type": "staterror",
                                "data": [0.5, 0.4, 0.0, 0.2, 0.02],
                            },
                            {
                                "name": "dead",
                                "type": "histosys",
                                "data": {"hi_data": b2, "lo_data": b2},
                            },
                            {
                                "name": "b2_bin0",
                                "type": "histosys",
                                "data": {
                                    "hi_data": [6.0, 4.0, 0.0, 1.0, 0.05],
                                    "lo_data": [4.0, 4.0, 0.0, 1.0, 0.05],
                                },
                            },
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": "win", "data": [47.0, 40.0, 27.0, 12.0, 1.0]}],
        "measurements": [
            {
                "name": "meas",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        {
                            "name": "lumi",
                            "auxdata": [1.0],
                            "sigmas": [0.02],
                            "bounds": [[0.8, 1.2]],
                            "inits": [1.0],
                        },
                        {"name": "bnorm", "bounds": [[0.0, 5.0]]},
                        {"name": "fixnorm", "inits": [1.2], "fixed": True},
                    ],
                },
            }
        ],
    }


def window_spec(seed: int = 3, nbins: int = 6, obs: list[float] | None = None) -> dict:
    """A small search window as the analysis builds it: per-bin histosys per sample, normsys,
    lumi, MC stat errors, and near-empty bins."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, nbins)
    sig = 2.0 * np.exp(-0.5 * ((x - 0.5) / 0.2) ** 2)
    b1 = 30.0 * np.exp(-2 * x) + 0.05
    b2 = np.where(x > 0.6, 0.0, 3.0)
    b2[-1] = 0.02
    data = rng.poisson(b1 + b2).astype(float) if obs is None else np.asarray(obs)
    return build_workspace(
        sig,
        {"mumu": b1, "eegamma": b2},
        data,
        name=f"window{seed}",
        signal_shape_unc=0.10,
        background_shape_unc={"mumu": 0.086, "eegamma": 0.34},
        signal_efficiency_unc=0.05,
        lumi_unc=0.01,
        signal_mc_unc=0.05 * sig,
        background_mc_unc={"mumu": 0.1 * np.sqrt(b1)},
    )


def pyhf_model(spec: dict, settings: dict | None = None):
    pyhf.set_backend("numpy")
    ws = pyhf.Workspace(spec)
    model = ws.model(modifier_settings=settings) if settings else ws.model()
    return model, np.asarray(ws.data(model))


def pyhf_pars(pm, values: dict) -> np.ndarray:
    pars = np.asarray(pm.config.suggested_init(), dtype=float)
    for name in pm.config.par_order:
        if name in values:
            pars[pm.config.par_slice(name)] = values[name]
    return pars


def random_values(pm, rng: np.random.Generator) -> dict:
    vals: dict = {}
    for name in pm.config.par_order:
        sl = pm.config.par_slice(name)
        n = sl.stop - sl.start
        ps = pm.config.param_set(name)
        if ps.suggested_fixed_as_bool if n == 1 else False:
            continue
        if name.startswith("stat"):
            vals[name] = list(rng.uniform(0.7, 1.3, n))
        elif name in ("mu", "bnorm", "fixnorm", "xsec_fb", "bkg_norm"):
            vals[name] = float(rng.uniform(0.0, 3.0))
        elif name == "lumi":
            vals[name] = float(rng.uniform(0.95, 1.05))
        else:
            vals[name] = float(rng.normal(0.0, 1.5))  # both interpolation branches
    return vals


@pytest.mark.parametrize(
    "settings",
    [None, {"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code0"}}],
    ids=["code4-code4p", "code1-code0"],
)
@pytest.mark.parametrize("which", ["rich", "window"])
def test_twice_nll_equals_pyhf_logpdf(settings, which, rng) -> None:
    spec = rich_spec() if which == "rich" else window_spec()
    pm, data = pyhf_model(spec, settings)
    model = compile_workspace(spec, modifier_settings=settings)
    assert model.n_parameters() == len(pm.config.par_names)
    main = data[: pm.config.nmaindata]
    for _ in range(6):
        vals = random_values(pm, rng)
        with np.errstate(all="ignore"):
            ref = -2.0 * pm.logpdf(pyhf_pars(pm, vals), data)[0]
        ours = twice_nll(model, model.params_from_dict(vals), main)[0]
        if not np.isfinite(ref):  # a negative expected yield in a bin with data: NaN in pyhf
            assert np.isinf(ours)
            continue
        assert ours == pytest.approx(ref, rel=1e-12, abs=1e-8)
        lam_ref = pm.expected_actualdata(pyhf_pars(pm, vals))
        lam = expected_main(model, model.params_from_dict(vals))[0]
        np.testing.assert_allclose(lam, lam_ref, rtol=1e-12, atol=1e-12)


def test_rich_spec_structure() -> None:
    model = compile_workspace(rich_spec())
    # globals: normfactors, lumi, the normsys and the multi-bin histosys
    assert set(model.g_names) == {"bnorm", "eff", "fixnorm", "lumi", "mu", "shape_g"}
    assert model.kg == 2  # two staterror sets
    assert model.d_names == [["dead"]]  # no effect on any yield
    assert set(model.l_names[0]) == {"sig_b1", "b1_bin2", "b1_bin4", "b2_bin0"}
    g = model.g_names.index("fixnorm")
    assert model.g_fixed[0, g]
    assert model.g_init[0, g] == 1.2


@pytest.mark.parametrize("which", ["rich", "window"])
def test_fits_reach_pyhf_optimum(which) -> None:
    spec = rich_spec() if which == "rich" else window_spec()
    pm, data = pyhf_model(spec)
    model = compile_workspace(spec)
    main = data[: pm.config.nmaindata]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        bf, ref = pyhf.infer.mle.fit(data, pm, return_fitted_val=True)
        _bf1, ref1 = pyhf.infer.mle.fixed_poi_fit(1.0, data, pm, return_fitted_val=True)
    free = fit(model, main)
    fixed = fit(model, main, fixed_poi=1.0)
    assert free.converged.all()
    assert fixed.converged.all()
    # never worse than pyhf's optimiser, and equal within its tolerance
    for ours, theirs in ((free.twice_nll[0], float(ref)), (fixed.twice_nll[0], float(ref1))):
        assert ours <= theirs + 1e-7
        assert ours == pytest.approx(theirs, abs=2e-5)
    poi = pm.config.poi_index
    assert free.params.g[0, model.poi_index] == pytest.approx(bf[poi], abs=2e-3)
    # the fitted parameters reproduce the fitted value in pyhf's own likelihood
    vals = model.params_to_dict(free.params)
    again = -2.0 * pm.logpdf(pyhf_pars(pm, vals), data)[0]
    assert again == pytest.approx(free.twice_nll[0], abs=1e-8)


def test_batch_equals_single_fits(rng) -> None:
    model = compile_workspace(window_spec())
    lam = expected_main(model, model.init_params())[0]
    main = rng.poisson(lam, size=(6, lam.size)).astype(float)
    batch = fit(model, main, fixed_poi=np.linspace(0.0, 2.5, 6))
    for i in range(6):
        one = fit(model, main[i], fixed_poi=float(np.linspace(0.0, 2.5, 6)[i]))
        assert one.twice_nll[0] == pytest.approx(batch.twice_nll[i], abs=1e-9)
        np.testing.assert_allclose(one.params.g[0], batch.params.g[i], atol=1e-5)


def test_stacked_models_equal_separate() -> None:
    specs = [window_spec(seed=s) for s in (1, 2, 3)]
    models = [compile_workspace(s) for s in specs]
    stacked = stack_models(models)
    res = fit(stacked, stacked.observed, widx=np.arange(3))
    for i, m in enumerate(models):
        one = fit(m, m.observed)
        assert res.twice_nll[i] == pytest.approx(one.twice_nll[0], abs=1e-9)


def test_decoupled_and_aux_data() -> None:
    """Shifted auxiliary data move the constrained parameters as the likelihood says."""
    model = compile_workspace(rich_spec())
    aux = model.nominal_aux()
    aux.d[:] = 0.7  # the decoupled histosys follows its auxiliary datum exactly
    r = fit(model, model.observed, aux)
    assert r.params.d[0, 0] == pytest.approx(0.7)


def test_poi_sigma_matches_curvature() -> None:
    """The profiled POI uncertainty is the width of the profile likelihood (Asimov data)."""
    model = compile_workspace(window_spec())
    p = model.init_params()
    p.g[0, model.poi_index] = 2.0
    asimov = expected_main(model, p)
    res = fit(model, asimov, poi_sigma=True)
    assert res.params.g[0, model.poi_index] == pytest.approx(2.0, abs=1e-4)
    s = res.poi_sigma[0]
    q = fit(model, asimov, fixed_poi=2.0 + s).twice_nll[0] - res.twice_nll[0]
    assert q == pytest.approx(1.0, abs=0.1)


def _two_channels_shared_shapesys(s: dict) -> None:
    s["channels"][0]["samples"][0]["modifiers"].append(
        {"name": "ss", "type": "shapesys", "data": [1.0] * 5}
    )
    s["channels"].append(copy.deepcopy(s["channels"][0]) | {"name": "b"})
    s["observations"].append(copy.deepcopy(s["observations"][0]) | {"name": "b"})


@pytest.mark.parametrize(
    ("mutate", "word"),
    [
        (
            lambda s: s["channels"][0]["samples"][0]["modifiers"].append(
                {"name": "cm", "type": "custom_mod", "data": None}
            ),
            "custom_mod",
        ),
        (
            lambda s: s["channels"][0]["samples"][1]["modifiers"].append(
                {"name": "eff", "type": "normfactor", "data": None}
            ),
            "eff",
        ),
        (_two_channels_shared_shapesys, "shapesys"),
    ],
)
def test_unsupported_models_refused(mutate, word) -> None:
    spec = rich_spec()
    mutate(spec)
    with pytest.raises(InputError, match=word) as err:
        compile_workspace(spec)
    assert "\n" not in str(err.value)


def test_lambda_nonpositive_is_infinite() -> None:
    model = compile_workspace(window_spec())
    p = model.init_params()
    p.g[0, model.g_names.index("bkg_norm")] = 0.0
    p.g[0, model.poi_index] = 0.0  # no expected events at all, but data
    assert np.isinf(twice_nll(model, p, model.observed)[0])
    assert isinstance(p, Params)
