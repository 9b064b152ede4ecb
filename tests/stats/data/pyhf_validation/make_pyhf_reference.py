"""Record pyhf 0.7.6's results on the validation cases in ``pyhf_reference.json``.

For every case (``reference.json``): pyhf's asymptotic ``hypotest`` at the case's POI value and
test statistic (CLs or p0 and the expected band) and 95% CL upper limits (pyhf's TOMS 748 scan,
``level=0.05``, q~_mu or the case's q_mu), each with pyhf's default optimiser settings and with
the scipy optimiser tolerance tightened to 1e-12 (and the root finder's to 1e-9 relative). The
tests compare the fast engine with these numbers (and, marked slow, with pyhf run live). Run:
``python tests/stats/data/pyhf_validation/make_pyhf_reference.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from zprime.stats.pyhf_engine import pyhf_hypotest, pyhf_upper_limit

HERE = Path(__file__).resolve().parent
LEVEL = 0.05


def settings(ref: dict) -> dict:
    return {"normsys": {"interpcode": ref["normsys"]}, "histosys": {"interpcode": ref["histosys"]}}


def limit_stat(ref: dict) -> str:
    return "q" if ref["test_stat"] == "q" else "qtilde"


def main() -> None:
    logging.disable(logging.WARNING)  # pyhf warns that q_mu is used with a POI bounded at 0
    refs = json.loads((HERE / "reference.json").read_text(encoding="utf-8"))
    out: dict = {"_about": __doc__.splitlines()[0], "level": LEVEL}
    for name, ref in refs.items():
        if name.startswith("_"):
            continue
        spec = json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))
        rec: dict = {}
        for label, tol in (("default", None), ("tight", 1e-12)):
            obs, exp = pyhf_hypotest(
                spec,
                ref["mu"],
                test_stat=ref["test_stat"],
                modifier_settings=settings(ref),
                tolerance=tol,
            )
            lim = pyhf_upper_limit(
                spec,
                level=LEVEL,
                test_stat=limit_stat(ref),
                modifier_settings=settings(ref),
                tolerance=tol,
                scan_rtol=None if tol is None else 1e-9,
                name=name,
            )
            rec[label] = {
                "cls_obs": obs,
                "cls_exp": exp,
                "limit_obs": lim.observed,
                "limit_exp": list(lim.expected),
                "limit_status": lim.status,
            }
        out[name] = rec
        print(name, rec["tight"]["limit_obs"], rec["default"]["limit_obs"])
    (HERE / "pyhf_reference.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
