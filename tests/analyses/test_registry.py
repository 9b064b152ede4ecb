"""The analysis seam: the registry, the stage table an analysis gives the engine."""

from __future__ import annotations

import pytest

from zprime.analyses.base import Analysis
from zprime.analyses.registry import ANALYSES, analysis_for, get_analysis
from zprime.config import config_from_dict, default_config, load_config
from zprime.errors import ConfigError
from zprime.pipeline import quick_config, stage_table


def test_default_and_preset_run_the_invisible_zprime_analysis() -> None:
    assert analysis_for(default_config()).name == "invisible_zprime"
    # a preset is a configuration of an analysis, not a new one
    assert analysis_for(load_config(preset="pilot2018")).name == "invisible_zprime"


def test_unknown_analysis_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"analysis: unknown analysis 'nope' \(known: "):
        get_analysis("nope")
    with pytest.raises(ConfigError, match="analysis"):
        config_from_dict({"analysis": "Not A Name"})


@pytest.mark.parametrize("name", sorted(ANALYSES))
def test_stage_table_is_the_engine_then_the_analysis(name: str) -> None:
    analysis = get_analysis(name)
    assert isinstance(analysis, Analysis)
    table = stage_table(analysis)
    names = [s.name for s in table]
    assert names[:3] == ["xsec", "generate", "simulate"]
    assert names[3:] == [s.name for s in analysis.stages]
    assert len(set(names)) == len(names)
    for i, stage in enumerate(table):
        # a stage reads only stages before it, and its config keys exist
        assert all(u in names[:i] for u in stage.upstream)
        data = default_config().to_dict()
        for key in stage.config_keys:
            node = data
            for part in key.split("."):
                node = node[part]


def test_quick_config_reduces_samples_and_the_analysis_sections() -> None:
    cfg = default_config()
    quick = quick_config(cfg)
    assert quick.luminosity_fb == 1.0
    # samples sized by a luminosity factor shrink with the luminosity; the others are capped
    assert all(
        s.events <= 100_000
        for s in quick.backgrounds.samples.values()
        if s.luminosity_factor is None
    )
    assert len(quick.signal.masses_gev) == 5
    assert quick.punzinet.punzi_epochs <= 30
    assert quick.analysis == cfg.analysis
