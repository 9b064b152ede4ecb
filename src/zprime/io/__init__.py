"""Event files: the Parquet event schema, batched reading and writing, unweighting
(``events``). Knows nothing of any search."""
