"""Prefix trie over docID token sequences and constrained beam search that only emits valid docIDs.

The trie stores each docID as its token ids followed by EOS, so a complete docID (even one that is a prefix of a
longer one, as with naive string IDs "1" and "12") allows EOS as its next token. `prefix_allowed_tokens_fn` plugs
the trie into HF `generate`; `constrained_beam_search` is our own exact beam search (sum of token log-probs,
length penalty 0) that returns a deduplicated ranked list even when a node has fewer children than beams — the
case where HF beam search pads the ranking with -inf beams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


class DocIdTrie:
    """Prefix trie of token-id sequences, each terminated by `eos_id`."""

    def __init__(self, sequences: Iterable[Iterable[int]], eos_id: int) -> None:
        self.eos_id = int(eos_id)
        self.root: dict[int, dict] = {}
        self.count = 0
        for seq in sequences:
            self.add(seq)

    def add(self, seq: Iterable[int]) -> None:
        ids = [int(t) for t in seq]
        if not ids:
            raise ValueError("DocIdTrie: empty docID token sequence")
        if self.eos_id in ids:
            raise ValueError(f"DocIdTrie: docID {ids} contains the EOS id {self.eos_id}")
        node = self.root
        for t in ids + [self.eos_id]:
            node = node.setdefault(t, {})
        self.count += 1

    def allowed(self, prefix: Iterable[int]) -> list[int]:
        """Token ids that may follow `prefix` (docID tokens generated so far); [] when the prefix is invalid."""
        node = self.root
        for t in prefix:
            node = node.get(int(t))
            if node is None:
                return []
        return sorted(node)

    def contains(self, seq: Iterable[int]) -> bool:
        """True when `seq` (without EOS) is a complete docID."""
        return self.eos_id in self.allowed(seq)

    def prefix_allowed_tokens_fn(self, decoder_start_id: int) -> Callable[[int, torch.Tensor], list[int]]:
        """For HF `generate(prefix_allowed_tokens_fn=...)` on encoder-decoder models.

        The decoder input starts with `decoder_start_id`; after EOS (a finished beam) only padding follows, and we
        allow EOS again so the beam stays finished.
        """

        def fn(batch_id: int, input_ids: torch.Tensor) -> list[int]:
            ids = input_ids.tolist()
            if ids and ids[0] == decoder_start_id:
                ids = ids[1:]
            if self.eos_id in ids:
                return [self.eos_id]
            allowed = self.allowed(ids)
            return allowed if allowed else [self.eos_id]

        return fn


@torch.no_grad()
def constrained_beam_search(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    trie: DocIdTrie,
    num_beams: int = 10,
    max_steps: int = 16,
) -> list[list[tuple[tuple[int, ...], float]]]:
    """Beam search over the trie for a seq2seq model; per query a ranked list of (docID token ids, log-prob).

    Scores are sums of token log-probs including EOS (length penalty 0). Only sequences present in the trie come out,
    each at most once, best first, up to `num_beams` of them.
    """
    start = model.config.decoder_start_token_id
    enc = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
    n = input_ids.shape[0]
    beams: list[list[tuple[tuple[int, ...], float]]] = [[((), 0.0)] for _ in range(n)]
    finished: list[list[tuple[tuple[int, ...], float]]] = [[] for _ in range(n)]
    for _ in range(max_steps):
        rows = [(q, seq, score) for q in range(n) for seq, score in beams[q]]
        if not rows:
            break
        qidx = torch.tensor([r[0] for r in rows])
        dec = torch.tensor([[start, *r[1]] for r in rows], dtype=torch.long)
        out = model(
            encoder_outputs=(enc.last_hidden_state[qidx],),
            attention_mask=attention_mask[qidx],
            decoder_input_ids=dec,
        )
        logp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        cands: list[list[tuple[tuple[int, ...], float]]] = [[] for _ in range(n)]
        for i, (q, seq, score) in enumerate(rows):
            for t in trie.allowed(seq):
                cands[q].append((seq + (t,), score + float(logp[i, t])))
        for q in range(n):
            cands[q].sort(key=lambda c: -c[1])
            beams[q] = []
            for seq, score in cands[q][:num_beams]:
                if seq[-1] == trie.eos_id:
                    finished[q].append((seq[:-1], score))
                else:
                    beams[q].append((seq, score))
            finished[q].sort(key=lambda c: -c[1])
            finished[q] = finished[q][:num_beams]
            # stop expanding once no live beam can beat the worst kept result (log-probs only decrease)
            if len(finished[q]) >= num_beams:
                worst = finished[q][-1][1]
                beams[q] = [b for b in beams[q] if b[1] > worst]
    return finished
