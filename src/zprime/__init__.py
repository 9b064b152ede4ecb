"""zprime: the Belle II search for an invisible L_mu - L_tau Z' in e+e- -> mu+ mu- Z', end to end.

Each stage of the analysis is one module (see ``docs/design.md``); the command line ``zprime``
is a thin layer over the functions defined there.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from zprime.errors import ConfigError, InputError, ZprimeError

try:
    __version__ = version("zprime")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["ConfigError", "InputError", "ZprimeError", "__version__"]
