"""The run report: ``python -m pretrain.report RUN_DIR`` writes RUN_DIR/report.html (self-contained)
and RUN_DIR/report.md from the run's artefacts (data pipeline manifests, training metrics,
checkpoints, the exported model, the generated sample), read from their files.

``artefacts`` reads the files, ``sections`` turns them into tables, text and ``svg`` charts,
``render`` writes HTML and Markdown.
"""
