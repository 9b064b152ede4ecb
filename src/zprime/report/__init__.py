"""The report machinery: the one plot style, pure figure functions (arrays in, a Figure out)
and the front end that names and saves figures (``plots``). No search lives here."""
