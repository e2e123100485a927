"""The Agentic-R loop as resumable stages over one output folder.

Layout of `out/`:
  data/{corpus,train,test}.jsonl            the run's corpus and questions
  cache/states_top{n}.pt                    frozen-layer states per text (see encoder.py)
  base/index/                               faiss index of the base encoder
  data/agent_train.jsonl                    oracle-trace questions of the trainable agent (agent.kind = tiny)
  round{r}/agent/{init,sft,rl,model}/        round r's tiny agent: fresh init, SFT, GRPO checkpoints, final model
  round{r}/rollouts.jsonl                   agent rollouts with the current retriever (every search turn)
  round{r}/candidates.jsonl                 top-k for `question [SEP] sub-query` per search turn
  round{r}/subanswers.jsonl, local.jsonl, labelled.jsonl, groups.jsonl
  round{r}/retriever/{encoder,index}/       the trained retriever (re-initialised from the base encoder each round)
  round{r}/stats.json                       what each stage kept and dropped
  eval/{base,round0,...}.json               sub-query recall and agent EM/F1 on held-out questions
  */.stages/<stage>.json                    the stamp of each finished stage (shared.stages)

Every step is a `shared.stages` file stage: its stamp holds the config sections it reads and the keys of the stages
it reads from, and is written only after all its files exist. A rerun skips every stamped stage, so a killed run
resumes at the first unfinished one; a stage whose files are gone (or half written, without a stamp) is rebuilt
together with the stages that read it. The CLI claims the run folder for one config (`claim_run_dir`).

With `agent.kind = tiny` every round starts by training its own agent against the round's retriever (retriever_{r-1},
the base encoder for r = 0): a fresh tiny Qwen2, SFT on oracle traces observed through that retriever, then GRPO
(EM reward) with rollouts through it (`tiny_agent.py`). That agent then mines the round's data and plays the
continuations of global utility; evaluation runs the last round's agent with every retriever.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path

from shared.atomic import save_pretrained, write_json
from shared.cli import write_metrics
from shared.eval import qa_metrics, retrieval_metrics
from shared.retrieval import DenseIndex, Retriever, SearchClient, SearchServer
from shared.stages import Stage, StageContext, StageResult, StageRunner

from agentic_r.agents import GeneratorAgent, KBReaderAgent, ServiceSearch, play
from agentic_r.config import AgenticRConfig, ModelSettings
from agentic_r.data import (
    agent_train_questions,
    build_kb_data,
    read_jsonl,
    read_questions,
    subquery_eval_set,
    training_pairs,
    unseen_subqueries,
    write_jsonl,
)
from agentic_r.encoder import LayerCachedEncoder, StateCache, load_encoder
from agentic_r.judge import LexicalJudge, LLMListwiseJudge
from agentic_r.labels import (
    LLMSubAnswers,
    ReaderSubAnswers,
    label_global,
    label_local,
    make_groups,
    mine_candidates,
    write_sub_answers,
)
from agentic_r.tiny_agent import (
    TINY_PROMPT,
    TinyLLMAgent,
    build_tiny_agent,
    oracle_examples,
    rl_train,
    sft,
)
from agentic_r.train import build_index, train_retriever


def _completer(settings: ModelSettings, role: str):
    """A text completer (prompt -> reply) for an LLM role: an endpoint or a local HF model."""
    if settings.kind == "endpoint":
        from shared.rewards import JudgeClient

        if not settings.base_url or not settings.model:
            raise ValueError(f"{role}: kind 'endpoint' needs base_url and model")
        client = JudgeClient(settings.base_url, settings.model, api_key=os.environ.get(settings.api_key_env),
                             max_tokens=settings.max_new_tokens)  # fmt: skip
        return lambda prompt: client.complete([{"role": "user", "content": prompt}])
    if settings.kind == "hf":
        from shared.generation import SamplingParams

        generator = _hf_generator(settings, role)
        params = SamplingParams(max_new_tokens=settings.max_new_tokens, temperature=0.0)
        return lambda prompt: generator.generate([prompt], params)[0][0].text
    raise ValueError(f"{role}: unknown kind {settings.kind!r}")


def _hf_generator(settings: ModelSettings, role: str):
    from shared.generation import HFGenerator
    from shared.modeling import load_model

    if not settings.path:
        raise ValueError(f"{role}: kind 'hf' needs path (a model folder)")
    model, tokenizer = load_model(settings.path, kind="causal")
    return HFGenerator(model, tokenizer)


TINY_AGENT_NAME = "tiny-qwen2-agent (SFT on oracle traces + GRPO, retrained each round with its retriever)"


class Pipeline:
    """One Agentic-R run (see module docstring); stages are methods, each resumable from its files."""

    def __init__(self, cfg: AgenticRConfig, out: str | os.PathLike, progress: bool = True) -> None:
        self.cfg, self.out, self.progress = cfg, Path(out), progress
        self.runner = StageRunner(self.out)
        self.results: dict[str, StageResult] = {}
        self._prepare_data()
        self.corpus_docs = read_jsonl(self.out / "data/corpus.jsonl", required=("id", "contents"))
        self.corpus = {str(d["id"]): d["contents"] for d in self.corpus_docs}
        self.train_q = read_questions(self.out / "data/train.jsonl")
        self.test_q = read_questions(self.out / "data/test.jsonl")
        self.cache: StateCache | None = None
        self._agent = None
        self._agents: dict[int, TinyLLMAgent] = {}
        self._judge = None
        self._writer = None

    # ---- stages -----------------------------------------------------------------------------------------------
    def _settings(self, *names: str, **extra) -> dict:
        """The config sections a stage reads (its stamp), plus stage-specific values."""
        out = {}
        for name in names:
            value = getattr(self.cfg, name)
            out[name] = asdict(value) if is_dataclass(value) else value
        return {**out, **extra}

    def _stage(self, name: str, folder: str, outputs: Sequence[str], settings: dict, parents: Sequence[str],
               build: Callable[[StageContext], None]) -> StageResult:
        """Run (or reuse) one file stage of this run folder; parents must have run in this process first."""
        if name not in self.results:

            def run(ctx: StageContext) -> None:  # the pipeline's builds only write files: no stamp fields
                build(ctx)

            stage = Stage(name, run, settings, tuple(parents), tuple(outputs), folder)
            self.results[name] = self.runner.run(stage, {p: self.results[p] for p in parents})
        return self.results[name]

    def _retriever_stage(self, r: int) -> str:
        """The stage holding retriever_r (r = -1: the base index), made sure of; a later round's retriever is
        never trained implicitly."""
        if r < 0:
            return self._base_index()
        if not (self.out / f"round{r}/.stages/round{r}.retriever.json").exists():
            raise FileNotFoundError(f"{self.out / f'round{r}/retriever'}/encoder missing: run "
                                    f"`agentic-r train-retriever --round {r}`")
        self.train_retriever(r)  # reused: the chain's stamps are checked, nothing is rebuilt unless stale
        return f"round{r}.retriever"

    # ---- data, models, services -------------------------------------------------------------------------------
    def _prepare_data(self) -> None:
        folder = self.out / "data"

        def build(ctx: StageContext) -> None:
            data = build_kb_data(self.cfg.data, self.cfg.seed)
            write_jsonl(folder / "corpus.jsonl", data["corpus"])
            write_jsonl(folder / "train.jsonl", data["train"])
            write_jsonl(folder / "test.jsonl", data["test"])

        self._stage("data", "data", ["corpus.jsonl", "train.jsonl", "test.jsonl"], self._settings("data", "seed"), [],
                    build)

    def _base_index(self) -> str:
        def build(ctx: StageContext) -> None:
            build_index(self.encoder(), self.corpus_docs, self.out / "base/index")
            self.save_cache()

        self._stage("base.index", "base", ["index/index.faiss", "index/index_meta.json"], self._settings("retriever"),
                    ["data"], build)
        return "base.index"

    def _train_layers(self) -> int | str:
        value = self.cfg.retriever.train_layers
        return "all" if value == "all" else int(value)

    def encoder(self, path: str | os.PathLike | None = None) -> LayerCachedEncoder:
        """The base encoder (path None) or a trained one; all share the frozen-layer state cache."""
        r = self.cfg.retriever
        source = path if path is not None else (r.base_model or None)
        layers = self._train_layers()
        cache_file = self.out / f"cache/states_top{layers}.pt"  # one cache per frozen/trained split
        enc = load_encoder(source, layers, self.cache, cache_file, r.query_prefix,
                           r.passage_prefix, r.max_length, r.batch_size)  # fmt: skip
        if self.cache is None:  # later encoders get this cache and refuse it if their frozen layers differ
            self.cache = enc.cache
        return enc

    def save_cache(self) -> None:
        if self.cache is not None:
            self.cache.save()

    def index(self, encoder: LayerCachedEncoder, folder: Path) -> DenseIndex:
        """The faiss index in `folder` (built by its stage)."""
        return DenseIndex.load(folder, use_gpu=False)

    @contextmanager
    def service(self, encoder: LayerCachedEncoder, index: DenseIndex) -> Iterator[SearchClient]:
        """The retriever behind the shared Search-R1 service on a loopback port."""
        retriever = Retriever(encoder, self.corpus_docs, index=index)
        with SearchServer(retriever, default_topk=self.cfg.label.agent_topk) as server:
            yield SearchClient(server.url, timeout=600.0)

    def retriever_of(self, round_index: int) -> tuple[LayerCachedEncoder, DenseIndex, str]:
        """(encoder, index, name) of retriever_{round_index}; -1 is the base encoder."""
        self._retriever_stage(round_index)
        if round_index < 0:
            enc = self.encoder()
            return enc, self.index(enc, self.out / "base/index"), "base"
        folder = self.out / f"round{round_index}/retriever"
        enc = self.encoder(folder / "encoder")
        return enc, self.index(enc, folder / "index"), f"round{round_index}"

    def _save_model(self, model, tokenizer, folder: Path) -> None:
        """save_pretrained into a temporary folder, then rename: a killed run never leaves half a model."""
        save_pretrained(folder, model, tokenizer)

    def agent_train_q(self) -> list[dict]:
        path = self.out / "data/agent_train.jsonl"
        self._stage("agent_train", "data", ["agent_train.jsonl"], self._settings("data", "seed"), ["data"],
                    lambda ctx: write_jsonl(path, agent_train_questions(self.cfg.data, self.cfg.seed, self.train_q)))
        return read_questions(path)

    def train_agent(self, r: int) -> None:
        """Round r's tiny agent (agent.kind = tiny): fresh init, SFT on oracle traces, GRPO, all with retriever_{r-1}.

        Nothing to do for the deterministic reader (no weights) or an `hf` agent (trained elsewhere)."""
        if self.cfg.agent.kind != "tiny":
            return
        retriever = self._retriever_stage(r - 1)
        self.agent_train_q()
        settings = self._settings("tiny_agent", "seed", agent_topk=self.cfg.label.agent_topk,
                                  with_question=self._with_question(r), round=r)
        self._stage(f"round{r}.agent", f"round{r}", ["agent/model/config.json"], settings, ["agent_train", retriever],
                    lambda ctx: self._train_agent(r, ctx))

    def _train_agent(self, r: int, ctx: StageContext) -> None:
        """The agent stage's build. Inside it, the SFT model (marked done in the stage's work folder, which belongs to
        this stage key) and the GRPO checkpoints are resume points: a killed stage restarts at GRPO when SFT had
        finished."""
        from shared.modeling import load_model

        folder = self.out / f"round{r}/agent"
        sft_done = ctx.work / "sft.done"
        settings, lab, seed = self.cfg.tiny_agent, self.cfg.label, self.cfg.seed + r
        questions = self.agent_train_q()
        encoder, index, name = self.retriever_of(r - 1)
        with self.service(encoder, index) as client:
            search = ServiceSearch(client, with_question=self._with_question(r))
            if not (sft_done.exists() and (folder / "sft/config.json").exists()):
                texts = [d["contents"] for d in self.corpus_docs] + [TINY_PROMPT.format(question=q["question"])
                                                                     for q in questions]
                texts += [s["question"] for q in questions for s in q.get("sub_questions", [])]
                model, tok = build_tiny_agent(texts, settings, folder / "init", self.cfg.seed)
                stats: Counter = Counter()
                examples = oracle_examples(tok, questions, search, lab.agent_topk, stats)
                losses = sft(model, tok, examples, settings, seed, self.progress)
                self._save_model(model, tok, folder / "sft")
                k = max(1, len(losses) // 10)
                self._stats(r, "agent_sft", {**stats, "retriever": name, "steps": len(losses),
                                             "loss_first": sum(losses[:k]) / k, "loss_last": sum(losses[-k:]) / k})
                sft_done.write_text("")
            model, tok = load_model(str(folder / "sft"), kind="causal", dtype="float32", device="cpu")
            history = rl_train(model, tok, questions, search, settings, lab.agent_topk, folder / "rl", seed,
                               self.progress)
            self._save_model(model, tok, folder / "model")
        k = max(1, len(history) // 4)
        rewards = [h["reward"] for h in history]
        self._stats(r, "agent_rl", {"retriever": name, "steps": len(history),
                                    "reward_first": sum(rewards[:k]) / k if rewards else 0.0,
                                    "reward_last": sum(rewards[-k:]) / k if rewards else 0.0})
        self.save_cache()

    def agent_of(self, r: int):
        """The agent that mines round r (for the tiny agent: round r's trained model)."""
        if self.cfg.agent.kind != "tiny":
            return self.agent()
        if r not in self._agents:
            from shared.modeling import load_model

            self.train_agent(r)
            model, tok = load_model(str(self.out / f"round{r}/agent/model"), kind="causal", dtype="float32",
                                    device="cpu")
            retriever = "base retriever" if r == 0 else f"retriever_{r - 1}"
            self._agents[r] = TinyLLMAgent(model, tok, f"tiny-qwen2-agent round {r} (SFT + GRPO with {retriever})",
                                           max_new_tokens=self.cfg.tiny_agent.max_new_tokens)
        return self._agents[r]

    def agent(self):
        if self.cfg.agent.kind == "tiny":
            return self.agent_of(self.cfg.rounds - 1)  # evaluation: the last round's agent
        if self._agent is None:
            a = self.cfg.agent
            if a.kind == "reader":
                self._agent = KBReaderAgent()
            elif a.kind == "hf":
                self._agent = GeneratorAgent(_hf_generator(a, "agent"), name=f"hf-agent:{a.path}",
                                             max_new_tokens=a.max_new_tokens)  # fmt: skip
            else:
                raise ValueError(f"agent: unknown kind {a.kind!r} (reader | tiny | hf)")
        return self._agent

    def judge(self):
        if self._judge is None:
            j = self.cfg.judge
            self._judge = LexicalJudge() if j.kind == "lexical" else LLMListwiseJudge(_completer(j, "judge"))
        return self._judge

    def sub_answer_writer(self):
        if self._writer is None:
            s = self.cfg.sub_answers
            self._writer = ReaderSubAnswers() if s.kind == "reader" else LLMSubAnswers(_completer(s, "sub_answers"))
        return self._writer

    def names(self) -> dict:
        """The models that produced the labels and the agent metrics, for results and logs."""
        agent = TINY_AGENT_NAME if self.cfg.agent.kind == "tiny" else self.agent().name
        return {"agent": agent, "judge": self.judge().name, "sub_answers": self.sub_answer_writer().name}

    # ---- stages -----------------------------------------------------------------------------------------------
    def _stats(self, r: int, stage: str, counts: Counter | dict) -> None:
        path = self.out / f"round{r}/stats.json"
        stats = json.loads(path.read_text()) if path.exists() else {}
        stats[stage] = dict(counts)
        write_json(path, stats)

    def _with_question(self, r: int) -> bool:
        flags = self.cfg.label.rollout_with_question
        return bool(flags[min(r, len(flags) - 1)]) if flags else True

    def _agent_stages(self, r: int) -> list[str]:
        """The stage of round r's trained agent, when the agent has weights."""
        if self.cfg.agent.kind != "tiny":
            return []
        self.train_agent(r)
        return [f"round{r}.agent"]

    def mine(self, r: int) -> None:
        """Rollouts with retriever_{r-1} (base for r = 0) and top-k candidates per search turn."""
        folder = self.out / f"round{r}"
        lab = self.cfg.label
        retriever = self._retriever_stage(r - 1)
        parents = ["data", retriever, *self._agent_stages(r)]

        def rollouts(ctx: StageContext) -> None:
            agent = self.agent_of(r)
            encoder, index, _ = self.retriever_of(r - 1)
            with self.service(encoder, index) as client:
                search = ServiceSearch(client, with_question=self._with_question(r))
                rows = play(agent, self.train_q, search, lab.agent_topk, lab.max_searches)
            write_jsonl(folder / "rollouts.jsonl", rows)
            em = qa_metrics([x["answer"] for x in rows], [x["golden_answers"] for x in rows])["em"]
            self._stats(r, "rollouts", {"questions": len(rows), "em": em})
            self.save_cache()

        def candidates(ctx: StageContext) -> None:
            rows = read_jsonl(folder / "rollouts.jsonl", required=("id", "question", "turns"))
            encoder, index, _ = self.retriever_of(r - 1)
            stats: Counter = Counter()
            with self.service(encoder, index) as client:
                found = mine_candidates(rows, ServiceSearch(client, with_question=True), lab.candidates_k, stats)
            write_jsonl(folder / "candidates.jsonl", found)
            self._stats(r, "mine", stats)
            self.save_cache()

        settings = self._settings("agent", "label", with_question=self._with_question(r), round=r)
        self._stage(f"round{r}.rollouts", f"round{r}", ["rollouts.jsonl"], settings, parents, rollouts)
        self._stage(f"round{r}.candidates", f"round{r}", ["candidates.jsonl"], self._settings("label", round=r),
                    [f"round{r}.rollouts", retriever], candidates)

    def label(self, r: int) -> None:
        """Sub-answers, local utility (judge), global utility (agent continuation) and training groups."""
        folder = self.out / f"round{r}"
        self.mine(r)
        lab = self.cfg.label
        retriever = self._retriever_stage(r - 1)

        def rollouts() -> list[dict]:
            return read_jsonl(folder / "rollouts.jsonl", required=("id", "question", "turns", "text"))

        def local(ctx: StageContext) -> None:
            candidates = read_jsonl(folder / "candidates.jsonl", required=("rollout_id", "turn", "doc_ids", "query"))
            stats: Counter = Counter()
            subs = write_sub_answers(rollouts(), self.sub_answer_writer(), stats)
            write_jsonl(folder / "subanswers.jsonl", [{"id": k, "sub_answers": v} for k, v in subs.items()])
            write_jsonl(folder / "local.jsonl", label_local(candidates, subs, self.corpus, self.judge(), stats))
            self._stats(r, "label_local", stats)

        def labelled(ctx: StageContext) -> None:
            rows = read_jsonl(folder / "local.jsonl", required=("rollout_id", "turn", "doc_ids", "u_loc"))
            agent = self.agent_of(r)
            encoder, index, _ = self.retriever_of(r - 1)
            stats: Counter = Counter()
            with self.service(encoder, index) as client:
                search = ServiceSearch(client, with_question=self._with_question(r))
                out = label_global(rows, {x["id"]: x for x in rollouts()}, self.corpus, agent, search,
                                   lab.min_local, lab.agent_topk, lab.max_searches, stats)  # fmt: skip
            write_jsonl(folder / "labelled.jsonl", out)
            self._stats(r, "label_global", stats)
            self.save_cache()

        def groups(ctx: StageContext) -> None:
            rows = read_jsonl(folder / "labelled.jsonl", required=("doc_ids", "u_loc", "u_glob", "retriever_query"))
            path = folder / "stats.json"
            saved = json.loads(path.read_text()) if path.exists() else {}
            stats: Counter = Counter()
            for part in ("label_local", "label_global"):  # one "label" section, as before the stages split it
                stats.update(saved.pop(part, {}))
            made = make_groups(rows, self.cfg.seed + r, lab.min_local, lab.num_negatives, lab.max_positives, stats)
            write_jsonl(folder / "groups.jsonl", made)
            saved["label"] = {**stats, **self.names(), "agent": self.agent_of(r).name}
            write_json(path, saved)

        self._stage(f"round{r}.local", f"round{r}", ["subanswers.jsonl", "local.jsonl"],
                    self._settings("judge", "sub_answers", "label", round=r), [f"round{r}.candidates"], local)
        self._stage(f"round{r}.labelled", f"round{r}", ["labelled.jsonl"],
                    self._settings("label", with_question=self._with_question(r), round=r),
                    [f"round{r}.local", retriever, *self._agent_stages(r)], labelled)
        self._stage(f"round{r}.groups", f"round{r}", ["groups.jsonl"], self._settings("label", "seed", round=r),
                    [f"round{r}.labelled"], groups)

    def train_retriever(self, r: int) -> None:
        """Train retriever_r from the base encoder on round r's groups; save it and its faiss index."""
        folder = self.out / f"round{r}/retriever"
        self.label(r)

        def build(ctx: StageContext) -> None:
            groups = read_jsonl(self.out / f"round{r}/groups.jsonl", required=("query", "positives", "negatives"))
            encoder = self.encoder()  # re-initialised from the base encoder every round
            stats = train_retriever(encoder, groups, self.corpus, self.cfg.train, self.cfg.seed + r, self.progress)
            write_metrics([{"train/loss": loss} for loss in stats.pop("losses")], folder)  # the training curve
            encoder.save(folder / "encoder")
            self.save_cache()
            build_index(encoder, self.corpus_docs, folder / "index")
            self.save_cache()
            self._stats(r, "train", stats)

        self._stage(f"round{r}.retriever", f"round{r}",
                    ["retriever/encoder/text_encoder.json", "retriever/index/index.faiss",
                     "retriever/index/index_meta.json"],
                    self._settings("retriever", "train", "seed", round=r), [f"round{r}.groups"], build)

    def iterate(self) -> None:
        for r in range(self.cfg.rounds):
            self.train_retriever(r)

    def _finished_groups(self) -> list[int]:
        """Rounds whose training groups are stamped (each made sure of, so it can be a parent stage)."""
        done = [r for r in range(self.cfg.rounds) if (self.out / f"round{r}/.stages/round{r}.groups.json").exists()]
        for r in done:
            self.label(r)  # reused: the chain's stamps are checked, nothing is rebuilt unless stale
        return done

    def training_pairs(self, rounds: Sequence[int] | None = None) -> set[tuple[str, str]]:
        """(sub-query, passage) pairs of the training questions (the agent's too) and of the groups of `rounds`
        (default: every round whose groups file exists)."""
        questions = self.train_q + (self.agent_train_q() if self.cfg.agent.kind == "tiny" else [])
        rounds = [r for r in range(self.cfg.rounds) if (self.out / f"round{r}/groups.jsonl").exists()] \
            if rounds is None else rounds
        groups = [g for r in rounds
                  for g in read_jsonl(self.out / f"round{r}/groups.jsonl", required=("query", "positives"))]
        return training_pairs(questions, groups)

    def evaluate(self, round_index: int) -> dict:
        """Held-out sub-query Recall@5/20 (all, and on the (sub-query, passage) pairs that no training question or
        training group of a finished round holds) and agent EM/F1 of retriever_{round_index} (-1: base)."""
        retriever = self._retriever_stage(round_index)
        name = "base" if round_index < 0 else f"round{round_index}"
        path = self.out / f"eval/{name}.json"
        agent_stages = self._agent_stages(self.cfg.rounds - 1)  # evaluation runs the last round's agent
        trained = self._finished_groups()  # the unseen pairs leave out every finished round's groups

        def build(ctx: StageContext) -> None:
            encoder, index, _ = self.retriever_of(round_index)
            qids, queries, qrels = subquery_eval_set(self.test_q)
            hits = Retriever(encoder, self.corpus_docs, index=index).retrieve(queries, topk=20)
            run = {qid: {str(h["id"]): h["score"] for h in row} for qid, row in zip(qids, hits)}
            rec = retrieval_metrics(run, qrels, ks=(5, 20))
            unseen = unseen_subqueries(self.test_q, self.training_pairs(trained))
            rec_unseen = retrieval_metrics({q: run[q] for q in unseen}, {q: qrels[q] for q in unseen}, ks=(5, 20)) \
                if unseen else {}
            lab = self.cfg.label
            with self.service(encoder, index) as client:
                search = ServiceSearch(client, with_question=self.cfg.eval_with_question)
                rollouts = play(self.agent(), self.test_q, search, lab.agent_topk, lab.max_searches)
            qa = qa_metrics([x["answer"] for x in rollouts], [x["golden_answers"] for x in rollouts])
            metrics = {
                "recall@5_subquery": rec["recall@5"],
                "recall@20_subquery": rec["recall@20"],
                "recall@5_subquery_unseen": rec_unseen.get("recall@5"),
                "recall@20_subquery_unseen": rec_unseen.get("recall@20"),
                "unseen_subquery_share": len(unseen) / max(len(qids), 1),
                "agent_em": qa["em"],
                "agent_f1": qa["f1"],
            }
            write_jsonl(self.out / f"eval/{name}_rollouts.jsonl", rollouts)
            write_json(path, metrics)
            self.save_cache()

        self._stage(f"eval.{name}", "eval", [f"{name}.json", f"{name}_rollouts.jsonl"],
                    self._settings("label", "eval_with_question", "agent"), ["data", retriever, *agent_stages, *(f"round{r}.groups" for r in trained)], build)
        return json.loads(path.read_text())
