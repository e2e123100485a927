"""The executable tools of the synthetic tool suite: pure, self-contained Python functions.

Each function keeps its tables inside its own body so that its source (`inspect.getsource`) runs on its own in
`shared.sandbox.call_function`; in-process calls are safe because this is our own trusted code. The JSON schemas
handed to a policy live next to the functions in `SCHEMAS`.

The finance tools: `calculate(expression)` evaluates arithmetic by walking the parsed syntax tree (numbers,
+ - * / **, unary signs, parentheses; anything else - names, calls, attributes - is refused, so it never runs
code), and `table_lookup(table, row, column)` reads one cell of a table given as rows of cells (header row first,
row labels in the first column). Environments usually bind the table (see `benchmarks.synthetic.finance`).
"""

from __future__ import annotations

CITIES = (
    "Avalon", "Brightwater", "Cedarport", "Dunmore", "Eastvale", "Fairhaven", "Glenrock", "Harborview",
    "Ironwood", "Juniper", "Kingsbridge", "Lakeside", "Millbrook", "Northgate", "Oakridge", "Pinecrest",
)  # fmt: skip
UNITS = ("km", "mi", "kg", "lb", "C", "F")


def add(a: float, b: float) -> float:
    """Sum of two numbers."""
    return a + b


def subtract(a: float, b: float) -> float:
    """a minus b."""
    return a - b


def multiply(a: float, b: float) -> float:
    """Product of two numbers."""
    return a * b


def lookup_population(city: str) -> int:
    """Population of a city from a fixed table; unknown cities raise ValueError."""
    table = {
        "Avalon": 52000, "Brightwater": 18300, "Cedarport": 94100, "Dunmore": 7600, "Eastvale": 33800,
        "Fairhaven": 61200, "Glenrock": 12900, "Harborview": 88400, "Ironwood": 4100, "Juniper": 27500,
        "Kingsbridge": 70300, "Lakeside": 15600, "Millbrook": 9800, "Northgate": 45200, "Oakridge": 21700,
        "Pinecrest": 38900,
    }  # fmt: skip
    if city not in table:
        raise ValueError(f"unknown city: {city}")
    return table[city]


def get_temperature(city: str) -> int:
    """Today's temperature in degrees Celsius from a fixed table; unknown cities raise ValueError."""
    table = {
        "Avalon": 21, "Brightwater": 14, "Cedarport": 25, "Dunmore": 8, "Eastvale": 17, "Fairhaven": 30,
        "Glenrock": 5, "Harborview": 19, "Ironwood": 11, "Juniper": 27, "Kingsbridge": 15, "Lakeside": 23,
        "Millbrook": 9, "Northgate": 12, "Oakridge": 26, "Pinecrest": 3,
    }  # fmt: skip
    if city not in table:
        raise ValueError(f"unknown city: {city}")
    return table[city]


def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """Convert between km/mi, kg/lb and C/F, rounded to 2 decimals."""
    linear = {("km", "mi"): 0.621371, ("mi", "km"): 1.609344, ("kg", "lb"): 2.204623, ("lb", "kg"): 0.453592}
    if (from_unit, to_unit) in linear:
        return round(value * linear[(from_unit, to_unit)], 2)
    if (from_unit, to_unit) == ("C", "F"):
        return round(value * 9 / 5 + 32, 2)
    if (from_unit, to_unit) == ("F", "C"):
        return round((value - 32) * 5 / 9, 2)
    raise ValueError(f"cannot convert {from_unit} to {to_unit}")


def calculate(expression: str) -> float:
    """Value of an arithmetic expression: numbers, + - * / ** and parentheses only (a safe tree walk, never eval).
    Integral results come back as int; a bad expression raises ValueError saying what was refused."""
    import ast
    import math

    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("calculate needs a non-empty expression string")
    if len(expression) > 200:
        raise ValueError(f"expression too long ({len(expression)} chars > 200)")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Pow):
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                if right == 0:
                    raise ValueError("division by zero")
                return left / right
            if abs(right) > 10 or abs(left) > 1e6:  # keeps 9**9**9 from hanging the process
                raise ValueError("power too large (base up to 1e6, exponent up to 10)")
            return left**right
        raise ValueError(f"unsupported element {type(node).__name__} in {expression!r}: only numbers, + - * / ** "
                         f"and parentheses")

    value = walk(tree)
    if isinstance(value, complex) or not math.isfinite(value):
        raise ValueError(f"{expression!r} has no finite real value")
    value = round(float(value), 10)
    return int(value) if value.is_integer() else value


def table_lookup(table: list, row: str, column: str) -> str:
    """The cell of `table` (rows of cells, header row first, row labels in the first column) at the row whose label
    is `row` and the column whose header is `column` (both compared without case and outer spaces)."""
    if not isinstance(table, list) or len(table) < 2 or not all(isinstance(r, list) and r for r in table):
        raise ValueError("table must be a list of at least two non-empty rows (header row first)")
    width = len(table[0])
    if any(len(r) != width for r in table):
        raise ValueError("table rows have different lengths")

    def norm(text) -> str:
        return " ".join(str(text).split()).lower()

    headers = [norm(h) for h in table[0]]
    labels = [norm(r[0]) for r in table[1:]]
    if norm(column) not in headers[1:]:
        raise ValueError(f"unknown column {column!r}; columns: {[str(h) for h in table[0][1:]]}")
    if norm(row) not in labels:
        raise ValueError(f"unknown row {row!r}; rows: {[str(r[0]) for r in table[1:]]}")
    return str(table[1 + labels.index(norm(row))][1 + headers[1:].index(norm(column))])


FUNCTIONS = {f.__name__: f for f in (add, subtract, multiply, lookup_population, get_temperature, convert_units)}
# the finance tools are kept apart, so the tool suite's prompts (which list every tool of SCHEMAS) stay as they were
FINANCE_FUNCTIONS = {f.__name__: f for f in (calculate, table_lookup)}

_NUM = {"type": "number"}
SCHEMAS: dict[str, dict] = {
    "add": {
        "description": "Add two numbers.",
        "parameters": {"type": "object", "properties": {"a": _NUM, "b": _NUM}, "required": ["a", "b"]},
    },
    "subtract": {
        "description": "Subtract b from a.",
        "parameters": {"type": "object", "properties": {"a": _NUM, "b": _NUM}, "required": ["a", "b"]},
    },
    "multiply": {
        "description": "Multiply two numbers.",
        "parameters": {"type": "object", "properties": {"a": _NUM, "b": _NUM}, "required": ["a", "b"]},
    },
    "lookup_population": {
        "description": "Look up the population of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": list(CITIES)}},
            "required": ["city"],
        },
    },
    "get_temperature": {
        "description": "Get today's temperature of a city in degrees Celsius.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": list(CITIES)}},
            "required": ["city"],
        },
    },
    "convert_units": {
        "description": "Convert a value between units (km/mi, kg/lb, C/F).",
        "parameters": {
            "type": "object",
            "properties": {
                "value": _NUM,
                "from_unit": {"type": "string", "enum": list(UNITS)},
                "to_unit": {"type": "string", "enum": list(UNITS)},
            },
            "required": ["value", "from_unit", "to_unit"],
        },
    },
}
FINANCE_SCHEMAS: dict[str, dict] = {
    "calculate": {
        "description": "Evaluate an arithmetic expression with numbers, + - * / ** and parentheses.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. (437 - 289) / 289"}},
            "required": ["expression"],
        },
    },
    "table_lookup": {
        "description": "Read one cell of a table: the row with label `row`, the column with header `column`.",
        "parameters": {
            "type": "object",
            "properties": {
                "table": {"type": "array", "description": "rows of cells, header row first, labels in column 0"},
                "row": {"type": "string"},
                "column": {"type": "string"},
            },
            "required": ["table", "row", "column"],
        },
    },
}
