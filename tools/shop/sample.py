"""A tiny hand-written data set in PersonalWAB's format, for tests and quick looks at
the shop without running the generator. Its histories are built so that tents and
sleeping bags are bought together, and so are coffee grinders and kettles."""

from __future__ import annotations

import json
from pathlib import Path


def _product(asin: str, title: str, store: str, category: str, price, rating, features,
             description, details=None) -> dict:
    return {
        "title": title, "parent_asin": asin, "main_category": category,
        "average_rating": rating, "rating_number": 10 + len(title), "price": price,
        "store": store, "features": features, "description": description,
        "details": details or {},
    }


SAMPLE_PRODUCTS = [
    _product("B0TENT0001", "Trailhead 2-Person Backpacking Tent", "Northpeak", "Sports & Outdoors",
             129.99, 4.6, ["Two doors", "Weighs 1.8 kg"], ["A light tent for two."],
             {"Weight": "1.8 kg", "Capacity": 2}),
    _product("B0BAG00002", "Down Sleeping Bag 20F", "Northpeak", "Sports & Outdoors", 89.5, 4.4,
             ["650 fill down"], ["Warm to 20 degrees Fahrenheit."]),
    _product("B0PAD00003", "Inflatable Sleeping Pad", "Campwell", "Sports & Outdoors", 39.0, 4.1,
             ["R-value 3.5"], ["Packs small."]),
    _product("B0STOVE004", "Compact Camping Stove", "Campwell", "Sports & Outdoors", None, 4.3,
             ["Piezo ignition"], ["Boils water in 3 minutes."]),
    _product("B0GRIND005", "Burr Coffee Grinder", "Brewlab", "Home & Kitchen", 59.99, 4.5,
             ["40 grind settings"], ["Conical burrs for an even grind."]),
    _product("B0KETTL006", "Gooseneck Pour-Over Kettle", "Brewlab", "Home & Kitchen", 44.0, 4.7,
             ["Temperature control"], ["For pour-over coffee."]),
    _product("B0BEANS007", "Whole Bean Coffee, Dark Roast", "Roastery Nine", "Grocery", 14.99, 4.2,
             ["Fair trade"], ["Chocolate and smoke notes."]),
    _product("B0MUG00008", "Insulated Travel Mug", "Brewlab", "Home & Kitchen", 24.99, None,
             ["Keeps hot 6 hours"], []),
    _product("B0SHOE0009", "Trail Running Shoes", "Stridex", "Clothing, Shoes & Jewelry", 119.0,
             3.9, ["Grippy outsole", "Rock plate"], ["Made for muddy trails."]),
    _product("B0SOCK0010", "Merino Running Socks", "Stridex", "Clothing, Shoes & Jewelry", 18.0,
             4.8, ["Merino wool"], ["Soft <b>and</b> warm."]),
    _product("B0LAMP0011", "Rechargeable Camping Lantern", "Campwell", "Sports & Outdoors", 29.99,
             4.0, ["USB-C charging"], ["Lights a tent all night."]),
    _product("B0FILT0012", "Paper Coffee Filters, 100 Count", "Brewlab", "Home & Kitchen", 6.49,
             4.6, ["Unbleached"], ["Fits cone drippers."]),
]

SAMPLE_HISTORIES = {
    "U_CAMPER01": ["B0TENT0001", "B0BAG00002", "B0PAD00003", "B0LAMP0011"],
    "U_CAMPER02": ["B0TENT0001", "B0BAG00002", "B0STOVE004"],
    "U_CAMPER03": ["B0BAG00002", "B0TENT0001", "B0LAMP0011"],
    "U_COFFEE01": ["B0GRIND005", "B0KETTL006", "B0BEANS007", "B0FILT0012"],
    "U_COFFEE02": ["B0GRIND005", "B0KETTL006", "B0MUG00008"],
    "U_RUNNER01": ["B0SHOE0009", "B0SOCK0010", "B0MUG00008"],
}

SAMPLE_PROFILE = {
    "Gender": "unknown", "Age": "30-40", "Occupation": "engineer", "Price Sensitivity": "Medium",
    "Shopping Interest": "outdoors and coffee", "Brand Preference": "Northpeak, Brewlab",
    "Diversity Preference": "Low", "Interaction Complexity": "Simple",
    "Tone and Style": "plain", "Item Reference": "by name", "Focus Aspect": "quality",
}


def write_sample_dataset(out_dir: str | Path) -> Path:
    """Write products.json, user_history.json, user_profiles.json, user_instructions.json
    and manifest.json for the sample into `out_dir`; return the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    products = {p["parent_asin"]: p for p in SAMPLE_PRODUCTS}
    histories = {
        user: [
            {"product_info": products[asin],
             "review": {"rating": 5.0, "title": "Good",
                        "text": f"I like the {products[asin]['title']}.",
                        "timestamp": 1_600_000_000_000 + 86_400_000 * i}}
            for i, asin in enumerate(sequence)
        ]
        for user, sequence in SAMPLE_HISTORIES.items()
    }
    profiles = {user: {"user_profile": dict(SAMPLE_PROFILE)} for user in histories}
    files = {
        "products.json": products,
        "user_history.json": histories,
        "user_profiles.json": profiles,
        "user_instructions.json": {"train": [], "test": []},
        "manifest.json": {"version": "1", "source": "generated", "seed": None,
                          "counts": {"users": len(histories), "products": len(products)},
                          "held_out_users": []},
    }
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, indent=1), encoding="utf-8")
    return out
