"""`dome train` (and `--resume`) -> `dome eval` -> `dome edit` on a tiny JSONL corpus: test spans are stored with the
model and scored from there; re-adding indexed ids is refused."""

import json
import re

from dome.cli import main
from dome.heldout import ngram_overlap, read_queries

TINY = [
    "model.d_model=32", "model.d_ff=128", "model.layers=2", "model.heads=2", "model.vocab_size=300",
    "docids.scheme=naive", "data.train_queries=3", "data.test_queries=1", "train.steps=20", "train.batch_size=8",
    "edit.steps=5", "edit.layers=[1]", "eval.beams=3", "data.index_words=3", "data.query_words_min=2",
    "data.query_words_max=3",
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
    # `dome eval` scores the test spans stored with the model: another seed or span setting cannot redraw them
    stored = read_queries(model / "queries.jsonl")
    assert len(stored.test) == 8 and len(stored.train) == 24
    capsys.readouterr()
    assert main(["eval", "--model", str(model), *TINY]) == 0
    first = capsys.readouterr().out
    assert main(["eval", "--model", str(model), "--seed", "9", *TINY, "data.test_queries=3"]) == 0
    assert capsys.readouterr().out == first
    new = _jsonl(tmp_path / "new.jsonl", ["n1", "n2"])
    assert main(["edit", "--model", str(model), "--docs", str(new), "--out", str(tmp_path / "e"), *TINY]) == 0
    edited = json.loads((tmp_path / "e" / "model" / "docids.json").read_text())
    assert {"n1", "n2"} <= set(edited["scheme"]["ids"])
    edited_q = read_queries(tmp_path / "e" / "model" / "queries.jsonl")
    assert {q.doc_id for q in edited_q.test} == {f"d{i}" for i in range(8)} | {"n1", "n2"}
    training = [q.text for q in edited_q.train]
    assert ngram_overlap([q.text for q in edited_q.test], training, 3) == 0
    res = json.loads((tmp_path / "e" / "results.json").read_text())
    assert res["experiment"] == "edit" and "recall@10_new" in res["rows"][0]["metrics"]
    capsys.readouterr()
    clash = _jsonl(tmp_path / "clash.jsonl", ["d3"])  # refused before the model is loaded or the folder claimed
    assert main(["edit", "--model", str(model), "--docs", str(clash), "--out", str(tmp_path / "x"), *TINY]) == 2
    assert re.search(r"^dome edit: .*ids already indexed .*\['d3'\]$", capsys.readouterr().err.strip())
    assert not (tmp_path / "x").exists()
    (model / "queries.jsonl").unlink()  # a model without stored test spans (dome < 0.4) is refused in one line
    assert main(["eval", "--model", str(model), *TINY]) == 2
    assert re.search(r"^dome eval: .*queries.jsonl: no stored queries", capsys.readouterr().err.strip())
