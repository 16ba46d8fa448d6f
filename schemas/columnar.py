"""Avro binary encoding of whole batches of flat records, column by column, with numpy.

A scorer reads and writes thousands of records a second. Reading or writing them one by one costs
a dict, a BytesIO and a fastavro call per record (~5-10 us); here each field is parsed or encoded
for the whole batch with a few numpy operations (~0.5 us a record). The codec is derived from the
schema (:func:`flat_fields`), not written per record type: any record whose fields are Avro
primitives (``null``, ``boolean``, ``int``, ``long``, ``float``, ``double``, ``string``,
``bytes``), enums, or nullable unions of those (``["null", T]`` either way round). Logical types
are read as their underlying type, as edml's serde does. The bytes written and the values read
are exactly fastavro's (property tests over generated schemas compare them).

Reading is as strict as the Avro specification, where fastavro is lenient: a varint longer than
its type allows (10 bytes for a long, 5 for an int) or whose value overflows 64 (32) bits, a
boolean byte other than 0 or 1, an enum or union index out of range, a negative length -- each is
an error of its row (``malformed``), never a wrapped value. A damaged payload never shifts
another: every row is parsed within its own bounds.

The older interface, :class:`ColumnarReader` / :func:`columnar_reader` (payloads with one header,
unread ones left to the exact per-record path) and :class:`ColumnarWriter` /
:func:`columnar_writer`, is kept on top of :class:`RecordCodec` for the trip decoder and the serde.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")
ARRAY_ITEMS = ("boolean", "int", "long", "float", "double", "string")  # arrays the writer writes (one length per batch)
# numpy dtype of each type's column (strings, bytes and enum symbols are object arrays)
COLUMN_DTYPES = {"boolean": np.dtype(bool), "int": np.dtype(np.int32), "long": np.dtype(np.int64),
                 "float": np.dtype(np.float32), "double": np.dtype(np.float64)}
_MAX_VARINT_BYTES = {"int": 5, "long": 10}
# the highest value the last allowed byte may hold: more bits would overflow 32 / 64 bits
_LAST_BYTE_LIMIT = {"int": 0x0F, "long": 0x01}
_PADDING = 32  # zero bytes after the batch, so that reads past a row's end stay inside the buffer
_SHIFTS = np.arange(10, dtype=np.uint64) * np.uint64(7)


class UnsupportedSchema(ValueError):
    """A schema the columnar codec cannot read or write; the message names the field and why."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a flat record: its Avro type, an enum's symbols, and where its null branch is.

    ``null_branch`` is the union index of ``"null"`` for a nullable field (0 for ``["null", T]``,
    1 for ``[T, "null"]``) and None for a plain one. ``items``: the item type of an ``array``
    (written only, e.g. a model's vector output; see :func:`flat_fields`).
    """

    name: str
    type: str
    symbols: tuple[str, ...] = ()
    null_branch: int | None = None
    items: str | None = None

    @property
    def nullable(self) -> bool:
        """Whether the field is a union with ``null``."""
        return self.null_branch is not None

    def describe(self) -> str:
        """The type as a person reads it: ``int``, ``enum{a,b}``, ``["null", "double"]`` -> ``double?``."""
        base = f"enum{{{','.join(self.symbols)}}}" if self.type == "enum" else self.type
        if self.type == "array":
            base = f"array<{self.items}>"
        return base + ("?" if self.nullable else "")


def _value_type(node: Any, named: dict[str, FieldSpec], where: str, arrays: bool = False) -> FieldSpec:
    """The FieldSpec (without name or null branch) of one non-union type node."""
    if isinstance(node, str):
        if node in PRIMITIVES:
            return FieldSpec("", node)
        if node in named:
            return named[node]
        raise UnsupportedSchema(f"{where}: type {node!r} is not a primitive or an enum defined before")
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "enum":
            symbols = node.get("symbols")
            if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
                raise UnsupportedSchema(f"{where}: an enum needs a list of string symbols")
            spec = FieldSpec("", "enum", tuple(symbols))
            name = node.get("name")
            if isinstance(name, str):
                named[name] = spec
                namespace = node.get("namespace")
                if isinstance(namespace, str) and "." not in name:
                    named[f"{namespace}.{name}"] = spec
            return spec
        if isinstance(kind, str) and kind in PRIMITIVES:  # e.g. {"type": "long", "logicalType": ...}
            return FieldSpec("", kind)
        if kind == "array" and arrays and node.get("items") in ARRAY_ITEMS:
            return FieldSpec("", "array", items=node["items"])
        raise UnsupportedSchema(f"{where}: type {kind!r} is not flat (records, arrays, maps, fixed are not read "
                                "column-wise)")
    raise UnsupportedSchema(f"{where}: unions are supported only as [\"null\", T]")


def flat_fields(schema_json: dict[str, Any], arrays: bool = False) -> list[FieldSpec]:
    """The fields of a flat record schema; raises :class:`UnsupportedSchema` naming the field that is not.

    ``arrays``: also accept arrays of :data:`ARRAY_ITEMS` (the writer writes them; nothing reads them).
    """
    if not isinstance(schema_json, dict) or schema_json.get("type") != "record":
        raise UnsupportedSchema("the schema is not an Avro record")
    fields = schema_json.get("fields")
    if not isinstance(fields, list):
        raise UnsupportedSchema("the record has no list of fields")
    named: dict[str, FieldSpec] = {}
    out = []
    for f in fields:
        name = f.get("name") if isinstance(f, dict) else None
        if not isinstance(name, str):
            raise UnsupportedSchema("a field has no name")
        t = f.get("type")
        where = f"field {name}"
        if isinstance(t, list):
            branches = [b for b in t if b != "null"]
            if len(t) != 2 or len(branches) != 1:
                raise UnsupportedSchema(f"{where}: unions are supported only as [\"null\", T], not {t}")
            inner = _value_type(branches[0], named, where, arrays)
            if inner.type == "null":
                raise UnsupportedSchema(f"{where}: a union of null with null")
            out.append(FieldSpec(name, inner.type, inner.symbols, t.index("null"), items=inner.items))
        else:
            inner = _value_type(t, named, where, arrays)
            out.append(FieldSpec(name, inner.type, inner.symbols, items=inner.items))
    return out


# --- writing -----------------------------------------------------------------------------------


def zigzag_varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Avro ``long`` encodings of ``values``: an (n, w) uint8 matrix and each row's length."""
    v = np.asarray(values, dtype=np.int64)
    u = ((v << 1) ^ (v >> 63)).view(np.uint64)
    if len(u) and u.max() < 0x80:  # one byte each (string lengths, small ints)
        return u.astype(np.uint8).reshape(-1, 1), np.ones(len(u), dtype=np.int64)
    groups = u[:, None] >> _SHIFTS[None, :]
    lengths = np.maximum(1, np.count_nonzero(groups, axis=1))  # 7-bit groups up to the highest set one
    width = int(lengths.max()) if len(lengths) else 1
    more = np.arange(width)[None, :] < (lengths - 1)[:, None]
    matrix = ((groups[:, :width] & np.uint64(0x7F)) | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    return matrix, lengths


def _varint_bytes(value: int) -> bytes:
    m, n = zigzag_varints(np.array([value], dtype=np.int64))
    return m[0, : n[0]].tobytes()


@dataclass(frozen=True)
class _Part:
    """One piece of every record: a constant, or a ragged byte matrix with row lengths."""

    constant: bytes | None = None
    matrix: np.ndarray | None = None  # (n, w) uint8
    lengths: np.ndarray | None = None  # (n,) row lengths; None: every row is w long
    flat: np.ndarray | None = None  # concatenated variable-length bytes (strings)


def _is_column(value: Any) -> bool:
    return isinstance(value, np.ndarray | list | tuple)


def _nulls_of(values: Any, n: int) -> np.ndarray | None:
    """Where a column holds None (or is masked); None when nowhere."""
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(values)
        return mask if mask.any() else None
    if isinstance(values, np.ndarray) and values.dtype != object:
        return None
    nulls = np.fromiter((v is None for v in values), dtype=bool, count=n)
    return nulls if nulls.any() else None


class ColumnarWriter:
    """Writes batches of one flat record schema; see :meth:`write`."""

    def __init__(self, fields: Sequence[FieldSpec | tuple[str, str]], header: bytes = b"") -> None:
        self.fields = tuple(f if isinstance(f, FieldSpec) else FieldSpec(f[0], f[1]) for f in fields)
        self.header = header
        self._codes = {f.name: {s: i for i, s in enumerate(f.symbols)} for f in self.fields if f.type == "enum"}

    def _scalar(self, spec: FieldSpec, value: Any) -> bytes:
        if spec.nullable:
            if value is None:
                return _varint_bytes(spec.null_branch or 0)
            return _varint_bytes(1 - (spec.null_branch or 0)) + self._value(spec, value)
        return self._value(spec, value)

    def _value(self, spec: FieldSpec, value: Any) -> bytes:
        kind = spec.type
        if kind in ("string", "bytes"):
            data = value.encode() if kind == "string" else bytes(value)
            return _varint_bytes(len(data)) + data
        if kind in ("int", "long"):
            return _varint_bytes(int(value))
        if kind == "enum":
            return _varint_bytes(self._enum_codes(spec, [value])[0])
        if kind == "double":
            return np.float64(value).tobytes()
        if kind == "float":
            return np.float32(value).tobytes()
        if kind == "null":
            return b""
        if kind == "array":
            return _assemble(self._values(spec, [value], 1), 1)[0]
        return b"\x01" if value else b"\x00"

    def _enum_codes(self, spec: FieldSpec, values: Any) -> np.ndarray:
        if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
            return values.astype(np.int64)
        codes = self._codes[spec.name]
        try:
            return np.fromiter((codes[v] for v in values), dtype=np.int64, count=len(values))
        except KeyError as e:
            raise ValueError(f"{spec.name}: {e.args[0]!r} is not a symbol of the enum {list(spec.symbols)}") from None

    def _column(self, spec: FieldSpec, values: Any, n: int) -> list[_Part]:
        if len(values) != n:
            raise ValueError(f"a column of {len(values)} values in a batch of {n}")
        nulls = _nulls_of(values, n) if spec.nullable else None
        parts = []
        if spec.nullable:
            branch = np.full(n, 1 - (spec.null_branch or 0), dtype=np.uint8) << np.uint8(1)  # zigzag of 0 / 1
            if nulls is not None:
                branch[nulls] = (spec.null_branch or 0) << 1
                fill = 0 if spec.type not in ("string", "bytes", "enum") else (b"" if spec.type == "bytes" else "")
                if spec.type == "enum":
                    fill = spec.symbols[0]
                values = np.ma.getdata(values) if isinstance(values, np.ma.MaskedArray) else values
                values = [fill if v is None or m else v for v, m in zip(list(values), nulls.tolist(), strict=True)]
            parts.append(_Part(matrix=branch.reshape(n, 1)))
        for p in self._values(spec, values, n):
            if nulls is not None:  # a null value takes no bytes
                width = p.matrix.shape[1] if p.matrix is not None else 0
                lengths = p.lengths if p.lengths is not None else np.full(n, width, dtype=np.int64)
                if p.flat is not None:  # the bytes of a null string are none (its fill is empty)
                    parts.append(p)
                    continue
                parts.append(_Part(matrix=p.matrix, lengths=np.where(nulls, 0, lengths)))
            else:
                parts.append(p)
        return parts

    def _values(self, spec: FieldSpec, values: Any, n: int) -> list[_Part]:
        kind = spec.type
        if kind in ("string", "bytes"):
            data = [v.encode() for v in values] if kind == "string" else [bytes(v) for v in values]
            lengths = np.fromiter(map(len, data), dtype=np.int64, count=n)
            matrix, prefix = zigzag_varints(lengths)
            flat = np.frombuffer(b"".join(data), dtype=np.uint8)
            return [_Part(matrix=matrix, lengths=prefix), _Part(flat=flat, lengths=lengths)]
        if kind in ("int", "long", "enum"):
            ints = self._enum_codes(spec, values) if kind == "enum" else np.asarray(values, dtype=np.int64)
            matrix, lengths = zigzag_varints(ints)
            return [_Part(matrix=matrix, lengths=lengths)]
        if kind == "double":
            return [_Part(matrix=np.ascontiguousarray(values, dtype="<f8").view(np.uint8).reshape(n, 8))]
        if kind == "float":
            return [_Part(matrix=np.ascontiguousarray(values, dtype="<f4").view(np.uint8).reshape(n, 4))]
        if kind == "null":
            return []
        if kind == "array":
            return self._arrays(spec, values, n)
        return [_Part(matrix=np.asarray(values, dtype=bool).astype(np.uint8).reshape(n, 1))]

    def _arrays(self, spec: FieldSpec, values: Any, n: int) -> list[_Part]:
        """Arrays of one length k per batch (an (n, k) matrix): one block of k items, then the 0 that ends it."""
        matrix = np.asarray(values)
        if matrix.ndim != 2 or matrix.shape[0] != n:
            raise ValueError(f"{spec.name}: an array column is an (n, k) matrix, not of shape {matrix.shape}")
        k = matrix.shape[1]
        if k == 0:
            return [_Part(constant=b"\x00")]
        items: list[_Part]
        if spec.items in ("float", "double"):
            dtype, width = ("<f8", 8) if spec.items == "double" else ("<f4", 4)
            items = [_Part(matrix=np.ascontiguousarray(matrix, dtype=dtype).view(np.uint8).reshape(n, k * width))]
        elif spec.items == "boolean":
            items = [_Part(matrix=matrix.astype(bool).astype(np.uint8))]
        elif spec.items == "string":
            items = [p for j in range(k) for p in self._values(FieldSpec("", "string"), matrix[:, j].tolist(), n)]
        else:
            ints = matrix.astype(np.int64)
            items = [_Part(matrix=m, lengths=lengths) for m, lengths in (zigzag_varints(ints[:, j]) for j in range(k))]
        return [_Part(constant=_varint_bytes(k)), *items, _Part(constant=b"\x00")]

    def write(self, columns: dict[str, Any], n: int) -> list[bytes]:
        """``n`` encoded records; each field is a sequence of ``n`` values or one value for all.

        A nullable field's column marks nulls with None (or is a numpy masked array); an enum's
        holds symbols (or their indices, as an integer array).
        """
        if n == 0:
            return []
        parts = [_Part(constant=self.header)] if self.header else []
        for spec in self.fields:
            value: Any = columns.get(spec.name) if spec.type == "null" else columns[spec.name]
            if _is_column(value) and (spec.type != "array" or np.ndim(value) == 2):  # an array's constant is 1-D
                parts.extend(self._column(spec, value, n))
            else:
                parts.append(_Part(constant=self._scalar(spec, value)))
        return _assemble(parts, n)


def _assemble(parts: list[_Part], n: int) -> list[bytes]:
    """Lay the parts of ``n`` records out one record after another and cut the records out."""
    sizes = np.zeros(n, dtype=np.int64)
    for p in parts:
        if p.constant is not None:
            sizes += len(p.constant)
        elif p.lengths is not None:
            sizes += p.lengths
        elif p.matrix is not None:
            sizes += p.matrix.shape[1]
    ends = np.cumsum(sizes)
    starts = ends - sizes
    buf = np.empty(int(ends[-1]), dtype=np.uint8)
    pos = starts.copy()  # where each record's next part goes
    for p in parts:
        if p.constant is not None:
            if p.constant:
                c = np.frombuffer(p.constant, dtype=np.uint8)
                buf[pos[:, None] + np.arange(len(c))] = c
                pos += len(c)
        elif p.flat is not None and p.lengths is not None:
            # ragged bytes: byte j of record i goes to pos[i] + j
            offsets = np.cumsum(p.lengths) - p.lengths
            idx = np.repeat(pos - offsets, p.lengths) + np.arange(len(p.flat))
            buf[idx] = p.flat
            pos += p.lengths
        elif p.matrix is not None and p.lengths is not None:
            cols = np.arange(p.matrix.shape[1])
            mask = cols[None, :] < p.lengths[:, None]
            buf[(pos[:, None] + cols[None, :])[mask]] = p.matrix[mask]
            pos += p.lengths
        elif p.matrix is not None:
            w = p.matrix.shape[1]
            buf[pos[:, None] + np.arange(w)] = p.matrix
            pos += w
    data = buf.tobytes()
    return [data[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]


def columnar_writer(schema_json: dict[str, Any], header: bytes = b"") -> ColumnarWriter | None:
    """A writer for ``schema_json`` when it is a flat record (arrays of numbers too), else None."""
    try:
        return ColumnarWriter(flat_fields(schema_json, arrays=True), header)
    except UnsupportedSchema:
        return None


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """Why payload ``index`` of a batch was not read: ``kind`` as in ``DecodeError``, one-line ``message``.

    ``strict_only``: a lenient reader (fastavro) reads this payload anyway, to a wrapped or
    made-up value (an over-long or overflowing varint, a boolean byte 2, an enum index -1).
    """

    index: int
    kind: str
    message: str
    strict_only: bool = False


@dataclass
class DecodedColumns:
    """What :meth:`RecordCodec.read` made of a batch of payloads.

    ``rows`` are the indices (ascending) of the payloads read; ``columns`` hold one entry per read
    payload, in that order: numpy arrays of :data:`COLUMN_DTYPES`, object arrays of ``str`` for
    strings and enum symbols, of ``bytes`` for bytes. A nullable field's null entries are None in
    object arrays and 0 in numeric ones; ``nulls[name]`` marks them (nullable fields only).
    ``errors`` says why each other payload was not read.
    """

    rows: np.ndarray
    columns: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


class _Cursor:
    """Per-row read positions over one concatenated buffer, and which rows are still good."""

    __slots__ = ("buf", "data", "pos", "end", "ok", "errors")

    def __init__(self, data: bytes, starts: np.ndarray, ends: np.ndarray) -> None:
        self.data = data
        self.buf = np.frombuffer(data + bytes(_PADDING), dtype=np.uint8)
        self.pos = starts
        self.end = ends
        self.ok = np.ones(len(starts), dtype=bool)
        self.errors: dict[int, RowError] = {}

    def fail(self, bad: np.ndarray, kind: str, message: str | Callable[[int], str], strict_only: bool = False,
             ) -> None:
        """Rows ``bad`` (a mask) that are still good fail with ``kind`` and ``message`` (or message(row))."""
        bad = bad & self.ok
        if not bad.any():
            return
        for i in np.flatnonzero(bad).tolist():
            self.errors[i] = RowError(i, kind, message(i) if callable(message) else message, strict_only)
        self.ok &= ~bad

    def varint(self, name: str, kind: str, present: np.ndarray | None) -> np.ndarray:
        """Zigzag-decoded varints at each row's position (``present`` rows only), as int64; advances."""
        buf, pos = self.buf, self.pos
        b = buf[pos]
        more = b >= 0x80
        if present is not None:
            more &= present
        if not more.any():  # one byte each: zone ids, counts, string lengths, union branches
            u = b.astype(np.int64)
            nbytes = np.ones(len(pos), dtype=np.int64) if present is None else present.astype(np.int64)
        else:
            u = (b & 0x7F).astype(np.uint64)
            nbytes = np.ones(len(pos), dtype=np.int64)
            limit = _MAX_VARINT_BYTES[kind]
            k = 1
            idx = np.flatnonzero(more)
            while len(idx):
                past = pos[idx] + k >= self.end[idx]
                if past.any():  # the payload ends inside the varint
                    self.fail(_mask(len(pos), idx[past]), "truncated", f"{name}: the payload ends inside a varint")
                    more[idx[past]] = False
                    idx = idx[~past]
                    if not len(idx):
                        break
                if k == limit:
                    self.fail(more, "malformed", f"{name}: a varint longer than {limit} bytes (an Avro {kind} "
                                                 f"has at most {limit})", strict_only=True)
                    break
                b_k = buf[pos[idx] + k]
                if k == limit - 1:  # the last byte allowed: only its low bits still fit the type
                    over = np.zeros(len(pos), dtype=bool)
                    over[idx] = (b_k > _LAST_BYTE_LIMIT[kind]) & (b_k < 0x80)  # more bytes: too long, below
                    self.fail(over, "malformed", f"{name}: a varint whose value overflows an Avro {kind}",
                              strict_only=True)
                u[idx] |= (b_k & 0x7F).astype(np.uint64) << _SHIFTS[k]
                nbytes[idx] += 1
                cont = b_k >= 0x80
                more[idx] = cont
                idx = idx[cont]
                k += 1
            if present is not None:
                nbytes *= present
            self.fail(pos + nbytes > self.end, "truncated", f"{name}: the payload ends inside a varint")
            self.pos = pos + nbytes
            return (u >> np.uint64(1)).view(np.int64) ^ -(u & np.uint64(1)).view(np.int64)
        self.fail(pos + nbytes > self.end, "truncated", f"{name}: the payload ends inside a varint")
        self.pos = pos + nbytes
        return (u >> 1) ^ -(u & 1)

    def fixed(self, name: str, width: int, present: np.ndarray | None) -> np.ndarray:
        """The next ``width`` bytes of each row as an (n, width) matrix; advances ``present`` rows."""
        pos = self.pos
        short = pos + width > self.end
        if present is not None:
            short &= present
        self.fail(short, "truncated", f"{name}: the payload ends inside a {width}-byte value")
        cells = self.buf[pos[:, None] + np.arange(width)[None, :]]  # past a short row's end: the padding
        self.pos = pos + (width if present is None else present * width)
        return cells


class RecordCodec:
    """Reads and writes batches of one flat record schema, column by column.

    Derived from the schema with :meth:`from_schema` (or from :class:`FieldSpec` s); see the module
    docstring for what is supported and how strict reading is.
    """

    def __init__(self, fields: Sequence[FieldSpec]) -> None:
        self.fields = tuple(fields)
        self._unreadable = next((f.name for f in self.fields if f.type == "array"), None)
        self._symbols = {f.name: np.array(list(f.symbols), dtype=object) for f in self.fields if f.type == "enum"}
        self._writer = ColumnarWriter(self.fields)

    @classmethod
    def from_schema(cls, schema_json: dict[str, Any], arrays: bool = False) -> RecordCodec:
        """The codec of a flat record schema; raises :class:`UnsupportedSchema` naming the field that is not flat.

        ``arrays``: accept arrays of numbers too, for writing only (a prediction with a vector output).
        """
        return cls(flat_fields(schema_json, arrays))

    def write(self, columns: dict[str, Any], n: int, header: bytes = b"") -> list[bytes]:
        """``n`` encodings, each ``header`` + the Avro body; see :meth:`ColumnarWriter.write` for the columns."""
        writer = self._writer if header == b"" else ColumnarWriter(self.fields, header)
        return writer.write(columns, n)

    def read(self, payloads: Sequence[bytes], offset: int = 0) -> DecodedColumns:
        """Decode the Avro bodies at ``payload[offset:]`` of every payload (bytes); never raises for bad data.

        The caller has checked the headers (``offset`` bytes); a body must end exactly at its
        payload's end (else ``trailing-bytes``).
        """
        if self._unreadable is not None:
            raise UnsupportedSchema(f"field {self._unreadable}: arrays are written column-wise, not read")
        n = len(payloads)
        if n == 0:
            return DecodedColumns(np.zeros(0, dtype=np.int64), {f.name: _empty(f) for f in self.fields},
                                  {f.name: np.zeros(0, dtype=bool) for f in self.fields if f.nullable})
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
        ends = np.cumsum(lengths)
        data = b"".join(payloads)
        cur = _Cursor(data, ends - lengths + offset, ends)
        cur.fail(lengths < offset, "truncated", f"shorter than its {offset}-byte header")
        np.minimum(cur.pos, cur.end, out=cur.pos)
        raw: dict[str, Any] = {}
        nulls: dict[str, np.ndarray] = {}
        for spec in self.fields:
            present = None
            if spec.nullable:
                branch = cur.varint(spec.name, "int", None)
                cur.fail((branch != 0) & (branch != 1), "malformed", _union_message(spec.name, branch))
                present = branch != spec.null_branch
                nulls[spec.name] = ~present
            raw[spec.name] = self._read_value(cur, spec, present)
            np.minimum(cur.pos, cur.end, out=cur.pos)
        cur.fail(cur.pos != cur.end, "trailing-bytes",
                 lambda i: f"{int(cur.end[i] - cur.pos[i])} bytes after the record")
        return self._columns(cur, raw, nulls)

    def _read_value(self, cur: _Cursor, spec: FieldSpec, present: np.ndarray | None) -> Any:
        kind, name = spec.type, spec.name
        if kind in ("int", "long"):
            return cur.varint(name, kind, present)
        if kind in ("string", "bytes"):
            length = cur.varint(name, "long", present)
            if present is not None:
                length = np.where(present, length, 0)
            cur.fail(length < 0, "malformed", lambda i: f"{name}: negative length {int(length[i])}")
            length = np.where(cur.ok, length, 0)
            # compared as room left, not as pos + length: a damaged length near 2**63 would overflow
            cur.fail(length > cur.end - cur.pos, "truncated",
                     lambda i: f"{name}: a {kind} of {int(length[i])} bytes runs past the end of the payload")
            length = np.where(cur.ok, length, 0)
            start = cur.pos
            cur.pos = start + length
            return start, length
        if kind == "enum":
            index = cur.varint(name, "int", present)
            count = len(spec.symbols)
            bad = (index < 0) | (index >= count)
            if present is not None:
                bad &= present
            message = lambda i: f"{name}: enum index {int(index[i])} is not one of {count} symbols"  # noqa: E731
            cur.fail(bad & (index < 0), "malformed", message, strict_only=True)  # fastavro counts from the end
            cur.fail(bad, "malformed", message)
            return index
        if kind in ("double", "float"):
            cells = cur.fixed(name, 8 if kind == "double" else 4, present)
            return np.ascontiguousarray(cells).view("<f8" if kind == "double" else "<f4").reshape(-1)
        if kind == "boolean":
            byte = cur.fixed(name, 1, present).reshape(-1)
            bad = byte > 1
            if present is not None:
                bad &= present
            cur.fail(bad, "malformed", lambda i: f"{name}: boolean byte {int(byte[i])} is neither 0 nor 1",
                     strict_only=True)
            return byte == 1
        return None  # null: no bytes

    def _columns(self, cur: _Cursor, raw: dict[str, Any], nulls: dict[str, np.ndarray]) -> DecodedColumns:
        keep = np.flatnonzero(cur.ok)
        everything = len(keep) == len(cur.ok)
        columns: dict[str, np.ndarray] = {}
        for spec in self.fields:
            values = raw[spec.name]
            absent = nulls[spec.name] if spec.nullable else None
            if absent is not None and not everything:
                absent = absent[keep]
            if spec.type in ("string", "bytes"):
                start, length = values
                if not everything:
                    start, length = start[keep], length[keep]
                column = (_strings(cur, start, length, keep, spec.name) if spec.type == "string"
                          else _bytes(cur.data, start, length))
                if absent is not None and absent.any():
                    column[absent] = None
            elif spec.type == "enum":
                codes = values if everything else values[keep]
                if absent is not None:
                    codes = np.where(absent, 0, codes)
                column = self._symbols[spec.name][codes]
                if absent is not None and absent.any():
                    column[absent] = None
            elif spec.type == "null":
                column = np.full(len(keep), None, dtype=object)
            else:
                column = values if everything else values[keep]
                column = column.astype(COLUMN_DTYPES[spec.type], copy=False)
                if absent is not None and absent.any():
                    column = np.where(absent, np.zeros(1, dtype=column.dtype), column)
            columns[spec.name] = column
        if not cur.ok[keep].all():  # a string that is not UTF-8 failed its row while the columns were built
            good = cur.ok[keep]
            columns = {k: v[good] for k, v in columns.items()}
            keep = keep[good]
            everything = False
        out_nulls = {k: (v if everything else v[keep]) for k, v in nulls.items()}
        errors = [cur.errors[i] for i in sorted(cur.errors)]
        return DecodedColumns(keep, columns, out_nulls, errors)


def _empty(spec: FieldSpec) -> np.ndarray:
    return np.zeros(0, dtype=COLUMN_DTYPES.get(spec.type, np.dtype(object)))


def _bytes(data: bytes, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    out = np.empty(len(start), dtype=object)
    out[:] = [data[a:b] for a, b in zip(start.tolist(), (start + length).tolist(), strict=True)]
    return out


def _strings(cur: _Cursor, start: np.ndarray, length: np.ndarray, rows: np.ndarray, name: str) -> np.ndarray:
    """The strings at ``start``/``length`` as an object array; a row that is not UTF-8 fails (``bad-utf8``)."""
    out = np.empty(len(start), dtype=object)
    data = cur.data
    spans = list(zip(start.tolist(), (start + length).tolist(), strict=True))
    try:  # slicing and decoding each string is the fastest there is (gathering them first with numpy is not)
        out[:] = [data[a:b].decode() for a, b in spans]
        return out
    except UnicodeDecodeError:
        pass
    values: list[str | None] = []
    for j, (a, b) in enumerate(spans):
        try:
            values.append(data[a:b].decode())
        except UnicodeDecodeError as e:
            values.append(None)
            cur.fail(_mask(len(cur.ok), int(rows[j])), "bad-utf8", f"{name}: not UTF-8 ({e.reason} at byte {e.start})")
    out[:] = values
    return out


def _union_message(name: str, branch: np.ndarray) -> Callable[[int], str]:
    return lambda i: f"{name}: union branch {int(branch[i])} of a 2-branch union"


def _mask(n: int, rows: Any) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


# --- the older interface: one header, unread payloads left to the exact path ----------------------


@dataclass
class ColumnarRead:
    """What :meth:`ColumnarReader.read` decoded: the payloads it read and their columns.

    ``rows`` are indices into the payloads given; ``refused`` maps the index of a payload that
    breaks the Avro specification in a way fastavro would not notice (:attr:`RowError.strict_only`)
    to its (kind, message). Every other payload was left for the caller to read one by one (another
    writer schema, a truncated or otherwise damaged encoding), so its error is the exact path's.
    """

    rows: np.ndarray
    columns: dict[str, Any]
    refused: dict[int, tuple[str, str]] = field(default_factory=dict)


class ColumnarReader:
    """Reads a batch of single-object payloads of one flat schema written with ``header``.

    Integer columns are int64, float columns float64, strings and bytes lists (what the trip
    decoder reads); see :class:`RecordCodec` for the rest.
    """

    def __init__(self, fields: Sequence[FieldSpec | tuple[str, str]], header: bytes) -> None:
        specs = tuple(f if isinstance(f, FieldSpec) else FieldSpec(f[0], f[1]) for f in fields)
        self.fields = tuple((f.name, f.type) for f in specs)
        self.header = header
        self._codec = RecordCodec(specs)

    def read(self, payloads: Sequence[Any]) -> ColumnarRead:
        """Decode what can be decoded column-wise; see the class docstring."""
        header, hl = self.header, len(self.header)
        rows = np.fromiter((i for i, p in enumerate(payloads) if type(p) is bytes and p[:hl] == header),
                           dtype=np.int64)
        if len(rows) == 0:
            return ColumnarRead(rows, {})
        decoded = self._codec.read([payloads[i] for i in rows.tolist()], hl)
        columns: dict[str, Any] = {}
        for name, values in decoded.columns.items():
            if values.dtype == object:
                columns[name] = values.tolist()
            elif values.dtype.kind == "i":
                columns[name] = values.astype(np.int64, copy=False)
            elif values.dtype.kind == "f":
                columns[name] = values.astype(np.float64, copy=False)
            else:
                columns[name] = values
        refused = {int(rows[e.index]): (e.kind, e.message) for e in decoded.errors if e.strict_only}
        return ColumnarRead(rows[decoded.rows], columns, refused)


def columnar_reader(schema_json: dict[str, Any], header: bytes) -> ColumnarReader | None:
    """A reader for payloads of ``schema_json`` (a flat record) with ``header``, else None."""
    try:
        return ColumnarReader(flat_fields(schema_json), header)
    except UnsupportedSchema:
        return None
