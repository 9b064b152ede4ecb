"""Write the pyhf validation cases as full pyhf JSON workspaces (``<case>.json``).

The bin contents in ``source/`` are pyhf's ``validation/data/*.json`` (scikit-hep/pyhf,
Apache-2.0); the model structure of every case (which modifier on which sample) and the ROOT
reference numbers in ``reference.json`` are those of pyhf's ``tests/test_validation.py``. Run
from anywhere: ``python tests/stats/data/pyhf_validation/make_workspaces.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _src(name: str) -> dict[str, Any]:
    return json.loads((HERE / "source" / f"{name}.json").read_text(encoding="utf-8"))


def _mu(data: list[float]) -> dict[str, Any]:
    return {
        "name": "signal",
        "data": data,
        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
    }


def _sample(name: str, data: list[float], *mods: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "data": data, "modifiers": list(mods)}


def _ws(
    channels: list[dict[str, Any]],
    observed: dict[str, list[float]],
    parameters: list[dict[str, Any]] | None = None,
    poi: str = "mu",
) -> dict[str, Any]:
    return {
        "channels": channels,
        "observations": [{"name": k, "data": v} for k, v in observed.items()],
        "measurements": [{"name": "meas", "config": {"poi": poi, "parameters": parameters or []}}],
        "version": "1.0.0",
    }


def one_bin_shapesys(src: str) -> dict[str, Any]:
    b = _src(src)["bindata"]
    ch = {
        "name": "singlechannel",
        "samples": [
            _mu(b["sig"]),
            _sample(
                "background",
                b["bkg"],
                {"name": "uncorr_bkguncrt", "type": "shapesys", "data": b["bkgerr"]},
            ),
        ],
    }
    return _ws([ch], {"singlechannel": b["data"]})


def one_bin_lumi() -> dict[str, Any]:
    b = _src("1bin_lumi")["bindata"]
    lumi = {"data": None, "name": "lumi", "type": "lumi"}
    ch = {
        "name": "channel1",
        "samples": [
            _mu(b["sig"]),
            _sample("background1", b["bkg1"], lumi),
            _sample("background2", b["bkg2"], lumi),
        ],
    }
    par = {"auxdata": [1.0], "bounds": [[0.0, 10.0]], "inits": [1.0], "name": "lumi"}
    par["sigmas"] = [0.1]
    return _ws([ch], {"channel1": b["data"]}, [par])


def one_bin_normsys() -> dict[str, Any]:
    b = _src("1bin_normsys")["bindata"]
    mod = {"name": "bkg_norm", "type": "normsys", "data": {"lo": 0.90, "hi": 1.10}}
    ch = {"name": "singlechannel", "samples": [_mu(b["sig"]), _sample("background", b["bkg"], mod)]}
    return _ws([ch], {"singlechannel": b["data"]})


def two_bin_histosys() -> dict[str, Any]:
    b = _src("2bin_histosys_example2")["bindata"]
    mod = {
        "name": "bkg_norm",
        "type": "histosys",
        "data": {"lo_data": b["bkgsys_dn"], "hi_data": b["bkgsys_up"]},
    }
    ch = {"name": "singlechannel", "samples": [_mu(b["sig"]), _sample("background", b["bkg"], mod)]}
    return _ws([ch], {"singlechannel": b["data"]})


def two_channel_shapesys() -> dict[str, Any]:
    c = _src("2bin_2channel_example1")["channels"]
    s, k = c["signal"]["bindata"], c["control"]["bindata"]
    sig = {
        "name": "signal",
        "samples": [
            _mu(s["sig"]),
            _sample(
                "background",
                s["bkg"],
                {"name": "uncorr_bkguncrt_signal", "type": "shapesys", "data": s["bkgerr"]},
            ),
        ],
    }
    ctl = {
        "name": "control",
        "samples": [
            _sample(
                "background",
                k["bkg"],
                {"name": "uncorr_bkguncrt_control", "type": "shapesys", "data": k["bkgerr"]},
            )
        ],
    }
    return _ws([sig, ctl], {"signal": s["data"], "control": k["data"]})


def two_channel_couplednorm() -> dict[str, Any]:
    c = _src("2bin_2channel_couplednorm")["channels"]
    s, k = c["signal"]["bindata"], c["control"]["bindata"]

    def ns(lo: float, hi: float) -> dict[str, Any]:
        return {"name": "coupled_normsys", "type": "normsys", "data": {"lo": lo, "hi": hi}}

    sig = {
        "name": "signal",
        "samples": [
            _mu(s["sig"]),
            _sample("bkg1", s["bkg1"], ns(0.9, 1.1)),
            _sample("bkg2", s["bkg2"], ns(0.5, 1.5)),
        ],
    }
    ctl = {"name": "control", "samples": [_sample("background", k["bkg1"], ns(0.9, 1.1))]}
    return _ws([sig, ctl], {"signal": s["data"], "control": k["data"]})


def two_channel_coupledhisto() -> dict[str, Any]:
    c = _src("2bin_2channel_coupledhisto")["channels"]
    s, k = c["signal"]["bindata"], c["control"]["bindata"]

    def hs(b: dict[str, Any], key: str) -> dict[str, Any]:
        return {
            "name": "coupled_histosys",
            "type": "histosys",
            "data": {"lo_data": b[f"{key}_dn"], "hi_data": b[f"{key}_up"]},
        }

    sig = {
        "name": "signal",
        "samples": [
            _mu(s["sig"]),
            _sample("bkg1", s["bkg1"], hs(s, "bkg1")),
            _sample("bkg2", s["bkg2"], hs(s, "bkg2")),
        ],
    }
    ctl = {"name": "control", "samples": [_sample("background", k["bkg1"], hs(k, "bkg1"))]}
    return _ws([sig, ctl], {"signal": s["data"], "control": k["data"]})


def two_channel_coupledshapefactor() -> dict[str, Any]:
    c = _src("2bin_2channel_coupledshapefactor")["channels"]
    s, k = c["signal"]["bindata"], c["control"]["bindata"]
    sf = {"name": "coupled_shapefactor", "type": "shapefactor", "data": None}
    sig = {"name": "signal", "samples": [_mu(s["sig"]), _sample("bkg1", s["bkg1"], sf)]}
    ctl = {"name": "control", "samples": [_sample("background", k["bkg1"], sf)]}
    return _ws([sig, ctl], {"signal": s["data"], "control": k["data"]})


def shapesys_nuisparfilter() -> dict[str, Any]:
    """pyhf's ``test_shapesys_nuisparfilter_validation``: a shapesys with a zero uncertainty
    in one bin (that gamma is fixed) and a measurement config for an unused ``lumi``."""
    ch = {
        "name": "channel1",
        "samples": [
            {
                "data": [20, 10],
                "modifiers": [{"data": None, "name": "SigXsecOverSM", "type": "normfactor"}],
                "name": "signal",
            },
            _sample(
                "background1", [100, 10], {"data": [10, 0], "name": "syst", "type": "shapesys"}
            ),
        ],
    }
    par = {"auxdata": [1], "bounds": [[0.5, 1.5]], "inits": [1], "name": "lumi", "sigmas": [0.1]}
    return _ws([ch], {"channel1": [100, 10]}, [par], poi="SigXsecOverSM")


CASES = {
    "1bin_shapesys": lambda: one_bin_shapesys("1bin_example1"),
    "1bin_shapesys_q0": lambda: one_bin_shapesys("1bin_example1_q0"),
    "1bin_lumi": one_bin_lumi,
    "1bin_normsys": one_bin_normsys,
    "2bin_histosys": two_bin_histosys,
    "2bin_2channel": two_channel_shapesys,
    "2bin_2channel_couplednorm": two_channel_couplednorm,
    "2bin_2channel_coupledhistosys": two_channel_coupledhisto,
    "2bin_2channel_coupledshapefactor": two_channel_coupledshapefactor,
    "shapesys_nuisparfilter": shapesys_nuisparfilter,
}


def main() -> None:
    for name, make in CASES.items():
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(make(), indent=1) + "\n", encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
