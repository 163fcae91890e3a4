"""A deterministic synthetic shop: catalog, customers, stock changes and a stream of session events.

Pure NumPy, no Django: the demo loader and the scale benchmarks both import it, and the benchmarks must
be able to run it without a database.

The generative story, chosen so that models have something real to learn:

* Products sit in the leaves of a category tree; popularity inside a category follows a power law
  (Zipf, ``popularity_exponent``), so a small head gets most views.
* Every customer has 1-3 preferred leaf categories (the second often a sibling of the first); most
  sessions stay in one of them, so a customer's history predicts their next category.
* Sessions are placed over ``[start_ts, end_ts)`` with a daily and weekly rhythm and slow growth;
  customers sign up over time and are never active before they exist.
* Each trend period (a week by default) a few products per category become "trending" and take a
  share of that category's views, so popularity drifts and time-aware models beat static ones.
* Views lead to add_to_cart, carts to purchases at checkout (end of the session); items that are out of
  stock at that moment (per the stock timeline) are not carted or bought.

Determinism: the output is a pure function of the ``ShopSpec`` (with the same NumPy version, whose
``Generator`` streams are stable within a release). Events are generated in time blocks that each get
their own random stream, independently of ``chunk_size``; so chunking never changes the event stream,
and the stream is in global time order (ties keep generation order).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import gzip
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

# Event type codes (the ``EventChunk.event_type`` column) and their wire names.
VIEW, ADD_TO_CART, PURCHASE, CLICK, IMPRESSION = 0, 1, 2, 3, 4
EVENT_TYPES: tuple[str, ...] = ("view", "add_to_cart", "purchase", "click", "impression")

DAY = 86_400
_EPOCH_2024 = 1_704_067_200  # 2024-01-01T00:00:00Z

# Separate random streams per concern, so that changing how one part is drawn does not shift others.
_STREAM_TREE, _STREAM_PRODUCTS, _STREAM_STOCK, _STREAM_CUSTOMERS, _STREAM_PLAN, _STREAM_TREND = range(6)
_STREAM_EVENTS = 100

# Variable-width strings: a third of the memory of fixed-width "<U" arrays for titles, and faster to build.
_STR = np.dtypes.StringDType()

# Events generated per time block. Blocks bound the working memory of the stream (a few MB) and do not
# depend on chunk_size, which is what makes chunked and unchunked iteration identical.
EVENTS_PER_BLOCK = 50_000


@dataclass(frozen=True)
class ShopSpec:
    """Everything that determines a synthetic shop. Same spec, same bytes."""

    n_customers: int = 1_000
    n_products: int = 2_000
    n_events: int = 50_000  # a target; the realised count is within a few percent
    category_depth: int = 3  # levels of the category tree (the leaves hold products)
    category_fanout: int = 4  # children per node: fanout ** depth leaf categories
    n_brands: int = 60
    start_ts: int = _EPOCH_2024
    end_ts: int = _EPOCH_2024 + 91 * DAY
    seed: int = 0
    currency: str = "EUR"
    # Popularity: Zipf exponent of product popularity inside a category, and of customer activity.
    popularity_exponent: float = 1.1
    activity_exponent: float = 0.6
    # Session shape.
    views_per_session: float = 5.0  # mean (geometric distribution, at least one view)
    max_views_per_session: int = 100
    p_view_to_cart: float = 0.08
    p_cart_to_purchase: float = 0.4
    p_click: float = 0.03  # a view that came from a click on a recommendation
    p_impression: float = 0.03  # a view followed by an impression of another item of its category
    mean_dwell_seconds: float = 40.0
    # Learnable structure.
    category_affinity: float = 0.85  # share of sessions in one of the customer's preferred categories
    stay_in_category: float = 0.8  # share of a session's views in the session's category
    trend_share: float = 0.15  # share of views going to the current period's trending items
    trend_period_days: float = 7.0
    n_trending_per_category: int = 3
    # Population and catalog dynamics.
    new_customer_share: float = 0.3  # customers who sign up inside [start_ts, end_ts)
    growth: float = 0.3  # traffic at the end of the range relative to the start, minus one
    out_of_stock_share: float = 0.08  # products that sell out once inside the range
    initially_out_of_stock_share: float = 0.03

    def __post_init__(self) -> None:
        if self.n_customers < 1 or self.n_products < 1 or self.n_events < 0:
            raise ValueError("n_customers and n_products must be >= 1, n_events >= 0")
        if self.end_ts <= self.start_ts:
            raise ValueError("end_ts must be after start_ts")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if self.category_depth < 1 or self.category_fanout < 1:
            raise ValueError("category_depth and category_fanout must be >= 1")
        if self.category_fanout**self.category_depth > 100_000:
            raise ValueError("category tree too large (fanout ** depth > 100,000 leaves)")
        if self.n_brands < 1 or self.views_per_session < 1 or self.max_views_per_session < 1:
            raise ValueError("n_brands, views_per_session and max_views_per_session must be >= 1")
        if self.n_trending_per_category < 1 or self.trend_period_days <= 0:
            raise ValueError("n_trending_per_category must be >= 1 and trend_period_days > 0")
        for name in (
            "p_view_to_cart", "p_cart_to_purchase", "p_click", "p_impression", "category_affinity",
            "stay_in_category", "trend_share", "new_customer_share", "out_of_stock_share",
            "initially_out_of_stock_share",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")

    @property
    def n_leaf_categories(self) -> int:
        return self.category_fanout**self.category_depth

    def expected_events_per_session(self) -> float:
        """Mean events per session, used to turn the event target into a number of sessions."""
        p = 1.0 / self.views_per_session
        m = self.max_views_per_session
        k = np.arange(1, m)
        # Mean of a geometric distribution truncated at max_views_per_session.
        views = float(np.sum(k * p * (1 - p) ** (k - 1)) + m * (1 - p) ** (m - 1))
        per_view = 1 + self.p_click + self.p_impression + self.p_view_to_cart * (1 + self.p_cart_to_purchase)
        return views * per_view


# ---------------------------------------------------------------------------------------------------
# Word lists. A curated three-level tree keeps the demo readable ("Home > Kitchen > Knives"); deeper or
# wider trees reuse it with suffixes rather than inventing nonsense words.

_TREE_TEXT = """
Home
  Kitchen: Knives/Knife, Cookware/Pan, Cutting Boards/Cutting Board, Kettles/Kettle, Mugs/Mug
  Living Room: Lamps/Lamp, Cushions/Cushion, Rugs/Rug, Vases/Vase, Throws/Throw
  Bedroom: Duvets/Duvet, Pillows/Pillow, Bed Sheets/Bed Sheet, Alarm Clocks/Alarm Clock,
    Blankets/Blanket
  Bathroom: Towels/Towel, Bath Mats/Bath Mat, Soap Dispensers/Soap Dispenser,
    Shower Curtains/Shower Curtain, Mirrors/Mirror
  Storage: Baskets/Basket, Shelves/Shelf, Boxes/Box, Hooks/Hook, Hangers/Hanger
Electronics
  Audio: Headphones/Headphones, Speakers/Speaker, Earbuds/Earbuds, Soundbars/Soundbar,
    Microphones/Microphone
  Computers: Laptops/Laptop, Monitors/Monitor, Keyboards/Keyboard, Mice/Mouse, Webcams/Webcam
  Phones: Smartphones/Smartphone, Phone Cases/Phone Case, Chargers/Charger, Power Banks/Power Bank,
    Screen Protectors/Screen Protector
  Photo: Cameras/Camera, Lenses/Lens, Tripods/Tripod, Memory Cards/Memory Card,
    Camera Bags/Camera Bag
  Smart Home: Smart Plugs/Smart Plug, Smart Bulbs/Smart Bulb, Thermostats/Thermostat,
    Doorbells/Doorbell, Sensors/Sensor
Fashion
  Women: Dresses/Dress, Blouses/Blouse, Skirts/Skirt, Handbags/Handbag, Scarves/Scarf
  Men: Shirts/Shirt, Trousers/Trousers, Jackets/Jacket, Belts/Belt, Ties/Tie
  Shoes: Sneakers/Sneaker, Boots/Boot, Sandals/Sandal, Loafers/Loafer, Slippers/Slipper
  Accessories: Watches/Watch, Sunglasses/Sunglasses, Wallets/Wallet, Hats/Hat, Gloves/Gloves
  Kids: Kids T-Shirts/Kids T-Shirt, Kids Jackets/Kids Jacket, Pyjamas/Pyjamas, Kids Shoes/Kids Shoe,
    Backpacks/Backpack
Sports
  Running: Running Shoes/Running Shoe, Running Shorts/Running Shorts, Sports Watches/Sports Watch,
    Water Bottles/Water Bottle, Headlamps/Headlamp
  Cycling: Bikes/Bike, Helmets/Helmet, Bike Lights/Bike Light, Bike Locks/Bike Lock,
    Cycling Gloves/Cycling Gloves
  Fitness: Dumbbells/Dumbbell, Yoga Mats/Yoga Mat, Resistance Bands/Resistance Band,
    Kettlebells/Kettlebell, Jump Ropes/Jump Rope
  Outdoor: Tents/Tent, Sleeping Bags/Sleeping Bag, Hiking Boots/Hiking Boot,
    Camping Stoves/Camping Stove, Trekking Poles/Trekking Pole
  Team Sports: Footballs/Football, Basketballs/Basketball, Shin Guards/Shin Guard,
    Goalkeeper Gloves/Goalkeeper Gloves, Jerseys/Jersey
Beauty
  Skincare: Moisturisers/Moisturiser, Serums/Serum, Cleansers/Cleanser, Sunscreens/Sunscreen,
    Face Masks/Face Mask
  Makeup: Lipsticks/Lipstick, Mascaras/Mascara, Foundations/Foundation,
    Eyeshadow Palettes/Eyeshadow Palette, Nail Polishes/Nail Polish
  Hair: Shampoos/Shampoo, Conditioners/Conditioner, Hair Dryers/Hair Dryer, Brushes/Brush,
    Hair Oils/Hair Oil
  Fragrance: Perfumes/Perfume, Colognes/Cologne, Body Mists/Body Mist, Candles/Candle,
    Diffusers/Diffuser
  Grooming: Razors/Razor, Beard Oils/Beard Oil, Trimmers/Trimmer, Aftershaves/Aftershave,
    Shaving Foams/Shaving Foam
Toys
  Building: Building Sets/Building Set, Blocks/Block Set, Marble Runs/Marble Run,
    Magnetic Tiles/Magnetic Tile Set, Model Kits/Model Kit
  Games: Board Games/Board Game, Card Games/Card Game, Puzzles/Puzzle, Dice Games/Dice Game,
    Party Games/Party Game
  Dolls & Figures: Dolls/Doll, Doll Houses/Doll House, Action Figures/Action Figure,
    Plush Toys/Plush Toy, Puppets/Puppet
  Outdoor Play: Scooters/Scooter, Kites/Kite, Water Guns/Water Gun, Sandpit Toys/Sandpit Set,
    Trampolines/Trampoline
  Learning: Science Kits/Science Kit, Globes/Globe, Art Sets/Art Set, Musical Toys/Musical Toy,
    Coding Robots/Coding Robot
Garden
  Tools: Spades/Spade, Pruners/Pruner, Rakes/Rake, Watering Cans/Watering Can, Hoses/Hose
  Garden Furniture: Garden Chairs/Garden Chair, Garden Tables/Garden Table, Parasols/Parasol,
    Hammocks/Hammock, Loungers/Lounger
  Plants: Seeds/Seed Pack, Bulbs/Bulb Pack, Planters/Planter, Compost/Compost Bag,
    Fertilisers/Fertiliser
  Outdoor Lighting: Solar Lights/Solar Light, Lanterns/Lantern, String Lights/String Light,
    Spotlights/Spotlight, Path Lights/Path Light
  Barbecue: Grills/Grill, Charcoal/Charcoal Bag, BBQ Tools/BBQ Tool Set, Smokers/Smoker,
    Grill Covers/Grill Cover
Grocery
  Coffee & Tea: Coffee Beans/Coffee Beans, Ground Coffee/Ground Coffee, Green Tea/Green Tea,
    Herbal Tea/Herbal Tea, Coffee Pods/Coffee Pods
  Snacks: Crisps/Crisps, Chocolate/Chocolate Bar, Nuts/Nut Mix, Biscuits/Biscuits,
    Granola Bars/Granola Bar
  Pantry: Pasta/Pasta, Olive Oil/Olive Oil, Spices/Spice Jar, Rice/Rice, Sauces/Sauce
  Drinks: Juices/Juice, Sparkling Water/Sparkling Water, Soft Drinks/Soft Drink, Syrups/Syrup,
    Kombucha/Kombucha
  Breakfast: Cereals/Cereal, Jams/Jam, Honey/Honey, Oats/Oats, Spreads/Spread
"""

# Levels below the curated three narrow a leaf by a modifier ("... > Knives > Professional").
_DEEP_MODIFIERS = ("Everyday", "Premium", "Professional", "Compact", "Eco", "Travel", "Kids", "Vintage")
_SIZED_DEPARTMENTS = frozenset({"Fashion", "Sports"})

_ADJECTIVES = (
    "Classic", "Modern", "Essential", "Premium", "Compact", "Deluxe", "Urban", "Nordic", "Vintage",
    "Smart", "Pro", "Eco", "Soft", "Bold", "Everyday", "Lightweight", "Ultra", "Signature", "Heritage",
    "Studio", "Active", "Cosy", "Minimal", "Rustic", "Sleek", "Grand", "Mini", "Original", "Select",
    "Prime",
)
_BRAND_HEADS = (
    "Nord", "Alto", "Bright", "Casa", "Delta", "Echo", "Fjell", "Golden", "Harbor", "Iris", "Juno",
    "Kite", "Luma", "Mesa", "Nova", "Oak", "Pine", "Quill", "River", "Sol", "Terra", "Urban", "Vela",
    "Wild", "Zen",
)
_BRAND_TAILS = ("vik", "line", "works", "craft", "ware", "lab", "wood", "field", "stone", "wave", "form", "nest")
_COLORS = ("black", "white", "grey", "navy", "blue", "red", "green", "beige", "brown", "pink", "yellow", "silver")
_MATERIALS = ("cotton", "steel", "wood", "plastic", "glass", "leather", "ceramic", "aluminium", "bamboo", "wool")
_SIZES = ("XS", "S", "M", "L", "XL", "XXL")
_TAGS = (
    "new", "bestseller", "sale", "eco", "gift idea", "limited edition", "premium", "bundle",
    "online exclusive", "clearance",
)
_TAG_RATES = (0.08, 0.0, 0.12, 0.10, 0.10, 0.03, 0.07, 0.04, 0.05, 0.04)  # bestseller: the popular head
_COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE", "AT", "BE", "US", "CH")
_COUNTRY_WEIGHTS = (0.26, 0.15, 0.14, 0.08, 0.08, 0.08, 0.05, 0.04, 0.04, 0.03, 0.03, 0.02)
_CHANNELS = ("organic", "paid_search", "social", "email", "referral", "app")
_CHANNEL_WEIGHTS = (0.35, 0.22, 0.18, 0.10, 0.07, 0.08)
_DESCRIPTION_TEMPLATES = (
    "{title}. A {adj} {noun} by {brand} in {color} {material}. {extra}",
    "Meet the {title} from {brand}: {adj} {noun} made of {material}, finished in {color}. {extra}",
    "{brand} {noun} in {color}. {extra} Made of {material}; {adj}, practical and built to last.",
)
_DESCRIPTION_EXTRAS = (
    "Free returns within 30 days.", "Ships within 24 hours.", "Our customers' favourite.",
    "Designed for daily use.", "Makes a great gift.", "Easy to care for.",
)

# Daily rhythm (UTC hours 0..23) and weekly rhythm (Monday..Sunday) of session starts.
_HOURLY = np.array(
    [0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.25, 0.45, 0.65, 0.75, 0.80, 0.85,
     0.95, 0.90, 0.85, 0.85, 0.90, 1.00, 1.15, 1.35, 1.45, 1.35, 1.00, 0.55]
)
_WEEKLY = np.array([0.95, 0.92, 0.93, 0.95, 1.00, 1.10, 1.20])
# How a session picks among 1, 2 or 3 preferred categories: cumulative thresholds per count.
_SLOT_THRESHOLDS = np.array([[1.0, 1.0], [1.0, 1.0], [0.65, 1.0], [0.55, 0.83]])


@functools.cache
def _curated_tree() -> tuple[tuple[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]], ...]:
    departments: list[tuple[str, list[tuple[str, tuple[tuple[str, str], ...]]]]] = []
    # Lines: a department; "  Sub: Plural/Singular, ..."; "    more leaves" continuing the line above.
    text = _TREE_TEXT.strip("\n").replace(",\n    ", ", ")
    for line in text.splitlines():
        if not line.startswith(" "):
            departments.append((line.strip(), []))
            continue
        sub, _, leaves = line.strip().partition(": ")
        pairs = tuple(tuple(leaf.split("/")) for leaf in leaves.split(", "))
        departments[-1][1].append((sub, pairs))  # type: ignore[arg-type]
    return tuple((name, tuple(subs)) for name, subs in departments)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def _pick(pool_len: int, k: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """k (index, repeat) pairs from a pool: a seeded order, cycling with a repeat counter when k is larger."""
    order = rng.permutation(pool_len)
    return [(int(order[i % pool_len]), i // pool_len) for i in range(k)]


def _suffixed(name: str, repeat: int) -> str:
    return name if repeat == 0 else f"{name} {repeat + 1}"


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Power-law weights (rank + 1) ** -exponent over a random ranking of n items."""
    return (rng.permutation(n) + 1.0) ** -exponent


def _iso(ts: np.ndarray) -> list[str]:
    return [s + "Z" for s in np.datetime_as_string(np.asarray(ts, dtype="datetime64[s]")).tolist()]


# ---------------------------------------------------------------------------------------------------
# Catalog


@dataclass(eq=False)
class CategoryTree:
    """The leaf categories of a full tree; leaf index = position in ``paths``.

    Leaves of one parent are contiguous (``parent = leaf // fanout``), which keeps sibling lookups
    vectorised.
    """

    paths: list[tuple[str, ...]]  # root-to-leaf names per leaf
    nouns: list[str]  # singular noun per leaf, for product titles
    department: np.ndarray  # int32, index of the top-level ancestor per leaf
    department_names: list[str]
    fanout: int
    popularity: np.ndarray  # float64 weight of a category when a session does not follow preference

    @property
    def n_leaves(self) -> int:
        return len(self.paths)

    @property
    def parent(self) -> np.ndarray:
        return np.arange(self.n_leaves, dtype=np.int32) // self.fanout


@dataclass(eq=False)
class Products:
    external_id: np.ndarray  # StringDType, "sku-000123"
    title: np.ndarray  # StringDType
    category: np.ndarray  # int32 leaf index into CategoryTree.paths
    brand: np.ndarray  # int32 index into brand_names
    brand_names: list[str]
    price: np.ndarray  # float64, two decimals, in the catalog currency
    stock: np.ndarray  # int32, stock at start_ts
    tags: np.ndarray  # uint16 bit mask over TAGS
    color: np.ndarray  # int8 index into COLORS
    material: np.ndarray  # int8 index into MATERIALS
    size: np.ndarray  # int8 index into SIZES, -1 where the category has no sizes
    adjective: np.ndarray  # int8 index into ADJECTIVES (the title's adjective, reused in descriptions)
    # Ground truth, not shop data: base popularity weight, and the one out-of-stock interval
    # [oos_start, oos_end) per product (empty when oos_start == oos_end).
    popularity: np.ndarray  # float64
    oos_start: np.ndarray  # int64
    oos_end: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.external_id)


@dataclass(eq=False)
class Customers:
    external_id: np.ndarray  # StringDType, "cust-000123"; index order = signup order
    created_at: np.ndarray  # int64 unix seconds, non-decreasing
    country: np.ndarray  # int8 index into COUNTRIES
    channel: np.ndarray  # int8 index into CHANNELS
    # Ground truth, not shop data: session weight, and preferred leaf categories (-1 padded).
    activity: np.ndarray  # float64
    preferred_categories: np.ndarray  # int32 (n, 3)
    n_preferred: np.ndarray  # int8, 1..3

    def __len__(self) -> int:
        return len(self.external_id)


@dataclass(eq=False)
class StockChanges:
    """The shop's stock feed: at ``ts`` product ``product_idx`` has ``stock`` units; sorted by (ts, product).

    Purchases do not decrement it: it is what the shop would send, and the events respect it (nothing is
    carted or bought while the product's stock is 0).
    """

    product_idx: np.ndarray  # int32
    ts: np.ndarray  # int64
    stock: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(eq=False)
class Catalog:
    spec: ShopSpec
    categories: CategoryTree
    products: Products
    customers: Customers
    stock_changes: StockChanges
    currency: str

    def product_record(self, i: int) -> dict[str, Any]:
        """One product in the shape of the products API (matches ``recs.Product`` fields)."""
        p = self.products
        cat = int(p.category[i])
        noun = self.categories.nouns[cat]
        brand = p.brand_names[int(p.brand[i])]
        color, material = _COLORS[int(p.color[i])], _MATERIALS[int(p.material[i])]
        title = str(p.title[i])
        description = _DESCRIPTION_TEMPLATES[i % len(_DESCRIPTION_TEMPLATES)].format(
            title=title, adj=_ADJECTIVES[int(p.adjective[i])].lower(), noun=noun.lower(), brand=brand,
            color=color, material=material, extra=_DESCRIPTION_EXTRAS[(i // 3) % len(_DESCRIPTION_EXTRAS)],
        )
        attributes: dict[str, str] = {"color": color, "material": material}
        if p.size[i] >= 0:
            attributes["size"] = _SIZES[int(p.size[i])]
        mask = int(p.tags[i])
        return {
            "external_id": str(p.external_id[i]),
            "title": title,
            "description": description,
            "category_path": list(self.categories.paths[cat]),
            "brand": brand,
            "price": float(p.price[i]),
            "currency": self.currency,
            "stock": int(p.stock[i]),
            "available": True,
            "tags": [t for b, t in enumerate(_TAGS) if mask >> b & 1],
            "attributes": attributes,
        }

    def customer_record(self, i: int) -> dict[str, Any]:
        c = self.customers
        return {
            "external_id": str(c.external_id[i]),
            "created_at": _iso(c.created_at[i : i + 1])[0],
            "attributes": {"country": _COUNTRIES[int(c.country[i])], "signup_channel": _CHANNELS[int(c.channel[i])]},
        }

    def iter_product_records(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        for i in range(start, len(self.products) if stop is None else stop):
            yield self.product_record(i)

    def iter_customer_records(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        for i in range(start, len(self.customers) if stop is None else stop):
            yield self.customer_record(i)

    def stock_at(self, product_idx: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Stock of each (product, time) pair per the initial stock and the stock timeline."""
        product_idx, ts = np.asarray(product_idx), np.asarray(ts)
        sc = self.stock_changes
        # Order the timeline by (product, ts) so that one searchsorted finds the last change at or before ts.
        order = np.lexsort((sc.ts, sc.product_idx))
        key = sc.product_idx[order].astype(np.int64) * (1 << 34) + sc.ts[order]
        query = product_idx.astype(np.int64) * (1 << 34) + ts
        pos = np.searchsorted(key, query, side="right") - 1
        hit = pos >= 0
        hit[hit] = sc.product_idx[order][pos[hit]] == product_idx[hit]
        out = self.products.stock[product_idx].copy()
        out[hit] = sc.stock[order][pos[hit]]
        return out


def _build_tree(spec: ShopSpec, rng: np.random.Generator) -> CategoryTree:
    f, depth = spec.category_fanout, spec.category_depth
    curated = _curated_tree()
    paths: list[tuple[str, ...]] = []
    nouns: list[str] = []
    department: list[int] = []
    departments = _pick(len(curated), f, rng)
    department_names = [_suffixed(curated[d][0], r) for d, r in departments]
    # Depth-first over a full tree: leaves of one parent end up contiguous, as CategoryTree promises.
    for di, (d, _) in enumerate(departments):
        dname, subs = department_names[di], curated[d][1]
        if depth == 1:
            paths.append((dname,))
            nouns.append(curated[d][0])
            department.append(di)
            continue
        for s, rs in _pick(len(subs), f, rng):
            sname, leaves = _suffixed(subs[s][0], rs), subs[s][1]
            if depth == 2:
                paths.append((dname, sname))
                nouns.append(subs[s][0])
                department.append(di)
                continue
            for leaf, rl in _pick(len(leaves), f, rng):
                prefix = (dname, sname, _suffixed(leaves[leaf][0], rl))
                # Levels beyond three: every combination of modifiers, in a fixed seeded order.
                deep = [()] if depth == 3 else _deep_paths(depth - 3, f, rng)
                for extra in deep:
                    paths.append(prefix + extra)
                    nouns.append(leaves[leaf][1])
                    department.append(di)
    return CategoryTree(
        paths=paths,
        nouns=nouns,
        department=np.array(department, dtype=np.int32),
        department_names=department_names,
        fanout=f,
        popularity=np.zeros(len(paths)),  # filled once product counts are known
    )


def _deep_paths(levels: int, f: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    if levels == 0:
        return [()]
    out: list[tuple[str, ...]] = []
    for m, r in _pick(len(_DEEP_MODIFIERS), f, rng):
        for rest in _deep_paths(levels - 1, f, rng):
            out.append((_suffixed(_DEEP_MODIFIERS[m], r), *rest))
    return out


def _brand_names(n: int, rng: np.random.Generator) -> list[str]:
    combos = [h + t for h in _BRAND_HEADS for t in _BRAND_TAILS]
    return [_suffixed(combos[i], r) for i, r in _pick(len(combos), n, rng)]


def _generate_products(spec: ShopSpec, tree: CategoryTree) -> Products:
    rng = _rng(spec.seed, _STREAM_PRODUCTS)
    n, n_leaves = spec.n_products, tree.n_leaves
    # Category sizes vary (log-normal shares); every category gets a product while there are enough.
    cat_share = rng.lognormal(0.0, 0.8, n_leaves)
    covered = np.arange(min(n, n_leaves))
    rest = rng.choice(n_leaves, size=n - len(covered), p=cat_share / cat_share.sum())
    category = rng.permutation(np.concatenate([covered, rest])).astype(np.int32)

    # Brands belong to a home department (brand b -> department b % D), so a department's products come
    # from a consistent set of brands; inside it brand popularity is skewed (u ** 2.5 favours small k).
    brand_names = _brand_names(spec.n_brands, rng)
    n_dept = len(tree.department_names)
    dept = tree.department[category]
    if spec.n_brands >= n_dept:
        per_dept = (spec.n_brands - dept + n_dept - 1) // n_dept
        k = np.floor(per_dept * rng.random(n) ** 2.5).astype(np.int64)
        brand = (dept + k * n_dept).astype(np.int32)
    else:
        brand = np.floor(spec.n_brands * rng.random(n) ** 2.5).astype(np.int32)

    # Popularity: Zipf over a random ranking inside each category.
    key = rng.random(n)
    order = np.lexsort((key, category))
    counts = np.bincount(category, minlength=n_leaves)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - offsets[category[order]]
    popularity = (rank + 1.0) ** -spec.popularity_exponent

    # Price: log-normal per category, times a brand premium, as shop prices ending in .99.
    cat_mu = rng.uniform(np.log(5.0), np.log(400.0), n_leaves)
    cat_sigma = rng.uniform(0.25, 0.6, n_leaves)
    brand_factor = rng.lognormal(0.0, 0.2, spec.n_brands)
    raw = np.exp(cat_mu[category] + cat_sigma[category] * rng.standard_normal(n)) * brand_factor[brand]
    price = np.round(np.floor(raw) + 0.99, 2)

    adjective = rng.integers(0, len(_ADJECTIVES), n).astype(np.int8)
    model_no = rng.integers(100, 10_000, n)
    color = rng.integers(0, len(_COLORS), n).astype(np.int8)
    material = rng.integers(0, len(_MATERIALS), n).astype(np.int8)
    sized = np.isin(
        tree.department, [i for i, d in enumerate(tree.department_names) if d.split(" ")[0] in _SIZED_DEPARTMENTS]
    )
    size = np.where(sized[category], rng.integers(0, len(_SIZES), n), -1).astype(np.int8)
    tag_bits = rng.random((n, len(_TAGS))) < np.array(_TAG_RATES)
    tag_bits[:, _TAGS.index("bestseller")] = rank < np.maximum(1, counts[category] // 20)  # top 5%
    tags = (tag_bits.astype(np.uint16) << np.arange(len(_TAGS), dtype=np.uint16)).sum(axis=1, dtype=np.uint16)

    width = max(6, len(str(n - 1)))
    external_id = np.array([f"sku-{i:0{width}d}" for i in range(n)], dtype=_STR)
    # A list comprehension over pre-made parts beats numpy string ops here (measured ~5x).
    nouns = [tree.nouns[c] for c in range(n_leaves)]
    title = np.array(
        [
            f"{brand_names[b]} {_ADJECTIVES[a]} {nouns[c]} {m}"
            for b, a, c, m in zip(brand.tolist(), adjective.tolist(), category.tolist(), model_no.tolist(),
                                  strict=True)
        ],
        dtype=_STR,
    )

    tree.popularity[:] = np.sqrt(counts) * rng.lognormal(0.0, 0.5, n_leaves) * (counts > 0)
    stock, oos_start, oos_end = _initial_stock(spec)
    return Products(
        external_id=external_id, title=title, category=category, brand=brand, brand_names=brand_names,
        price=price, stock=stock, tags=tags, color=color, material=material, size=size, adjective=adjective,
        popularity=popularity, oos_start=oos_start, oos_end=oos_end,
    )


def _initial_stock(spec: ShopSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = _rng(spec.seed, _STREAM_STOCK)
    n, start, end = spec.n_products, spec.start_ts, spec.end_ts
    stock = rng.geometric(1 / 40, n).astype(np.int32)
    u = rng.random(n)
    zero = u < spec.initially_out_of_stock_share
    sells_out = ~zero & (u < spec.initially_out_of_stock_share + spec.out_of_stock_share)
    stock[zero] = 0
    # No interval: an empty one at end_ts, so the "ts in [oos_start, oos_end)" test is always false.
    oos_start = np.full(n, end, dtype=np.int64)
    oos_end = np.full(n, end, dtype=np.int64)
    restock_wait = (rng.exponential(10 * DAY, n)).astype(np.int64) + 3600
    oos_start[zero] = start - 1
    oos_end[zero] = start + restock_wait[zero]
    t0 = rng.integers(start, end, n)
    oos_start[sells_out] = t0[sells_out]
    oos_end[sells_out] = t0[sells_out] + restock_wait[sells_out]
    return stock, oos_start, oos_end


def _stock_changes(spec: ShopSpec, products: Products) -> StockChanges:
    rng = _rng(spec.seed, _STREAM_STOCK, 1)
    n, start, end = spec.n_products, spec.start_ts, spec.end_ts
    has_oos = products.oos_end > products.oos_start
    sold_out = has_oos & (products.oos_start >= start)  # initially-zero products only get the restock
    restocked = has_oos & (products.oos_end < end)
    # Ordinary restocks about monthly, skipped while the product is sold out (the feed would say 0).
    n_updates = rng.poisson((end - start) / (30 * DAY), n)
    upd_p = np.repeat(np.arange(n), n_updates)
    upd_ts = rng.integers(start, end, len(upd_p))
    inside = (upd_ts >= products.oos_start[upd_p]) & (upd_ts < products.oos_end[upd_p])
    upd_p, upd_ts = upd_p[~inside], upd_ts[~inside]
    restock_qty = rng.geometric(1 / 40, n)
    pid = np.concatenate([np.flatnonzero(sold_out), np.flatnonzero(restocked), upd_p])
    ts = np.concatenate([products.oos_start[sold_out], products.oos_end[restocked], upd_ts])
    new_stock = np.concatenate(
        [np.zeros(int(sold_out.sum()), dtype=np.int64), restock_qty[restocked], rng.geometric(1 / 40, len(upd_p))]
    )
    # One int64 key (time, then product) sorts several times faster than a two-key lexsort.
    order = np.argsort((ts - (start - 1)) * n + pid, kind="stable")
    return StockChanges(
        product_idx=pid[order].astype(np.int32), ts=ts[order].astype(np.int64), stock=new_stock[order].astype(np.int32)
    )


def _generate_customers(spec: ShopSpec, tree: CategoryTree) -> Customers:
    rng = _rng(spec.seed, _STREAM_CUSTOMERS)
    n, start, end = spec.n_customers, spec.start_ts, spec.end_ts
    new = rng.random(n) < spec.new_customer_share
    created = np.where(new, rng.integers(start, end, n), start - rng.integers(1, 730 * DAY, n))
    created.sort()
    # Someone must exist when the first session starts.
    created[0] = min(int(created[0]), start - DAY)

    activity = _zipf_weights(n, spec.activity_exponent, rng)
    n_pref = rng.choice(np.arange(1, 4), size=n, p=[0.3, 0.4, 0.3]).astype(np.int8)
    cat_p = tree.popularity / tree.popularity.sum()
    pref = rng.choice(tree.n_leaves, size=(n, 3), p=cat_p).astype(np.int32)
    # Half the time the second preference is a sibling of the first (knives and cutting boards), which
    # gives the category tree itself predictive value.
    sibling = _siblings(tree, pref[:, 0], rng)
    pref[:, 1] = np.where(rng.random(n) < 0.5, sibling, pref[:, 1])
    pref[np.arange(3)[None, :] >= n_pref[:, None]] = -1

    width = max(6, len(str(n - 1)))
    return Customers(
        external_id=np.array([f"cust-{i:0{width}d}" for i in range(n)], dtype=_STR),
        created_at=created.astype(np.int64),
        country=rng.choice(len(_COUNTRIES), size=n, p=np.array(_COUNTRY_WEIGHTS) / sum(_COUNTRY_WEIGHTS)).astype(
            np.int8
        ),
        channel=rng.choice(len(_CHANNELS), size=n, p=np.array(_CHANNEL_WEIGHTS) / sum(_CHANNEL_WEIGHTS)).astype(
            np.int8
        ),
        activity=activity,
        preferred_categories=pref,
        n_preferred=n_pref,
    )


def _siblings(tree: CategoryTree, cat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random sibling leaf of each category; the category itself where the sibling has no products."""
    sib = (cat // tree.fanout) * tree.fanout + rng.integers(0, tree.fanout, len(cat))
    return np.where(tree.popularity[sib] > 0, sib, cat).astype(np.int32)


def generate_catalog(spec: ShopSpec) -> Catalog:
    """Categories, products, customers and the stock timeline of the shop described by ``spec``."""
    tree = _build_tree(spec, _rng(spec.seed, _STREAM_TREE))
    products = _generate_products(spec, tree)
    return Catalog(
        spec=spec,
        categories=tree,
        products=products,
        customers=_generate_customers(spec, tree),
        stock_changes=_stock_changes(spec, products),
        currency=spec.currency,
    )


# ---------------------------------------------------------------------------------------------------
# Events

_COLUMNS = ("session_seq", "event_type", "customer_idx", "product_idx", "ts", "quantity", "price")
_DTYPES = {
    "session_seq": np.int64, "event_type": np.uint8, "customer_idx": np.int32, "product_idx": np.int32,
    "ts": np.int64, "quantity": np.int32, "price": np.float64,
}
_Cols = dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class EventChunk:
    """A slice of the event stream, column-oriented; all columns have the same length.

    Ids are kept as integers (cheap, and what a loader maps to database keys); the string ids of the wire
    format are derived on demand by the properties below.
    """

    event_seq: np.ndarray  # int64, position in the whole stream (0..n-1); event_id derives from it
    session_seq: np.ndarray  # int64, sessions numbered in order of their start time
    event_type: np.ndarray  # uint8 code, see EVENT_TYPES
    customer_idx: np.ndarray  # int32 index into catalog.customers
    product_idx: np.ndarray  # int32 index into catalog.products
    ts: np.ndarray  # int64 unix seconds (UTC)
    quantity: np.ndarray  # int32, > 0 for purchases, 0 otherwise
    price: np.ndarray  # float64 unit price (two decimals) for purchases, NaN otherwise
    catalog: Catalog = field(repr=False)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def seed(self) -> int:
        return self.catalog.spec.seed

    @property
    def event_id(self) -> np.ndarray:
        return np.array([f"ev-{self.seed}-{s:010d}" for s in self.event_seq.tolist()], dtype=str)

    @property
    def session_id(self) -> np.ndarray:
        return np.array([f"ss-{self.seed}-{s:09d}" for s in self.session_seq.tolist()], dtype=str)

    @property
    def type_name(self) -> np.ndarray:
        return np.array(EVENT_TYPES)[self.event_type]

    @property
    def customer_id(self) -> np.ndarray:
        return self.catalog.customers.external_id[self.customer_idx]

    @property
    def product_id(self) -> np.ndarray:
        return self.catalog.products.external_id[self.product_idx]

    def arrays(self) -> dict[str, np.ndarray]:
        """The numeric columns by name (everything but the catalog)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "catalog"}

    @classmethod
    def concat(cls, chunks: Iterable[EventChunk]) -> EventChunk:
        chunks = list(chunks)
        if not chunks:
            raise ValueError("no chunks to concatenate")
        names = [f.name for f in dataclasses.fields(cls) if f.name != "catalog"]
        return cls(**{n: np.concatenate([getattr(c, n) for c in chunks]) for n in names}, catalog=chunks[0].catalog)


class _EventModel:
    """Everything about the shop that event generation needs, precomputed once per stream."""

    def __init__(self, spec: ShopSpec, catalog: Catalog, events_per_block: int = EVENTS_PER_BLOCK) -> None:
        self.spec, self.catalog = spec, catalog
        products, customers, tree = catalog.products, catalog.customers, catalog.categories
        start, end = spec.start_ts, spec.end_ts

        # Hourly grid of session-start intensity: daily and weekly rhythm, linear growth.
        n_hours = -(-(end - start) // 3600)
        self.hour_start = start + 3600 * np.arange(n_hours, dtype=np.int64)
        self.hour_len = np.minimum(3600, end - self.hour_start)
        hour_of_day = (self.hour_start // 3600) % 24
        weekday = (self.hour_start // DAY + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        self.hour_w = (
            _HOURLY[hour_of_day] * _WEEKLY[weekday] * (1 + spec.growth * np.arange(n_hours) / n_hours)
            * self.hour_len / 3600
        )

        # Time blocks and their session counts, fixed up front so each block can be generated alone.
        plan = _rng(spec.seed, _STREAM_PLAN)
        n_sessions = round(spec.n_events / spec.expected_events_per_session())
        n_blocks = int(np.clip(-(-spec.n_events // events_per_block), 1, n_hours))
        self.block_hours = np.unique(np.linspace(0, n_hours, n_blocks + 1).round().astype(np.int64))
        block_w = np.add.reduceat(self.hour_w, self.block_hours[:-1])
        self.block_sessions = plan.multinomial(n_sessions, block_w / block_w.sum())
        self.block_session_offset = np.concatenate([[0], np.cumsum(self.block_sessions)])

        # Products grouped by category; one global cumulative weight array serves every category.
        self.cat_order = np.argsort(products.category, kind="stable")
        counts = np.bincount(products.category, minlength=tree.n_leaves)
        self.cat_offset = np.concatenate([[0], np.cumsum(counts)])
        self.base_cum = np.cumsum(products.popularity[self.cat_order])
        before = np.concatenate([[0.0], self.base_cum])
        self.cat_before = before[self.cat_offset[:-1]]
        self.cat_total = before[self.cat_offset[1:]] - self.cat_before
        self.cat_cum = np.cumsum(tree.popularity)

        self.act_cum = np.cumsum(customers.activity)

        # Trending products per (period, category): uniform picks, so they are usually tail items rising.
        trend = _rng(spec.seed, _STREAM_TREND)
        self.period = int(spec.trend_period_days * DAY)
        n_periods = -(-(end - start) // self.period)
        u = trend.random((n_periods, tree.n_leaves, spec.n_trending_per_category))
        pos = self.cat_offset[:-1][None, :, None] + np.floor(u * counts[None, :, None]).astype(np.int64)
        self.trending = self.cat_order[np.minimum(pos, len(self.cat_order) - 1)].astype(np.int32)

    def block_end(self, b: int) -> int:
        h = self.block_hours[b + 1]
        return int(self.hour_start[h]) if h < len(self.hour_start) else self.spec.end_ts

    def sample_category(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = rng.random(n) * self.cat_cum[-1]
        return np.minimum(np.searchsorted(self.cat_cum, x, side="right"), len(self.cat_cum) - 1).astype(np.int32)

    def sample_in_category(self, rng: np.random.Generator, cat: np.ndarray) -> np.ndarray:
        x = self.cat_before[cat] + rng.random(len(cat)) * self.cat_total[cat]
        pos = np.searchsorted(self.base_cum, x, side="right")
        # Float rounding at a category edge could step into the neighbour: clamp into the category.
        pos = np.clip(pos, self.cat_offset[cat], self.cat_offset[cat + 1] - 1)
        return self.cat_order[pos].astype(np.int32)

    def block(self, b: int) -> _Cols:
        """The events of the sessions starting in block b, ordered by session, then time."""
        spec, catalog = self.spec, self.catalog
        n_s = int(self.block_sessions[b])
        if n_s == 0:
            return _empty_cols()
        rng = _rng(spec.seed, _STREAM_EVENTS, b)

        # Session starts: an hour by intensity, then a uniform second inside it.
        h0, h1 = self.block_hours[b], self.block_hours[b + 1]
        cw = np.cumsum(self.hour_w[h0:h1])
        h = h0 + np.minimum(np.searchsorted(cw, rng.random(n_s) * cw[-1], side="right"), h1 - h0 - 1)
        t0 = np.sort(self.hour_start[h] + (rng.random(n_s) * self.hour_len[h]).astype(np.int64))

        # Customer: activity-weighted among those already signed up (customers are in signup order).
        k = np.maximum(np.searchsorted(catalog.customers.created_at, t0, side="right"), 1)
        cust = np.searchsorted(self.act_cum, rng.random(n_s) * self.act_cum[k - 1], side="right")
        cust = np.minimum(cust, k - 1)

        # Session category: mostly one of the customer's preferred ones, else anything by popularity.
        pref = catalog.customers.preferred_categories[cust]
        slot = (rng.random(n_s)[:, None] >= _SLOT_THRESHOLDS[catalog.customers.n_preferred[cust]]).sum(axis=1)
        in_pref = rng.random(n_s) < spec.category_affinity
        s_cat = np.where(in_pref, pref[np.arange(n_s), slot], self.sample_category(rng, n_s))

        # Views: the session category, a sibling, or a random category; product by popularity or trend.
        n_views = np.minimum(rng.geometric(1 / spec.views_per_session, n_s), spec.max_views_per_session)
        v_sess = np.repeat(np.arange(n_s), n_views)
        n_v = len(v_sess)
        r = rng.random(n_v)
        v_cat = s_cat[v_sess]
        wander = spec.stay_in_category + (1 - spec.stay_in_category) / 2
        v_cat = np.where(
            r < spec.stay_in_category, v_cat,
            np.where(r < wander, _siblings(catalog.categories, v_cat, rng), self.sample_category(rng, n_v)),
        )
        period = ((t0 - spec.start_ts) // self.period)[v_sess]
        trending = self.trending[period, v_cat, rng.integers(0, spec.n_trending_per_category, n_v)]
        v_prod = np.where(rng.random(n_v) < spec.trend_share, trending, self.sample_in_category(rng, v_cat))
        click = rng.random(n_v) < spec.p_click
        cart = rng.random(n_v) < spec.p_view_to_cart
        impression = rng.random(n_v) < spec.p_impression
        buy = cart & (rng.random(n_v) < spec.p_cart_to_purchase)
        shown = self.sample_in_category(rng, v_cat)  # what the impression showed

        # Browsing events per view in a fixed order (click, view, cart, impression); purchases at checkout.
        mask = np.stack([click, np.ones(n_v, dtype=bool), cart, impression], axis=1)
        types = np.broadcast_to(np.array([CLICK, VIEW, ADD_TO_CART, IMPRESSION], dtype=np.uint8), mask.shape)[mask]
        prod = np.stack([v_prod, v_prod, v_prod, shown], axis=1)[mask]
        view_of = np.broadcast_to(np.arange(n_v)[:, None], mask.shape)[mask]
        bought = np.flatnonzero(buy)
        types = np.concatenate([types, np.full(len(bought), PURCHASE, dtype=np.uint8)])
        prod = np.concatenate([prod, v_prod[bought]])
        view_of = np.concatenate([view_of, bought])
        sess = v_sess[view_of]
        order = np.argsort(sess, kind="stable")  # purchases move to the end of their own session
        types, prod, view_of, sess = types[order], prod[order], view_of[order], sess[order]

        # Timestamps: seconds-apart gaps by event type, summed inside each session.
        n_e = len(types)
        first = np.ones(n_e, dtype=bool)
        first[1:] = sess[1:] != sess[:-1]
        prev = np.concatenate([[255], types[:-1]])
        expo, unif = rng.exponential(1.0, n_e), rng.random(n_e)
        gap = np.select(
            [
                first,
                (types == VIEW) & (prev == CLICK),
                (types == VIEW) | (types == CLICK),
                types == ADD_TO_CART,
                types == IMPRESSION,
                (types == PURCHASE) & (prev != PURCHASE),
            ],
            [0, 1 + 2 * unif, 3 + spec.mean_dwell_seconds * expo, 2 + 10 * expo, 1 + 3 * unif, 20 + 90 * expo],
            default=1,
        ).astype(np.int64)
        csum = np.cumsum(gap)
        ts = t0[sess] + csum - csum[np.flatnonzero(first)][sess]

        # Nothing is carted or bought while out of stock; a purchase needs its cart; nothing after end_ts.
        p = catalog.products
        oos = (ts >= p.oos_start[prod]) & (ts < p.oos_end[prod])
        is_cart, is_buy = types == ADD_TO_CART, types == PURCHASE
        cart_lost = np.zeros(n_v, dtype=bool)
        cart_lost[view_of[is_cart & oos]] = True
        drop = (is_cart & oos) | (is_buy & (oos | cart_lost[view_of])) | (ts >= spec.end_ts)
        keep = ~drop
        quantity = np.where(is_buy, rng.geometric(0.8, n_e), 0)
        price = np.where(is_buy, p.price[prod], np.nan)
        return _as_cols(
            session_seq=(self.block_session_offset[b] + sess)[keep], event_type=types[keep],
            customer_idx=cust[sess][keep], product_idx=prod[keep], ts=ts[keep], quantity=quantity[keep],
            price=price[keep],
        )

    def time_ordered(self) -> Iterator[_Cols]:
        """Blocks merged into one stream in time order.

        Sessions that straddle a block end spill into the next block's time; those events wait in
        ``pending`` until every session that could precede them has been generated.
        """
        pending = _empty_cols()
        n_blocks = len(self.block_sessions)
        for b in range(n_blocks):
            cols = _concat_cols([pending, self.block(b)])
            cols = _take(cols, np.argsort(cols["ts"], kind="stable"))
            if b == n_blocks - 1:
                yield cols
                return
            cut = int(np.searchsorted(cols["ts"], self.block_end(b), side="left"))
            yield _slice(cols, 0, cut)
            pending = _slice(cols, cut, None)


def _as_cols(**arrays: np.ndarray) -> _Cols:
    return {name: np.asarray(arrays[name], dtype=_DTYPES[name]) for name in _COLUMNS}


def _empty_cols() -> _Cols:
    return {name: np.empty(0, dtype=_DTYPES[name]) for name in _COLUMNS}


def _concat_cols(parts: list[_Cols]) -> _Cols:
    return {name: np.concatenate([p[name] for p in parts]) for name in _COLUMNS}


def _take(cols: _Cols, idx: np.ndarray) -> _Cols:
    return {name: a[idx] for name, a in cols.items()}


def _slice(cols: _Cols, start: int, stop: int | None) -> _Cols:
    return {name: a[start:stop] for name, a in cols.items()}


def iter_event_chunks(
    spec: ShopSpec, catalog: Catalog, chunk_size: int = 100_000, *, events_per_block: int = EVENTS_PER_BLOCK
) -> Iterator[EventChunk]:
    """The shop's events as chunks of at most ``chunk_size`` rows, in global time order.

    Memory stays flat however many events there are (one time block of about ``events_per_block`` events
    plus one chunk). The stream does not depend on ``chunk_size``: concatenated chunks are identical for
    any size. ``spec`` may differ from ``catalog.spec`` in event parameters (seed, counts, session shape),
    not in catalog shape.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    cs = catalog.spec
    if (spec.n_products, spec.n_customers, spec.n_leaf_categories) != (
        cs.n_products, cs.n_customers, cs.n_leaf_categories
    ):
        raise ValueError("spec and catalog disagree on n_products, n_customers or the category tree")
    model = _EventModel(spec, catalog, events_per_block)
    seq = 0
    buffered: list[_Cols] = []
    n_buffered = 0

    def emit(cols: _Cols) -> EventChunk:
        nonlocal seq
        n = len(cols["ts"])
        chunk = EventChunk(event_seq=np.arange(seq, seq + n, dtype=np.int64), catalog=catalog, **cols)
        seq += n
        return chunk

    for part in model.time_ordered():
        buffered.append(part)
        n_buffered += len(part["ts"])
        if n_buffered < chunk_size:
            continue
        cols = _concat_cols(buffered)
        start = 0
        while n_buffered - start >= chunk_size:
            yield emit(_slice(cols, start, start + chunk_size))
            start += chunk_size
        buffered = [_slice(cols, start, None)]
        n_buffered -= start
    if n_buffered:
        yield emit(_concat_cols(buffered))


def generate_events(spec: ShopSpec, catalog: Catalog, *, events_per_block: int = EVENTS_PER_BLOCK) -> EventChunk:
    """All events in one chunk: for tests and small demos (use iter_event_chunks at scale)."""
    chunks = list(iter_event_chunks(spec, catalog, chunk_size=1 << 62, events_per_block=events_per_block))
    if chunks:
        return chunks[0]
    return EventChunk(event_seq=np.empty(0, dtype=np.int64), catalog=catalog, **_empty_cols())


# ---------------------------------------------------------------------------------------------------
# Writers. Ids, type names and ISO timestamps never need JSON or CSV escaping, so lines are formatted
# directly instead of through json.dumps, which is several times slower.

CSV_HEADER = "event_id,type,customer_id,product_id,session_id,timestamp,quantity,price\n"


@contextlib.contextmanager
def _open_out(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    if str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
    elif str(path).endswith(".gz"):
        # mtime=0 keeps the gzip header, and so the bytes, reproducible.
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as f:
            yield f  # type: ignore[misc]
    else:
        with open(path, "wb", buffering=1 << 20) as f:
            yield f


def _chunk_fields(chunk: EventChunk) -> tuple[list[str], ...]:
    seed = chunk.seed
    events = [f"ev-{seed}-{s:010d}" for s in chunk.event_seq.tolist()]
    sessions = [f"ss-{seed}-{s:09d}" for s in chunk.session_seq.tolist()]
    types = [EVENT_TYPES[t] for t in chunk.event_type.tolist()]
    customers = chunk.customer_id.tolist()
    products = chunk.product_id.tolist()
    return events, types, customers, products, sessions, _iso(chunk.ts)


def _purchases(chunk: EventChunk) -> tuple[list[int], list[int], list[float]]:
    idx = np.flatnonzero(chunk.event_type == PURCHASE)
    return idx.tolist(), chunk.quantity[idx].tolist(), chunk.price[idx].tolist()


def format_ndjson(chunk: EventChunk) -> str:
    """NDJSON lines of the ingest API's event shape (recs.ingest.event_schema.EventIn)."""
    tails = ["}\n"] * len(chunk)
    for i, q, p in zip(*_purchases(chunk), strict=True):
        tails[i] = f',"quantity":{q},"price":{p:.2f}}}\n'
    return "".join(
        [
            f'{{"event_id":"{e}","type":"{t}","customer_id":"{c}","product_id":"{p}","session_id":"{s}",'
            f'"timestamp":"{ts}"{tail}'
            for e, t, c, p, s, ts, tail in zip(*_chunk_fields(chunk), tails, strict=True)
        ]
    )


def format_csv(chunk: EventChunk) -> str:
    """CSV rows (no header) with the columns of CSV_HEADER; quantity and price empty except for purchases."""
    tails = [",\n"] * len(chunk)
    for i, q, p in zip(*_purchases(chunk), strict=True):
        tails[i] = f"{q},{p:.2f}\n"
    return "".join(
        [
            f"{e},{t},{c},{p},{s},{ts},{tail}"
            for e, t, c, p, s, ts, tail in zip(*_chunk_fields(chunk), tails, strict=True)
        ]
    )


def write_ndjson(path: str | os.PathLike[str], chunks: Iterable[EventChunk]) -> int:
    """Write the events as NDJSON (gzip if the path ends in .gz, stdout for "-"); returns the count."""
    n = 0
    with _open_out(path) as f:
        for chunk in chunks:
            f.write(format_ndjson(chunk).encode())
            n += len(chunk)
    return n


def write_csv(path: str | os.PathLike[str], chunks: Iterable[EventChunk]) -> int:
    """Write the events as CSV with a header line (gzip if the path ends in .gz); returns the count."""
    n = 0
    with _open_out(path) as f:
        f.write(CSV_HEADER.encode())
        for chunk in chunks:
            f.write(format_csv(chunk).encode())
            n += len(chunk)
    return n


def write_records_ndjson(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Write product or customer records (Catalog.iter_*_records) as NDJSON; returns the count."""
    n = 0
    with _open_out(path) as f:
        batch: list[str] = []
        for record in records:
            batch.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            n += 1
            if len(batch) == 10_000:
                f.write(("\n".join(batch) + "\n").encode())
                batch = []
        if batch:
            f.write(("\n".join(batch) + "\n").encode())
    return n


# ---------------------------------------------------------------------------------------------------
# CLI


def _parse_time(text: str) -> int:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp())


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm  # only the CLI needs it

    parser = argparse.ArgumentParser(
        prog="python -m demo.synthetic", description="Generate a deterministic synthetic shop."
    )
    parser.add_argument("--products", type=int, default=1_000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--events", type=int, default=20_000, help="approximate number of events")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=_parse_time, default=_EPOCH_2024, help="ISO date/time, UTC (2024-01-01)")
    parser.add_argument("--days", type=float, default=91.0)
    parser.add_argument("--depth", type=int, default=3, help="category tree depth")
    parser.add_argument("--fanout", type=int, default=4, help="category tree fan-out")
    parser.add_argument("--brands", type=int, default=60)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--ndjson", help="events as NDJSON (.gz to compress, - for stdout)")
    parser.add_argument("--csv", help="events as CSV (.gz to compress)")
    parser.add_argument("--products-ndjson", help="product records as NDJSON")
    parser.add_argument("--customers-ndjson", help="customer records as NDJSON")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    spec = ShopSpec(
        n_customers=args.customers, n_products=args.products, n_events=args.events, seed=args.seed,
        start_ts=args.start, end_ts=args.start + int(args.days * DAY), category_depth=args.depth,
        category_fanout=args.fanout, n_brands=args.brands,
    )
    catalog = generate_catalog(spec)
    if args.products_ndjson:
        write_records_ndjson(args.products_ndjson, catalog.iter_product_records())
    if args.customers_ndjson:
        write_records_ndjson(args.customers_ndjson, catalog.iter_customer_records())

    sinks = [(path, fmt) for path, fmt in ((args.ndjson, format_ndjson), (args.csv, format_csv)) if path]
    counts = np.zeros(len(EVENT_TYPES), dtype=np.int64)
    with contextlib.ExitStack() as stack:
        files = [(stack.enter_context(_open_out(path)), fmt) for path, fmt in sinks]
        for f, fmt in files:
            if fmt is format_csv:
                f.write(CSV_HEADER.encode())
        bar = stack.enter_context(
            tqdm(total=spec.n_events, unit="ev", unit_scale=True, file=sys.stderr, disable=args.no_progress)
        )
        for chunk in iter_event_chunks(spec, catalog, chunk_size=args.chunk_size):
            for f, fmt in files:
                f.write(fmt(chunk).encode())
            counts += np.bincount(chunk.event_type, minlength=len(EVENT_TYPES))
            bar.update(len(chunk))
    summary = ", ".join(f"{name} {int(c):,}" for name, c in zip(EVENT_TYPES, counts, strict=True))
    print(
        f"{len(catalog.products):,} products, {len(catalog.customers):,} customers, "
        f"{int(counts.sum()):,} events ({summary})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
