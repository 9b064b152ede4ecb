from __future__ import annotations

from pathlib import Path

import pytest

import zprime.config as config
from zprime.analyses.invisible_zprime.selection import STEPS
from zprime.config import (
    SELECTION_STEPS,
    Config,
    _z_mass_max_gev,
    analysis,
    base,
    control,
    core,
    default_config,
    load_config,
    results,
    samples,
)
from zprime.errors import ConfigError
from zprime.physics.constants import M_MUON, SQRT_S


def test_defaults_are_the_prl_analysis() -> None:
    cfg = default_config()
    assert isinstance(cfg, Config)
    assert cfg.luminosity_fb == pytest.approx(79.7)
    assert cfg.signal.isr is True
    assert cfg.signal.alpha_inverse == pytest.approx(132.507)
    assert cfg.signal.xsec_grid.min_gev == pytest.approx(0.01)
    assert cfg.signal.xsec_grid.max_gev == pytest.approx(9.0)


def test_user_file_merges_over_defaults(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("luminosity_fb: 500\nsignal:\n  events_per_mass: 7\n")
    cfg = load_config(f)
    assert cfg.luminosity_fb == 500
    assert cfg.signal.events_per_mass == 7
    assert cfg.signal.isr is True  # untouched default


def test_dotted_overrides() -> None:
    cfg = load_config(None, **{"signal.isr": False, "seed": 3})
    assert cfg.signal.isr is False
    assert cfg.seed == 3


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("signal:\n  events_per_mas: 3\n", "'signal.events_per_mas': unknown field"),
        ("signal:\n  events_per_mass: -5\n", "'signal.events_per_mass'"),
        ("luminosity_fb: zero\n", "'luminosity_fb'"),
        ("signal:\n  masses_gev: [1.0, 11.0]\n", "'signal.masses_gev'"),
        ("bogus: 1\n", "'bogus': unknown field"),
        # issue 16: found only at the report stage before
        ("projections:\n  luminosities_fb: [79.7, -5]\n", "'projections.luminosities_fb.1'"),
        ("luminosity_fb: .nan\n", "'luminosity_fb': Input should be a finite number"),
        ("pseudo_data:\n  inject_xsec_fb: .inf\n", "'pseudo_data.inject_xsec_fb': Input shou"),
        ("fit:\n  background_floor: .nan\n", "'fit.background_floor': Input should be a fin"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, text: str, fragment: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    msg = str(info.value)
    assert fragment in msg
    assert str(f) in msg
    assert "\n" not in msg


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    f = tmp_path / "broken.yaml"
    f.write_text("signal: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)
    f.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(f)


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, luminosity_fb=123.0)
    f = tmp_path / "again.yaml"
    f.write_text(cfg.to_yaml())
    assert load_config(f) == cfg


def test_z_mass_limit_is_the_physics_one() -> None:
    # config (base layer) computes sqrt(s) - 2 m_mu itself: it must be the physics constants'
    assert _z_mass_max_gev() == SQRT_S - 2.0 * M_MUON
    top = float(f"{_z_mass_max_gev():.4f}")
    with pytest.raises(ConfigError, match=rf"outside \(0, {top:.4f}\) GeV"):
        load_config(None, **{"signal.masses_gev": [1.0, _z_mass_max_gev()]})


def test_selection_steps_are_validated() -> None:
    assert STEPS is SELECTION_STEPS
    cfg = load_config(None, **{"selection.disabled": ["punzinet"]})
    assert cfg.selection.disabled == ["punzinet"]
    with pytest.raises(ConfigError, match="unknown selection step 'punzi'"):
        load_config(None, **{"selection.disabled": ["punzi"]})


def test_package_re_exports_every_model() -> None:
    # zprime.config is a package; every name its modules define stays importable from it
    for module in (analysis, base, control, core, results, samples):
        for name in module.__all__:
            assert getattr(config, name) is getattr(module, name), name
            assert name in config.__all__, name
    assert config._format_validation_error is base._format_validation_error
    assert config._z_mass_max_gev is samples._z_mass_max_gev
    for name, field in Config.model_fields.items():  # each section's model is re-exported
        if isinstance(field.annotation, type) and issubclass(field.annotation, base._Strict):
            assert getattr(config, field.annotation.__name__) is field.annotation, name
