"""The searches zprime runs, by the name a configuration gives (``analysis:``)."""

from __future__ import annotations

from zprime.analyses.base import Analysis
from zprime.analyses.dark_higgsstrahlung.analysis import DarkHiggsstrahlung
from zprime.analyses.invisible_zprime.analysis import InvisibleZprime
from zprime.analyses.tautau_resonance.analysis import TautauResonance
from zprime.config import Config
from zprime.errors import ConfigError

__all__ = ["ANALYSES", "analysis_for", "get_analysis"]

#: name -> analysis class
ANALYSES: dict[str, type[Analysis]] = {
    InvisibleZprime.name: InvisibleZprime,
    DarkHiggsstrahlung.name: DarkHiggsstrahlung,
    TautauResonance.name: TautauResonance,
}


def get_analysis(name: str) -> Analysis:
    """The analysis called ``name``; a :class:`zprime.errors.ConfigError` naming the known ones
    otherwise."""
    try:
        return ANALYSES[name]()
    except KeyError:
        raise ConfigError(
            f"analysis: unknown analysis '{name}' (known: {', '.join(sorted(ANALYSES))})"
        ) from None


def analysis_for(config: Config) -> Analysis:
    """The analysis a configuration runs (its ``analysis`` field)."""
    return get_analysis(config.analysis)
