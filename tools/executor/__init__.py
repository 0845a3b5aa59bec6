"""Where the data tools' work runs: one small interface, two backends.

A ``Job`` (``job``) is a prologue (start-up checks and planning, run where the command runs) and
steps run in order; a step's ``Work`` lists its items (``items()``), gives the key an item's result
depends on (``key(item)``) and runs one item (``run(item)``). Items of a step are independent and
idempotent: each writes its outputs into the output directory and a completion marker holding its
key (``markers``), and is skipped when run again with the same key. That is all a backend needs:

- ``local.LocalExecutor``: each step on this machine, ``workers`` items at a time (``items``, on
  the forked workers of ``tools.stage.pool``).
- ``slurm.SlurmExecutor``: each step a SLURM job array of ``--tasks`` tasks chained with afterok
  dependencies; task i runs items i, i+N, ... (``task``); ``follow`` watches the queue and
  resubmits unfinished tasks alone; ``state`` remembers the submissions (OUTPUT/slurm/).

``options`` turns ``--executor``/``--tasks``/sbatch flags into one of them (``run_job``).

A Ray backend would be a third class with the same ``run(job)``: run the prologue on the driver,
then, step by step, ``ray.get([run_item.remote(step, (item, step.work.key(item))) for item in
step.work.items()])`` with ``run_item`` a remote wrapper of ``items._run_and_mark`` (so markers are
written the same way and a rerun skips what finished); ``ray.get`` is the barrier between steps.
The output directory must be on a filesystem every worker sees.
"""
