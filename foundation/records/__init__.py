"""Document records: ``document`` (Document, Removal, Rejection), ``streams`` (compressed files as
numbered lines), ``reader`` (JSON Lines, JSON arrays, Parquet into documents), ``split`` (byte
ranges of large JSON Lines files), ``progress`` (the per-process read counter)."""
