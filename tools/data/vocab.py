"""Word lists the generator draws from: categories, product words, people, voices.

Kept apart from the generator's logic so the vocabularies can grow without touching
it. Every list is a tuple (fixed order), which keeps generation deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CategorySpec:
    """One main category: its product types, feature phrases, uses and price range."""

    name: str
    subtypes: tuple[str, ...]
    features: tuple[str, ...]
    uses: tuple[str, ...]
    materials: tuple[str, ...]
    price_range: tuple[float, float]


CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(
        "Sports & Outdoors",
        ("running shoes", "yoga mat", "water bottle", "resistance bands", "hiking backpack",
         "fitness tracker band"),
        ("breathable mesh", "cushioned sole", "non-slip grip", "quick-dry fabric",
         "reflective trim", "lightweight frame", "moisture-wicking lining", "adjustable straps",
         "shock absorbing", "waterproof shell", "extra thick padding", "foldable design"),
        ("trail runs", "morning workouts", "weekend hikes", "the gym", "long rides", "stretching"),
        ("nylon", "EVA foam", "polyester", "stainless steel", "TPE", "ripstop fabric"),
        (12.0, 160.0),
    ),
    CategorySpec(
        "Home & Kitchen",
        ("chef knife", "nonstick skillet", "coffee grinder", "storage containers",
         "cutting board", "electric kettle"),
        ("dishwasher safe", "BPA free", "stay-cool handle", "high-carbon blade",
         "stackable lids", "even heating", "burr grinding", "auto shut-off", "compact footprint",
         "easy-clean surface", "induction ready", "leak-proof seal"),
        ("weeknight dinners", "meal prep", "morning coffee", "baking", "a small kitchen",
         "hosting friends"),
        ("stainless steel", "bamboo", "cast aluminum", "borosilicate glass", "ceramic", "walnut"),
        (9.0, 140.0),
    ),
    CategorySpec(
        "Beauty & Personal Care",
        ("face moisturizer", "hair dryer", "electric toothbrush", "sunscreen lotion",
         "beard trimmer", "lip balm set"),
        ("fragrance free", "SPF 50", "ionic technology", "sensitive skin formula",
         "rechargeable battery", "hyaluronic acid", "cruelty free", "travel size",
         "pressure sensor", "non-greasy finish", "ceramic coating", "vegan ingredients"),
        ("dry skin", "daily routines", "travel", "the beach", "quick mornings", "sensitive skin"),
        ("aloe", "shea butter", "ceramic", "ABS plastic", "coconut oil", "beeswax"),
        (5.0, 120.0),
    ),
    CategorySpec(
        "Electronics",
        ("wireless earbuds", "bluetooth speaker", "usb-c hub", "portable charger",
         "mechanical keyboard", "webcam"),
        ("noise cancelling", "long battery life", "fast charging", "water resistant",
         "low latency", "4K resolution", "hot-swappable switches", "dual microphones",
         "aluminum housing", "pass-through charging", "rgb backlight", "plug and play"),
        ("commuting", "video calls", "gaming", "working from home", "travel", "podcasts"),
        ("aluminum", "ABS plastic", "silicone", "tempered glass", "polycarbonate", "fabric mesh"),
        (15.0, 250.0),
    ),
    CategorySpec(
        "Clothing, Shoes & Jewelry",
        ("rain jacket", "wool socks", "leather belt", "silver necklace", "linen shirt",
         "canvas sneakers"),
        ("relaxed fit", "merino wool", "hypoallergenic", "wrinkle resistant", "full-grain leather",
         "packable hood", "sterling silver", "stretch waistband", "cushioned footbed",
         "machine washable", "organic cotton", "adjustable clasp"),
        ("the office", "rainy days", "date nights", "everyday wear", "travel", "cold winters"),
        ("cotton", "linen", "leather", "merino wool", "sterling silver", "canvas"),
        (10.0, 180.0),
    ),
    CategorySpec(
        "Toys & Games",
        ("building blocks", "board game", "jigsaw puzzle", "plush toy", "remote control car",
         "science kit"),
        ("ages 8 and up", "cooperative play", "1000 pieces", "rechargeable battery",
         "non-toxic paint", "STEM learning", "quick setup", "replay value", "soft stitching",
         "all-terrain wheels", "storage box included", "two to six players"),
        ("family game night", "rainy afternoons", "birthday gifts", "road trips", "the classroom",
         "toddlers"),
        ("ABS plastic", "cardboard", "plush fabric", "wood", "recycled paper", "silicone"),
        (8.0, 90.0),
    ),
    CategorySpec(
        "Pet Supplies",
        ("dog leash", "cat scratcher", "pet bed", "chew toy", "automatic feeder", "grooming brush"),
        ("reflective stitching", "orthopedic foam", "machine washable cover", "durable rubber",
         "programmable portions", "self-cleaning bristles", "non-slip base", "padded handle",
         "tangle free", "chew resistant", "quiet motor", "catnip included"),
        ("big dogs", "indoor cats", "puppies", "senior pets", "daily walks", "long workdays"),
        ("nylon", "natural rubber", "sisal rope", "memory foam", "stainless steel", "cotton"),
        (6.0, 110.0),
    ),
    CategorySpec(
        "Office Products",
        ("gel pens", "desk organizer", "spiral notebook", "label maker", "ergonomic mouse pad",
         "document shredder"),
        ("quick-drying ink", "fine point", "dotted pages", "wrist support", "cross cut",
         "refillable", "acid-free paper", "bluetooth printing", "multiple compartments",
         "smudge proof", "lay-flat binding", "jam proof"),
        ("journaling", "the home office", "school notes", "filing", "planning the week",
         "long study sessions"),
        ("recycled paper", "bamboo", "mesh metal", "memory foam", "plastic", "faux leather"),
        (4.0, 120.0),
    ),
    CategorySpec(
        "Tools & Home Improvement",
        ("cordless drill", "tape measure", "led work light", "socket set", "stud finder",
         "smart light bulb"),
        ("brushless motor", "magnetic tip", "lithium-ion battery", "impact resistant",
         "chrome vanadium", "dimmable", "auto-lock blade", "deep scan mode", "compact head",
         "lifetime warranty", "app control", "belt clip"),
        ("weekend projects", "the garage", "hanging shelves", "car repairs", "home renovation",
         "the basement"),
        ("chrome vanadium steel", "aluminum", "ABS plastic", "rubber", "fiberglass",
         "polycarbonate"),
        (8.0, 200.0),
    ),
    CategorySpec(
        "Automotive",
        ("phone mount", "tire inflator", "seat cushion", "dash cam", "car vacuum",
         "microfiber towels"),
        ("one-hand operation", "digital gauge", "memory foam", "night vision",
         "cordless suction", "scratch free", "auto shut-off", "loop recording", "strong magnet",
         "12V plug", "lint free", "wide angle lens"),
        ("long commutes", "road trips", "weekend detailing", "rideshare driving", "winter",
         "keeping the car clean"),
        ("silicone", "memory foam", "microfiber", "ABS plastic", "aluminum alloy", "leather"),
        (10.0, 150.0),
    ),
    CategorySpec(
        "Grocery & Gourmet Food",
        ("green tea", "dark chocolate", "olive oil", "trail mix", "hot sauce", "coffee beans"),
        ("single origin", "organic", "cold pressed", "no added sugar", "small batch",
         "fair trade", "gluten free", "whole bean", "extra virgin", "resealable bag",
         "high protein", "non-GMO"),
        ("snacking", "cooking", "the office", "hiking trips", "gift baskets", "slow mornings"),
        ("glass bottle", "kraft bag", "tin", "pouch", "box", "jar"),
        (4.0, 45.0),
    ),
    CategorySpec(
        "Health & Household",
        ("vitamin d", "protein powder", "air purifier", "first aid kit", "humidifier",
         "reusable masks"),
        ("third-party tested", "HEPA filter", "whisper quiet", "easy to swallow",
         "unflavored", "cool mist", "compact size", "washable", "essential oil tray",
         "sugar free", "fda registered", "timer function"),
        ("allergy season", "recovery", "the bedroom", "daily wellness", "the car", "dry winters"),
        ("gelatin capsule", "whey", "ABS plastic", "nylon", "cotton", "glass"),
        (7.0, 160.0),
    ),
    CategorySpec(
        "Baby Products",
        ("baby monitor", "swaddle blanket", "bottle warmer", "diaper bag", "teething toy",
         "high chair"),
        ("night vision", "muslin cotton", "fast warming", "insulated pockets", "BPA free",
         "two-way audio", "easy fold", "wipe clean", "breathable weave", "food-grade silicone",
         "changing pad included", "adjustable height"),
        ("newborns", "night feeds", "travel", "nursery setup", "daycare", "teething"),
        ("cotton muslin", "silicone", "polyester", "bamboo", "ABS plastic", "beech wood"),
        (9.0, 180.0),
    ),
    CategorySpec(
        "Musical Instruments",
        ("guitar strings", "digital tuner", "ukulele", "studio headphones", "keyboard stand",
         "drum sticks"),
        ("phosphor bronze", "clip-on design", "laminated mahogany", "closed-back",
         "flat response", "heavy duty", "coated strings", "chromatic tuning", "detachable cable",
         "nylon tips", "gig bag included", "adjustable height"),
        ("practice at home", "live gigs", "recording", "beginners", "band rehearsal", "travel"),
        ("mahogany", "phosphor bronze", "hickory", "steel", "spruce", "protein leather"),
        (6.0, 220.0),
    ),
    CategorySpec(
        "Garden & Outdoor",
        ("garden hose", "pruning shears", "solar lights", "raised bed", "bird feeder",
         "patio umbrella"),
        ("kink free", "bypass blade", "auto on at dusk", "rust proof", "squirrel proof",
         "UV protection", "expandable", "ergonomic grip", "cedar wood", "tilt function",
         "weather resistant", "easy assembly"),
        ("the backyard", "balcony gardens", "vegetable beds", "summer evenings", "bird watching",
         "the patio"),
        ("latex", "SK5 steel", "cedar", "polyester", "galvanized steel", "resin"),
        (8.0, 170.0),
    ),
    CategorySpec(
        "Arts, Crafts & Sewing",
        ("watercolor set", "sketchbook", "acrylic paint", "sewing kit", "knitting needles",
         "glue gun"),
        ("artist grade", "heavyweight paper", "vibrant pigments", "travel case",
         "bamboo needles", "non-toxic", "quick heating", "fine detail brushes", "acid free",
         "color mixing guide", "interchangeable tips", "blendable"),
        ("plein air painting", "kids crafts", "quilting", "journaling", "holiday decorations",
         "beginner lessons"),
        ("cotton paper", "bamboo", "aluminum tube", "wood", "plastic case", "canvas"),
        (5.0, 80.0),
    ),
    CategorySpec(
        "Cell Phones & Accessories",
        ("phone case", "screen protector", "wireless charger", "car charger", "selfie stick",
         "charging cable"),
        ("shockproof corners", "tempered glass", "magsafe compatible", "fast charging",
         "bubble free", "braided nylon", "bluetooth remote", "slim profile", "dual ports",
         "case friendly", "kickstand", "anti-fingerprint"),
        ("everyday carry", "road trips", "the nightstand", "travel photos", "clumsy hands",
         "the desk"),
        ("TPU", "tempered glass", "braided nylon", "polycarbonate", "aluminum", "silicone"),
        (6.0, 70.0),
    ),
)

# Syllables from which brand names are built: distinctive single tokens, so a brand
# in a query picks out its products under BM25.
BRAND_ONSETS = ("Ar", "Bel", "Cor", "Dra", "El", "Fen", "Gal", "Hav", "Ix", "Jor", "Kel",
                "Lum", "Mor", "Nov", "Or", "Pel", "Quin", "Ros", "Sol", "Tam", "Ul", "Ver",
                "Wex", "Yar", "Zen")
BRAND_MIDDLES = ("a", "e", "i", "o", "u", "ra", "li", "vo", "ne", "ta")
BRAND_CODAS = ("n", "x", "ro", "la", "tek", "mo", "ris", "dor", "ly", "ve", "ka", "sen")

COLORS = ("black", "white", "navy", "olive", "charcoal", "sand", "red", "teal", "gray",
          "forest green", "blush pink", "slate blue")
SIZES = ("small", "medium", "large", "one size", "compact", "XL", "2-pack", "3-pack")
TITLE_ADJECTIVES = ("Premium", "Classic", "Pro", "Ultra", "Essential", "Everyday", "Deluxe",
                    "Compact", "Heavy Duty", "Lightweight", "Signature", "Eco")
LINE_NAMES = ("Series", "Edition", "Collection", "Line", "Max", "Lite", "Plus", "Core")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")

FEATURE_TEMPLATES = (
    "{Feature}: made for {use}",
    "{Feature} that holds up to daily use",
    "{Feature} and {material} construction",
    "Built with {feature} for {use}",
    "{Feature} - no compromises on {aspect}",
    "Includes {feature}; {aspect} you can count on",
)
DESCRIPTION_TEMPLATES = (
    "Designed for {use}, this {subtype} from {brand} combines {feature} with {material}.",
    "{brand} built the {subtype} around one idea: {aspect} first.",
    "Whether it is {use} or {use2}, the {subtype} keeps up.",
    "Every {brand} {subtype} is checked by hand before it ships.",
    "Pair it with the rest of the {brand} range for {use}.",
    "The {material} body is {adjective} and easy to care for.",
    "Customers choose it for {feature} and {feature2}.",
    "A {adjective} {subtype} with {feature}, sized for {use}.",
)
DESCRIPTION_ADJECTIVES = ("sturdy", "sleek", "reliable", "well balanced", "tidy", "robust",
                          "light", "thoughtfully made")
ASPECTS = ("quality", "durability", "comfort", "value", "design", "performance", "ease of use",
           "reliability")

# People: values of our own for PersonalWAB's profile keys.
GENDERS = ("Female", "Male", "Non-binary")
AGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
OCCUPATIONS = ("Nurse", "Software developer", "Teacher", "Electrician", "Graphic designer",
               "Student", "Retired", "Chef", "Accountant", "Delivery driver", "Pharmacist",
               "Librarian", "Mechanic", "Small business owner", "Researcher", "Barista",
               "Firefighter", "Architect", "Sales associate", "Farmer")
LEVELS = ("Low", "Medium", "High")
ITEM_REFERENCES = (
    "Names the exact product in most reviews",
    "Compares with items bought before",
    "Rarely names products, talks about the experience",
    "Mentions the brand and one feature",
    "Refers to the use the item was bought for",
)

# Review voices: tone words, a style label for the profile, and signature phrases.
VOICES = (
    ("upbeat", ("fantastic", "awesome", "amazing", "brilliant"), "Cheerful, enthusiastic"),
    ("dry", ("fine", "adequate", "acceptable", "as described"), "Matter-of-fact, concise"),
    ("critical", ("disappointing", "flimsy", "overpriced", "mediocre"), "Critical, demanding"),
    ("warm", ("lovely", "delightful", "really nice", "thoughtful"), "Warm, friendly"),
    ("technical", ("well engineered", "precise", "consistent", "within spec"),
     "Analytical, detailed"),
    ("casual", ("pretty cool", "not bad", "solid", "legit"), "Casual, relaxed"),
)
SIGNATURE_PHRASES = (
    "Would buy again.", "Five stars from me.", "Worth every penny.", "Your mileage may vary.",
    "Just my two cents.", "No regrets.", "Can't complain.", "Highly recommend to friends.",
    "Time will tell how it lasts.", "Exactly what I needed.", "Not for everyone.",
    "Solid buy overall.", "I'll update after a month.", "Happy customer here.",
    "Keep that in mind.", "Simple as that.", "Does what it says.", "Bottom line: good.",
)
REVIEW_OPENERS = (
    "Got the {brand} {subtype} for {use}.",
    "Bought this {subtype} a few weeks ago.",
    "I use this {subtype} for {use} almost every day.",
    "Picked up the {brand} one after my last {subtype} gave out.",
    "This {subtype} arrived quickly.",
    "Ordered it for {use}.",
)
REVIEW_BODIES = (
    "The {feature} is {tone}.",
    "{Aspect} is what I care about and this {subtype} is {tone} there.",
    "I noticed the {feature} right away, {tone}.",
    "For the price of about ${price:.0f} it is {tone}.",
    "The {material} feels {tone}.",
    "Compared with my old one the {feature} is {tone}.",
    "The {aspect} of this {brand} is {tone}.",
)
REVIEW_TITLES = ("{Tone}", "{Tone} {subtype}", "{Aspect}: {tone}", "{brand} {subtype} - {tone}",
                 "{Tone} for {use}")

# Greetings and sign-offs are per user and shared by all their requests, so they carry
# no signal about the tool wanted.
GREETINGS = ("", "", "Hey, ", "Hi, ", "Hello! ", "Morning. ", "OK so ", "Hmm, ")
SIGNOFFS = ("", "", " Thanks!", " Cheers.", " Ta.", " Thx", " Please.", " :)")
SUBJECT_FORMS = ("{subtype}", "my {subtype}", "the {subtype} thing", "{subtype} for {use}",
                 "{subtype} stuff")

# How people ask. Each family is one habitual way of phrasing a request; every variant
# of a family shares its anchor words. Families are given to task types per user at
# random, so a family says nothing about the tool across users, only within one user.
ASKING_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("{subject}, usual drill.", "Usual drill for {subject}.", "The usual drill: {subject}."),
    ("Sort me out with {subject}.", "Can you sort out {subject}?", "{subject} - sort it out."),
    ("Been thinking lately of {subject}.", "Thinking of {subject} lately.",
     "{subject}, been thinking lately."),
    ("Whenever you're ready: {subject}.", "{subject}, whenever ready.",
     "Ready whenever you are - {subject}."),
    ("{subject} needs handling.", "Needs handling: {subject}.", "{subject} still needs handling."),
    ("Pitch in on {subject}?", "Can you pitch in with {subject}?", "{subject} - pitch in please."),
    ("You know me, {subject}.", "{subject}, you know me.", "You know me by now: {subject}."),
    ("Guess it's time for {subject}.", "{subject} - guess it's time.", "Time for {subject}, I guess."),
    ("Let's deal with {subject}.", "Let us deal with {subject} now.", "{subject}: let's deal with it."),
    ("Take care of {subject}, would you?", "Would you take care of {subject}?",
     "{subject}: take care of it."),
    ("Note regarding {subject}.", "Regarding {subject}, a note.", "A small note regarding {subject}."),
    ("Work your magic on {subject}.", "{subject} - work some magic.",
     "Some magic work on {subject}, please."),
    ("Same as last time, {subject}.", "{subject}, same as last time.",
     "Same as last round: {subject}."),
    ("Get going on {subject}.", "Can you get going with {subject}?", "{subject} - get going."),
    ("What about {subject}?", "And what about {subject}?", "{subject} - what about it?"),
    ("Passing {subject} over to you.", "{subject}: passing it over.",
     "Over to you, passing on {subject}."),
)

# A few requests say plainly what they want; both classifiers can read these.
EXPLICIT_ASKS: dict[str, tuple[str, ...]] = {
    "search": ("Search the shop for {subject}.", "Find {subject} in the catalog for me."),
    "recommend": ("Recommend {subject} based on what I bought before.",
                  "Suggest {subject} that fit my purchase history."),
    "review": ("Write a review of the {subject} I just got.",
               "Post my review for the new {subject}."),
}
