"""`dome train` (and `--resume`) -> `dome eval` -> `dome edit` on a tiny JSONL corpus; re-adding indexed ids is refused."""

import json
import re

from dome.cli import main

TINY = [
    "model.d_model=32", "model.d_ff=128", "model.layers=2", "model.heads=2", "model.vocab_size=300",
    "docids.scheme=naive", "data.train_queries=3", "data.test_queries=1", "train.steps=20", "train.batch_size=8",
    "edit.steps=5", "edit.layers=[1]", "eval.beams=3",
]


def _jsonl(path, ids):
    rows = [{"id": i, "text": f"{i} " + " ".join(f"w{i}{j}" for j in range(10))} for i in ids]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_train_eval_edit(tmp_path, capsys):
    docs = _jsonl(tmp_path / "docs.jsonl", [f"d{i}" for i in range(8)])
    assert main(["train", "--out", str(tmp_path / "t"), f"data.source={docs}", *TINY]) == 0
    model = tmp_path / "t" / "model"
    assert (model / "docids.json").is_file() and (tmp_path / "t" / "results.json").is_file()
    assert (tmp_path / "t" / "checkpoint" / "train.pt").is_file()
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(tmp_path / "t"), f"data.source={docs}", *TINY]) == 0
    assert "resumed training at step 20" in capsys.readouterr().err
    assert main(["eval", "--model", str(model), *TINY]) == 0
    new = _jsonl(tmp_path / "new.jsonl", ["n1", "n2"])
    assert main(["edit", "--model", str(model), "--docs", str(new), "--out", str(tmp_path / "e"), *TINY]) == 0
    edited = json.loads((tmp_path / "e" / "model" / "docids.json").read_text())
    assert {"n1", "n2"} <= set(edited["scheme"]["ids"])
    res = json.loads((tmp_path / "e" / "results.json").read_text())
    assert res["experiment"] == "edit" and "recall@10_new" in res["rows"][0]["metrics"]
    capsys.readouterr()
    clash = _jsonl(tmp_path / "clash.jsonl", ["d3"])  # refused before the model is loaded or the folder claimed
    assert main(["edit", "--model", str(model), "--docs", str(clash), "--out", str(tmp_path / "x"), *TINY]) == 2
    assert re.search(r"^dome edit: .*ids already indexed .*\['d3'\]$", capsys.readouterr().err.strip())
    assert not (tmp_path / "x").exists()
