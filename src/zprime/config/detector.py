"""Configuration of the fast Belle II detector simulation (``detector`` section).

Owns :class:`DetectorSection` (named configurations, the one used by default) and the blocks of
one :class:`DetectorConfig`: tracking, muon, electron and pion identification, the ECL and the
trigger lines, read by :mod:`zprime.detector.simulation` (sources and assumptions of every value
in ``docs/detector.md``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from zprime.config.base import DegRange, _check_range, _deep_merge, _Strict
from zprime.errors import ConfigError

__all__ = [
    "DetectorConfig",
    "DetectorSection",
    "ECLConfig",
    "ElectronIDConfig",
    "MuonIDConfig",
    "PionIDConfig",
    "TrackingConfig",
    "TriggerConfig",
]


class TrackingConfig(_Strict):
    """Charged-particle tracking: acceptance, efficiency, momentum and angle resolution."""

    theta_deg: DegRange = Field(
        (17.0, 150.0), description="lab polar-angle acceptance of the CDC, deg [basf2-acc]"
    )
    pt_min_gev: float = Field(
        0.1, ge=0.0, description="smallest transverse momentum of a found track, GeV (assumption)"
    )
    efficiency: float = Field(
        0.99, ge=0.0, le=1.0, description="track-finding efficiency in the acceptance (assumption)"
    )
    pt_resolution_pt: float = Field(
        0.0011, ge=0.0, description="sigma(pT)/pT term proportional to pT, 1/GeV [TDR]"
    )
    pt_resolution_beta: float = Field(
        0.0025, ge=0.0, description="sigma(pT)/pT multiple-scattering term, times 1/beta [TDR]"
    )
    theta_resolution_mrad: float = Field(
        1.0, ge=0.0, description="polar-angle resolution, mrad (assumption)"
    )
    phi_resolution_mrad: float = Field(
        1.0, ge=0.0, description="azimuthal-angle resolution, mrad (assumption)"
    )
    resolution_scale: float = Field(
        1.0,
        gt=0.0,
        description="factor on the pT, theta and phi resolutions; the M_recoil^2 detector "
        "resolution scales 1:1 with it (measured 1.080 for 1.08 at M = 0.5-8.9 GeV). "
        "Data: 1.08, 'the width of the M_recoil^2 distribution is 8% larger in data' [PRL]",
    )
    d0_resolution_cm: float = Field(
        0.002,
        ge=0.0,
        description="Gaussian width of the transverse impact parameter, cm "
        "(assumption; prompt tracks)",
    )
    z0_resolution_cm: float = Field(
        0.003,
        ge=0.0,
        description="Gaussian width of the longitudinal impact parameter, cm "
        "(assumption; prompt tracks)",
    )

    @field_validator("theta_deg")
    @classmethod
    def _increasing(cls, value: DegRange) -> DegRange:
        return _check_range(value)


class MuonIDConfig(_Strict):
    """Parametrised muon identification: P(muon_id > 0.5) per true species (model assumption
    anchored on the PRL's end points 93-99% muon efficiency, 80-97% pion rejection)."""

    klm_theta_deg: DegRange = Field(
        (18.0, 155.0), description="KLM polar-angle acceptance, deg [basf2-acc]"
    )
    klm_barrel_theta_deg: DegRange = Field(
        (37.0, 130.0), description="barrel KLM polar-angle range, deg [basf2-acc]"
    )
    klm_barrel_pt_min_gev: float = Field(
        0.6, ge=0.0, description="pT needed to reach the barrel KLM, GeV [basf2-acc]"
    )
    klm_p_min_gev: float = Field(
        0.7, ge=0.0, description="momentum above which KLM penetration is used, GeV [PRL]"
    )
    plateau_p_gev: float = Field(
        1.5,
        gt=0.0,
        description="momentum where the KLM performance plateau is reached, GeV "
        "(assumption; linear in p between klm_p_min_gev and this; data: 1.8, a slower "
        "turn-on, assumption)",
    )
    muon_efficiency_low: float = Field(
        0.93, ge=0.0, le=1.0, description="muon efficiency without KLM (low p / outside KLM) [PRL]"
    )
    muon_efficiency_high: float = Field(
        0.99,
        ge=0.0,
        le=1.0,
        description="muon efficiency on the KLM plateau [PRL] (data: 0.985, assumption)",
    )
    pion_fake_low: float = Field(
        0.20, ge=0.0, le=1.0, description="pion -> muon fake rate without KLM [PRL]"
    )
    pion_fake_high: float = Field(
        0.03, ge=0.0, le=1.0, description="pion -> muon fake rate on the KLM plateau [PRL]"
    )
    electron_fake: float = Field(
        0.002, ge=0.0, le=1.0, description="electron -> muon fake rate (assumption)"
    )
    kaon_fake_scale: float = Field(
        1.0,
        ge=0.0,
        description="kaon (and proton) -> muon fake rate as a multiple of the pion one at the "
        "same momentum (1: hadrons other than pions are treated as pions, the model before "
        "the tau-tau search; assumption: no Belle II number used)",
    )
    score_spread: float = Field(
        2.0,
        gt=0.0,
        description="width of the latent Gaussian behind the score (shape only; "
        "the efficiency at the 0.5 cut does not depend on it)",
    )

    @field_validator("klm_theta_deg", "klm_barrel_theta_deg")
    @classmethod
    def _increasing(cls, value: DegRange) -> DegRange:
        return _check_range(value)


class ElectronIDConfig(_Strict):
    """Parametrised electron identification (ECL E/p based; model assumption)."""

    efficiency: float = Field(
        0.95, ge=0.0, le=1.0, description="electron efficiency with an ECL cluster (assumption)"
    )
    efficiency_no_ecl: float = Field(
        0.50, ge=0.0, le=1.0, description="electron efficiency without an ECL cluster (assumption)"
    )
    muon_fake: float = Field(
        0.005, ge=0.0, le=1.0, description="muon -> electron fake rate (assumption)"
    )
    pion_fake: float = Field(
        0.01, ge=0.0, le=1.0, description="pion -> electron fake rate (assumption)"
    )
    kaon_fake: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="kaon (and proton) -> electron fake rate; null: pion_fake (hadrons other "
        "than pions treated as pions, the model before the tau-tau search)",
    )
    score_spread: float = Field(2.0, gt=0.0, description="latent Gaussian width (shape only)")


class PionIDConfig(_Strict):
    """Parametrised pion identification: P(pion_id > 0.5) per true species (model assumption).

    The pion/muon separation above ``muon_id.klm_p_min_gev`` comes from the KLM, so the pion
    efficiency and the muon -> pion rate use the muon identification's KLM acceptance and
    turn-on (``muon_id.klm_*``, ``muon_id.klm_p_min_gev`` -> ``muon_id.plateau_p_gev``, linear
    in p): the ``_low`` values below the KLM or outside it, the ``_high`` ones on the plateau.
    No Belle II number is used (assumptions, chosen compatible with the muon and electron
    identification: a species' probabilities of passing the e, mu and pi requirements add up to
    at most about 1).
    """

    efficiency_low: float = Field(
        0.75,
        ge=0.0,
        le=1.0,
        description="pion efficiency without the KLM (p below muon_id.klm_p_min_gev or outside "
        "the KLM; pions and muons hard to separate; assumption, with the muon ID's 20% pion "
        "fake rate there)",
    )
    efficiency_high: float = Field(
        0.93, ge=0.0, le=1.0, description="pion efficiency on the KLM plateau (assumption)"
    )
    muon_fake_low: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="muon -> pion fake rate without the KLM (assumption, below the 7% of muons "
        "that fail the muon ID there)",
    )
    muon_fake_high: float = Field(
        0.005,
        ge=0.0,
        le=1.0,
        description="muon -> pion fake rate on the KLM plateau (assumption, below the 1% of "
        "muons that fail the muon ID there)",
    )
    electron_fake: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="electron -> pion fake rate (assumption, below the 5% of electrons that "
        "fail the electron ID)",
    )
    kaon_fake: float = Field(
        0.10,
        ge=0.0,
        le=1.0,
        description="kaon (and proton) -> pion fake rate (assumption)",
    )
    score_spread: float = Field(2.0, gt=0.0, description="latent Gaussian width (shape only)")


class ECLConfig(_Strict):
    """Electromagnetic calorimeter: acceptance, clusters, resolution, photon inefficiencies."""

    forward_theta_deg: DegRange = Field((12.4, 31.4), description="forward endcap, deg [basf2-acc]")
    barrel_theta_deg: DegRange = Field((32.2, 128.7), description="barrel, deg [basf2-acc]")
    backward_theta_deg: DegRange = Field(
        (130.7, 155.1), description="backward endcap, deg [basf2-acc]"
    )
    photon_e_min_gev: float = Field(
        0.1, ge=0.0, description="photon = cluster above this energy not matched to a track [PRL]"
    )
    energy_resolution_noise: float = Field(
        0.00515,
        ge=0.0,
        description="sigma_E/E term a/E, GeV (fit through [PB]/[TDR] "
        "7.7% at 0.1 GeV and 2.25% at 1 GeV with c = 1.3%)",
    )
    energy_resolution_stochastic: float = Field(
        0.0176, ge=0.0, description="sigma_E/E term b/sqrt(E), GeV^0.5 (same fit)"
    )
    energy_resolution_constant: float = Field(
        0.013, ge=0.0, description="sigma_E/E constant term (Belle CsI(Tl), recall)"
    )
    angle_resolution_mrad: float = Field(
        4.0,
        ge=0.0,
        description="cluster theta and phi resolution at 1 GeV, mrad, "
        "scaling as 1/sqrt(E) ([PB] ~5 mm at 1 GeV, recall)",
    )
    inefficiency_forward: float = Field(
        0.0, ge=0.0, le=1.0, description="photon loss probability in the forward endcap"
    )
    inefficiency_barrel: float = Field(
        0.0, ge=0.0, le=1.0, description="photon loss probability in the barrel"
    )
    inefficiency_backward: float = Field(
        0.0, ge=0.0, le=1.0, description="photon loss probability in the backward endcap"
    )
    backward_barrel_theta_deg: DegRange = Field(
        (90.0, 128.7), description="definition of the backward barrel, deg (assumption)"
    )
    backward_barrel_extra_inefficiency: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="extra photon loss probability in the backward barrel "
        "(0 in simulation; data: 0.02, an assumption: the PRL says only that it is larger "
        "in data)",
    )
    gap90_theta_deg: DegRange = Field(
        (89.965, 90.035),
        description="1.5 mm gap at theta = 90 deg seen from the IP at the "
        "barrel radius 1.25 m, deg ([PRL] gap width; [TDR] radius)",
    )
    gap90_inefficiency: float = Field(
        0.5, ge=0.0, le=1.0, description="photon loss probability in the 90 deg gap (assumption)"
    )
    charged_barrel_pt_min_gev: float = Field(
        0.28,
        ge=0.0,
        description="pT a charged particle needs to reach the barrel ECL, GeV [basf2-acc]",
    )
    mip_energy_gev: float = Field(
        0.2, ge=0.0, description="mean ECL deposit of a minimum-ionising track, GeV (assumption)"
    )
    mip_spread_gev: float = Field(
        0.03, ge=0.0, description="Gaussian spread of the MIP deposit, GeV (assumption)"
    )
    hadron_interaction_probability: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="probability that a charged hadron showers in the ECL "
        "(assumption; ~0.8 interaction lengths of CsI)",
    )

    @field_validator(
        "forward_theta_deg",
        "barrel_theta_deg",
        "backward_theta_deg",
        "backward_barrel_theta_deg",
        "gap90_theta_deg",
    )
    @classmethod
    def _increasing(cls, value: DegRange) -> DegRange:
        return _check_range(value)


class TriggerConfig(_Strict):
    """Level-1 trigger: two-track line with Bhabha veto, ECL energy line, run periods, and the
    tau-tau search's three-track and single-muon (CDC-KLM) lines."""

    track_theta_deg: DegRange = Field(
        (37.0, 120.0), description="polar-angle range of two-track-trigger tracks, deg [PRL]"
    )
    dphi_min_2019_deg: float = Field(
        90.0, ge=0.0, le=180.0, description="azimuthal opening of the pair, 2019 data, deg [PRL]"
    )
    dphi_min_2020_deg: float = Field(
        30.0, ge=0.0, le=180.0, description="azimuthal opening of the pair, 2020 data, deg [PRL]"
    )
    fraction_2019: float = Field(
        0.1046,
        ge=0.0,
        le=1.0,
        description="fraction of the luminosity taken in 2019: 8.34 / 79.7 "
        "([DH] 2019 sample; assumption that it is the 2019 part of the PRL's data)",
    )
    two_track_efficiency: tuple[float, float] = Field(
        (0.91, 0.91),
        description="probability that the two-track line fires when its conditions hold, at "
        "the two points two_track_q_gev2 of the trigger variable q = s - 2 sqrt(s) E*_trk "
        "(linear in q between them, constant outside; a single number means flat). "
        "Simulation: flat 0.91, the midpoint of the PRL's 89-93% (assumption); "
        "data: 0.89 -> 0.93 with M_recoil^2 [PRL]",
    )
    two_track_q_gev2: DegRange = Field(
        (0.0, 80.0),
        description="the two values of q = s - 2 sqrt(s) E*_trk, GeV^2, at which "
        "two_track_efficiency is given; E*_trk = c.m. energy of the tracks in the trigger "
        "polar-angle range (muon mass), so for two tracks q = M_recoil^2 - m_trk^2 <= "
        "M_recoil^2 (ends of the PRL's M_recoil^2 range)",
    )
    bhabha_dphi_cm_deg: DegRange = Field(
        (160.0, 200.0), description="Bhabha veto: c.m. azimuthal difference, deg [basf2-trg]"
    )
    bhabha_theta_sum_cm_deg: DegRange = Field(
        (165.0, 190.0), description="Bhabha veto: sum of c.m. polar angles, deg [basf2-trg]"
    )
    bhabha_e_min_cm_gev: float = Field(
        3.0, ge=0.0, description="Bhabha veto: both clusters above, c.m. GeV [basf2-trg]"
    )
    bhabha_e_max_cm_gev: float = Field(
        4.5, ge=0.0, description="Bhabha veto: one cluster above, c.m. GeV [basf2-trg]"
    )
    ecl_energy_min_gev: float = Field(
        1.0, ge=0.0, description="ECL trigger: energy in barrel + forward endcap above, GeV [PRL]"
    )
    three_track_theta_deg: DegRange = Field(
        (37.0, 120.0),
        description="three-track line (L1 bit fff [basf2-grl], [TT]): polar-angle range of its "
        "CDC trigger tracks, deg (assumption: the two-track line's range [PRL], i.e. the "
        "region where the CDC 2D 'full' trigger tracks are efficient)",
    )
    three_track_pt_min_gev: float = Field(
        0.3,
        ge=0.0,
        description="three-track line: transverse momentum a track needs to be a CDC trigger "
        "track, GeV ([TRG-DNN] quotes the track-trigger efficiency for pT > 0.3 GeV; the "
        "threshold itself is our assumption)",
    )
    three_track_min_tracks: int = Field(
        3, ge=1, description="three-track line: number of such tracks needed (fff: three)"
    )
    three_track_efficiency: float = Field(
        0.93,
        ge=0.0,
        le=1.0,
        description="probability that the three-track line fires when its conditions hold "
        "(assumption: about 0.976^3, a per-track trigger efficiency near the 96-98% of "
        "[TRG-DNN]; [TT] quotes a 2.7% trigger systematic uncertainty, no efficiency)",
    )
    single_muon_theta_deg: DegRange = Field(
        (37.0, 130.0),
        description="single-muon (CDC-KLM, L1 bit cdcklm [basf2-grl], [TT]) line: polar-angle "
        "range of the track, deg (barrel KLM, basf2 thetaInBKLMAcceptance [basf2-acc]; "
        "assumption that the line matches CDC tracks to the barrel KLM only)",
    )
    single_muon_pt_min_gev: float = Field(
        0.6,
        ge=0.0,
        description="single-muon line: pT the track needs to reach the barrel KLM, GeV "
        "(basf2 ptInBKLMAcceptance [basf2-acc])",
    )
    single_muon_p_min_gev: float = Field(
        1.0,
        ge=0.0,
        description="single-muon line: momentum the track needs to cross enough KLM layers "
        "for a KLM trigger track, GeV (assumption; the muon ID uses the KLM above 0.7 GeV "
        "[PRL])",
    )
    single_muon_efficiency: float = Field(
        0.90,
        ge=0.0,
        le=1.0,
        description="probability that a muon meeting the line's conditions makes a matched "
        "CDC-KLM trigger track (assumption)",
    )
    single_muon_hadron_probability: float = Field(
        0.03,
        ge=0.0,
        le=1.0,
        description="the same for a charged hadron (pion punch-through or decay in flight; "
        "kaons and protons alike): assumption, the muon ID's pion fake rate on the KLM "
        "plateau [PRL]; electrons never fire the line",
    )

    @field_validator(
        "track_theta_deg",
        "bhabha_dphi_cm_deg",
        "bhabha_theta_sum_cm_deg",
        "two_track_q_gev2",
        "three_track_theta_deg",
        "single_muon_theta_deg",
    )
    @classmethod
    def _increasing(cls, value: DegRange) -> DegRange:
        return _check_range(value)

    @field_validator("two_track_efficiency", mode="before")
    @classmethod
    def _flat_shorthand(cls, value: Any) -> Any:
        """A single number is a flat efficiency: ``0.9`` means ``[0.9, 0.9]``."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (value, value)
        return value

    @field_validator("two_track_efficiency")
    @classmethod
    def _probabilities(cls, value: tuple[float, float]) -> tuple[float, float]:
        for v in value:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"efficiency must be in [0, 1], got {v}")
        return value


class DetectorConfig(_Strict):
    """One named configuration of the fast Belle II simulation.

    ``based_on`` names another configuration whose values this one starts from, so a variant
    (e.g. ``data``) only lists the parameters that differ.
    """

    based_on: str | None = Field(
        None, description="configuration this one inherits unlisted values from"
    )
    description: str = Field("", description="free text")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    muon_id: MuonIDConfig = Field(default_factory=MuonIDConfig)
    electron_id: ElectronIDConfig = Field(default_factory=ElectronIDConfig)
    pion_id: PionIDConfig = Field(default_factory=PionIDConfig)
    ecl: ECLConfig = Field(default_factory=ECLConfig)
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)


class DetectorSection(_Strict):
    """Named detector configurations and the one used by default (``use``)."""

    configurations: dict[str, DetectorConfig] = Field(
        default_factory=lambda: {"simulation": DetectorConfig()},
        min_length=1,
        description="named configurations of the fast simulation",
    )
    use: str = Field("simulation", description="configuration used when none is named")

    @field_validator("configurations", mode="before")
    @classmethod
    def _resolve_inheritance(cls, raw: Any) -> Any:
        """Fill each configuration that has ``based_on`` with its base's values."""
        if not isinstance(raw, dict):
            return raw
        resolved: dict[str, Any] = {}

        def resolve(name: str, chain: tuple[str, ...]) -> Any:
            if name in resolved:
                return resolved[name]
            entry = raw[name]
            if isinstance(entry, DetectorConfig):
                entry = entry.model_dump()
            base = entry.get("based_on") if isinstance(entry, dict) else None
            if base is None:
                resolved[name] = entry
                return entry
            if base not in raw:
                raise ValueError(f"configuration '{name}' is based on unknown '{base}'")
            if base in chain:
                cycle = " -> ".join((*chain, base))
                raise ValueError(f"configurations inherit in a cycle: {cycle}")
            parent = resolve(base, (*chain, base))
            merged = _deep_merge(parent, entry) if isinstance(parent, dict) else entry
            resolved[name] = merged
            return merged

        for name in raw:
            resolve(name, (name,))
        return resolved

    @field_validator("use")
    @classmethod
    def _use_exists(cls, use: str, info: Any) -> str:
        known = info.data.get("configurations")
        if known is not None and use not in known:
            raise ValueError(f"'{use}' is not one of the configurations {sorted(known)}")
        return use

    def get(self, name: str | None = None) -> DetectorConfig:
        """The configuration called ``name`` (default: ``use``).

        Raises
        ------
        ConfigError
            If no configuration has that name.
        """
        key = self.use if name is None else name
        try:
            return self.configurations[key]
        except KeyError:
            raise ConfigError(
                f"unknown detector configuration '{key}' (known: "
                f"{', '.join(sorted(self.configurations))})"
            ) from None
