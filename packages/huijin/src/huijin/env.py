"""The agentic stage's tool environment: the core's `ToolEnv` with schema-checked finance tools.

Tools (each checked against its JSON schema by `shared.rollout.tool_schema.checked_tool`, so a malformed call is an
`error: ...` tool response, never a crash): `add`, `subtract`, `multiply` (benchmarks' tool library), `calculate`
(the AST-safe calculator), `table_lookup(company, metric, year)` (the library's `table_lookup` on the company's
table), `search_filings(query)` (BM25 over the filings of the questions' split: top 3 documents). `<python>` code
runs only in `shared.sandbox` (ToolEnv's own handling). All callables are our own trusted code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from shared.rollout.envs import Action, ToolEnv
from shared.rollout.tool_schema import checked_tool

KNOWN_TOOLS = ("add", "subtract", "multiply", "calculate", "table_lookup", "search_filings", "python")


def tool_schemas(metrics: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """name -> bare schema {name, description, parameters} of every JSON tool."""
    from benchmarks.synthetic.tool_library import FINANCE_SCHEMAS, SCHEMAS

    out = {n: {"name": n, **SCHEMAS[n]} for n in ("add", "subtract", "multiply")}
    out["calculate"] = {"name": "calculate", **FINANCE_SCHEMAS["calculate"]}
    out["table_lookup"] = {"name": "table_lookup", "description": "A company's reported metric in one year.",
                           "parameters": {"type": "object", "properties": {
                               "company": {"type": "string"}, "metric": {"type": "string", "enum": list(metrics)},
                               "year": {"type": "integer"}}, "required": ["company", "metric", "year"]}}
    out["search_filings"] = {"name": "search_filings", "description": "Search the annual-report filings.",
                             "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                                            "required": ["query"]}}
    return out


@lru_cache(maxsize=4)
def _filings_retriever(suite_seed: int, n_companies: int, split: str) -> Any:
    from shared.retrieval import Retriever

    from huijin.data import finance_suite

    docs = [{"id": d["id"], "contents": d["contents"]} for d in finance_suite(suite_seed, n_companies).filings(split)]
    return Retriever("bm25", docs)


def make_tools(names: list[str], suite_seed: int, n_companies: int, split: str) -> dict[str, Callable[..., Any]]:
    """Checked callables for the named JSON tools (`python` is ToolEnv's own tag, not a callable)."""
    from benchmarks.synthetic.finance import LARGE_METRICS, SMALL_METRICS
    from benchmarks.synthetic.tool_library import FINANCE_FUNCTIONS, FUNCTIONS

    from huijin.data import finance_suite

    unknown = [n for n in names if n not in KNOWN_TOOLS]
    if unknown:
        raise ValueError(f"unknown tools {unknown}; known: {list(KNOWN_TOOLS)}")
    schemas = tool_schemas(SMALL_METRICS + LARGE_METRICS)
    fin = finance_suite(suite_seed, n_companies)

    def lookup(args: dict[str, Any]) -> str:
        return FINANCE_FUNCTIONS["table_lookup"](fin.company(args["company"]).grid(), args["metric"],
                                                 str(args["year"]))

    def search(args: dict[str, Any]) -> str:
        hits = _filings_retriever(suite_seed, n_companies, split).retrieve([args["query"]], topk=3)[0]
        return "\n".join(h["contents"] for h in hits)

    runs: dict[str, Callable[[dict[str, Any]], Any]] = {
        "add": lambda a: FUNCTIONS["add"](**a), "subtract": lambda a: FUNCTIONS["subtract"](**a),
        "multiply": lambda a: FUNCTIONS["multiply"](**a), "calculate": lambda a: FINANCE_FUNCTIONS["calculate"](**a),
        "table_lookup": lookup, "search_filings": search,
    }  # fmt: skip
    return {n: checked_tool(schemas[n], runs[n]) for n in names if n != "python"}


def make_env_factory(agent: Any, suite_seed: int, n_companies: int, split: str = "train"
                     ) -> Callable[[Mapping[str, Any]], ToolEnv]:
    """env_factory for `shared.rollout.AgentLoop`: a fresh ToolEnv per episode (the tools are built once)."""
    tools = make_tools(list(agent.tools), suite_seed, n_companies, split)

    def factory(record: Mapping[str, Any]) -> ToolEnv:
        return ToolEnv(tools, timeout_s=agent.timeout_s, memory_mb=agent.memory_mb, max_response_chars=400)

    return factory


def observe_call(factory: Callable[[Mapping[str, Any]], ToolEnv]) -> Callable[[Mapping[str, Any], Mapping[str, Any]],
                                                                               str]:
    """`observe(record, call)`: the tool response text the environment gives for a well-formed call."""
    from benchmarks.synthetic.finance import call_text

    def observe(record: Mapping[str, Any], call: Mapping[str, Any]) -> str:
        env = factory(record)
        env.reset(record)
        return env.step(Action("tool_call", "", call_text(call["name"], call["arguments"]))).observation

    return observe
