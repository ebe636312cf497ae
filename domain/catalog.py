"""The product catalog: what the bank sells, who it fits, and what it is worth.

The catalog is a CSV file (default: ``domain/data/catalog.csv``), one product a row, with
these columns (sets are ``|``-separated; ``#`` lines are comments):

=================== ===========================================================================
product_id          snake_case id, matches ``schemas.events.PRODUCT_ID_PATTERN``
name, name_zh       display names (English, Chinese)
family              one of ``FAMILIES``
risk_level          1..5 (R1..R5); a product may be offered only to risk tolerance >= it
min_assets_minor    minimum assets with the bank (fen) to buy it
min_age, max_age    inclusive age range (years)
value_tiers         tiers it fits, subset of ``VALUE_TIERS``
annual_value_minor  value to the bank per year of holding (fen)
multi_hold          true if a customer may hold it more than once (deposits, funds, ...)
channels            offer touchpoints allowed, subset of ``CHANNELS``
cooldown_days       days not to offer it again after a decline
pitch_en, pitch_zh  one sentence a teller or agent can say
=================== ===========================================================================

``load_catalog`` validates every row and raises ``CatalogError`` naming the file, the line and
the column (``CatalogError.line``, ``.column``). Which file a process serves is the setting
``NBO_CATALOG__PATH`` (``bootstrap.catalog``); the packaged file is the default and the example.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from schemas.events import PRODUCT_ID_PATTERN

DEFAULT_CATALOG_PATH = Path(__file__).parent / "data" / "catalog.csv"

FAMILIES: tuple[str, ...] = (
    "deposit",
    "time_deposit",
    "cd",
    "wealth",
    "fund",
    "insurance",
    "gold",
    "loan",
    "credit_card",
    "service",
)
VALUE_TIERS: tuple[str, ...] = ("mass", "affluent", "high_net_worth", "private")
CHANNELS: tuple[str, ...] = ("teller", "call_centre", "mobile")

#: Lower bounds (fen) of assets with the bank for each value tier, ascending. Mass is below
#: 200,000 CNY (the large-CD threshold), affluent to 1 million, high net worth to 6 million,
#: private banking from 6 million (the usual Chinese private-banking entry level).
VALUE_TIER_FLOORS_MINOR: tuple[tuple[str, int], ...] = (
    ("mass", 0),
    ("affluent", 20_000_000),
    ("high_net_worth", 100_000_000),
    ("private", 600_000_000),
)

COLUMNS: tuple[str, ...] = (
    "product_id",
    "name",
    "name_zh",
    "family",
    "risk_level",
    "min_assets_minor",
    "min_age",
    "max_age",
    "value_tiers",
    "annual_value_minor",
    "multi_hold",
    "channels",
    "cooldown_days",
    "pitch_en",
    "pitch_zh",
)

_PRODUCT_ID = re.compile(PRODUCT_ID_PATTERN)
_BOOLS = {"true": True, "false": False}


def value_tier_for_assets(assets_minor: int) -> str:
    """The value tier for assets with the bank in fen (see ``VALUE_TIER_FLOORS_MINOR``)."""
    tier = VALUE_TIERS[0]
    for name, floor in VALUE_TIER_FLOORS_MINOR:
        if assets_minor >= floor:
            tier = name
    return tier


class CatalogError(ValueError):
    """An invalid catalog file. The message names the file, the line and the column
    (``line``: 1-based physical line, None for the whole file; ``column``: the column at fault,
    None when the fault is not one cell's)."""

    def __init__(self, path: Path | str, line: int | None, reason: str, column: str | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason
        self.column = column


class ColumnError(ValueError):
    """One cell of a row is invalid; the message starts with the column's name."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    name_zh: str
    family: str
    risk_level: int
    min_assets_minor: int
    min_age: int
    max_age: int
    value_tiers: frozenset[str]
    annual_value_minor: int
    multi_hold: bool
    channels: frozenset[str]
    cooldown_days: int
    pitch_en: str
    pitch_zh: str

    def fits_age(self, age_years: int) -> bool:
        return self.min_age <= age_years <= self.max_age


@dataclass(frozen=True)
class Catalog:
    """An ordered, validated set of products. ``index[product_id]`` is the product's position
    in ``products`` and ``ids`` (the column order of every product matrix)."""

    products: tuple[Product, ...]
    ids: tuple[str, ...] = field(init=False)
    index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)
    #: The distinct ``min_assets_minor`` values, ascending (customers who clear the same ones are
    #: alike for the minimum-assets rule).
    asset_thresholds: tuple[int, ...] = field(init=False, repr=False, compare=False, hash=False)
    #: The ages where some product's age band starts or ends (``min_age``, ``max_age + 1``),
    #: ascending: customers between the same two are alike for the age rule.
    age_boundaries: tuple[int, ...] = field(init=False, repr=False, compare=False, hash=False)
    canonical_text: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(p.product_id for p in self.products))
        object.__setattr__(self, "index", {pid: i for i, pid in enumerate(self.ids)})
        object.__setattr__(self, "asset_thresholds", tuple(sorted({p.min_assets_minor for p in self.products})))
        object.__setattr__(self, "age_boundaries",
                           tuple(sorted({p.min_age for p in self.products} | {p.max_age + 1 for p in self.products})))
        if len(self.index) != len(self.ids):
            raise ValueError("duplicate product_id in catalog")

    def get(self, product_id: str) -> Product:
        try:
            return self.products[self.index[product_id]]
        except KeyError:
            raise KeyError(f"unknown product_id {product_id!r}; the catalog has {len(self)} products") from None

    def __len__(self) -> int:
        return len(self.products)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.products)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self.index

    def family_of(self, product_id: str) -> str:
        return self.get(product_id).family

    def content_hash(self) -> str:
        """sha256 (hex) of the canonical file content: UTF-8, LF line ends, no trailing blanks.
        Two catalogs with the same hash have the same products in the same order."""
        text = self.canonical_text or _render(self.products)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _render(products: tuple[Product, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for p in products:
        writer.writerow(
            [
                p.product_id, p.name, p.name_zh, p.family, p.risk_level, p.min_assets_minor,
                p.min_age, p.max_age, "|".join(t for t in VALUE_TIERS if t in p.value_tiers),
                p.annual_value_minor, "true" if p.multi_hold else "false",
                "|".join(c for c in CHANNELS if c in p.channels), p.cooldown_days, p.pitch_en, p.pitch_zh,
            ]
        )
    return out.getvalue()


def _int(value: str, column: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ColumnError(column, f"{column} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise ColumnError(column, f"{column} must be in [{low}, {high}], got {number}")
    return number


def _set(value: str, column: str, allowed: tuple[str, ...]) -> frozenset[str]:
    items = [v.strip() for v in value.split("|") if v.strip()]
    if not items:
        raise ColumnError(column, f"{column} must name at least one of {', '.join(allowed)}")
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise ColumnError(column, f"{column} has unknown value(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return frozenset(items)


def _text(value: str, column: str, max_len: int) -> str:
    value = value.strip()
    if not value:
        raise ColumnError(column, f"{column} must not be empty")
    if len(value) > max_len:
        raise ColumnError(column, f"{column} is {len(value)} characters, the limit is {max_len}")
    return value


def parse_row(row: dict[str, str]) -> Product:
    """One validated product from a CSV row; ``ColumnError`` (a ``ValueError``) names the column
    at fault."""
    pid = row["product_id"].strip()
    if not _PRODUCT_ID.match(pid):
        raise ColumnError("product_id", f"product_id {pid!r} must be snake_case matching {PRODUCT_ID_PATTERN}")
    family = row["family"].strip()
    if family not in FAMILIES:
        raise ColumnError("family", f"family {family!r} is not one of {', '.join(FAMILIES)}")
    multi = row["multi_hold"].strip().lower()
    if multi not in _BOOLS:
        raise ColumnError("multi_hold", f"multi_hold must be true or false, got {row['multi_hold']!r}")
    min_age = _int(row["min_age"], "min_age", 0, 120)
    max_age = _int(row["max_age"], "max_age", 0, 120)
    if max_age < min_age:
        raise ColumnError("max_age", f"max_age {max_age} is below min_age {min_age}")
    return Product(
        product_id=pid,
        name=_text(row["name"], "name", 80),
        name_zh=_text(row["name_zh"], "name_zh", 40),
        family=family,
        risk_level=_int(row["risk_level"], "risk_level", 1, 5),
        min_assets_minor=_int(row["min_assets_minor"], "min_assets_minor", 0, 10**13),
        min_age=min_age,
        max_age=max_age,
        value_tiers=_set(row["value_tiers"], "value_tiers", VALUE_TIERS),
        annual_value_minor=_int(row["annual_value_minor"], "annual_value_minor", 0, 10**12),
        multi_hold=_BOOLS[multi],
        channels=_set(row["channels"], "channels", CHANNELS),
        cooldown_days=_int(row["cooldown_days"], "cooldown_days", 0, 3650),
        pitch_en=_text(row["pitch_en"], "pitch_en", 200),
        pitch_zh=_text(row["pitch_zh"], "pitch_zh", 100),
    )


def parse_catalog(text: str, path: Path | str = "<catalog>") -> Catalog:
    """Validate catalog CSV text. Raises ``CatalogError`` with the file and (1-based) line."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # Keep physical line numbers: comment and blank lines stay in the numbering.
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise CatalogError(path, None, "the catalog is empty")
    header_line, header = numbered[0]
    columns = next(csv.reader([header]))
    columns = [c.strip() for c in columns]
    missing = [c for c in COLUMNS if c not in columns]
    extra = [c for c in columns if c not in COLUMNS]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unknown column(s) {', '.join(extra)}")
        raise CatalogError(path, header_line, "; ".join(parts))
    products: list[Product] = []
    seen: dict[str, int] = {}
    for line_no, line in numbered[1:]:
        try:
            values = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            raise CatalogError(path, line_no, f"malformed CSV ({exc})") from None
        if len(values) != len(columns):
            raise CatalogError(path, line_no, f"expected {len(columns)} columns, found {len(values)}")
        try:
            product = parse_row(dict(zip(columns, values)))
        except ValueError as exc:
            raise CatalogError(path, line_no, str(exc), getattr(exc, "column", None)) from None
        if product.product_id in seen:
            raise CatalogError(
                path, line_no, f"duplicate product_id {product.product_id!r} (first on line {seen[product.product_id]})",
                "product_id")
        seen[product.product_id] = line_no
        products.append(product)
    if not products:
        raise CatalogError(path, None, "the catalog has a header but no products")
    frozen = tuple(products)
    return Catalog(products=frozen, canonical_text=_render(frozen))


def load_catalog(path: Path | None = None) -> Catalog:
    """Read and validate a catalog file (default: the packaged ``data/catalog.csv``)."""
    path = Path(path) if path is not None else DEFAULT_CATALOG_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(path, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(path, None, f"not UTF-8 ({exc.reason})") from None
    return parse_catalog(text, path)
