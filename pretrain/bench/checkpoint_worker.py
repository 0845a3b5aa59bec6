"""One rank of ``qwen-bench checkpoint``: train a step, then time a save or a load and sample memory.

Run by the benchmark under torchrun as a script, with ``PYTHONPATH`` choosing the code measured:
this tree (the sharded format) or a checkout of the commit before it (``--baseline-code``: DeepSpeed's
files plus the layout-free ``full/`` copy). It therefore uses only what both have: ``Trainer`` and
its step, ``Trainer.save()``, and the functions that load a checkpoint, which it times by wrapping
them (``_load_entry_points``).

Host memory is :class:`pretrain.bench.host_memory.PeakMemory` (this process and its children,
sampled), loaded from beside this file. Each rank writes its figures to ``OUT/rank_N.json``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

# Run as a script: this directory must not shadow top-level modules (its train.py, memory.py, ...).
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402


def _beside_this_file(name: str):
    """A module of this directory, loaded by path: ``pretrain`` may be a baseline checkout without it."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PeakMemory = _beside_this_file("host_memory").PeakMemory


def _engine(trainer):
    return trainer.model.engine if hasattr(trainer, "model") else trainer.engine


def shard_bytes(trainer) -> int:
    """This rank's share of one copy of the state (fp32 weights and two Adam moments, 12 bytes a
    parameter): the parameters of its TP x PP shard (a TP replica on TP rank 0 only) over data
    parallel. The same figure for either code, so both are held against it."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import param_is_not_tensor_parallel_duplicate

    elements = sum(getattr(p, "ds_numel", p.numel()) for p in _engine(trainer).module.parameters()
                   if param_is_not_tensor_parallel_duplicate(p) or parallel_state.get_tensor_model_parallel_rank() == 0)
    return 12 * elements // parallel_state.get_data_parallel_world_size()


def _measured(operation) -> tuple[dict, object]:
    """(its seconds and peak memory above the start, what it returned) of ``operation()``."""
    torch.distributed.barrier()
    start = time.perf_counter()
    with PeakMemory() as memory:
        result = operation()
        seconds = time.perf_counter() - start  # not the sampler's last reading
    return {"seconds": seconds, "memory": memory.above_start}, result


def _timed(function, record: dict, name: str):
    """``function``, recording its time and memory under ``record[name]`` at each call."""
    def wrapper(*args, **kwargs):
        record[name], result = _measured(lambda: function(*args, **kwargs))
        return result
    return wrapper


def _load_entry_points(record: dict) -> None:
    """Wrap whichever functions of the measured code load a checkpoint (weights, then the rest)."""
    try:
        from pretrain.checkpoint.store import CheckpointStore
        from pretrain.training import layout

        layout.load_model_weights = _timed(layout.load_model_weights, record, "weights")
        CheckpointStore.load_training_state = _timed(CheckpointStore.load_training_state, record, "optimizer")
    except ImportError:  # the baseline: DeepSpeed's files, or the layout-free copy under another layout
        from pretrain.checkpoint import CheckpointStore

        CheckpointStore.load_model_from_another_layout = _timed(CheckpointStore.load_model_from_another_layout,
                                                                record, "weights")
        CheckpointStore.load = _timed(CheckpointStore.load, record, "optimizer")


def _one_step(trainer) -> float:
    if trainer.train_batches is None:
        trainer.train_batches = trainer._prefetching_train_batches()
    start = time.perf_counter()
    loss = trainer.train_step()
    float(loss)
    return time.perf_counter() - start


def _async_save(trainer, store) -> dict:
    """Start a background save, take a training step while it is written, wait for it. Its memory:
    this process's growth while it starts the save, plus the peak of the writer processes' private
    pages until it is done (not what the training step itself allocates meanwhile). While the save
    starts only this process is sampled: reading the new writer's pages would be part of the time."""
    torch.distributed.barrier()
    start = time.perf_counter()
    with PeakMemory(children=False) as starting:
        trainer.model.save(store, trainer.state)
        blocking = time.perf_counter() - start
    with PeakMemory() as writing:
        step_while_writing = _one_step(trainer)
        store.wait()
    return {"blocking_seconds": blocking, "seconds": time.perf_counter() - start,
            "memory": starting.above_start + max(writing.children_peak - writing.children_base, 0),
            "step_seconds_while_writing": step_while_writing}


def _save(trainer, spec: dict) -> dict:
    """Each kind of save twice: the first of a run also plans the save (and checks the sharding
    across ranks), later ones reuse the plan; the figures reported are the second's."""
    figures = {"step_seconds": _one_step(trainer), "shard_bytes": shard_bytes(trainer)}
    figures["sync"] = [_measured(trainer.save)[0] for _ in range(2)]
    if spec.get("async_dir"):
        from dataclasses import replace

        from pretrain.checkpoint.store import CheckpointStore

        from pretrain.parallel.distributed import io_phase

        config = replace(trainer.config.checkpoint, dir=spec["async_dir"], async_save=True)
        store = CheckpointStore(config, trainer.launch.rank, lambda message: None)
        with io_phase(trainer.config.parallel):  # ranks wait for each other's writers, as the loop's saves do
            figures["async"] = [_async_save(trainer, store) for _ in range(2)]
    return figures


def main() -> None:
    try:  # what qwen-train does before anything allocates (the baseline code predates it)
        from pretrain.host_pages import prefer_huge_pages
        prefer_huge_pages()
    except ImportError:
        pass
    spec = json.loads(sys.argv[1])
    from pretrain.config import load_config
    from pretrain.training.loop import Trainer

    loads: dict = {}
    if spec["mode"] == "load":
        _load_entry_points(loads)
    trainer = Trainer(load_config(None, spec["overrides"]))
    if spec["mode"] == "load":
        if hasattr(trainer, "resume"):  # the baseline restores the optimizer after construction
            trainer.resume()
        figures = {"shard_bytes": shard_bytes(trainer), **loads}
    else:
        figures = _save(trainer, spec)
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank_{trainer.launch.rank}.json").write_text(json.dumps(figures))
    torch.distributed.barrier()


if __name__ == "__main__":
    main()
