"""The executable tools of the synthetic tool suite: pure, self-contained Python functions.

Each function keeps its tables inside its own body so that its source (`inspect.getsource`) runs on its own in
`shared.sandbox.call_function`; in-process calls are safe because this is our own trusted code. The JSON schemas
handed to a policy live next to the functions in `SCHEMAS`.
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


FUNCTIONS = {f.__name__: f for f in (add, subtract, multiply, lookup_population, get_temperature, convert_units)}

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
