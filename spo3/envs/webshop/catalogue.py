"""WebShop's product catalogue: the real data files when present, otherwise a generated (synthetic) catalogue.

Real data (princeton-nlp/WebShop ``setup.sh``): ``items_shuffle_1000.json`` (a list of scraped products) and
``items_ins_v2_1000.json`` (per ASIN: ``attributes``, and for some products a synthetic-goal ``instruction`` with
its ``instruction_attributes``), or the full-size ``items_shuffle.json`` / ``items_ins_v2.json``. Products are
cleaned as in ``web_agent_site/engine/engine.py::load_products``: invalid or repeated ASINs skipped, the price
string parsed into one price or a range (``$100.0`` when missing), option values stripped, lower-cased and
``/`` turned into `` | ``, attributes joined from the attribute file (``DUMMY_ATTR`` when the ASIN has none).
Reviews are never loaded (as in the verl-agent/3SPO copy), so every rating reads ``N.A.``.

Only ``items_ins_v2_1000.json`` can be obtained offline (``../shared/data/webshop/PROVENANCE.md``). Without the
product file, :func:`generate_products` builds one product per ASIN of the attribute file in the schema of
``items_shuffle_1000.json``: the product type (WebShop's ``query``) is parsed from the instruction, titles,
descriptions, bullet points, options and prices are generated from the attributes with a fixed seed. Such a
catalogue has ``kind == "synthetic"`` and every environment built on it says ``catalogue=synthetic``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from spo3.config.loading import SetupError
from spo3.envs.webshop.search import BM25Index

__all__ = [
    "Catalogue",
    "CatalogueError",
    "Product",
    "clean_products",
    "default_data_dir",
    "generate_products",
    "load_catalogue",
    "normalize_color",
    "search_contents",
]

SMALL_FILES = ("items_shuffle_1000.json", "items_ins_v2_1000.json")
FULL_FILES = ("items_shuffle.json", "items_ins_v2.json")

# (size in bytes, hash kind, digest) of the published upstream files; a mismatch means corruption or another version.
_KNOWN_FILES = {
    "items_ins_v2_1000.json": (147_099, "sha256", "f88a36314a397b53b3d9c3fa5878e5f7b26d35019a51ec83fbedeca61a948f6f"),
    "items_shuffle_1000.json": (4_467_013, "git-blob", "08dfda9a1c896e0f69d50e3437dd3fe94419b7d7"),
}

# web_agent_site/engine/normalize.py: colour words; an option value is reduced to the first one it contains.
COLOR_SET: tuple[str, ...] = tuple(
    "alabaster apricot aqua ash asphalt azure banana beige black blue blush bordeaux bronze brown burgundy camel camo "
    "caramel champagne charcoal cheetah chestnut chocolate christmas coffee cognac copper coral cranberry cream "
    "crystal dark denim eggplant elephant espresso fuchsia gold granite grape graphite grass gray green grey heather "
    "indigo ivory ivy khaki lavender lemon leopard light lilac lime magenta maroon mauve merlot midnight mint mocha "
    "multicolor mushroom mustard natural navy nude olive orange peach pewter pink plum purple rainbow red rose royal "
    "rust sand sapphire seashell silver skull slate steel stone stonewash sunflower tan taupe teal tiger turquoise "
    "violet walnut wheat white wine yellow".split()
)


class CatalogueError(ValueError, SetupError):
    """A WebShop data file is missing, corrupt or malformed (the message names the file and the problem)."""


def normalize_color(value: Any) -> Any:
    """Upstream ``normalize_color``: the first colour of :data:`COLOR_SET` found ``in`` ``value``, else ``value``.

    ``in`` is a substring test for strings ("standard" -> "tan") and a membership test for tuples, which upstream's
    option reward passes (see :func:`spo3.envs.webshop.reward.option_reward`).
    """
    for color in COLOR_SET:
        if color in value:
            return color
    return value


@dataclass(frozen=True)
class Product:
    """One cleaned product (upstream field names in brackets)."""

    asin: str
    title: str
    """[Title] = the raw ``name``."""
    description: str
    """[Description] = the raw ``full_description``."""
    bullet_points: tuple[str, ...]
    """[BulletPoints] = the raw ``small_description`` (a string becomes one bullet)."""
    pricing: tuple[float, ...]
    """One price, or the (low, high) bounds of a price range."""
    price_tag: str
    """[Price] as displayed: ``$12.99`` or ``$10.0 to $15.0`` (Python float formatting, as upstream)."""
    options: Mapping[str, tuple[str, ...]]
    """Option group name (lower-cased) -> cleaned values, in file order."""
    attributes: tuple[str, ...]
    """[Attributes] from the attribute file (``("DUMMY_ATTR",)`` when the ASIN has no entry)."""
    category: str
    query: str
    """WebShop's product type: the search query the product was scraped with (lower-cased, stripped)."""
    product_category: str
    """The breadcrumb path, ``›``-separated."""
    instruction: str | None
    """The synthetic-goal instruction of the attribute file, if any."""
    instruction_attributes: tuple[str, ...]
    rating: str = "N.A."


def search_contents(product: Product) -> str:
    """The ``contents`` field WebShop indexes (``search_engine/convert_product_file_format.py``): lower-cased
    title, description, first bullet point and ``name: v1, v2, and name2: ...`` option text, space-joined."""
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product.options.items())
    first_bullet = product.bullet_points[0] if product.bullet_points else ""
    return " ".join([product.title, product.description, first_bullet, option_text]).lower()


@dataclass(frozen=True)
class Catalogue:
    """The products of one WebShop instance."""

    kind: Literal["real", "synthetic"]
    products: tuple[Product, ...]
    source: str
    """The files it was built from (and the generator seed for a synthetic catalogue)."""

    @cached_property
    def by_asin(self) -> dict[str, Product]:
        return {p.asin: p for p in self.products}

    @cached_property
    def search_index(self) -> BM25Index:
        """The BM25 index over :func:`search_contents`, keyed by ASIN (built once per catalogue)."""
        return BM25Index((p.asin, search_contents(p)) for p in self.products)


def default_data_dir() -> Path:
    """``$SPO3_SHARED_DATA/webshop``, else ``shared/data/webshop`` beside the spo3 checkout."""
    shared = os.environ.get("SPO3_SHARED_DATA")
    if shared:
        return Path(shared) / "webshop"
    return Path(__file__).resolve().parents[4] / "shared" / "data" / "webshop"


# ---------------------------------------------------------------------------------------------------- reading files


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def _read_json(path: Path, verify: bool) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read the file ({exc})") from exc
    known = _KNOWN_FILES.get(path.name)
    if verify and known is not None:
        size, kind, digest = known
        actual = hashlib.sha256(data).hexdigest() if kind == "sha256" else _git_blob_sha1(data)
        if len(data) != size or actual != digest:
            raise CatalogueError(
                f"{path}: corrupt or a different version: {len(data)} bytes with {kind} {actual}, expected the "
                f"published file ({size} bytes, {kind} {digest}). Replace it, or load it anyway with verify=False."
            )
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogueError(f"{path}: not valid JSON ({exc}); the file is truncated or corrupt") from exc


def _check_attributes(attributes: Any, path: Path) -> dict[str, dict[str, Any]]:
    """Validate the attribute/instruction file: ``{asin: {"attributes": [...], "instruction": str, ...}}``."""
    if not isinstance(attributes, dict):
        raise CatalogueError(f"{path}: expected a JSON object keyed by ASIN, got {type(attributes).__name__}")
    for asin, entry in attributes.items():
        where = f"{path}: entry {asin!r}"
        if not isinstance(entry, dict):
            raise CatalogueError(f"{where}: expected an object, got {type(entry).__name__}")
        for key in ("attributes", "instruction_attributes"):
            values = entry.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise CatalogueError(f"{where}: field {key!r} must be a list of strings, got {values!r}")
        instruction = entry.get("instruction")
        if instruction is not None:
            if not isinstance(instruction, str) or not instruction.strip():
                raise CatalogueError(f"{where}: field 'instruction' must be a non-empty string, got {instruction!r}")
            if not entry.get("instruction_attributes"):
                # upstream get_synthetic_goals asserts this: a goal needs at least one attribute.
                raise CatalogueError(f"{where}: has an instruction but no 'instruction_attributes'")
    return attributes


def _parse_pricing(pricing: Any, where: str) -> tuple[tuple[float, ...], str]:
    if pricing is None or pricing == "" or pricing == []:
        return (100.0,), "$100.0"
    if not isinstance(pricing, str):
        raise CatalogueError(f"{where}: field 'pricing' must be a string like '$12.99', got {pricing!r}")
    try:
        prices = [float(Decimal(re.sub(r"[^\d.]", "", part))) for part in pricing.split("$")[1:]]
    except InvalidOperation:
        raise CatalogueError(f"{where}: field 'pricing' = {pricing!r} is not a price or price range") from None
    if not prices:
        raise CatalogueError(f"{where}: field 'pricing' = {pricing!r} contains no '$' price")
    if len(prices) == 1:
        return (prices[0],), f"${prices[0]}"
    return (prices[0], prices[1]), f"${prices[0]} to ${prices[1]}"


def _require_str(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise CatalogueError(f"{where}: field {key!r} must be a string, got {value!r}")
    return value


def _clean_options(options: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not options:
        return {}
    if not isinstance(options, dict):
        raise CatalogueError(f"{where}: field 'customization_options' must be an object, got {options!r}")
    cleaned = {}
    for name, contents in options.items():
        if contents is None:
            continue
        if not isinstance(contents, list) or not all(isinstance(c, dict) and isinstance(c.get("value"), str) for c in contents):
            raise CatalogueError(
                f"{where}: option {name!r} must be a list of objects with a string 'value', got {contents!r}"
            )
        cleaned[name.lower()] = tuple(c["value"].strip().replace("/", " | ").lower() for c in contents)
    return cleaned


def clean_products(
    raw_products: Any, attributes: Mapping[str, Mapping[str, Any]], *, path: Path | str, num_products: int | None = None
) -> list[Product]:
    """WebShop's ``load_products`` cleaning of raw product records.

    Args:
      raw_products: the parsed product file (a list of records in the ``items_shuffle`` schema).
      attributes: the parsed attribute file (ASIN -> attributes, instruction, instruction_attributes).
      path: the product file, for error messages.
      num_products: keep only the first N records (upstream slices before cleaning).

    Returns:
      The products, in file order.

    Raises:
      CatalogueError: a record lacks a field or has a value of the wrong shape (message: file, record, field).
    """
    if not isinstance(raw_products, list):
        raise CatalogueError(f"{path}: expected a JSON list of products, got {type(raw_products).__name__}")
    if num_products is not None:
        raw_products = raw_products[:num_products]
    products: list[Product] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_products):
        where = f"{path}: product #{index}"
        if not isinstance(raw, dict):
            raise CatalogueError(f"{where}: expected an object, got {type(raw).__name__}")
        asin = _require_str(raw, "asin", where)
        where = f"{where} (asin {asin!r})"
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        bullets = raw.get("small_description")
        bullets = [bullets] if isinstance(bullets, str) else bullets
        if not isinstance(bullets, list) or not all(isinstance(b, str) for b in bullets):
            raise CatalogueError(f"{where}: field 'small_description' must be a string or list of strings")
        pricing, price_tag = _parse_pricing(raw.get("pricing"), where)
        if "customization_options" not in raw:
            raise CatalogueError(f"{where}: field 'customization_options' is missing")
        entry = attributes.get(asin, {})
        products.append(
            Product(
                asin=asin,
                title=_require_str(raw, "name", where),
                description=_require_str(raw, "full_description", where),
                bullet_points=tuple(bullets),
                pricing=pricing,
                price_tag=price_tag,
                options=_clean_options(raw["customization_options"], where),
                attributes=tuple(entry["attributes"]) if "attributes" in entry else ("DUMMY_ATTR",),
                category=_require_str(raw, "category", where),
                query=_require_str(raw, "query", where).lower().strip(),
                product_category=_require_str(raw, "product_category", where),
                instruction=entry.get("instruction"),
                instruction_attributes=tuple(entry.get("instruction_attributes", ())),
            )
        )
    return products


# ------------------------------------------------------------------------------------------- the synthetic catalogue

_CATEGORY_WORDS = {
    "fashion": "men women boys girls shirt shirts shorts pants jeans dresses shoes boots sneakers sandals slippers "
    "loafers oxfords flats pumps mules clogs socks hosiery swimsuits underwear lingerie sweaters hoodies sweatshirts "
    "jackets coats vests polos henleys tops tees blouses jumpsuits rompers overalls activewear suits blazers suiting "
    "footwear tanks bodysuit",
    "furniture": "mattresses beds bedframes ottomans lamps tables racks vanities pillows mirrors chairs desks stands "
    "sconces pendants chandeliers blankets candles cabinets coverings islands stools trees living dining furniture "
    "bookcases armoires nightstands plants art bases",
    "electronics": "binoculars scopes cables flashes photography mounts speakers surveillance protectors receivers "
    "amplifiers soundbars cameras wearable boosters projectors iphone mac players recorders wireless streaming power "
    "television sound turntables video printers scanners vcrs headphones lenses car game chargers headsets tripods "
    "monopods virtual hdmi bluetooth",
    "food": "meat substitutes seafood breakfast foods snacks snack candy chocolate meal deli frozen pantry staples "
    "applesauce fruit cheeses dried raisins wasabi granola nutrition beverage beverages crackers milks food",
}
_CATEGORY_ROOTS = {
    "beauty": "Beauty & Personal Care",
    "fashion": "Clothing, Shoes & Jewelry",
    "furniture": "Home & Kitchen",
    "electronics": "Electronics",
    "food": "Grocery & Gourmet Food",
}
# Option groups per category: (name, vocabulary in display order, probability of offering the group).
_OPTION_GROUPS = {
    "fashion": (
        ("Size", ("X-Small", "Small", "Medium", "Large", "X-Large", "XX-Large", "3X-Large"), 0.9),
        ("Color", ("Black", "White", "Navy Blue", "Heather Grey", "Burgundy", "Olive Green", "Khaki", "Light Pink"), 0.8),
    ),
    "beauty": (
        ("Color", ("Natural Beige", "Ivory", "Nude", "Medium", "Deep Brown", "Rose Pink", "Coral", "Black"), 0.35),
        ("Size", ("0.5 Fl Oz", "1 Fl Oz (Pack of 1)", "1.7 Fl Oz", "3.4 Fl Oz", "Pack of 2", "Pack of 3"), 0.5),
        ("Scent", ("Lavender", "Unscented", "Fresh Citrus", "Coconut", "Eucalyptus", "Vanilla"), 0.3),
    ),
    "food": (
        ("Flavor Name", ("Original", "Sea Salt", "Barbecue", "Honey Roasted", "Dark Chocolate", "Peanut Butter",
                         "Strawberry", "Spicy", "Cinnamon", "Mixed Berry"), 0.7),
        ("Size", ("Pack of 4", "Pack of 6", "Pack of 12", "12 Count", "24 Count", "16 Ounce (Pack of 2)"), 0.6),
    ),
    "furniture": (
        ("Color", ("Black", "White", "Espresso", "Walnut", "Natural", "Grey", "Rustic Brown", "Oak"), 0.8),
        ("Size", ("24 Inch", "30 Inch", "36 Inch", "47.2 Inch", "Twin", "Full", "Queen", "King"), 0.5),
    ),
    "electronics": (
        ("Color", ("Black", "White", "Silver", "Blue", "Red"), 0.6),
        ("Style", ("Basic", "Pro", "Bundle", "2 Pack", "Wireless"), 0.4),
        ("Size", ("3 Feet", "6 Feet", "10 Feet", "15 Feet"), 0.3),
    ),
}
_BRAND_HEADS = ("Aur", "Bel", "Cor", "Dax", "Eli", "Fen", "Gal", "Hal", "Iso", "Jun", "Kel", "Lum", "Mor", "Nov",
                "Orb", "Pax", "Quin", "Ros", "Sol", "Tav", "Ulm", "Vey", "Wen", "Xan", "Yor", "Zel")
_BRAND_TAILS = ("a", "ex", "ira", "on", "ora", "ix", "ana", "en", "us", "ova", "ity", "ar")
_DESCRIPTION_SENTENCES = (
    "{brand} {query} made with {attr1} for everyday use.",
    "Our {query} combine {attr1} and {attr2} in one product.",
    "Designed around {attr1}, this item is a reliable choice that lasts.",
    "Customers choose {brand} for {attr2} and honest quality.",
    "Every piece is checked by hand before it ships.",
    "Backed by a 30-day satisfaction guarantee from {brand}.",
    "A thoughtful gift for friends and family.",
)
_BULLET_TAILS = (
    "thoughtfully made for daily use.",
    "tested for quality and durability.",
    "a simple upgrade you will notice.",
    "easy to care for and built to last.",
    "chosen by thousands of happy customers.",
)


def _instruction_query(instruction: str, instruction_attributes: Sequence[str]) -> str:
    """The product type of a synthetic instruction "Find me {attrs} {query} with/for {attrs}" (upstream's query)."""
    body = instruction.removeprefix("Find me ")
    attributes = sorted(instruction_attributes, key=len, reverse=True)
    stripped = True
    while stripped:
        stripped = False
        for attribute in attributes:
            for separator in (", ", " "):
                prefix = attribute + separator
                if body.startswith(prefix) and len(body) > len(prefix):
                    body, stripped = body[len(prefix):], True
                    break
            if stripped:
                break
    for match in re.finditer(r" (?:with|for) ", body):
        if any(body[match.end():].startswith(a) for a in attributes):
            return body[: match.start()].strip()
    return body.strip()


def _category_of(query: str) -> str:
    words = set(re.findall(r"[a-z]+", query.lower()))
    for category, vocabulary in _CATEGORY_WORDS.items():
        if words & set(vocabulary.split()):
            return category
    return "beauty"


def _color_safe(value: str) -> bool:
    """Whether upstream's colour normalisation keeps ``value`` matchable (e.g. "sandalwood" would become "sand")."""
    color = normalize_color(value.lower())
    return color == value.lower() or color in re.findall(r"[a-z0-9]+", value.lower())


def _title_case(text: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))


def _price(rng: random.Random, low: float, high: float) -> float:
    return max(1.0, round(math.exp(rng.uniform(math.log(low), math.log(high))))) - 0.01


def _options(rng: random.Random, category: str) -> dict[str, list[dict[str, Any]]]:
    options = {}
    for name, vocabulary, probability in _OPTION_GROUPS[category]:
        if rng.random() >= probability:
            continue
        count = rng.randint(2, min(5, len(vocabulary)))
        start = rng.randint(0, len(vocabulary) - count)
        values = [v for v in vocabulary[start : start + count] if _color_safe(v)]
        if values:
            options[name] = [{"value": value, "image": None} for value in values]
    return options


def _product_record(asin: str, attributes: list[str], query: str, rng: random.Random) -> dict[str, Any]:
    category = _category_of(query)
    brand = rng.choice(_BRAND_HEADS) + rng.choice(_BRAND_TAILS)
    shown = rng.sample(attributes, k=min(len(attributes), rng.randint(1, 2))) if attributes else []
    title = " ".join([brand, *(_title_case(a) for a in shown), _title_case(query)])
    filler = attributes or ["quality materials", "a clean design"]
    fields = {"brand": brand, "query": query, "attr1": rng.choice(filler), "attr2": rng.choice(filler)}
    sentences = rng.sample(_DESCRIPTION_SENTENCES, k=3)
    bullets = [f"{a.upper()}: {rng.choice(_BULLET_TAILS)}" for a in attributes] or [f"{brand} {query}."]
    low = _price(rng, 5.0, 150.0)
    pricing = f"${low:.2f}" if rng.random() < 0.85 else f"${low:.2f} - ${_price(rng, low * 1.2, low * 1.8):.2f}"
    return {
        "asin": asin,
        "name": title,
        "full_description": " ".join(s.format(**fields) for s in sentences),
        "small_description": bullets,
        "pricing": pricing,
        "customization_options": _options(rng, category),
        "category": category,
        "query": query,
        "product_category": f"{_CATEGORY_ROOTS[category]} › {_title_case(query)}",
        "images": [],
    }


def generate_products(attributes: Mapping[str, Mapping[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """A synthetic product file (``items_shuffle`` schema) with one record per ASIN of the attribute file.

    Products with an instruction get the product type parsed from it; the others get the type whose instructed
    products share most of their attributes (a seeded choice among ties, or among all types when they have no
    attributes). Titles read ``{brand} {1-2 attributes} {type}``, descriptions are three template sentences, and
    there is one bullet point per attribute; option groups and values come from per-category vocabularies (values
    that upstream's colour normalisation would make unmatchable are left out) and prices are log-uniform in
    $5-$150, 15% of them ranges. Deterministic in ``seed``.

    Args:
      attributes: the parsed (validated) attribute file.
      seed: generator seed.

    Returns:
      Raw product records, in the attribute file's ASIN order; :func:`clean_products` turns them into products.
    """
    rng = random.Random(seed)
    types = {
        asin: _instruction_query(entry["instruction"], entry["instruction_attributes"])
        for asin, entry in attributes.items()
        if entry.get("instruction")
    }
    attributes_by_type: dict[str, set[str]] = {}
    for asin, query in types.items():
        attributes_by_type.setdefault(query, set()).update(attributes[asin].get("attributes", ()))
    all_types = sorted(attributes_by_type)
    if not all_types:
        raise CatalogueError("generate_products: the attribute file has no instruction to derive product types from")
    records = []
    for asin, entry in attributes.items():
        own = entry.get("attributes", [])
        query = types.get(asin)
        if query is None:
            overlap = {t: len(attributes_by_type[t].intersection(own)) for t in all_types}
            best = max(overlap.values())
            query = rng.choice([t for t in all_types if overlap[t] == best])
        records.append(_product_record(asin, list(own), query, rng))
    return records


# ------------------------------------------------------------------------------------------------------- loading

_CACHE: dict[tuple, Catalogue] = {}


def _file_key(path: Path) -> tuple:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def load_catalogue(
    data_dir: str | Path | None = None,
    *,
    use_small: bool = True,
    num_products: int | None = None,
    synthetic_seed: int = 0,
    verify: bool = True,
) -> Catalogue:
    """The catalogue of ``data_dir``: real if it holds the product file, synthetic otherwise.

    Args:
      data_dir: directory with the WebShop data files; default :func:`default_data_dir`.
      use_small: read ``items_shuffle_1000.json`` / ``items_ins_v2_1000.json`` (3SPO's ``use_small=True``);
        False reads the full-size ``items_shuffle.json`` / ``items_ins_v2.json``. The synthetic catalogue is
        always generated from ``items_ins_v2_1000.json``.
      num_products: keep only the first N products (upstream ``num_products``).
      synthetic_seed: seed of :func:`generate_products` (ignored for a real catalogue).
      verify: check the published files' size and hash (a mismatch raises :class:`CatalogueError`).

    Returns:
      A :class:`Catalogue`, shared by all callers with the same files and arguments.

    Raises:
      CatalogueError: the attribute file is missing, or a file is corrupt or malformed.
    """
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    product_name, attribute_name = SMALL_FILES if use_small else FULL_FILES
    product_path, attribute_path = directory / product_name, directory / attribute_name
    real = product_path.is_file()
    if not real:
        attribute_path = directory / SMALL_FILES[1]
    if not attribute_path.is_file():
        raise CatalogueError(
            f"{attribute_path}: not found. WebShop needs {attribute_path.name} in env.webshop.data_dir (from "
            f"AgentGym's agentenv-webshop/webshop/data/); add {product_path.name} beside it for the real catalogue."
        )
    key = (
        _file_key(attribute_path),
        _file_key(product_path) if real else synthetic_seed,
        num_products,
        verify,
    )
    if key not in _CACHE:
        attributes = _check_attributes(_read_json(attribute_path, verify), attribute_path)
        if real:
            raw, source = _read_json(product_path, verify), f"{product_path} + {attribute_path}"
        else:
            raw = generate_products(attributes, synthetic_seed)
            source = f"generated from {attribute_path} (seed {synthetic_seed})"
        products = clean_products(raw, attributes, path=product_path if real else source, num_products=num_products)
        if not products:
            raise CatalogueError(f"{source}: no usable products")
        _CACHE[key] = Catalogue("real" if real else "synthetic", tuple(products), source)
    return _CACHE[key]

