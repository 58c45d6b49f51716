"""What every export and import format shares: options, the rows an export reads, the
deterministic zip it writes, and the records an import yields.

Exports
-------
An export is built from a version's stored manifest (never from live tables), one item at
a time, so it is the same whatever happened to the dataset since, and its memory does not
grow with the version. `ExportContext.rows()` yields one dict per item in manifest order
(item id ascending): the manifest's item line (datasets.manifest: id, external_id, sha256,
size, media_type, metadata, tags, split, label, provenance) plus

- `width`, `height`: the image's pixel size (None for texts), from the Asset row (an
  asset is immutable, so this is a fact of the content, not of the moment);
- `file_name`: the item's path inside an export (`export_file_name`).

and only the items of the selected splits. Labels keep labeling/results.py's shape (image
pixels, character offsets). `ctx.classes` is the ordered class list (the `classes` option
as given, else every label name of the version sorted by code point), `ctx.class_index`
maps a name to its 0-based index; regions of other classes are left out and counted.

A format writes the same bytes for the same (version, options): rows in manifest order,
dict keys in a fixed order, zip entries with a fixed timestamp and permissions
(`DeterministicZip`), no clock, no random ids, no presigned URLs (an image URL is the
stable `ctx.image_url(row)`).

Imports
-------
A reader turns a file (or a zip of files) into `ImportRecord`s, one per item, each naming
the item by a key (a file name, an external_id or a sha256) and carrying its regions in
labeling/results.py's shape, or the problems found while parsing it (row, field, reason).
Readers never look at the database: matching keys to items and validating regions against
a label schema is labeling.services.label_imports' job.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import posixpath
import re
import shutil
import struct
import tempfile
import zlib
from array import array
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from datasets.errors import DatasetError

# Bump when an exporter's output changes for the same input: cached exports are keyed by
# it, so a new release never serves bytes an older exporter built.
EXPORTER_REVISION = 1
SPLITS = ("train", "val", "test")
# 1980-01-01 00:00:00, the earliest time a zip entry can hold.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
LOCK_NAME = "labelvault.lock.json"
# Classes an export may name: more than any real schema (COCO has 80, LVIS 1,203).
CLASSES_MAX = 10_000
CLASS_NAME_MAX = 200
# Items whose contents (images to embed, texts to tokenise) are fetched at once: bounded
# by count and by bytes, so memory stays flat on any dataset.
CONTENT_BATCH_ITEMS = 64
CONTENT_BATCH_BYTES = 64 * 1024 * 1024
CONTENT_THREADS = 8
# Assets whose sizes are looked up in one query.
DIMENSIONS_BATCH = 2_000

REGION_LABEL_KEYS = {
    "rectanglelabels": "rectanglelabels",
    "polygonlabels": "polygonlabels",
    "keypointlabels": "keypointlabels",
    "choices": "choices",
    "labels": "labels",
}
MEDIA_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "text/plain": ".txt",
}


class InvalidExport(DatasetError):
    """An export request that cannot be built as asked (unknown format, bad option, a
    format that does not fit the dataset): nothing was stored."""

    code = "invalid_export"


class InvalidLabelFile(DatasetError):
    """A label file that cannot be read at all (not the format it claims, truncated)."""

    code = "invalid_label_file"


# --- options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportOptions:
    """What an export holds besides the version: see `export_options_check`."""

    images: bool = False
    splits: tuple[str, ...] = SPLITS
    classes: tuple[str, ...] | None = None
    # Options of one format only (sql: table, if_exists), checked by its
    # `extra_options_check`; never a secret (see ExportFormat.extra_options).
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        common = {
            "images": self.images,
            "splits": list(self.splits),
            "classes": None if self.classes is None else list(self.classes),
        }
        return {**common, **dict(sorted(self.extra.items()))}


OPTION_KEYS = ("images", "splits", "classes")


def export_options_check(raw: Any, *, extra_keys: tuple[str, ...] = ()) -> ExportOptions:
    """Validate and normalise export options; InvalidExport naming the field otherwise.

    - `images`: true embeds the image (or text) files, false (default) gives each item a
      URL (`ctx.image_url`) instead;
    - `splits`: the splits to include (default all three), kept in train/val/test order;
    - `classes`: a subset of label names, in the order their ids/indices take (default:
      every label name of the version, sorted).

    `extra_keys` are the format's own options: left for its `extra_options_check`.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidExport("options must be an object.", field="options")
    known = (*OPTION_KEYS, *extra_keys)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise InvalidExport(
            f"Unknown option {unknown[0]!r}; options are {', '.join(known)}.",
            field=f"options.{unknown[0]}",
        )
    images = raw.get("images", False)
    if not isinstance(images, bool):
        raise InvalidExport(
            "options.images is true (embed the files) or false (URLs only).",
            field="options.images",
        )
    splits_raw = raw.get("splits", list(SPLITS))
    if (
        not isinstance(splits_raw, list)
        or not splits_raw
        or not all(isinstance(s, str) and s in SPLITS for s in splits_raw)
    ):
        raise InvalidExport(
            f"options.splits is a non-empty list of {', '.join(SPLITS)}; got {splits_raw!r}.",
            field="options.splits",
        )
    splits = tuple(s for s in SPLITS if s in splits_raw)
    classes_raw = raw.get("classes")
    classes: tuple[str, ...] | None = None
    if classes_raw is not None:
        if not isinstance(classes_raw, list) or not classes_raw or len(classes_raw) > CLASSES_MAX:
            raise InvalidExport(
                f"options.classes is a non-empty list of at most {CLASSES_MAX} label names.",
                field="options.classes",
            )
        for index, name in enumerate(classes_raw):
            if not isinstance(name, str) or not name.strip() or len(name) > CLASS_NAME_MAX:
                raise InvalidExport(
                    f"options.classes[{index}] must be a label name (1-{CLASS_NAME_MAX} "
                    f"characters), not {name!r}.",
                    field=f"options.classes[{index}]",
                )
        if len(set(classes_raw)) != len(classes_raw):
            twice = next(n for n in classes_raw if classes_raw.count(n) > 1)
            raise InvalidExport(f"options.classes names {twice!r} twice.", field="options.classes")
        classes = tuple(classes_raw)
    return ExportOptions(images=images, splits=splits, classes=classes)


def options_hash(fmt: str, options: ExportOptions, *, url_base: str) -> str:
    """The cache key part of (format, options): equal options, equal hash. Includes the
    exporter revision and, when items carry URLs, the URL base the URLs start with."""
    key = {
        "format": fmt,
        "options": options.as_dict(),
        "revision": EXPORTER_REVISION,
        "url_base": "" if options.images else url_base,
    }
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# --- file names ---------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^\w.\- ()+,=@]", re.UNICODE)


def export_file_name(external_id: str, sha256: str, media_type: str) -> str:
    """The item's relative path inside an export: its external_id when that is a safe
    relative path with an extension, else a cleaned form plus 8 hex of the asset's hash
    (so two cleaned names never collide) and the extension of its media type.

    Deterministic and unique within a dataset (external_ids and assets are unique)."""
    parts = [p for p in external_id.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    cleaned = [_UNSAFE.sub("_", p).strip(" ") or "_" for p in parts]
    name = "/".join(cleaned)
    ext = posixpath.splitext(name)[1].lower() if name else ""
    wanted = MEDIA_EXTENSIONS.get(media_type) or mimetypes.guess_extension(media_type) or ""
    changed = name != external_id or not name
    if changed:
        stem = posixpath.splitext(name)[0] if ext else name
        name = f"{stem or 'item'}-{sha256[:8]}{ext or wanted}"
    elif not ext:
        name = f"{name}{wanted}"
    return name


def file_name_candidates(name: str) -> list[str]:
    """The external_ids a file name from a label file may stand for, most specific first:
    the path as given, without our export's `images/<split>/` prefix, without its
    extension (which an export adds to an external_id that had none), its base name."""
    name = name.replace("\\", "/").lstrip("./")
    seen: list[str] = []

    def add(value: str) -> None:
        if value and value not in seen:
            seen.append(value)

    add(name)
    for prefix in ("images/", "JPEGImages/", "texts/"):
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            first, _, tail = rest.partition("/")
            add(rest)
            if first in SPLITS and tail:
                add(tail)
    for value in list(seen):
        stem, ext = posixpath.splitext(value)
        if ext:
            add(stem)
    for value in list(seen):
        add(posixpath.basename(value))
    return seen


# --- zip ----------------------------------------------------------------------------------


class DeterministicZip:
    """A zip whose bytes depend only on what is written, in the order it is written:
    every entry has the same timestamp (ZIP_EPOCH), permissions (0644) and system (unix).
    Texts are deflated (level 6 unless told), files already compressed (images) stored.

    Write to a seekable binary file; `close()` writes the central directory.

    A small streaming writer (APPNOTE.TXT 6.3), not `zipfile.ZipFile`, because zipfile
    keeps a ZipInfo (~350 bytes) per entry until close: a YOLO export of a million images
    writes a million label files. Here memory does not grow with the entries:

    - each entry is a local header + data; an entry written whole (`write`) has its CRC
      and sizes in the header at once, an entry streamed (`open`) gets them patched into
      its header when it closes (the output is seekable; no data descriptors);
    - central directory records go to a temporary file, copied to the output at close;
    - duplicate names are found with a table of 8-byte name hashes (8-16 bytes an entry,
      not the names: `_NameHashes`).

    ZIP64, as zipfile decides it (so the bytes depend on the content only, never on the
    machine): a streamed entry always has a ZIP64 extra field with its sizes (its size is
    unknown when its header is written); an entry written whole, a central record and the
    end of the archive use ZIP64 only for sizes or offsets past ZIP64_LIMIT, or 65,535 or
    more entries (then the ZIP64 end record and its locator precede the end record).
    Names are UTF-8, with flag bit 11 set when they are not ASCII.
    """

    def __init__(self, out: IO[bytes], *, compresslevel: int = 6) -> None:
        self.out = out
        self.compresslevel = compresslevel
        self.offset = out.tell()  # zip offsets are positions in the file
        self.count = 0
        self.names = _NameHashes()
        self.central: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.entry: _ZipEntryWriter | None = None
        self.closed = False

    def _start(self, name: str) -> bytes:
        if self.closed:
            raise ValueError("the zip is closed")
        if self.entry is not None:
            raise ValueError(f"zip entry {self.entry.name!r} is still open: close it first")
        encoded = name.encode("utf-8")
        if not name or len(encoded) > 0xFFFF:
            raise ValueError(f"zip entry name {name[:80]!r} is empty or longer than 65535 bytes")
        if not self.names.add(encoded):
            raise ValueError(f"zip entry {name!r} written twice")
        return encoded

    def write(self, name: str, data: bytes, *, compress: bool = True) -> None:
        """Add one entry whose bytes are in memory (small files: one label file)."""
        encoded = self._start(name)
        crc = zlib.crc32(data)
        size = len(data)
        if compress:
            data = zlib.compress(data, self.compresslevel, wbits=-15)
        method = _DEFLATED if compress else _STORED
        offset = self.offset
        zip64 = size > ZIP64_LIMIT or len(data) > ZIP64_LIMIT
        header = _local_header(encoded, _flags(name), method, crc, len(data), size, zip64=zip64)
        self.out.write(header)
        self.out.write(data)
        self.offset += len(header) + len(data)
        self._central(name, encoded, method, crc, len(data), size, offset)

    def open(self, name: str, *, compress: bool = True) -> IO[bytes]:
        """A writable stream for one large entry (a JSON file of a million annotations).
        Always zip64, so the bytes do not depend on the final size. One entry at a time:
        close it (or leave its `with` block) before writing the next."""
        encoded = self._start(name)
        method = _DEFLATED if compress else _STORED
        header = _local_header(encoded, _flags(name), method, 0, 0, 0, zip64=True)
        self.out.write(header)
        self.entry = _ZipEntryWriter(
            self,
            name=name,
            encoded=encoded,
            method=method,
            header_offset=self.offset,
            data_offset=self.offset + len(header),
        )
        self.offset = self.entry.data_offset
        return self.entry  # type: ignore[return-value]

    def _entry_closed(self, entry: _ZipEntryWriter, crc: int, csize: int, size: int) -> None:
        # Patch the CRC into the local header and the sizes into its ZIP64 extra field.
        end = entry.data_offset + csize
        self.out.seek(entry.header_offset + 14)
        self.out.write(_U32.pack(crc))
        self.out.seek(entry.header_offset + _LOCAL.size + len(entry.encoded) + 4)
        self.out.write(_U64X2.pack(size, csize))
        self.out.seek(end)
        self.offset = end
        self.entry = None
        self._central(
            entry.name,
            entry.encoded,
            entry.method,
            crc,
            csize,
            size,
            entry.header_offset,
            streamed=True,
        )

    def _central(
        self,
        name: str,
        encoded: bytes,
        method: int,
        crc: int,
        csize: int,
        size: int,
        offset: int,
        *,
        streamed: bool = False,
    ) -> None:
        """Append the entry's central directory record to the spool file."""
        values: list[int] = []
        if size > ZIP64_LIMIT or streamed:
            values.append(size)
            size = 0xFFFFFFFF
        if csize > ZIP64_LIMIT or streamed:
            values.append(csize)
            csize = 0xFFFFFFFF
        if offset > ZIP64_LIMIT:
            values.append(offset)
            offset = 0xFFFFFFFF
        extra = (
            struct.pack(f"<HH{len(values)}Q", 0x0001, 8 * len(values), *values) if values else b""
        )
        version = _ZIP64_VERSION if values else _VERSION
        self.central.write(
            _CENTRAL.pack(
                _CENTRAL_SIG,
                _MADE_BY,
                version,
                _flags(name),
                method,
                _DOS_TIME,
                _DOS_DATE,
                crc,
                csize,
                size,
                len(encoded),
                len(extra),
                0,
                0,
                0,
                _EXTERNAL_ATTR,
                offset,
            )
            + encoded
            + extra
        )
        self.count += 1

    def close(self) -> None:
        """Write the central directory and the end records. Idempotent."""
        if self.closed:
            return
        if self.entry is not None:
            self.entry.close()
        self.closed = True
        start = self.offset
        self.out.seek(start)
        self.central.seek(0)
        shutil.copyfileobj(self.central, self.out, 1024 * 1024)
        self.central.close()
        size = self.out.tell() - start
        count = self.count
        if count >= 0xFFFF or size > ZIP64_LIMIT or start > ZIP64_LIMIT:
            end64 = start + size
            self.out.write(
                _END64.pack(
                    _END64_SIG,
                    _END64.size - 12,
                    _MADE_BY,
                    _ZIP64_VERSION,
                    0,
                    0,
                    count,
                    count,
                    size,
                    start,
                )
                + _LOCATOR.pack(_LOCATOR_SIG, 0, end64, 1)
            )
            count, size, start = (
                min(count, 0xFFFF),
                min(size, 0xFFFFFFFF),
                min(start, 0xFFFFFFFF),
            )
        self.out.write(_END.pack(_END_SIG, 0, 0, count, count, size, start, 0))
        self.out.flush()


class _ZipEntryWriter:
    """The stream `DeterministicZip.open` returns: deflates (or stores) as it is written,
    and tells the zip its CRC and sizes when it closes."""

    def __init__(
        self,
        zf: DeterministicZip,
        *,
        name: str,
        encoded: bytes,
        method: int,
        header_offset: int,
        data_offset: int,
    ) -> None:
        self.zf = zf
        self.name = name
        self.encoded = encoded
        self.method = method
        self.header_offset = header_offset
        self.data_offset = data_offset
        self.crc = 0
        self.size = 0
        self.csize = 0
        self.closed = False
        self._deflate = (
            zlib.compressobj(zf.compresslevel, zlib.DEFLATED, -15) if method == _DEFLATED else None
        )

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError(f"zip entry {self.name!r} is closed")
        size = len(data)
        self.crc = zlib.crc32(data, self.crc)
        self.size += size
        if self._deflate is not None:
            data = self._deflate.compress(data)
        if data:
            self.zf.out.write(data)
            self.csize += len(data)
        return size

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._deflate is not None:
            tail = self._deflate.flush()
            self.zf.out.write(tail)
            self.csize += len(tail)
            self._deflate = None
        self.zf._entry_closed(self, self.crc, self.csize, self.size)

    def __enter__(self) -> _ZipEntryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _NameHashes:
    """A set of 8-byte name hashes (BLAKE2b) in one flat array (open addressing, linear
    probing, at most 2/3 full): 12-24 bytes an entry, where a Python set of the names
    would hold ~100. Two names colliding in 64 bits among a million have odds of about
    1 in 30 million."""

    def __init__(self) -> None:
        self.table = array("Q", [0]) * 1024
        self.mask = len(self.table) - 1
        self.used = 0

    def add(self, name: bytes) -> bool:
        """Add the name's hash; False when it was there already."""
        # 0 marks an empty slot: a hash of 0 becomes 1 (one more value of 2**64 shared).
        key = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "little") or 1
        table, mask = self.table, self.mask
        slot = key & mask
        while True:
            found = table[slot]
            if found == 0:
                break
            if found == key:
                return False
            slot = (slot + 1) & mask
        table[slot] = key
        self.used += 1
        if self.used * 3 > len(table) * 2:
            self._grow()
        return True

    def _grow(self) -> None:
        old = self.table
        self.table = array("Q", [0]) * (2 * len(old))  # no temporary bytes of that size
        self.mask = len(self.table) - 1
        table, mask = self.table, self.mask
        for key in old:
            if key:
                slot = key & mask
                while table[slot]:
                    slot = (slot + 1) & mask
                table[slot] = key

    def __len__(self) -> int:
        return self.used


# Zip structures (APPNOTE.TXT 4.3), little-endian.
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_END64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR = struct.Struct("<IIQI")
_ZIP64_SIZES = struct.Struct("<HHQQ")
_U32 = struct.Struct("<I")
_U64X2 = struct.Struct("<QQ")
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = 0x04034B50, 0x02014B50, 0x06054B50
_END64_SIG, _LOCATOR_SIG = 0x06064B50, 0x07064B50
_STORED, _DEFLATED = 0, 8
# "Version needed to extract": 2.0 (deflate, folders), 4.5 with ZIP64 fields.
_VERSION, _ZIP64_VERSION = 20, 45
_MADE_BY = (3 << 8) | _ZIP64_VERSION  # unix, spec 4.5
_EXTERNAL_ATTR = 0o100644 << 16  # a regular file, rw-r--r--
# ZIP_EPOCH in MS-DOS form: time 00:00:00, date (1980 - 1980) << 9 | 1 << 5 | 1.
_DOS_TIME = 0
_DOS_DATE = (ZIP_EPOCH[0] - 1980) << 9 | ZIP_EPOCH[1] << 5 | ZIP_EPOCH[2]
# Sizes and offsets past this use ZIP64 fields: zipfile's limit (2 GiB - 1, for readers
# that read these 32-bit fields as signed), so our bytes are the ones zipfile would choose.
ZIP64_LIMIT = (1 << 31) - 1


def _local_header(
    encoded: bytes, flags: int, method: int, crc: int, csize: int, size: int, *, zip64: bool
) -> bytes:
    """A local file header with its name; with ZIP64, the sizes are in its extra field."""
    if not zip64:
        return (
            _LOCAL.pack(
                _LOCAL_SIG,
                _VERSION,
                flags,
                method,
                _DOS_TIME,
                _DOS_DATE,
                crc,
                csize,
                size,
                len(encoded),
                0,
            )
            + encoded
        )
    return (
        _LOCAL.pack(
            _LOCAL_SIG,
            _ZIP64_VERSION,
            flags,
            method,
            _DOS_TIME,
            _DOS_DATE,
            crc,
            0xFFFFFFFF,
            0xFFFFFFFF,
            len(encoded),
            _ZIP64_SIZES.size,
        )  # fmt: skip
        + encoded
        + _ZIP64_SIZES.pack(0x0001, 16, size, csize)
    )


def _flags(name: str) -> int:
    """General purpose flags: bit 11 says the name is UTF-8 (only set when it is not ASCII,
    as zipfile does)."""
    return 0 if name.isascii() else 0x800


class SplitSpools:
    """One text file per split, written as rows come (in item order, splits mixed) and
    copied into a zip at the end: memory holds a block per split, never a split.

    `add(split, text)` appends; `head`/`separator`/`tail` frame each file (a JSON list:
    "[\n", ",\n", "\n]\n"). Use as a context manager (the temporary files go with it).
    """

    BLOCK_CHARS = 1 << 20

    def __init__(self, *, head: str = "", separator: str = "", tail: str = "") -> None:
        self.head, self.separator, self.tail = head, separator, tail
        self.files: dict[str, IO[bytes]] = {}
        self.blocks: dict[str, list[str]] = {}
        self.sizes: dict[str, int] = {}

    def __enter__(self) -> SplitSpools:
        return self

    def __exit__(self, *exc: object) -> None:
        for spool in self.files.values():
            spool.close()

    def add(self, split: str, text: str) -> None:
        block = self.blocks.get(split)
        if block is None:
            self.files[split] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
            block = self.blocks[split] = [self.head]
            self.sizes[split] = 0
        elif self.separator:
            block.append(self.separator)
        block.append(text)
        self.sizes[split] += len(text)
        if self.sizes[split] >= self.BLOCK_CHARS:
            self.files[split].write("".join(block).encode("utf-8"))
            block.clear()
            self.sizes[split] = 0

    def copy_into(self, zf: DeterministicZip, splits: Iterable[str], name: str) -> None:
        """Write each split that had rows as entry `name.format(split=...)`, in the order
        of `splits`."""
        for split in splits:
            spool = self.files.get(split)
            if spool is None:
                continue
            spool.write(("".join(self.blocks[split]) + self.tail).encode("utf-8"))
            spool.seek(0)
            with zf.open(name.format(split=split)) as entry:
                shutil.copyfileobj(spool, entry, 1 << 20)


# --- the export context ---------------------------------------------------------------


@dataclass
class ExportCounts:
    items: int = 0
    labelled: int = 0
    regions: int = 0
    # Regions left out, by reason ("class not exported", "polygonlabels not in voc").
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "labelled": self.labelled,
            "regions": self.regions,
            "skipped": dict(sorted(self.skipped.items())),
        }


class ExportSource(Protocol):
    """Where an export's rows and contents come from (datasets.services.exports gives the
    real one; a unit test may give rows from memory)."""

    def rows(self) -> Iterator[dict[str, Any]]: ...
    def content(self, sha256: str) -> bytes: ...


class ExportContext:
    """What a format's writer gets: the version's facts, the options, the rows and the
    contents, and the counters that end up in the lock file."""

    def __init__(
        self,
        *,
        version_id: str,
        dataset_id: int,
        dataset_kind: str,
        code_commit: str,
        code_repo: str,
        fmt: str,
        options: ExportOptions,
        class_counts: dict[str, int],
        source: ExportSource,
        url_base: str,
        secret: str = "",
    ) -> None:
        self.version_id = version_id
        self.dataset_id = dataset_id
        self.dataset_kind = dataset_kind
        self.code_commit = code_commit
        self.code_repo = code_repo
        self.format = fmt
        self.options = options
        self.classes: list[str] = (
            list(options.classes) if options.classes is not None else sorted(class_counts)
        )
        self.class_index: dict[str, int] = {name: i for i, name in enumerate(self.classes)}
        self.source = source
        self.url_base = url_base.rstrip("/")
        # The format's secret option (sql: the target database URL), never stored clear.
        self.secret = secret
        self.counts = ExportCounts()

    def rows(self, *, count: bool = True) -> Iterator[dict[str, Any]]:
        """The items of the selected splits in manifest order (see the module docstring);
        counts items and labelled items as they pass (a second pass says count=False)."""
        if not count:
            yield from self.source.rows()
            return
        counts = self.counts
        for row in self.source.rows():
            counts.items += 1
            if row["label"] is not None:
                counts.labelled += 1
            yield row

    def rows_with_content(self, *, count: bool = True) -> Iterator[tuple[dict[str, Any], bytes]]:
        """`rows()` paired with each item's file bytes (fetched CONTENT_THREADS at a time,
        CONTENT_BATCH_ITEMS / CONTENT_BATCH_BYTES at most in memory)."""
        with ThreadPoolExecutor(CONTENT_THREADS) as pool:

            def fetched(batch: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], bytes]]:
                contents = pool.map(self.source.content, [row["sha256"] for row in batch])
                return zip(batch, contents, strict=True)

            batch: list[dict[str, Any]] = []
            size = 0
            for row in self.rows(count=count):
                batch.append(row)
                size += row["size"]
                if len(batch) >= CONTENT_BATCH_ITEMS or size >= CONTENT_BATCH_BYTES:
                    yield from fetched(batch)
                    batch, size = [], 0
            if batch:
                yield from fetched(batch)

    def write_files(self, zf: DeterministicZip, *, prefix: str = "images/") -> None:
        """A second pass over the rows adding each item's file as `prefix + file_name`
        (images stored as they are, texts deflated). Zip entries cannot interleave, so a
        format writes its label files first and the files after."""
        for row, data in self.rows_with_content(count=False):
            zf.write(
                prefix + row["file_name"], data, compress=row["media_type"].startswith("text/")
            )

    def regions(self, label: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """The regions of a label that are exported (all, unless `classes` leaves some
        out: those are counted as skipped). Counts the regions kept."""
        if not label:
            return []
        if self.options.classes is None:
            self.counts.regions += len(label)
            return label
        kept = [region for region in label if self.region_class(region) is not None]
        self.counts.regions += len(kept)
        return kept

    def image_url(self, row: dict[str, Any]) -> str:
        """A stable URL of the item's file: the API answers it with a redirect to a fresh
        presigned URL (a presigned URL expires, and would change the export's bytes)."""
        return f"{self.url_base}/api/v1/versions/{self.version_id}/assets/{row['sha256']}"

    def region_class(self, region: dict[str, Any]) -> str | None:
        """The one label name of a region (labeling/results.py: exactly one per region,
        one choice per classification unless `multiple`) if it is exported, else None
        (counted as skipped)."""
        value = region.get("value") or {}
        names = value.get(REGION_LABEL_KEYS.get(region.get("type", ""), ""), [])
        name = names[0] if names else None
        if name is None or name not in self.class_index:
            self.counts.skip("class not exported")
            return None
        return str(name)

    def lock(self) -> dict[str, Any]:
        """The `labelvault.lock.json` of the export: what it was built from and what it
        holds. Deterministic (no time, no user)."""
        return {
            "format": self.format,
            "version": self.version_id,
            "dataset": self.dataset_id,
            "code_commit": self.code_commit,
            "code_repo": self.code_repo,
            "options": self.options.as_dict(),
            "classes": self.classes,
            "counts": self.counts.as_dict(),
            "exporter_revision": EXPORTER_REVISION,
        }

    def lock_bytes(self) -> bytes:
        return (
            json.dumps(self.lock(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        ).encode("utf-8")


class ExportFormat(Protocol):
    """One export format: a module-level object registered in datasets.formats."""

    name: str  # "coco": the API's `format` value
    title: str  # "COCO (instances)": what the UI shows
    kinds: frozenset[str]  # dataset kinds it fits: {"image"}, {"text"} or both
    # "zip", or the extension of the single file it writes ("parquet").
    extension: str
    content_type: str
    # Optional, for formats with options of their own (sql):
    #   extra_options: tuple[str, ...]      the option names it takes besides OPTION_KEYS
    #   def extra_options_check(self, raw: dict) -> tuple[dict, str]:
    #       (the checked public options, the secret: "" if none); InvalidExport otherwise
    #   cached = False                      every request builds (a write to a database)

    def write(self, ctx: ExportContext, out: IO[bytes]) -> None:
        """Write the export to `out` (a seekable binary file), from `ctx.rows()`. A zip
        format ends with `ctx.lock_bytes()` as LOCK_NAME, after every other entry."""
        ...


# --- imports ------------------------------------------------------------------------------


@dataclass
class ImportProblem:
    row: int | str  # the record's place in the file: a line number, "annotations[12]"
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "reason": self.reason}


@dataclass
class ImportRecord:
    """One item's labels as a label file gives them.

    `key` names the item (matched per the import's `match`: a file name, an external_id or
    a sha256); `regions` are in labeling/results.py's shape (region ids may be missing:
    the importer assigns them). `width`/`height` are the image size the file declares
    (checked against the asset when given). `tokens` is set instead of regions by token-
    level formats (CoNLL: [(token, tag), ...]); the importer turns them into character
    spans against the item's text (datasets.formats.conll.spans_from_tokens).
    `problems` non-empty means the record is rejected as a whole. Region ids, where the
    format has none, are given by the importer as "r1", "r2", ... in record order, so
    importing the same file twice gives the same labels.
    """

    row: int | str
    key: str
    regions: list[dict[str, Any]] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    tokens: list[tuple[str, str]] | None = None
    sha256: str | None = None
    # Our own JSONL only: the provenance the label had when exported ({"source", ...}),
    # restored as it was (a lossless round trip); other formats say None.
    provenance: dict[str, Any] | None = None
    # Coordinates are fractions of the image size (YOLO); the importer scales them by the
    # asset's width/height.
    normalized: bool = False
    problems: list[ImportProblem] = field(default_factory=list)


class ImportFormat(Protocol):
    """One import format: a module-level object registered in datasets.formats."""

    name: str
    title: str
    kinds: frozenset[str]

    def read(self, path: str, *, classes: list[str] | None = None) -> Iterable[ImportRecord]:
        """Yield the records of the file at `path` (the uploaded file: a zip for formats
        of many files). `classes` is the project's label names in schema order, for
        formats that store indices (YOLO without data.yaml). Raise InvalidLabelFile when
        the file cannot be read at all; a bad row is a record with problems. Memory must
        not grow with the number of records beyond what grouping by item needs (use a
        temporary SQLite file where a format lists annotations apart from images)."""
        ...
