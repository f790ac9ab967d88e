"""Random tool schemas of every JSON-schema kind the call grammar supports, and valid
arguments for them: nested objects, arrays (with and without minItems), string enums,
integers (with and without bounds), numbers, booleans, bounded strings, optional
fields. Seeded, so a failure names the schema that broke."""

from __future__ import annotations

import random
from typing import Any

WORDS = ("alpha", "bravo", "cargo", "delta", "ember", "fjord", "gamma", "harbor", "iris",
         "jade", "kelp", "lumen", "mango", "nova", "orbit", "pixel", "quartz", "raven")


def random_value_schema(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """One property's schema; objects and arrays nest up to two levels."""
    kinds = ["string", "enum", "integer", "bounded_integer", "number", "boolean", "short_string"]
    if depth < 2:
        kinds += ["array", "object", "object"]
    kind = rng.choice(kinds)
    if kind == "string":
        return {"type": "string", "description": f"the {rng.choice(WORDS)}"}
    if kind == "short_string":
        return {"type": "string", "maxLength": rng.randint(3, 12)}
    if kind == "enum":
        return {"type": "string", "enum": rng.sample(WORDS, rng.randint(2, 5))}
    if kind == "integer":
        return {"type": "integer"}
    if kind == "bounded_integer":
        low = rng.randint(1, 50)
        return {"type": "integer", "minimum": low, "maximum": low + rng.randint(0, 100)}
    if kind == "number":
        return {"type": "number"}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "array":
        schema: dict[str, Any] = {"type": "array", "items": random_value_schema(rng, depth + 1)}
        if rng.random() < 0.4:
            schema["minItems"] = 1
        return schema
    return random_object_schema(rng, depth + 1)


def random_object_schema(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """An object of 1-4 properties (at the top level up to 5), some of them required."""
    names = rng.sample(WORDS, rng.randint(1, 5 if depth == 0 else 4))
    properties = {name: random_value_schema(rng, depth) for name in names}
    required = [name for name in names if rng.random() < 0.6]
    return {"type": "object", "properties": properties, "required": required}


def random_tool(rng: random.Random, index: int) -> dict[str, Any]:
    """An OpenAI-style tool with a random parameters schema."""
    verb, thing = rng.choice(("get", "set", "list", "send", "make")), rng.choice(WORDS)
    return {"type": "function", "function": {
        "name": f"{verb}_{thing}_{index}",
        "description": f"{verb.capitalize()} the {thing} records.",
        "parameters": random_object_schema(rng),
    }}


def random_tools(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [random_tool(rng, index) for index in range(count)]


def sample_arguments(rng: random.Random, schema: dict[str, Any]) -> Any:
    """A value valid under `schema` (every property, optional ones too, half the time)."""
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema["type"]
    if kind == "string":
        return " ".join(rng.sample(WORDS, 3))[: schema.get("maxLength", 40)]
    if kind == "integer":
        return rng.randint(schema.get("minimum", -5), schema.get("maximum", 500))
    if kind == "number":
        return round(rng.uniform(-10, 10), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [sample_arguments(rng, schema["items"]) for _ in range(rng.randint(schema.get("minItems", 0), 3))]
    required = set(schema.get("required", ()))
    return {name: sample_arguments(rng, sub) for name, sub in schema["properties"].items()
            if name in required or rng.random() < 0.5}
