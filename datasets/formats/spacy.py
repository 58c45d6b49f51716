"""spaCy v3 training data (JSON): export of text datasets, NER or text classification.

A zip with `<split>.json` for each selected split that has items (train, val, test
order), then `labelvault.lock.json`. Each file is a JSON list, one object per item in
item-id order, one item per line:

    [
    {"id":7,"external_id":"a.txt","text":"Alice met Bob","entities":[[0,5,"PER"],[10,13,"PER"]]},
    {"id":9,"external_id":"b.txt","text":"Great film","cats":{"neg":0.0,"pos":1.0}},
    {"id":12,"external_id":"c.txt","text":"not labelled yet"}
    ]

which is what spaCy v3 takes for an `Example`:

    doc = nlp.make_doc(obj["text"])
    example = Example.from_dict(doc, {k: obj[k] for k in ("entities", "cats") if k in obj})
    # then DocBin: db.add(example.reference)

- `entities`: `[start, end, label]` per NER span (regions of type `labels`), character
  offsets in Unicode code points, as Python and spaCy index a str (an emoji is one
  character, not two UTF-16 units): `text[start:end]` is the span's text. Sorted by
  start (longer first); spaCy refuses overlapping entities, so a span overlapping an
  earlier one is left out and counted (`overlapping span`).
- `cats`: for a classification label (a `choices` region), every exported class
  (`classes` option, else every label name of the version) with 1.0 for the chosen ones
  and 0.0 for the others, in class order.
- An unlabelled item has neither key (spaCy treats the doc as unannotated). A label with
  nothing in it ("nothing here") has `entities: []` or all-zero `cats`, whichever the
  version's first non-empty label says the dataset is (NER when none).
- Image regions do not occur in text datasets; any other region type is left out and
  counted. Keys in the order shown, UTF-8 (no \\u escapes), no whitespace inside a line:
  the same version gives the same bytes.
"""

from __future__ import annotations

import json
from typing import IO, Any

from datasets.formats.base import DeterministicZip, ExportContext, SplitSpools

EXTENSION = ".json"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def first_label_task(ctx: ExportContext) -> str:
    """ "cats" when the version's first non-empty label is a classification, else
    "entities". Reads the rows only up to that label (count=False): one extra pass over
    the manifest only for a version without any non-empty label."""
    for row in ctx.rows(count=False):
        if row["label"]:
            return "cats" if row["label"][0].get("type") == "choices" else "entities"
    return "entities"


class SpacyExport:
    name = "spacy"
    title = "spaCy v3 (JSON for Example.from_dict)"
    kinds = frozenset({"text"})
    extension = "zip"
    content_type = "application/zip"

    def write(self, ctx: ExportContext, out: IO[bytes]) -> None:
        task = first_label_task(ctx)
        classes = ctx.classes
        zeros = dict.fromkeys(classes, 0.0)
        counts = ctx.counts
        with SplitSpools(head="[\n", separator=",\n", tail="\n]\n") as spools:
            for row, content in ctx.rows_with_content():
                text = content.decode("utf-8", errors="replace")
                obj: dict[str, Any] = {
                    "id": row["id"],
                    "external_id": row["external_id"],
                    "text": text,
                }
                label = row["label"]
                if label is not None:
                    entities: list[tuple[int, int, str]] = []
                    cats: dict[str, float] | None = None
                    for region in ctx.regions(label):
                        kind = region.get("type")
                        value = region["value"]
                        if kind == "labels":
                            entities.append((value["start"], value["end"], value["labels"][0]))
                        elif kind == "choices":
                            if cats is None:
                                cats = dict(zeros)
                            for choice in value["choices"]:
                                if choice in cats:
                                    cats[choice] = 1.0
                        else:
                            counts.skip(f"{kind} regions are not text labels")
                    if entities or task == "entities":
                        obj["entities"] = _without_overlaps(entities, ctx)
                    if cats is not None or task == "cats":
                        obj["cats"] = cats if cats is not None else zeros
                spools.add(row["split"], _dumps(obj))
            zf = DeterministicZip(out)
            spools.copy_into(zf, ctx.options.splits, "{split}" + EXTENSION)
            zf.write("labelvault.lock.json", ctx.lock_bytes())
            zf.close()


def _without_overlaps(
    entities: list[tuple[int, int, str]], ctx: ExportContext
) -> list[tuple[int, int, str]]:
    if len(entities) < 2:
        return entities
    entities.sort(key=lambda entity: (entity[0], -entity[1]))
    kept = [entities[0]]
    for entity in entities[1:]:
        if entity[0] < kept[-1][1]:
            ctx.counts.skip("overlapping span")
        else:
            kept.append(entity)
    return kept


EXPORT = SpacyExport()
