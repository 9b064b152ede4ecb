"""The dark Higgsstrahlung search: e+e- -> A' h', A' -> mu+ mu-, h' invisible (PRL 130, 071804)."""
