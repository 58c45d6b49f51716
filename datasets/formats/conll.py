"""CoNLL-2003 (BIO tags), the token-per-line NER format: export and import of text datasets.

Export
------
A zip with `<split>.conll` for each selected split that has items (train, val, test
order), then `labelvault.lock.json`. Each item is one document, in item-id order:

    -DOCSTART- -X- -X- O
    <blank>
    # id = <external_id>
    EU -X- _ B-ORG
    rejects -X- _ O
    German -X- _ B-MISC
    <blank>
    Peter -X- _ B-PER
    Blackburn -X- _ I-PER
    <blank>

- Four columns as in CoNLL-2003 (token, POS, chunk, NER tag), separated by one space;
  POS is always `-X-` and chunk `_` (unknown). Only the last column carries information.
- The `# id = <external_id>` line names the item, so an import finds it again (line breaks
  in an external_id are written as spaces). It is a CoNLL-U style comment: readers that do
  not skip lines starting with `# ` (the classic CoNLL-2003 loaders only skip
  `-DOCSTART-` and blank lines) must drop it, e.g. `grep -v '^# id = '`.
- Sentences are the text's lines: a blank line follows every line that holds tokens (any
  run of line breaks, `\\n`, `\\r\\n`, `\\r`, U+2028 ..., is one sentence break). Every
  document therefore ends with a blank line, also one without tokens (an empty or
  whitespace-only text).
- Tokens: `TOKEN_PATTERN`, a Unicode regex (`\\w+|[^\\w\\s]` made aware of combining
  marks and joiners). A word is a run of letters, digits and `_` with the combining marks
  that follow them (so Hebrew with niqqud, Devanagari, Thai stay one token), possibly
  joined by ZWNJ/ZWJ (Persian); any other non-space character is a token of its own with
  the marks and emoji skin-tone modifiers after it, ZWJ sequences included (a family
  emoji, `❤️`, `👍🏽` are one token each). Whitespace is never part of a token, so no
  token crosses a line. Offsets are code points (`👍🏽` is two, not four UTF-16 units).
- Tags are BIO (IOB2) from the item's NER spans (regions of type `labels`, character
  offsets in code points): the first token overlapping a span is `B-<label>`, the next
  ones `I-<label>`, all others `O`. A span whose start or end falls inside a token is
  still tagged by the tokens it overlaps and counted in the lock (`span boundary inside
  a token`); a span overlapping an earlier one (spans taken by start, longer first) is
  left out (`overlapping span`), as is one covering no token (`span covers no token`).
  Other regions (classification `choices`) are left out and counted.
- Unlabelled items are left out (counted in the lock as `unlabelled item`): BIO has no
  "not annotated" tag, and all-`O` would teach a model that they hold no entity. An item
  labelled "nothing here" (no span) is a document with every token `O`; imported back,
  it is "nothing here" again (a schema with allow_empty takes it).

Import
------
A `.conll`/`.txt` file, or a zip of them (taken in the zip's order; other entries,
such as `labelvault.lock.json`, are ignored), UTF-8 (a BOM is allowed). A document starts
at a `-DOCSTART-` line, or at an `# id = ` line when the current document already has
one. Blank lines and other `# key = value` comments are skipped; every other line is a
token line whose first column is the token and last column the tag (2 to n columns
separated by spaces or tabs, so the 4-column CoNLL-2003 and 2-column files both read).

One ImportRecord per document: `key` is the id line's external_id, `tokens` the (token,
tag) pairs, `regions` empty: labeling.services.label_imports turns tokens into spans with
`spans_from_tokens` against the item's text. A document without an id line, a line with
a single column, a tag that is not `O`/`B-x`/`I-x` (also accepted: BIOES `S-x`/`E-x`
and BILOU `U-x`/`L-x`) or undecodable bytes make the record's problems (row = the line).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from datasets.formats.base import (
    DeterministicZip,
    ExportContext,
    ImportProblem,
    ImportRecord,
    InvalidLabelFile,
    SplitSpools,
)

DOCSTART = "-DOCSTART- -X- -X- O\n"
ID_PREFIX = "# id = "
EXTENSION = ".conll"
# Tokens of one document (one item) held at once: ~120 bytes each in memory, so ~250 MB at
# most; a 2M-token text is ~10 MB, more than a book. Beyond it the document is refused.
DOCUMENT_TOKENS_MAX = 2_000_000


def _marks() -> tuple[str, str]:
    """Every combining mark (Unicode categories Mn, Mc, Me) as regex class bodies of
    ranges, (below U+10000, above): Python's `re` has no \\p{M}, and `\\w` leaves marks
    out (a word with niqqud or a Devanagari vowel sign would split). Built once at import
    (~0.2 s)."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x110000):
        if unicodedata.category(chr(code)) in ("Mn", "Mc", "Me"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))

    def body(part: list[tuple[int, int]]) -> str:
        return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in part)

    return body([r for r in ranges if r[1] < 0x10000]), body([r for r in ranges if r[0] >= 0x10000])


_BMP_MARKS, _ASTRAL_MARKS = _marks()
# A mark: the BMP ones are one bitmap test; the few hundred astral ranges are tried only
# for an astral character (a lookahead), so the end of every word stays cheap.
# Emoji skin-tone modifiers (Sk, not marks) count as marks: they stay with their emoji.
_M = rf"(?:[{_BMP_MARKS}]|(?=[\U00010000-\U0010ffff])[{_ASTRAL_MARKS}\U0001f3fb-\U0001f3ff])"
TOKEN_PATTERN = (
    # A word: letters/digits/_ with their marks, ZWNJ/ZWJ-joined parts (Persian) included.
    # (Possessive: nothing is ever given back, so no backtracking; ~1.5x `\w+|[^\w\s]`.)
    rf"\w++(?:{_M}++\w*+)*+(?:[\u200c\u200d]\w++(?:{_M}++\w*+)*+)*+"
    # Any other character with its marks; ZWJ sequences (emoji families) are one token.
    rf"|[^\w\s]{_M}*+(?:\u200d[^\w\s]{_M}*+)*+"
)
TOKEN = re.compile(TOKEN_PATTERN)
# The characters str.splitlines() breaks at: sentences are the text's lines.
LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# A line: a run of anything but those (a sentence when it holds a token).
LINE = re.compile("[^\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
O_JOIN = " -X- _ O\n"
O_END = " -X- _ O\n\n"
TAG = re.compile(r"O|[BIESLU]-\S+")
_ID_LINE = re.compile(r"# id = (.*)")
_COMMENT = re.compile(r"#\s*[\w.\-]+\s*=")


def tokenize(text: str) -> list[tuple[int, int, str]]:
    """(start, end, token) of every token of `text` (code point offsets), in order."""
    return [(m.start(), m.end(), m.group()) for m in TOKEN.finditer(text)]


# --- export -------------------------------------------------------------------------------


class ConllExport:
    name = "conll"
    title = "CoNLL-2003 (BIO tags)"
    kinds = frozenset({"text"})
    extension = "zip"
    content_type = "application/zip"

    def write(self, ctx: ExportContext, out: IO[bytes]) -> None:
        with SplitSpools() as spools:
            for row, content in ctx.rows_with_content():
                if row["label"] is None:
                    ctx.counts.skip("unlabelled item")
                    continue
                text = content.decode("utf-8", errors="replace")
                spools.add(row["split"], self._document(ctx, row, text))
            zf = DeterministicZip(out)
            spools.copy_into(zf, ctx.options.splits, "{split}" + EXTENSION)
            zf.write("labelvault.lock.json", ctx.lock_bytes())
            zf.close()

    def _document(self, ctx: ExportContext, row: dict[str, Any], text: str) -> str:
        """One item's document. Tokens never cross a line break (whitespace), so each
        line is tokenised on its own: a line no span touches is all `O` and written with
        one C-level join; only the lines a span touches are tokenised with offsets."""
        parts = [DOCSTART, "\n", ID_PREFIX, LINE_BREAK.sub(" ", row["external_id"]), "\n"]
        spans = _spans(ctx, row["label"]) if row["label"] else []
        if not spans:
            for line in LINE.findall(text):
                tokens = TOKEN.findall(line)
                if tokens:
                    parts.append(O_JOIN.join(tokens))
                    parts.append(O_END)
        else:
            lines = [m.span() for m in LINE.finditer(text)]
            hot = _lines_touched(lines, spans)
            tokens: list[tuple[int, int, str]] = []
            for index in sorted(hot):
                start, end = lines[index]
                # finditer with pos/endpos gives offsets into the whole text.
                tokens.extend(
                    (m.start(), m.end(), m.group()) for m in TOKEN.finditer(text, start, end)
                )
            tags = _tags(ctx, spans, tokens)
            at = 0  # the next hot token
            for index, (start, end) in enumerate(lines):
                if index in hot:
                    first = at
                    while at < len(tokens) and tokens[at][0] < end:
                        at += 1
                    if at > first:
                        parts.extend(f"{tokens[i][2]} -X- _ {tags[i]}\n" for i in range(first, at))
                        parts.append("\n")
                else:
                    line_tokens = TOKEN.findall(text, start, end)
                    if line_tokens:
                        parts.append(O_JOIN.join(line_tokens))
                        parts.append(O_END)
        if len(parts) == 5:  # no token: the document still ends with a blank line
            parts.append("\n")
        return "".join(parts)


def _spans(ctx: ExportContext, label: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """(start, end, name) of the label's exported spans, by start, longer first (so of two
    nested spans the inner one is left out); other regions are counted as skipped."""
    counts = ctx.counts
    spans: list[tuple[int, int, str]] = []
    for region in ctx.regions(label):
        kind = region.get("type")
        if kind != "labels":
            counts.skip(f"{kind} regions are not spans")
            continue
        value = region["value"]
        spans.append((value["start"], value["end"], value["labels"][0]))
    spans.sort(key=lambda span: (span[0], -span[1]))
    return spans


def _lines_touched(lines: list[tuple[int, int]], spans: list[tuple[int, int, str]]) -> set[int]:
    """The indices of the lines (start, end) that share a character with a span."""
    ends = [end for _, end in lines]
    touched: set[int] = set()
    for start, end, _ in spans:
        index = bisect.bisect_right(ends, start)  # the first line ending after `start`
        while index < len(lines) and lines[index][0] < end:
            touched.add(index)
            index += 1
    return touched


def _tags(
    ctx: ExportContext, spans: list[tuple[int, int, str]], tokens: list[tuple[int, int, str]]
) -> list[str]:
    """The BIO tag of each token (every token a span may touch is in `tokens`)."""
    counts = ctx.counts
    tags = ["O"] * len(tokens)
    ends = [end for _, end, _ in tokens]
    for start, end, name in spans:
        first = bisect.bisect_right(ends, start)  # the first token ending after `start`
        last = first
        while last < len(tokens) and tokens[last][0] < end:
            last += 1
        if first == last or start >= end:
            counts.skip("span covers no token")
            continue
        if any(tag != "O" for tag in tags[first:last]):
            counts.skip("overlapping span")
            continue
        if tokens[first][0] < start or tokens[last - 1][1] > end:
            counts.skip("span boundary inside a token")
        tags[first] = f"B-{name}"
        inside = f"I-{name}"
        for index in range(first + 1, last):
            tags[index] = inside
    return tags


# --- import -------------------------------------------------------------------------------


def spans_from_tokens(
    text: str, tokens: list[tuple[str, str]]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The NER spans (labeling/results.py `labels` regions, code point offsets, no ids) that
    (token, tag) pairs describe over `text`, and the problems found.

    Tokens are located one after the other: each must start where the previous one ended,
    after whitespace or invisible format characters (ZWSP, BOM ...). Tags are BIO (IOB2);
    also read: IOB1 (an `I-x` after `O` or another label starts a span), BIOES (`S-x`,
    `E-x`) and BILOU (`U-x`, `L-x`). A token that cannot be found stops the search (every
    later offset would be wrong): that problem is the last. Problems are (field, reason)
    pairs, the reason naming the token by its index in the document; regions are
    meaningful only when there are none. Pure: reads nothing, writes nothing.
    """
    regions: list[dict[str, Any]] = []
    problems: list[tuple[str, str]] = []
    size = len(text)
    pos = 0
    open_name: str | None = None
    open_start = open_end = 0

    def close() -> None:
        nonlocal open_name
        if open_name is not None:
            regions.append(
                {
                    "type": "labels",
                    "value": {
                        "start": open_start,
                        "end": open_end,
                        "text": text[open_start:open_end],
                        "labels": [open_name],
                    },
                }
            )
            open_name = None

    for index, (token, tag) in enumerate(tokens):
        if not token:
            problems.append(("token", f"token {index} is empty"))
            return regions, problems
        if not text.startswith(token, pos):
            skip = pos
            while skip < size and (
                text[skip].isspace() or unicodedata.category(text[skip]) == "Cf"
            ):
                skip += 1
            if not text.startswith(token, skip):
                problems.append(
                    (
                        "token",
                        f"token {token!r} (token {index}) not found in the item's text "
                        f"after offset {pos}",
                    )
                )
                return regions, problems
            pos = skip
        start, pos = pos, pos + len(token)
        if tag == "O":
            close()
            continue
        if TAG.fullmatch(tag) is None:
            problems.append(
                (
                    "tag",
                    f"tag {tag!r} of token {index} ({token!r}) is not O, B-<label> or "
                    "I-<label> (nor BIOES S-/E-, BILOU U-/L-)",
                )
            )
            close()
            continue
        prefix, name = tag[0], tag[2:]
        if prefix in "BSU" or open_name != name:
            close()
            open_name, open_start = name, start
        open_end = pos
        if prefix in "ESLU":
            close()
    close()
    return regions, problems


class ConllImport:
    name = "conll"
    title = "CoNLL-2003 (BIO tags)"
    kinds = frozenset({"text"})

    def read(self, path: str, *, classes: list[str] | None = None) -> Iterator[ImportRecord]:
        if zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as zf:
                    names = [
                        info.filename
                        for info in zf.infolist()
                        if not info.is_dir()
                        and not info.filename.startswith("__MACOSX/")
                        and info.filename.lower().endswith((".conll", ".txt"))
                    ]
                    if not names:
                        raise InvalidLabelFile(
                            "The zip holds no .conll or .txt file.", field="file"
                        )
                    for name in names:
                        with zf.open(name) as handle:
                            yield from _documents(handle, prefix=f"{name}:")
            except zipfile.BadZipFile as exc:
                raise InvalidLabelFile(f"Not a readable zip: {exc}.", field="file") from exc
            return
        with open(path, "rb") as handle:
            yield from _documents(handle, prefix="")


class _Document:
    __slots__ = ("row", "key", "tokens", "problems", "id_seen")

    def __init__(self, row: int | str) -> None:
        self.row = row
        self.key = ""
        self.id_seen = False
        self.tokens: list[tuple[str, str]] = []
        self.problems: list[ImportProblem] = []

    def record(self) -> ImportRecord:
        if not self.id_seen:
            self.problems.insert(
                0,
                ImportProblem(
                    self.row,
                    "id",
                    f"the document has no '{ID_PREFIX}<external_id>' line before its tokens, "
                    "so its item cannot be found",
                ),
            )
        return ImportRecord(row=self.row, key=self.key, tokens=self.tokens, problems=self.problems)


def _documents(handle: IO[bytes], *, prefix: str) -> Iterator[ImportRecord]:
    """The records of one CoNLL file (see the module docstring), `prefix` naming the zip
    entry in rows ("train.conll:12"); a single file's rows are line numbers."""

    def where(number: int) -> int | str:
        return f"{prefix}{number}" if prefix else number

    doc: _Document | None = None
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            doc = doc or _Document(where(number))
            doc.problems.append(
                ImportProblem(
                    where(number), "line", f"not UTF-8 ({exc.reason} at byte {exc.start})"
                )
            )
            continue
        if not line.strip():
            continue
        if line.startswith("-DOCSTART-"):
            if doc is not None:
                yield doc.record()
            doc = _Document(where(number))
            continue
        id_line = _ID_LINE.fullmatch(line)
        if id_line is not None:
            if doc is not None and (doc.id_seen or doc.tokens):
                yield doc.record()
                doc = None
            doc = doc or _Document(where(number))
            doc.key, doc.id_seen = id_line.group(1), True
            continue
        if line.startswith("#") and _COMMENT.match(line):
            continue
        doc = doc or _Document(where(number))
        columns = line.split()
        if len(columns) < 2:
            doc.problems.append(
                ImportProblem(
                    where(number),
                    "line",
                    f"{line.strip()!r} has one column; a token line is the token, then its "
                    "tag (CoNLL-2003: token POS chunk tag)",
                )
            )
            continue
        tag = columns[-1]
        if TAG.fullmatch(tag) is None:
            doc.problems.append(
                ImportProblem(
                    where(number),
                    "tag",
                    f"tag {tag!r} of token {columns[0]!r} is not O, B-<label> or I-<label> "
                    "(nor BIOES S-/E-, BILOU U-/L-)",
                )
            )
            continue
        if len(doc.tokens) >= DOCUMENT_TOKENS_MAX:
            if not doc.problems or doc.problems[-1].field != "tokens":
                doc.problems.append(
                    ImportProblem(
                        where(number), "tokens", f"more than {DOCUMENT_TOKENS_MAX} tokens"
                    )
                )
            continue
        doc.tokens.append((columns[0], tag))
    if doc is not None:
        yield doc.record()


EXPORT = ConllExport()
IMPORT = ConllImport()
