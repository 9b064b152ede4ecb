"""The invisible Z' search of the L_mu - L_tau model, e+e- -> mu+ mu- Z', Z' -> invisible
(Belle II, PRL 130, 231801 (2023); its 2018 pilot run is the ``pilot2018`` preset)."""
