"""The fast Belle II detector simulation (named configurations: ``simulation``, ``data``),
its reconstructed-event schema and analysis kinematics (``simulation``), and the conversion of
a user's real ntuples into that schema (``realdata``). Knows nothing of any search."""
