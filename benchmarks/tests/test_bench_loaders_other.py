"""Math, retrieval, MMEB, BFCL, finance and hub loaders: bundled slices, official-format tiny files, bad input."""

import json
import shutil

import pytest
from benchmarks.data import (
    DataError,
    bundled_path,
    load_aime,
    load_beir,
    load_bfcl,
    load_bundled,
    load_cranfield,
    load_finqa,
    load_gsm8k,
    load_hf,
    load_math500,
    load_mmeb,
    load_msmarco,
    load_nq320k,
    load_tatqa,
)
from PIL import Image


def _first_lines(rel, dst, n=4):
    dst.write_text("\n".join(bundled_path(rel).read_text(encoding="utf-8").splitlines()[:n]) + "\n", encoding="utf-8")
    return dst


def test_math_loaders(tmp_path):
    gsm = load_bundled("gsm8k")
    assert len(gsm) == 660 and gsm[0].answer == "18" and gsm[0].solution.endswith("#### 18")
    m500 = load_bundled("math500")
    assert len(m500) == 250 and m500[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert m500[0].metadata == {"subject": "Precalculus", "level": 2}
    aime = load_bundled("aime24")
    assert len(aime) == 15 and aime[0].answer == "204"
    bad = tmp_path / "gsm.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "no final line"}) + "\n")
    with pytest.raises(DataError, match=r"gsm\.jsonl:1: field 'answer': no '#### <answer>' line"):
        load_gsm8k(bad)
    lines = _first_lines("math/math500/test.jsonl", tmp_path / "m.jsonl").read_text().splitlines()
    obj = json.loads(lines[1])
    del obj["answer"]
    lines[1] = json.dumps(obj)
    (tmp_path / "m.jsonl").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"m\.jsonl:2: field 'answer': missing"):
        load_math500(tmp_path / "m.jsonl")
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": 1, "answer": "3"}) + "\n")
    with pytest.raises(DataError, match=r"a\.jsonl:1: field 'problem'"):
        load_aime(tmp_path / "a.jsonl")


def test_cranfield_bundled_and_malformed(tmp_path):
    cran = load_bundled("cranfield")
    assert len(cran.corpus) == 1400 and len(cran.queries) == 112
    assert cran.corpus["1"].title.startswith("experimental investigation of the aerodynamics")
    assert cran.queries["1"].startswith("what similarity laws must be obeyed")
    assert cran.qrels["1"]["184"] == 3  # code 2 -> grade 3
    assert sum(len(v) for v in cran.qrels.values()) == 906
    folder = tmp_path / "cran"
    shutil.copytree(bundled_path("retrieval/cranfield"), folder)
    lines = (folder / "cranqrel").read_text().splitlines()
    lines[2] = "1 31 seven"
    (folder / "cranqrel").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"cranqrel:3: field 'relevance': expected an integer, got 'seven'"):
        load_cranfield(folder)


def test_cranfield_slice_numbered_from_later_query(tmp_path):
    """A slice of cran.qry that starts at the 57th block: numbering it from 1 matches none of its judgements, which
    is an error naming the qrels file (it used to drop every judged query silently); first_query=57 loads it."""
    full = load_bundled("cranfield")
    folder = tmp_path / "cran"
    shutil.copytree(bundled_path("retrieval/cranfield"), folder)
    text = (folder / "cran.qry").read_text()
    starts = [i for i, line in enumerate(text.splitlines(keepends=True)) if line.startswith(".I ")]
    lines = text.splitlines(keepends=True)
    (folder / "cran.qry").write_text("".join(lines[starts[56]:]))
    qrels = [x for x in (folder / "cranqrel").read_text().splitlines() if int(x.split()[0]) >= 57]
    (folder / "cranqrel").write_text("\n".join(qrels) + "\n")
    with pytest.raises(DataError, match=r"cranqrel: field 'query-id': 56 of 56 judged query ids match no query .*"
                       r"numbered 1\.\.56: pass first_query="):
        load_cranfield(folder)
    part = load_cranfield(folder, first_query=57)
    assert list(part.queries) == [str(i) for i in range(57, 113)]
    assert part.queries == {q: full.queries[q] for q in part.queries} and part.qrels == {
        q: full.qrels[q] for q in part.queries
    }


def test_cranfield_codes_follow_the_readme_by_bm25_rank():
    """cranqrel.readme: code 1 = complete answer ... 4 = minimum interest; -1 is undefined there. On the bundled
    queries BM25 ranks code-1 documents highest and code-4 lowest, so grade = 5 - code has the right direction;
    each query has exactly one -1 document and it is the closest in wording (median rank <= 3)."""
    import collections
    import statistics

    from benchmarks.data.retrieval import _read_tsv
    from shared.retrieval import BM25Index

    cran = load_bundled("cranfield")
    codes = {(p[0], p[1]): int(p[2]) for _, p in _read_tsv(bundled_path("retrieval/cranfield/cranqrel"), (3,))}
    assert all(cran.qrels[q][d] == (0 if c == -1 else 5 - c) for (q, d), c in codes.items())
    assert collections.Counter(q for (q, _), c in codes.items() if c == -1) == {q: 1 for q in cran.queries}
    ids = list(cran.corpus)
    index = BM25Index([cran.corpus[d].title + " " + cran.corpus[d].text for d in ids], ids)
    ranks = collections.defaultdict(list)
    for q, text in cran.queries.items():
        _, (ranked,) = index.search([text], k=len(ids))
        pos = {d: r for r, d in enumerate(ranked, start=1)}
        for d, c in ((d, c) for (qq, d), c in codes.items() if qq == q):
            ranks[c].append(pos[d])
    medians = {c: statistics.median(r) for c, r in ranks.items()}
    assert medians[1] < medians[2] < medians[3] < medians[4] and medians[-1] <= 3


def test_beir_and_msmarco_formats(tmp_path):
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T", "text": "alpha"})
        + "\n"
        + json.dumps({"_id": "d2", "text": "beta"})
        + "\n"
    )
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "alpha?"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    rs = load_beir(beir)
    assert rs.qrels == {"q1": {"d1": 1}} and rs.corpus["d1"].contents == '"T"\nalpha' and rs.queries == {"q1": "alpha?"}
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    with pytest.raises(DataError, match=r"test\.tsv: field 'query-id': 1 of 2 judged query ids match no query"):
        load_beir(beir)
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(DataError, match=r"test\.tsv:2: expected 3 or 4 columns, got 2"):
        load_beir(beir)
    # MS MARCO passage format (not bundled: its terms forbid redistribution), on a small synthetic file
    (tmp_path / "collection.tsv").write_text("0\tThe presence of communication amid scientific minds.\n1\tManhattan.\n")
    (tmp_path / "queries.dev.tsv").write_text("1048585\twhat is paula deen's brother\n2\tunjudged\n")
    (tmp_path / "qrels.dev.tsv").write_text("1048585\t0\t1\t1\n")
    ms = load_msmarco(tmp_path / "collection.tsv", tmp_path / "queries.dev.tsv", tmp_path / "qrels.dev.tsv")
    assert ms.queries == {"1048585": "what is paula deen's brother"} and ms.qrels == {"1048585": {"1": 1}}
    (tmp_path / "qrels.dev.tsv").write_text("1048585\t0\t1\t1\n7\t0\t0\t1\n")  # query 7 is not in queries.dev.tsv
    with pytest.raises(DataError, match=r"qrels\.dev\.tsv: field 'query-id': 1 of 2 judged query ids match no query"):
        load_msmarco(tmp_path / "collection.tsv", tmp_path / "queries.dev.tsv", tmp_path / "qrels.dev.tsv")
    (tmp_path / "qrels.dev.tsv").write_text("1048585\t0\t1\t1\n")
    (tmp_path / "collection.tsv").write_text("0\tok\n1\n")
    with pytest.raises(DataError, match=r"collection\.tsv:2: expected 2 columns, got 1"):
        load_msmarco(tmp_path / "collection.tsv", tmp_path / "queries.dev.tsv", tmp_path / "qrels.dev.tsv")


def test_nq320k_split_format(tmp_path):
    (tmp_path / "docs.jsonl").write_text(
        json.dumps({"docid": "0", "title": "Moon", "text": "Apollo 17 ..."})
        + "\n"
        + json.dumps({"docid": "1", "text": "x"})
        + "\n"
    )
    (tmp_path / "train.tsv").write_text("who walked on the moon last\t0\nx?\t1\n")
    (tmp_path / "test.tsv").write_text("last moon landing\t0\n")
    split = load_nq320k(tmp_path / "docs.jsonl", tmp_path / "train.tsv", tmp_path / "test.tsv")
    assert split.train == [("who walked on the moon last", "0"), ("x?", "1")] and split.test == [
        ("last moon landing", "0")
    ]
    (tmp_path / "test.tsv").write_text("unknown doc\t7\n")
    with pytest.raises(DataError, match=r"test\.tsv:1: field 'docid': docid '7' is not in docs\.jsonl"):
        load_nq320k(tmp_path / "docs.jsonl", tmp_path / "train.tsv", tmp_path / "test.tsv")


def test_mmeb_official_layout(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.jpg")
    rows = [
        {"qry_text": "<|image_1|> Represent the given image for classification", "qry_img_path": "images/a.jpg",
         "tgt_text": ["cat", "dog"], "tgt_img_path": ["", ""]},
        {"qry_text": "Find me an image: a cat", "qry_img_path": "", "tgt_text": ["", ""],
         "tgt_img_path": ["images/a.jpg", "images/a.jpg"]},
    ]  # fmt: skip
    path = tmp_path / "ImageNet-1K.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items = load_mmeb(path, "classification")
    assert (
        items[0].dataset == "ImageNet-1K" and items[0].tgt_text == ["cat", "dog"] and items[0].tgt_img == [None, None]
    )
    assert items[1].qry_img is None and items[1].tgt_img[0] == str(tmp_path / "images/a.jpg")
    rows[1]["tgt_img_path"] = ["images/a.jpg", "images/missing.jpg"]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match=r"ImageNet-1K\.jsonl:2: field 'tgt_img_path': image 'images/missing.jpg'"):
        load_mmeb(path, "retrieval")


def test_bfcl_bundled_and_malformed(tmp_path):
    simple = load_bundled("bfcl_simple_python")
    assert len(simple) == 200 and simple[0].functions[0]["name"] == "calculate_triangle_area"
    assert simple[0].possible_answer == [
        {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}
    ]
    multi = load_bundled("bfcl_multi_turn_base")
    assert len(multi) == 100 and len(multi[0].turns) == 4
    assert {f["name"] for f in multi[0].functions} >= {"mv", "grep", "post_tweet"}
    assert multi[0].possible_answer[0][0] == "cd(folder='document')"
    assert load_bundled("bfcl_irrelevance")[0].possible_answer == []
    q = _first_lines("tool_use/bfcl/BFCL_v4_simple_python.json", tmp_path / "q.json", 3)
    a = _first_lines("tool_use/bfcl/possible_answer/BFCL_v4_simple_python.json", tmp_path / "a.json", 2)
    with pytest.raises(DataError, match=r"q\.json:3: field 'id': no ground truth for id 'simple_python_2'"):
        load_bfcl(q, a)


def test_tatqa_and_finqa(tmp_path):
    tat = load_bundled("tatqa")
    assert len(tat) == 1668
    assert tat[0].question == "What is the company paid on a cost-plus type contract?"
    assert tat[0].table[1] == ["", "2019", "2018", "2017"] and tat[0].answer_type == "span"
    ctx = json.loads(bundled_path("finance/tatqa/tatqa_dataset_dev.json").read_text())[:2]
    del ctx[1]["questions"][0]["answer"]
    (tmp_path / "tat.json").write_text(json.dumps(ctx))
    with pytest.raises(DataError, match=r"tat\.json:1: field 'questions'"):
        load_tatqa(tmp_path / "tat.json")
    fin = [{"id": "ADI/2009/page_49.pdf-1", "pre_text": ["a"], "post_text": ["b"], "table": [["", "2009"], ["x", "5"]],
            "qa": {"question": "what is x?", "program": "add(2, 3)", "exe_ans": 5.0, "answer": "5"}}]  # fmt: skip
    (tmp_path / "fin.json").write_text(json.dumps(fin))
    rec = load_finqa(tmp_path / "fin.json")[0]
    assert rec.answer == 5.0 and rec.program == "add(2, 3)" and rec.paragraphs == ["a", "b"]
    del fin[0]["qa"]["exe_ans"]
    (tmp_path / "fin.json").write_text(json.dumps(fin))
    with pytest.raises(DataError, match=r"fin\.json:0: field 'qa.exe_ans': missing"):
        load_finqa(tmp_path / "fin.json")


def test_hub_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"gsm8k/test\.jsonl: not found and the HF hub is offline: put the test split"):
        load_hf("gsm8k", "test", tmp_path)
    (tmp_path / "gsm8k").mkdir()
    _first_lines("math/gsm8k/test.jsonl", tmp_path / "gsm8k" / "test.jsonl", 3)
    assert [r.answer for r in load_hf("gsm8k", "test", tmp_path)][0] == "18"
    with pytest.raises(KeyError, match="unknown hub dataset"):
        load_hf("nope", "test", tmp_path)


def test_bundled_names_and_missing_files(tmp_path):
    with pytest.raises(KeyError, match="no bundled dataset"):
        load_bundled("msmarco")
    with pytest.raises(FileNotFoundError, match="is not bundled"):
        bundled_path("qa/msmarco/collection.tsv")
    with pytest.raises(DataError, match="file not found"):
        load_gsm8k(tmp_path / "absent.jsonl")
