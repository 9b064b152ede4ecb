from __future__ import annotations

from pathlib import Path

import pytest

from zprime.config import Config, default_config, load_config
from zprime.errors import ConfigError


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
