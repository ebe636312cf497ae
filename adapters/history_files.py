"""History files -> candidate events: what ``nbo import`` reads, before the contract checks it.

Two kinds of input, each as CSV, JSONL or Parquet (by file suffix: ``.csv``, ``.jsonl`` /
``.ndjson`` / ``.json``, ``.parquet`` / ``.pq``):

- **Contract files**: one row per event with the contract's field names (``docs/EVENTS.md``);
  the event type from a ``type`` column, else from ``event_type`` (``--type``), else from the
  file name (``deposits.csv``, ``pos.parquet``, ...). ``contract_batches``.
- **Core-banking extracts** through a mapping file (``load_mapping``; YAML or TOML, see
  ``docs/IMPORT.md`` and ``examples/core_banking/mapping.yaml``): one table a section, which
  event type its rows become, which columns make the row's key (the event id is a hash of it,
  so a rerun gives the same ids) and how each event field is made from the columns.
  ``mapped_batches``.

Both give ``Candidates``: JSON objects, one a row, with the row numbers they came from, plus
the rows refused already here (a code the mapping does not know, an amount or a date that is
not in the stated form). Everything else about a row (patterns, ranges, enums, required
fields, time bounds) is left to the contract's own models (``adapters.contract_rows``), so a
rule is never written twice. Values in CSV are text: integers, booleans (``true``/``false``,
``1``/``0``) and numbers are converted for the contract's fields of those types; a value that
does not convert goes to the contract as the text it was, and is refused there with the
contract's message. Empty cells are missing values: the contract's default applies.

Files are read in chunks of ``chunk_rows`` (pyarrow's streaming CSV reader, Parquet row
groups, JSONL lines), so memory does not grow with the file. Row numbers are 1-based data rows
(a CSV's header is not a row; in JSONL, the line number).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Iterator, Literal, Sequence, Union, get_args, get_origin

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.events import EVENT_TYPES, Event, merchant_category_for_mcc

DEFAULT_CHUNK_ROWS = 100_000
TABLE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,29}$"
#: Event fields a mapping never sets: the id comes from the key, the rest from the contract.
NOT_MAPPED = frozenset({"event_id", "type", "schema_version"})
_TRUE = ("true", "t", "1", "yes", "y")
_FALSE = ("false", "f", "0", "no", "n")
_TYPE_BY_NAME = {**{t: t for t in EVENT_TYPES}, **{t + "s": t for t in EVENT_TYPES},
                 "deposit_posted": "deposit", "card_payments": "pos", "purchases": "purchase",
                 "offer_outcomes": "offer_outcome", "profiles": "profile"}


class HistoryFileError(ValueError):
    """A file or mapping that cannot be read at all (not one bad row: those are refusals)."""


@dataclass
class Refusal:
    """A row refused before the contract saw it. ``value`` is the offending value as given
    (the caller masks it before it shows it)."""

    source: str
    row: int
    field: str
    reason: str
    customer_id: str | None = None
    value: str | None = None


@dataclass
class Candidates:
    """Candidate events of one chunk of one file: ``lines[i]`` (a JSON object) is row
    ``rows[i]``; with ``keys`` (mapped tables) the event id of ``lines[i]`` is
    ``contract_rows.event_id_for(id_prefix, keys[i])``, not yet in the line."""

    source: str
    rows: list[int]
    lines: Sequence[bytes] | pa.Array  # an Arrow array of binary crosses to a process cheaply
    keys: Sequence[str | bytes] | pa.Array | None = None
    id_prefix: str = ""
    refused: list[Refusal] = field(default_factory=list)
    read: int = 0  # rows of the file this chunk covers (lines + refused)
    #: The lines are written as ``schemas.codec.encode`` writes the events they validate to (with
    #: the event id put first), so the check keeps them instead of encoding each event again.
    canonical: bool = False
    #: With canonical lines: the store's columns of each line (``customer_id``, ``occurred_at_us``,
    #: ``type``, ``product_id``), which the check then need not send back.
    fields: pa.Table | None = None


# ---------------------------------------------------------------------------------------------
# The contract's field kinds, from the models themselves


def field_kinds(model: type[Event]) -> dict[str, str]:
    """``int``, ``bool``, ``float`` or ``str`` for each field of an event model (what a CSV
    cell has to be converted to for the contract; times, enums and ids stay text)."""
    kinds = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if get_origin(annotation) in (Union, UnionType):
            annotation = next((a for a in get_args(annotation) if a is not type(None)), str)
        if get_origin(annotation) is Literal:
            annotation = type(get_args(annotation)[0])
        kinds[name] = ("bool" if annotation is bool else "int" if annotation is int
                       else "float" if annotation is float else "str")
    return kinds


def field_defaults(model: type[Event]) -> dict[str, Any]:
    """The defaults of the fields that have one other than ``None``, as the wire writes them."""
    out = {}
    for name, info in model.model_fields.items():
        if not info.is_required() and not info.default_factory_takes_validated_data:  # not derived from others
            default = info.get_default(call_default_factory=True)
            if default is not None:
                out[name] = getattr(default, "value", default)
    return out


def event_type_for(path: Path, given: str | None) -> str | None:
    """The event type of a contract file without a ``type`` column: ``given``, else the file
    name's (``deposits.csv`` -> ``deposit``), else None."""
    if given:
        return given
    stem = path.name.split(".")[0].lower()
    return _TYPE_BY_NAME.get(stem)


# ---------------------------------------------------------------------------------------------
# Reading files in chunks


def file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if ".csv" in suffixes:
        return "csv"
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    if {".jsonl", ".ndjson", ".json"} & set(suffixes):
        return "jsonl"
    raise HistoryFileError(f"{path}: unknown file type; name it .csv, .jsonl or .parquet")


def read_frames(path: Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[tuple[int, pl.DataFrame]]:
    """(first row number, frame) for each chunk of a CSV (every column text) or Parquet file."""
    kind = file_format(path)
    row = 1
    if kind == "csv":
        with open(path, "rb") as handle:
            header = handle.readline().decode("utf-8-sig").rstrip("\r\n")
        if not header:
            return
        names = _csv_header(header)
        try:
            reader = pacsv.open_csv(
                path, read_options=pacsv.ReadOptions(block_size=8 << 20),
                convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                     strings_can_be_null=True, quoted_strings_can_be_null=True))
        except pa.ArrowInvalid as exc:
            raise HistoryFileError(f"{path}: not a CSV file ({exc})") from None
        pending: list[pa.RecordBatch] = []
        count = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise HistoryFileError(f"{path}: after row {row + count - 1}: {exc}") from None
            pending.append(batch)
            count += batch.num_rows
            if count >= chunk_rows:
                frame = pl.from_arrow(pa.Table.from_batches(pending))
                yield row, frame  # type: ignore[misc]
                row += count
                pending, count = [], 0
        if pending and count:
            yield row, pl.from_arrow(pa.Table.from_batches(pending))  # type: ignore[misc]
    elif kind == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise HistoryFileError(f"{path}: not a Parquet file ({exc})") from None
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            frame = pl.from_arrow(batch)
            yield row, frame  # type: ignore[misc]
            row += batch.num_rows
    else:
        for first, lines in read_line_chunks(path, chunk_rows):
            yield first, _frame_of_lines(path, first, lines)


def _csv_header(line: str) -> list[str]:
    import csv

    return [name.strip() for name in next(csv.reader([line]))]


def read_line_chunks(path: Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[tuple[int, list[bytes]]]:
    """(first line number, lines) of a JSONL file, blank lines kept (as ``b""``) for numbering."""
    with open(path, "rb") as handle:
        first = 1
        chunk: list[bytes] = []
        for line in handle:
            chunk.append(line.strip())
            if len(chunk) >= chunk_rows:
                yield first, chunk
                first += len(chunk)
                chunk = []
        if chunk:
            yield first, chunk


def _frame_of_lines(path: Path, first: int, lines: list[bytes]) -> pl.DataFrame:
    """A JSONL chunk of a core-banking extract as a frame of text columns (values as JSON text)."""
    rows = []
    for offset, line in enumerate(lines):
        if not line:
            rows.append({})
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise HistoryFileError(f"{path}: line {first + offset}: not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise HistoryFileError(f"{path}: line {first + offset}: a row must be a JSON object")
        rows.append({k: None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode()
                     for k, v in value.items()})
    names = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame({n: [r.get(n) for r in rows] for n in names}, schema={n: pl.String for n in names})


# ---------------------------------------------------------------------------------------------
# Contract files


def contract_batches(path: Path, event_type: str | None = None,
                     chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Candidates]:
    """Candidate events of a file already in the contract's shape (see the module docstring)."""
    if event_type is not None and event_type not in EVENT_TYPES:
        raise HistoryFileError(f"--type {event_type}: not an event type ({', '.join(EVENT_TYPES)})")
    source = str(path)
    if file_format(path) == "jsonl":
        implied = event_type_for(path, event_type)
        for first, lines in read_line_chunks(path, chunk_rows):
            rows, kept = [], []
            for offset, line in enumerate(lines):
                if not line:
                    continue
                rows.append(first + offset)
                kept.append(_with_type(line, implied) if implied else line)
            yield Candidates(source, rows, kept, read=len(kept))
        return
    for first, frame in read_frames(path, chunk_rows):
        if "type" not in frame.columns:
            implied = event_type_for(path, event_type)
            if implied is None:
                raise HistoryFileError(f"{path}: no type column; name the event type with --type or name the "
                                       f"file for it (deposits.csv, pos.csv, ...)")
            frame = frame.with_columns(pl.lit(implied).alias("type"))
        yield _contract_chunk(source, first, frame)


def _with_type(line: bytes, event_type: str) -> bytes:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line  # refused by the contract check, with its reason
    if isinstance(data, dict) and "type" not in data:
        return orjson.dumps({"type": event_type, **data})
    return line


def _contract_chunk(source: str, first: int, frame: pl.DataFrame) -> Candidates:
    frame = frame.with_row_index("_row", offset=first)
    rows: list[int] = []
    lines: list[bytes] = []
    typed = pl.col("type").cast(pl.String)
    known = frame.filter(typed.is_in(list(EVENT_TYPES)))
    for (event_type,), part in known.partition_by("type", as_dict=True).items():
        model = EVENT_TYPES[str(event_type)]
        kinds, defaults = field_kinds(model), field_defaults(model)
        names = [c for c in part.columns if c in kinds]
        extras = [c for c in part.columns if c not in kinds and c != "_row"]
        converted = part.select("_row", *[_contract_value(c, part.schema[c], kinds[c], defaults.get(c)).alias(c)
                                          for c in names])
        # A row goes the slow way when a value did not convert or a column foreign to its type has
        # a value: the contract then sees the value as given and says what is wrong.
        flags = pl.DataFrame({"bad": [False] * part.height}).get_column("bad")
        for c in names:
            flags = flags | (part.get_column(c).is_not_null() & converted.get_column(c).is_null())
        for c in extras:
            flags = flags | part.get_column(c).is_not_null()
        good = converted.filter(~flags)
        rows += good.get_column("_row").to_list()
        lines += _json_lines(good, names)
        if flags.any():
            for raw, conv in zip(part.filter(flags).iter_rows(named=True),
                                 converted.filter(flags).iter_rows(named=True)):
                record = {k: (conv[k] if conv.get(k) is not None else v)
                          for k, v in raw.items() if v is not None and k != "_row"}
                rows.append(raw["_row"])
                lines.append(orjson.dumps(record, default=str))
    unknown = frame.filter(~typed.is_in(list(EVENT_TYPES)) | typed.is_null())
    for raw in unknown.iter_rows(named=True):
        rows.append(raw["_row"])
        lines.append(orjson.dumps({k: v for k, v in raw.items() if v is not None and k != "_row"}, default=str))
    return Candidates(source, rows, lines, read=frame.height)


def _contract_value(name: str, dtype: pl.DataType, kind: str, default: Any) -> pl.Expr:
    """A contract field's column as the wire wants it; null where it does not convert."""
    expr = pl.col(name)
    missing = expr.is_null()
    if dtype == pl.String:
        text = expr.str.strip_chars()
        missing = missing | (text == "")
        text = pl.when(text == "").then(None).otherwise(text)
        if kind == "int":
            expr = pl.when(text.str.contains(r"^[+-]?[0-9]{1,18}$")).then(text.cast(pl.Int64, strict=False))
        elif kind == "bool":
            lowered = text.str.to_lowercase()
            expr = pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)
        elif kind == "float":
            expr = text.cast(pl.Float64, strict=False)
        else:
            expr = text
    elif isinstance(dtype, pl.Datetime):
        expr = _iso_text(expr, dtype.time_zone is not None)
    elif isinstance(dtype, (pl.Decimal, pl.Date, pl.Time, pl.Categorical, pl.Enum)):
        expr = expr.cast(pl.String)
    if default is not None:  # a missing value takes the contract's default; a bad one stays null
        expr = pl.when(missing).then(pl.lit(default)).otherwise(expr)
    return expr


def _iso_text(expr: pl.Expr, aware: bool) -> pl.Expr:
    """A Datetime column as ISO 8601 text: ``...Z`` when it has a zone (converted to UTC), no
    zone when it has none (the contract refuses a naive time, which is right). Microseconds only
    when there are any: the form ``schemas.codec.encode`` writes a UTC time in."""
    if aware:
        utc = expr.dt.convert_time_zone("UTC")
        return pl.when(utc.dt.microsecond() == 0).then(utc.dt.strftime("%Y-%m-%dT%H:%M:%SZ")) \
            .otherwise(utc.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    return expr.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f")


def _json_lines(frame: pl.DataFrame, names: Sequence[str]) -> list[bytes]:
    if frame.is_empty() or not names:
        return [b"{}"] * frame.height
    encoded = frame.select(pl.struct(list(names)).struct.json_encode().cast(pl.Binary).alias("j"))
    return encoded.get_column("j").to_list()


# ---------------------------------------------------------------------------------------------
# Mapping files


class FieldSpec(BaseModel):
    """How one event field is made from a table's columns (see docs/IMPORT.md)."""

    model_config = ConfigDict(extra="forbid")

    column: str | list[str] | None = Field(default=None, description="source column, or columns joined by join")
    value: Any = Field(default=None, description="a constant instead of a column")
    sign_of: str | None = Field(default=None, description="a numeric column: negative gives negative, else positive")
    negative: Any = None
    positive: Any = None
    join: str = " "
    map: dict[str, Any] | None = Field(default=None, description="source code -> field value")
    default: Any = Field(default=None, description="value for a code the map does not have (or an empty cell)")
    prefix: str = ""
    width: int | None = Field(default=None, ge=1, le=64, description="zero-pad the text to this width")
    decimals: int | None = Field(default=None, ge=0, le=6, description="decimal text -> integer minor units")
    absolute: bool = False
    format: str | None = Field(default=None, description="strptime format of a date/time column")
    timezone: str = Field(default="UTC", description="time zone of a time without one")

    @field_validator("map", mode="before")
    @classmethod
    def _codes_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "FieldSpec":
        given = [n for n in ("column", "value", "sign_of") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, value, sign_of")
        if self.sign_of is not None and (self.negative is None or self.positive is None):
            raise ValueError("sign_of needs negative and positive")
        return self

    @property
    def columns(self) -> list[str]:
        if self.sign_of is not None:
            return [self.sign_of]
        if self.column is None:
            return []
        return [self.column] if isinstance(self.column, str) else list(self.column)


class TableSpec(BaseModel):
    """One table of a core-banking extract: which files, which event, which key, which fields."""

    model_config = ConfigDict(extra="forbid")

    files: list[str] = Field(default_factory=list, description="file name patterns of this table (glob)")
    event: str = Field(description="the event type its rows become")
    key: list[str] = Field(min_length=1, description="columns that identify a row (the event id hashes them)")
    source: str | None = Field(default=None, description="the event's source system, unless a field maps it")
    fields: dict[str, FieldSpec]

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"column": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _fields_of_the_event(self) -> "TableSpec":
        if self.event not in EVENT_TYPES:
            raise ValueError(f"event {self.event!r} is not an event type ({', '.join(EVENT_TYPES)})")
        model = EVENT_TYPES[self.event]
        unknown = sorted(set(self.fields) - set(model.model_fields) | (set(self.fields) & NOT_MAPPED))
        if unknown:
            raise ValueError(f"{unknown} cannot be mapped for {self.event} events (fields: "
                             f"{', '.join(n for n in model.model_fields if n not in NOT_MAPPED)})")
        if self.source is not None and "source" not in self.fields:
            self.fields["source"] = FieldSpec(value=self.source)
        missing = [n for n, info in model.model_fields.items()
                   if info.is_required() and n not in self.fields and n not in NOT_MAPPED
                   and not (self.event == "pos" and n == "merchant_category")]
        if missing:
            raise ValueError(f"{self.event} events need {', '.join(missing)}: map them")
        return self


class MappingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tables: dict[str, TableSpec] = Field(min_length=1)

    @field_validator("tables")
    @classmethod
    def _names(cls, value: dict[str, TableSpec]) -> dict[str, TableSpec]:
        for name in value:
            if not re.match(TABLE_NAME_PATTERN, name):
                raise ValueError(f"table name {name!r}: letters, digits, _ . - and at most 30 characters")
        return value


@dataclass(frozen=True)
class Mapping:
    spec: MappingSpec
    path: Path

    def table_for(self, path: Path) -> str | None:
        """The table whose ``files`` patterns match ``path``'s name (the first), or None."""
        for name, table in self.spec.tables.items():
            if any(fnmatch.fnmatch(path.name, pattern) for pattern in table.files):
                return name
        return None

    def default_files(self) -> list[Path]:
        """Files next to the mapping file matching the tables' patterns, in table order."""
        found: list[Path] = []
        for table in self.spec.tables.values():
            for pattern in table.files:
                found += sorted(p for p in self.path.parent.glob(pattern) if p not in found)
        return found


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file (``.yaml``/``.yml`` or ``.toml``); raises
    ``HistoryFileError`` naming the file and what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HistoryFileError(f"{path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError: their messages hold the line
        raise HistoryFileError(f"{path}: not a valid mapping file ({exc})") from None
    try:
        return Mapping(MappingSpec.model_validate(data), path)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
        raise HistoryFileError(f"{path}: {problems}") from None


def mapped_batches(path: Path, mapping: Mapping, table: str,
                   chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Candidates]:
    """Candidate events of one file of a mapped table (see the module docstring)."""
    spec = mapping.spec.tables[table]
    needed = sorted({c for f in spec.fields.values() for c in f.columns} | set(spec.key))
    model = EVENT_TYPES[spec.event]
    for first, frame in read_frames(path, chunk_rows):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise HistoryFileError(f"{path}: table {table} needs column(s) {', '.join(missing)} "
                                   f"(the file has {', '.join(frame.columns)})")
        yield _mapped_chunk(str(path), first, frame, spec, table, model)


def _mapped_chunk(source: str, first: int, frame: pl.DataFrame, spec: TableSpec, table: str,
                  model: type[Event]) -> Candidates:
    """The rows of one chunk as candidate lines in the wire's own layout (``_wire_fields``), so
    the contract check can keep them as they are (``Candidates.canonical``), and the refusals."""
    kinds, defaults = field_kinds(model), field_defaults(model)
    values: dict[str, pl.Expr] = {}
    checks: list[tuple[str, pl.Expr, pl.Expr]] = []  # (field, refusal reason or null, source text)
    for name, field_spec in spec.fields.items():
        value, error, raw = _field_exprs(name, field_spec, kinds[name], frame)
        if name in defaults:  # an empty cell takes the contract's default
            value = value.fill_null(pl.lit(defaults[name]))
        values[name] = value
        if error is not _NO_ERROR:
            checks.append((name, error, raw))
    if spec.event == "pos" and "merchant_category" not in values and "mcc" in values:
        values["merchant_category"] = _category_of_mcc(values["mcc"])  # as the contract derives it
    columns = []
    for name in _wire_fields(model):
        if name in values:
            columns.append(values[name].alias(name))
        elif name == "type":
            columns.append(pl.lit(spec.event).alias(name))
        else:  # the contract's default as the wire writes it, or null
            columns.append(pl.lit(defaults.get(name)).alias(name))
    key = pl.concat_str([pl.lit(table)] + [pl.col(c).cast(pl.String).fill_null("") for c in spec.key],
                        separator="\x1f")
    bad = pl.any_horizontal([e.is_not_null() for _, e, _ in checks]) if checks else pl.lit(False)
    canonical = _canonical(model, spec, frame)
    # The store's columns of each row, from the values the line holds (for canonical lines only:
    # the check keeps those lines as they are, so the values are the event's).
    given = [pl.col("customer_id").alias("customer_id"),
             pl.col("occurred_at").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC", time_unit="us",
                                                   strict=False).dt.epoch("us").alias("occurred_at_us"),
             pl.col("type").alias("type"),
             (pl.col("product_id") if "product_id" in model.model_fields else pl.lit(None, pl.String)).alias("product_id")
             ] if canonical else []
    # lazily, so that what a value and its check share (a parsed number, a time) is computed once
    built = frame.lazy().select(
        pl.int_range(first, first + frame.height, dtype=pl.Int64).alias("_row"), bad.alias("_bad"),
        key.cast(pl.Binary).alias("_key"), *columns,
    ).select("_row", "_bad", "_key", pl.struct(_wire_fields(model)).struct.json_encode().cast(pl.Binary).alias("_line"),
             *given).collect()
    good = built.filter(~pl.col("_bad"))
    refused: list[Refusal] = []
    if checks and good.height < built.height:
        failing = built.get_column("_bad")
        reasons = frame.filter(failing).lazy().select(
            pl.coalesce([e for _, e, _ in checks]).alias("_error"),
            pl.coalesce([pl.when(e.is_not_null()).then(pl.lit(n)) for n, e, _ in checks]).alias("_field"),
            pl.coalesce([pl.when(e.is_not_null()).then(r) for _, e, r in checks]).alias("_value"),
            (values["customer_id"] if "customer_id" in values else pl.lit(None, pl.String)).alias("_customer"),
        ).collect()
        refused = [Refusal(source, row, name, error, customer, value) for row, (error, name, value, customer)
                   in zip(built.get_column("_row").filter(failing).to_list(), reasons.iter_rows())]
    fields = good.select("customer_id", "occurred_at_us", "type", "product_id").to_arrow() if canonical else None
    return Candidates(source, good.get_column("_row").to_list(), good.get_column("_line").to_arrow(),
                      good.get_column("_key").to_arrow(), f"{table}:", refused, read=frame.height,
                      canonical=canonical, fields=fields)


#: The categories of the 10,000 merchant category codes, as the contract derives them.
_MCC_CATEGORIES = {f"{code:04d}": merchant_category_for_mcc(f"{code:04d}").value for code in range(10_000)}


def _category_of_mcc(mcc: pl.Expr) -> pl.Expr:
    return mcc.replace_strict(_MCC_CATEGORIES, default=None, return_dtype=pl.String)


def _wire_fields(model: type[Event]) -> list[str]:
    """The fields of a candidate line in the order ``schemas.codec.encode`` writes them, less the
    event id (``contract_rows.check_lines`` puts it first)."""
    return [name for name in model.model_fields if name != "event_id"]


def _canonical(model: type[Event], spec: TableSpec, frame: pl.DataFrame) -> bool:
    """Whether the lines of this table are byte for byte what ``encode`` writes of the events they
    validate to: every value is written in the one form the contract writes it (integers, true and
    false, patterned or enumerated text, which needs no escapes; times in ``_iso_text``), never a
    float (whose digits two writers may choose differently) nor text the contract reads leniently
    (a time copied from the file as it is)."""
    for name, kind in field_kinds(model).items():
        info = model.model_fields[name]
        if kind == "float" or (kind == "str" and not _pattern_or_choice(info.annotation, info.metadata)):
            return False
    at = spec.fields.get("occurred_at")
    if at is None or at.value is not None or at.sign_of is not None or at.map is not None:
        return False
    return at.format is not None or (len(at.columns) == 1 and isinstance(frame.schema[at.columns[0]], pl.Datetime))


def _pattern_or_choice(annotation: Any, metadata: list[Any]) -> bool:
    if get_origin(annotation) in (Union, UnionType):
        annotation = next((a for a in get_args(annotation) if a is not type(None)), str)
    if get_origin(annotation) is Annotated:  # an optional constrained type: str-with-a-pattern | None
        metadata = [*metadata, *(m for f in annotation.__metadata__ for m in getattr(f, "metadata", [f]))]
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return True
    if annotation is AwareDatetime:
        return True
    return any(getattr(m, "pattern", None) for m in metadata)


def _field_exprs(name: str, spec: FieldSpec, kind: str, frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(value, refusal reason or null, the source text shown with a refusal) of one field."""
    none = _NO_ERROR
    if spec.value is not None:
        return pl.lit(spec.value), none, none
    columns = spec.columns
    if spec.sign_of is not None:
        number = _text(spec.sign_of, frame).str.replace_all(",", "")
        parsed = number.cast(pl.Float64, strict=False)
        value = pl.when(parsed < 0).then(pl.lit(spec.negative)).when(parsed.is_not_null()).then(pl.lit(spec.positive))
        error = pl.when(number.is_not_null() & parsed.is_null()).then(
            pl.format("{} in column {} is not a number", _quoted(number), pl.lit(spec.sign_of)))
        return value, error, number
    if len(columns) == 1 and isinstance(frame.schema[columns[0]], pl.Datetime) and kind == "str":
        dtype = frame.schema[columns[0]]
        at = pl.col(columns[0])
        if dtype.time_zone is None:  # type: ignore[union-attr]
            at = at.dt.replace_time_zone(spec.timezone, ambiguous="earliest", non_existent="null")
        return _iso_text(at, True), none, at.cast(pl.String)
    if len(columns) == 1:
        text = _text(columns[0], frame)
    else:
        text = pl.concat_str([_text(c, frame) for c in columns], separator=spec.join)
    where = pl.lit(", ".join(columns))
    if spec.map is not None:
        mapped = text.replace_strict(spec.map, default=pl.lit(spec.default) if spec.default is not None else None,
                                     return_dtype=_dtype_of(kind, spec.map.values()))
        error = pl.when(text.is_not_null() & mapped.is_null()).then(
            pl.format("code {} in column {} is not in the mapping", _quoted(text), where))
        if spec.default is not None:
            mapped = mapped.fill_null(pl.lit(spec.default))
        return mapped, error, text
    if spec.format is not None:
        parsed = text.str.strptime(pl.Datetime("us"), spec.format, strict=False)
        at = parsed.dt.replace_time_zone(spec.timezone, ambiguous="earliest", non_existent="null")
        error = pl.when(text.is_not_null() & at.is_null()).then(
            pl.format("{} in column {} is not a time in the format {} ({})", _quoted(text), where,
                      pl.lit(spec.format), pl.lit(spec.timezone)))
        return _iso_text(at, True), error, text
    if spec.decimals is not None or kind == "int":
        decimals = spec.decimals or 0
        plain = text.str.replace_all(",", "", literal=True)
        # at most 15 digits before the point, and none but zeros after the first ``decimals`` ones
        fits = plain.str.contains(rf"^[+-]?[0-9]{{1,15}}(?:\.[0-9]{{0,{decimals}}}0*)?$")
        # a comma only groups thousands (1,234.50); "12,50" (a decimal comma) is refused, never read as 1250
        fits = fits & (~text.str.contains(",", literal=True)
                       | text.str.contains(r"^[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?$"))
        parts = plain.str.strip_chars_start("+-").str.split_exact(".", 1)
        minor = parts.struct.field("field_0").cast(pl.Int64, strict=False) * (10 ** decimals)
        if decimals:
            fraction = parts.struct.field("field_1").fill_null("").str.slice(0, decimals).str.pad_end(decimals, "0")
            minor = minor + fraction.cast(pl.Int64, strict=False)
        if not spec.absolute:
            minor = pl.when(plain.str.starts_with("-")).then(-minor).otherwise(minor)
        value = pl.when(fits).then(minor)
        error = pl.when(text.is_not_null() & ~fits).then(
            pl.format("{} in column {} is not a number with at most {} decimals (a comma may only group "
                      "thousands, as in 1,234.50)", _quoted(text), where, pl.lit(str(decimals))))
        return value, error, text
    if kind == "bool":
        lowered = text.str.to_lowercase()
        value = pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)
        error = pl.when(text.is_not_null() & value.is_null()).then(
            pl.format("{} in column {} is not true or false", _quoted(text), where))
        return value, error, text
    if kind == "float":
        value = text.cast(pl.Float64, strict=False)
        error = pl.when(text.is_not_null() & value.is_null()).then(
            pl.format("{} in column {} is not a number", _quoted(text), where))
        return value, error, text
    if spec.width is not None:
        text = text.str.zfill(spec.width)
    if spec.prefix:
        text = pl.lit(spec.prefix) + text
    if spec.default is not None:
        text = text.fill_null(pl.lit(spec.default))
    return text, none, none


_NO_ERROR = pl.lit(None, pl.String)


def _text(column: str, frame: pl.DataFrame) -> pl.Expr:
    text = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)


def _quoted(text: pl.Expr) -> pl.Expr:
    return pl.format("'{}'", text)


def _dtype_of(kind: str, values: Any) -> pl.DataType:
    if kind == "bool":
        return pl.Boolean()
    if kind == "int":
        return pl.Int64()
    if kind == "float":
        return pl.Float64()
    return pl.String()
