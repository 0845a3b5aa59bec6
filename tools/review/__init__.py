"""``qwen-data review``: one self-contained HTML page for reading what stages kept and removed.

Qwen's report (§2.1) manually samples texts from each source and reviews them. This package
draws, from the output directories of any stages, N documents per (stage, source, removal reason)
and per (stage, source) kept, and renders them with the reason, the measured value against its
limit, and the scores, filterable in the page.

``sample``: reading stage outputs (checked), the seeded bottom-k sample, the removed documents'
text read back from the file and line their record names. ``page``: the HTML, with ``assets``
holding its inline CSS and JavaScript. ``cli``: the sub-command.
"""
