"""zprime's own vectorized event generators for the backgrounds Pythia 8 is too slow for.

Modules
-------
``chunk``
    The chunk interface every background generator shares: ``ChunkResult`` and the
    generator-level ``track_filter``.
``filters``
    Named generator-level cuts (looser than the selection they serve), applied before anything
    is written; shared by every generator.
``tau_decays``
    Spin-correlated tau decays (leptonic, pi, K, rho, a1 and grouped remaining modes) with
    polarimeter vectors, branching fractions from the PDG through ``particle``.
``tautau``
    e+e- -> tau+ tau- (gamma) at 10.58 GeV with the full tau-pair spin correlation.
``mumu``
    e+e- -> mu+ mu- (gamma) with the exact O(alpha) hard-photon matrix element and importance
    sampling toward the phase space that can pass the preselection.

Every generator exposes the chunk interface of :mod:`zprime.generators.backgrounds`
(``chunk(settings, n_generate, seed) -> ChunkResult``, the result type from
:mod:`zprime.generators.chunk`, and ``describe(settings) -> dict``), so a configured sample
names it with ``generator: zprime.generators.<module>:chunk``.
"""
