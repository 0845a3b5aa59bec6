"""Shared by the block specifications: a document, and a stage of blocks run over records."""

from __future__ import annotations

import json
from pathlib import Path

from tools.blocks.stage import BlockStage
from tools.stage import Document, StageConfig, run_document_stage
from tools.stage.output import StageOutput

ENGLISH = ("The river runs past the old mill, and the children of the village watch it from the bridge every "
           "evening. Their parents talk about the harvest that is to come, and about the weather that will have "
           "to hold for another week. The miller, who has lived by the water for most of his life, says that the "
           "river will be high this year. Nobody believes him, because he says the same thing with the same "
           "certainty every spring.")
CHINESE = ("北京是一座历史悠久的城市，有很多名胜古迹，每年吸引大量的游客前来参观。长城是中国古代的伟大建筑之一，"
           "全长超过两万公里。故宫位于北京市中心，是明清两代的皇家宫殿，现在是一座博物馆。\n"
           "上海是中国最大的经济中心，黄浦江穿过市区，外滩的建筑群展示了这座城市的历史和现代的风貌。")


def document(text: str, **fields) -> Document:
    return Document("doc", text, dict(fields))


def run_blocks(blocks, records: list[dict], tmp_path: Path, name: str = "filter") -> StageOutput:
    """The blocks as one stage over ``records`` (one worker); every record is accounted for."""
    path = tmp_path / "in.jsonl"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    run_document_stage(BlockStage(name, tuple(blocks)),
                       StageConfig((str(path),), tmp_path / "out", workers=1, progress=False))
    result = StageOutput.load(tmp_path / "out")
    counts = result.manifest["counts"]
    assert counts["in"] == counts["kept"] + counts["removed"] + counts["rejected"] == len(records)
    assert (len(result.kept), len(result.removed), len(result.rejected)) == \
        (counts["kept"], counts["removed"], counts["rejected"])
    return result
