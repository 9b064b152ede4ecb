"""The report machinery common to every search (``plots``): the one plot style, the standard
label, atomic saving and generic drawing helpers (arrays in, a Figure out). No search lives here:
a search's own figures are in its analysis package (``zprime.analyses.<search>.figures``)."""
