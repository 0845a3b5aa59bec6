"""Training and validation data: megatron-core's GPTDataset blended over .bin/.idx prefixes.

Every rank builds the same blended datasets (megatron-core builds the index cache on rank 0 and
the others read it). :mod:`pretrain.data.batches` cuts them into micro-batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
from megatron.core.datasets.megatron_tokenizer import MegatronLegacyTokenizer

from pretrain.config import RunConfig


class QwenDatasetTokenizer(MegatronLegacyTokenizer):
    """What GPTDataset needs of a tokenizer (vocab size, EOD) without loading the vocabulary."""

    def __init__(self, vocab_size: int, eod: int):
        super().__init__("qwen.tiktoken", vocab_size=vocab_size, eod=eod)
        self._vocab_size, self._eod = vocab_size, eod

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def eod(self) -> int:
        return self._eod

    @property
    def vocab(self):
        raise NotImplementedError("GPTDataset does not need the vocabulary")

    @property
    def inv_vocab(self):
        raise NotImplementedError("GPTDataset does not need the vocabulary")

    def tokenize(self, text: str) -> np.ndarray:
        raise NotImplementedError("data is tokenized ahead of time by qwen-data tokenize")


@dataclass
class TrainingData:
    train: torch.utils.data.Dataset
    valid: torch.utils.data.Dataset | None


def build_datasets(config: RunConfig, prefixes: list[str], weights: list[float] | None, eod: int) -> TrainingData:
    training = config.training
    eval_rounds = training.train_steps // training.eval_interval + 1
    sizes = [training.train_steps * training.global_batch_size,
             eval_rounds * training.eval_iters * training.global_batch_size, 0]
    blend = (list(prefixes), list(weights) if weights else None)
    dataset_config = GPTDatasetConfig(
        random_seed=training.seed,
        sequence_length=config.model.seq_length,
        blend=blend,
        split=config.data.split,
        path_to_cache=config.data.cache_dir or os.path.join(config.logging.dir, "data_cache"),
        tokenizer=QwenDatasetTokenizer(config.model.vocab_size, eod),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,  # causal attention needs no materialized mask
        mmap_bin_files=True,
    )
    train, valid, _ = BlendedMegatronDatasetBuilder(GPTDataset, sizes, lambda: True, dataset_config).build()
    return TrainingData(train=train, valid=valid)
