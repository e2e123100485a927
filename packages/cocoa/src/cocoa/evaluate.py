"""MMEB-format evaluation (Precision@1 per dataset, per meta-task and overall) and the <EOS> reconstruction probe.

Each query is scored against its own candidate list by cosine similarity of <EOS> embeddings; P@1 is the share
of queries whose gold is the unique top candidate (``shared.eval.hits_at_1``). As in MMEB
(``shared.eval.mmeb_scores``), a meta-task's score is the mean over its datasets and the overall score the mean
over all datasets. Identical candidates (same text, same image object) are embedded once.
The probe lays each item out with its reconstruction copy and reports the copy's next-token loss from <EOS>
(nats per text token): how much of the input can still be decoded from the <EOS> state alone.
Two checks of the generative starting model: ``image_reliance`` (caption loss with swapped minus with the right
images) and ``caption_ranking`` (each query image's candidate captions ranked by their likelihood given the image).
"""

from __future__ import annotations

import random

import torch
from shared.eval import hits_at_1, mmeb_scores
from tqdm import tqdm

from cocoa.data import EvalDataset
from cocoa.losses import IGNORE
from cocoa.model import CocoaModel, Item
from cocoa.train import copy_losses


@torch.no_grad()
def embed_items(model: CocoaModel, items: list[Item], batch_size: int = 64) -> torch.Tensor:
    """Normalised <EOS> embeddings (N, H) for ``items``, in order."""
    model.eval()
    out = []
    for start in range(0, len(items), batch_size):
        out.append(model.embed(model.encode_items(items[start : start + batch_size])).cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


def _item_key(item: Item) -> tuple:
    return (item.text, id(item.image) if item.image is not None else None)


@torch.no_grad()
def evaluate(model: CocoaModel, datasets: list[EvalDataset], batch_size: int = 64) -> dict[str, float]:
    """P@1 for every dataset (``p@1/<name>``), every meta-task (``p@1_<meta>``) and overall (``p@1_overall``)."""
    if not datasets:
        raise ValueError("no evaluation datasets")
    names: list[str] = []
    metas: list[str] = []
    hits: list[float] = []
    for ds in tqdm(datasets, desc="eval", leave=False):
        unique: dict[tuple, int] = {}
        cand_items: list[Item] = []
        for q in ds.queries:
            for c in q.candidates:
                key = _item_key(c)
                if key not in unique:
                    unique[key] = len(cand_items)
                    cand_items.append(c)
        q_emb = embed_items(model, [q.query for q in ds.queries], batch_size)
        c_emb = embed_items(model, cand_items, batch_size)
        # candidate lists may differ in length, so each query is scored against its own (1, c, d) stack;
        # shared.eval counts a hit only when the gold is the unique top candidate (ties are misses)
        for qi, q in enumerate(ds.queries):
            idx = torch.tensor([unique[_item_key(c)] for c in q.candidates])
            hits.append(float(hits_at_1(q_emb[qi : qi + 1].numpy(), c_emb[idx][None].numpy(), [q.gold])[0]))
            names.append(ds.name)
            metas.append(ds.meta_task)
    scores = mmeb_scores(names, metas, hits)
    metrics = {f"p@1/{name}": v for name, v in scores["datasets"].items()}
    metrics |= {f"p@1_{meta}": v for meta, v in scores["meta_tasks"].items()}
    metrics["p@1_overall"] = scores["overall"]
    return metrics


@torch.no_grad()
def image_reliance(model: CocoaModel, items: list[Item], batch_size: int = 64, seed: int = 0) -> float:
    """Caption loss with each item's image swapped for another item's, minus the loss with the right image.

    Near 0 means the model's text predictions ignore the image (a language prior only); the generatively
    pre-trained starting MLLM should be well above 0, as a pretrained Qwen2-VL is.
    """
    from cocoa.train import generative_loss

    items = [it for it in items if it.image is not None and it.text]
    if len(items) < 2:
        raise ValueError("image_reliance needs at least two items with an image and text")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    swapped = [Item(it.text, items[j].image) for it, j in zip(items, order)]
    model.eval()
    true_loss = swapped_loss = 0.0
    for start in range(0, len(items), batch_size):
        true_loss += float(generative_loss(model, items[start : start + batch_size])[0])
        swapped_loss += float(generative_loss(model, swapped[start : start + batch_size])[0])
    return (swapped_loss - true_loss) / max(1, -(-len(items) // batch_size))


@torch.no_grad()
def caption_nll(model: CocoaModel, items: list[Item], batch_size: int = 64) -> torch.Tensor:
    """(N,) summed next-token loss of each item's text and <EOS> given its image: -log p(caption | image)."""
    model.eval()
    out = []
    for start in range(0, len(items), batch_size):
        batch = model.encode_items(items[start : start + batch_size])
        labels = batch.input_ids.clone()
        eos_pos = (batch.n_in - 1).unsqueeze(1)
        keep = batch.text_token | (torch.arange(labels.shape[1])[None] == eos_pos)
        labels[~keep] = IGNORE
        logits = model.logits(model.hidden_states(batch)).float()[:, :-1]
        target = labels[:, 1:].to(logits.device)
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE, reduction="none"
        )
        out.append(nll.view(target.shape).sum(1).cpu())
    return torch.cat(out)


@torch.no_grad()
def caption_ranking(model: CocoaModel, dataset: EvalDataset, batch_size: int = 64) -> float:
    """Share of queries whose gold caption is the unique most likely candidate given the query image.

    The generative model's own caption accuracy on an image -> text dataset (MMEB i2t layout: an image query and
    text-only candidates); the query's text (an embedding instruction) is not used. Chance is 1 / candidates.
    """
    queries = [q for q in dataset.queries if q.query.image is not None]
    if not queries or any(c.image is not None or not c.text for q in queries for c in q.candidates):
        raise ValueError(f"caption_ranking needs image queries with text-only candidates; {dataset.name} has not")
    items = [Item(c.text, q.query.image) for q in queries for c in q.candidates]
    nll = caption_nll(model, items, batch_size)
    hits, pos = 0, 0
    for q in queries:
        scores = nll[pos : pos + len(q.candidates)]
        pos += len(q.candidates)
        best = scores.min()
        hits += int(scores[q.gold] == best and int((scores == best).sum()) == 1)
    return hits / len(queries)


@torch.no_grad()
def reconstruction_probe(model: CocoaModel, items: list[Item], batch_size: int = 64) -> float:
    """Mean next-token loss of the text copy decoded from <EOS> alone (items without text are skipped)."""
    items = [it for it in items if it.text]
    if not items:
        raise ValueError("the reconstruction probe needs items with text")
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(items), batch_size):
        batch = model.encode_items(items[start : start + batch_size], with_copy=True)
        text_loss, _ = copy_losses(model, batch, model.hidden_states(batch))
        n = int(batch.copy_text.sum())
        total += float(text_loss) * n
        count += n
    return total / count
