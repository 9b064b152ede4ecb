"""The tau-tau resonance search e+e- -> mu+ mu- X, X -> tau+ tau- (issue 19, in progress)."""
