"""Factories shared by the test packages."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def roles(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        if create and extracted:
            for name in extracted:
                self.groups.add(Group.objects.get(name=name))


def png_bytes(
    width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    """A real PNG of the given size (distinct colours give distinct content)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def dataset_with_items(
    *,
    owner,
    kind: str,
    contents: list[bytes],
    name: str | None = None,
    external_ids: list[str] | None = None,
    splits: list[str] | None = None,
):
    """A dataset whose items hold `contents` (PNG bytes or UTF-8 texts), stored in the
    session's S3 server through the datasets services, as an import would. Returns
    (dataset, items in order). `external_ids` / `splits` default to `<kind>-000.png` and
    no split."""
    from django.db import transaction

    from datasets.models import Dataset, Item
    from datasets.services.assets import asset_blob_put, asset_inspect, assets_record
    from datasets.services.items import ItemRow, items_add

    dataset = Dataset.objects.create(
        name=name or f"{kind} set {Dataset.objects.count() + 1}", kind=kind, created_by=owner
    )
    facts = [asset_inspect(content, kind=kind) for content in contents]
    for content, fact in zip(contents, facts, strict=True):
        asset_blob_put(content, fact)
    assets_record(facts)
    suffix = ".png" if kind == "image" else ".txt"
    with transaction.atomic():
        outcomes = items_add(
            dataset=dataset,
            rows=[
                ItemRow(
                    key=n,
                    external_id=(external_ids[n] if external_ids else f"{kind}-{n:03d}{suffix}"),
                    sha256=fact.sha256,
                    split=splits[n] if splits else "",
                )
                for n, fact in enumerate(facts)
            ],
        )
    ids = [o.item_id for o in outcomes]
    by_id = Item.objects.select_related("asset").in_bulk(ids)
    return dataset, [by_id[i] for i in ids]
