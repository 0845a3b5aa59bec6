"""Checkpoints: one sharded copy of the training state, written by every rank, readable under any layout.

``step_XXXXXXXX/state/`` is a megatron-core ``dist_checkpointing`` directory in its ``torch_dist``
format (torch.distributed.checkpoint files and ``.metadata``, megatron-core's ``metadata.json`` and
``common.pt``); beside it ``train_state.json``, ``config.yaml``, ``layout.json``, ``rng/`` and the
``COMPLETE`` marker. The modules, from the bottom up:

- :mod:`~pretrain.checkpoint.placement`: where each parameter's values sit in the global tensors;
- :mod:`~pretrain.checkpoint.fragments`: which of them this rank's optimizer holds;
- :mod:`~pretrain.checkpoint.sharded_state`: both as megatron-core ``ShardedTensor``\\ s, to write and to read;
- :mod:`~pretrain.checkpoint.storage`: reading only the needed bytes, and naming damaged files;
- :mod:`~pretrain.checkpoint.writer`: megatron-core's (asynchronous) save;
- :mod:`~pretrain.checkpoint.directory`: staging, ``COMPLETE``, ``latest``;
- :mod:`~pretrain.checkpoint.store`: what the training loop calls;
- :mod:`~pretrain.checkpoint.tensors`: whole tensors one at a time, for conversion and generation.
"""

from pretrain.checkpoint.directory import (COMPLETE_MARKER, LATEST, STAGING_PREFIX, STATE_DIR, CheckpointNotFound,
                                           TrainState, resolve_checkpoint, tag_for)

__all__ = ["COMPLETE_MARKER", "LATEST", "STAGING_PREFIX", "STATE_DIR", "CheckpointNotFound", "TrainState",
           "resolve_checkpoint", "tag_for"]
