"""The four-fermion generator: matrix element, cross sections, weights, bad input (issue 13)."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest
from _fourfermion_reference import random_event, reference_me2

import zprime.generators.backgrounds as bg
from zprime.config import default_config
from zprime.errors import ConfigError
from zprime.generators import fourfermion as ff
from zprime.generators import fourfermion_me as me
from zprime.physics.constants import ALPHA_0, SQRT_S

FILTER = {
    "enabled": True,
    "min_tracks": 2,
    "track_pt_min_gev": 0.3,
    "theta_min_deg": 17.0,
    "theta_max_deg": 150.0,
    "prong_theta_deg": [35.0, 122.0],
    "recoil_pt_cm_min_gev": 0.4,
    "recoil_theta_max_deg": 128.0,
}


def _event(final_state: str, n: int, seed: int) -> np.ndarray:
    masses = me.kinematics_from_momenta(np.zeros((1, 6, 4)), final_state).masses
    return random_event(np.random.default_rng(seed), n, masses, SQRT_S)


# ----------------------------------------------------------------------- matrix element


@pytest.mark.parametrize("final_state", list(me.FINAL_STATES))
def test_matrix_element_equals_the_hand_written_diagrams(final_state: str) -> None:
    """Against every graph written out with zprime.physics.dirac (e e e e signs from
    antisymmetry)."""
    p = _event(final_state, 6, 1)
    kin = me.kinematics_from_momenta(p, final_state)
    ours = me.matrix_element_squared(kin, final_state, ALPHA_0)
    ref = reference_me2(p, kin.masses, final_state, ALPHA_0)
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


@pytest.mark.parametrize("final_state", list(me.FINAL_STATES))
def test_compiled_kernel_equals_the_numpy_amplitudes(final_state: str) -> None:
    p = _event(final_state, 200, 2)
    kin = me.kinematics_from_momenta(p, final_state)
    amp = me.amplitudes(kin, final_state)
    by_numpy = np.sum(np.abs(amp.reshape(200, -1)) ** 2, axis=1)
    np.testing.assert_allclose(me.helicity_sum(kin, final_state), by_numpy, rtol=1e-11)


def test_diagram_counts() -> None:
    assert me.diagram_count("eemumu") == 12
    assert me.diagram_count("eetautau") == 12
    assert me.diagram_count("eeee") == 36
    assert me.diagram_count("mumutautau") == 6


@pytest.mark.parametrize("final_state", list(me.FINAL_STATES))
def test_gauge_invariance_photon_polarisation_replaced_by_its_momentum(final_state: str) -> None:
    p = _event(final_state, 20, 3)
    kin = me.kinematics_from_momenta(p, final_state)
    for _, lines in me.pairings(final_state):
        for line in lines:
            assert np.all(me.two_photon_line_ward(kin, final_state, line) < 1e-12)


def _boost_rotate(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    beta = 0.6
    g = 1.0 / math.sqrt(1.0 - beta * beta)
    bp = p[..., 1:] @ axis
    out = np.empty_like(p)
    out[..., 0] = g * (p[..., 0] + beta * bp)
    out[..., 1:] = p[..., 1:] + ((g - 1.0) * bp + g * beta * p[..., 0])[..., None] * axis
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    out[..., 1:] = out[..., 1:] @ q.T
    return out


@pytest.mark.parametrize("final_state", ["eemumu", "eeee"])
def test_lorentz_invariance(final_state: str) -> None:
    p = _event(final_state, 50, 4)
    a = me.matrix_element_squared(me.kinematics_from_momenta(p, final_state), final_state, 1.0)
    q = _boost_rotate(p, np.random.default_rng(5))
    b = me.matrix_element_squared(me.kinematics_from_momenta(q, final_state), final_state, 1.0)
    np.testing.assert_allclose(a, b, rtol=1e-9)


@pytest.mark.parametrize("final_state", list(me.FINAL_STATES))
def test_charge_conjugation(final_state: str) -> None:
    """|M|^2 is unchanged when every particle becomes its antiparticle (p1<->p2, p3<->p4,
    p5<->p6): the u/v spinors, the fermion-flow momenta and the Fermi signs together."""
    p = _event(final_state, 50, 6)
    a = me.matrix_element_squared(me.kinematics_from_momenta(p, final_state), final_state, 1.0)
    c = p[:, [1, 0, 3, 2, 5, 4]].copy()
    b = me.matrix_element_squared(me.kinematics_from_momenta(c, final_state), final_state, 1.0)
    np.testing.assert_allclose(a, b, rtol=1e-10)


def test_identical_fermions_eeee_is_symmetric() -> None:
    p = _event("eeee", 50, 7)
    a = me.matrix_element_squared(me.kinematics_from_momenta(p, "eeee"), "eeee", 1.0)
    for perm in ([0, 1, 4, 3, 2, 5], [0, 1, 2, 5, 4, 3], [0, 1, 4, 5, 2, 3]):
        b = me.matrix_element_squared(me.kinematics_from_momenta(p[:, perm], "eeee"), "eeee", 1.0)
        np.testing.assert_allclose(a, b, rtol=1e-10)
    # ... and e e mu mu is not (the exchange terms are absent): a real check of the symmetry
    q = _event("eemumu", 50, 7)
    a = me.matrix_element_squared(me.kinematics_from_momenta(q, "eemumu"), "eemumu", 1.0)
    b = me.matrix_element_squared(
        me.kinematics_from_momenta(q[:, [0, 1, 4, 3, 2, 5]], "eemumu"), "eemumu", 1.0
    )
    assert np.max(np.abs(a / b - 1.0)) > 1e-3


def test_precise_kinematics_near_the_beam_axis() -> None:
    """At Q^2 ~ 1e-9 GeV^2 the generator's exact t and half angles give |M|^2 that follows the
    equivalent-photon 1/Q^2 scaling, where the rounded four-vectors would not."""
    rng = np.random.default_rng(8)
    opts = ff.resolve_options({"options": {"final_state": "eemumu"}})
    x = rng.random((4000, 7))
    point = ff._phase_space(x, rng.random((4000, 1)), opts)
    ok = point.f > 0
    kin = point.kin
    m2 = me.matrix_element_squared(
        me.Kinematics(
            kin.p[ok], kin.cos_half[ok], kin.sin_half[ok], kin.t13[ok], kin.t24[ok], kin.masses
        ),
        "eemumu",
        ALPHA_0,
    )
    assert np.all(np.isfinite(m2))
    assert np.all(m2 > 0.0)
    # |M|^2 Q1^2 Q2^2 stays bounded over 20 orders of magnitude of Q1^2 Q2^2
    scaled = m2 * point.q2[ok, 0] * point.q2[ok, 1]
    small = (point.q2[ok, 0] < 1e-6) & (point.q2[ok, 1] < 1e-6)
    assert np.any(small)
    assert np.quantile(scaled[small], 0.99) < 100.0 * np.quantile(scaled, 0.99)


# ----------------------------------------------------------------------- cross sections


def test_eemumu_cross_section_against_aafh() -> None:
    """sigma(e+e- -> e+e- mu+mu-, W_mumu > 0.5 GeV) = 18.9 nb (AAFH, Belle II Physics Book,
    arXiv:1808.10567); ours is exact tree level with alpha(0): within 3%. 1.2M points in four
    seeded batches (the bremsstrahlung-collinear corner has rare heavy weights, docs)."""
    sums, sq = 0.0, 0.0
    n = 0
    for seed in range(4):
        g = ff.generate(300_000, np.random.default_rng(seed), {"final_state": "eemumu"})
        w = g["weight"] * 300_000
        sums += float(w.sum())
        sq += float(np.sum(w * w))
        n += w.size
    sigma = sums / n
    err = math.sqrt(max(sq / n - sigma * sigma, 0.0) / n)
    assert err < 0.01 * sigma
    assert sigma == pytest.approx(18.9e6, rel=0.03)


@pytest.mark.slow
def test_filtered_cross_section_does_not_depend_on_the_sampling() -> None:
    """Exact weights: the filtered cross section from the filter-trained multi-channel sampler
    equals the filter applied to the unfiltered sampler's events."""
    trained = ff.cross_section({"final_state": "eemumu"}, FILTER)
    g = ff.generate(600_000, np.random.default_rng(11), {"final_state": "eemumu"}, None)
    from zprime.generators.filters import filter_mask

    pdg = np.broadcast_to(g["pdg"], (g["weight"].size, 4))
    passed = filter_mask(pdg, g["p4_lab"], FILTER)
    w = np.where(passed, g["weight"], 0.0)
    plain = float(w.sum())
    plain_err = float(math.sqrt(np.sum(w * w)))
    both = math.hypot(plain_err, trained["sigma_filtered_err_fb"])
    assert abs(plain - trained["sigma_filtered_fb"]) < 4.0 * both
    assert plain_err < 0.1 * plain


@pytest.mark.slow
def test_the_two_analytic_maps_give_the_same_cross_section() -> None:
    """Where both maps sample well (all four leptons in the tracker), the annihilation map
    alone and the three-channel sampler (two-photon maps + annihilation) agree: a check of both
    maps' Jacobians and of their exact inverses."""
    four = {
        **FILTER,
        "min_tracks": 4,
        "prong_theta_deg": None,
        "recoil_pt_cm_min_gev": None,
        "recoil_theta_max_deg": None,
    }
    s_only = ff.cross_section({"final_state": "eemumu", "map": "annihilation"}, four)
    mixed = ff.cross_section({"final_state": "eemumu"}, four)
    diff = s_only["sigma_filtered_fb"] - mixed["sigma_filtered_fb"]
    err = math.hypot(s_only["sigma_filtered_err_fb"], mixed["sigma_filtered_err_fb"])
    assert abs(diff) < 4.0 * err
    assert err < 0.02 * s_only["sigma_filtered_fb"]


@pytest.mark.slow
@pytest.mark.parametrize("final_state", ["eetautau", "mumutautau"])
def test_tau_pairs_are_decayed(final_state: str) -> None:
    g = ff.generate(
        20_000, np.random.default_rng(4), {"final_state": final_state, "w_min_gev": 3.6}, None
    )
    pdg = g["particles_pdg"]
    assert not np.any(np.isin(np.abs(pdg), (12, 14, 15, 16)))  # no taus, no neutrinos written
    charged = np.isin(np.abs(pdg), (11, 13, 211, 321))
    assert np.all(charged.sum(axis=1) >= 4)  # the two leptons and >= 1 prong per tau
    assert g["weight"].sum() > 0.0


@pytest.mark.slow
def test_eeee_cross_section() -> None:
    """e e e e with W(p5 p6) > 0.5 GeV in the canonical labelling: 81.9 nb measured (docs);
    the ratio to e e mu mu follows gamma gamma -> l+ l- (4-5 at W ~ 0.5-1 GeV)."""
    ee = ff.cross_section({"final_state": "eeee", "w_min_gev": 0.5})
    mm = ff.cross_section({"final_state": "eemumu", "w_min_gev": 0.5})
    ratio = ee["sigma_filtered_fb"] / mm["sigma_filtered_fb"]
    assert 3.5 < ratio < 5.5


# ----------------------------------------------------------------------- sample driver


def test_chunk_unweights_toward_the_target_weight() -> None:
    info = ff.cross_section({"final_state": "eemumu"}, FILTER)
    w_t = 1.0 / (10.0 * 79.7)
    n_total = math.ceil(info["sigma_equivalent_fb"] / w_t)
    settings = {
        "name": "eemumu",
        "options": {"final_state": "eemumu"},
        "filter": FILTER,
        "target_weight_fb": w_t,
        "n_total": n_total,
    }
    res = ff.chunk(settings, 200_000, 3)
    w = np.asarray(res.events.weight) * 200_000 / n_total  # the driver's n_chunk / N
    assert np.all(w >= w_t * (1 - 1e-9))
    # most events carry their region's design weight exactly (the partial unweighting: w_t,
    # w_t / detected_suppression, w_t / far_suppression)
    at_design = np.isclose(w, w_t) | np.isclose(w, 10.0 * w_t) | np.isclose(w, 100.0 * w_t)
    assert np.mean(at_design) > 0.4
    assert np.mean(np.isclose(w, w_t)) > 0.3
    # the rest weigh more (the maps are imperfect): as many as the integration pass predicts
    assert 1.0 - np.mean(at_design) == pytest.approx(info["fraction_above_design_weight"], abs=0.05)
    # the kept weights estimate the filtered cross section
    sigma = float(np.sum(np.asarray(res.events.weight)))
    assert sigma == pytest.approx(info["sigma_filtered_fb"], rel=0.1)
    parts = res.events.particles
    assert set(np.unique(ak.to_numpy(ak.flatten(parts.pdg)))) == {-13, -11, 11, 13}


def test_default_samples_use_the_exact_generator() -> None:
    cfg = default_config()
    for name, fs in (("eemumu", "eemumu"), ("eeee", "eeee")):
        st = bg.sample_settings(name, cfg)
        assert bg.generator_target(st) == "zprime.generators.fourfermion:chunk"
        assert st["options"]["final_state"] == fs
    assert cfg.backgrounds.samples["eemumu"].luminosity_factor >= 10.0
    assert "eemumu_q2max1" not in bg.sample_names()


# ----------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"final_state": "eeqq"}, "final_state"),
        ({"final_state": "mumutautau", "map": "two-photon"}, "map"),
        ({"final_state": "eeee", "map": "annihilation"}, "map"),
        ({"map": "annihilation", "q2_max_gev2": 1.0}, "q2_max_gev2"),
        ({"w_min_gev": 0.1}, "w_min_gev"),
        ({"w_min_gev": 11.0}, "w_min_gev"),
        ({"q2_max_gev2": -1.0}, "q2_max_gev2"),
        ({"q2_max_gev2": 500.0}, "q2_max_gev2"),
        ({"detected_suppression": 0.0}, "detected_suppression"),
        ({"w_min_gev": float("nan")}, "w_min_gev"),
        ({"nonsense": 1.0}, "nonsense"),
    ],
)
def test_bad_options_name_the_field(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"samples\.eemumu\.options\.{field}") as exc:
        ff.resolve_options({"name": "eemumu", "options": options})
    assert "\n" not in str(exc.value)


def test_a_missing_filter_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"samples\.eemumu\.filter"):
        ff.describe({"name": "eemumu", "options": {}, "filter": None})
    with pytest.raises(ConfigError, match=r"samples\.eemumu\.filter"):
        ff.describe({"name": "eemumu", "options": {}, "filter": {**FILTER, "enabled": False}})


def test_bad_config_writes_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from zprime.config import config_from_dict

    cfg = config_from_dict(
        {"backgrounds": {"samples": {"eemumu": {"options": {"final_state": "eeqq"}}}}}
    )
    with pytest.raises(ConfigError, match="final_state"):
        bg.generate_sample("eemumu", 1000, tmp_path, config=cfg, progress=False)
    assert not any(tmp_path.iterdir())
