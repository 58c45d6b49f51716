"""`python manage.py seed_demo`: create the demo users, and demo data to label: an image
dataset with a bounding-box project and a text dataset with an entity (NER) project,
annotator1 and annotator2 their annotators. Idempotent: a second run changes nothing."""

from __future__ import annotations

import io
import json
import os
import random
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from PIL import Image, ImageDraw

from datasets.models import Dataset, Version
from datasets.services.assets import asset_blob_put, asset_inspect, assets_record
from datasets.services.datasets import dataset_counters_add, dataset_create
from datasets.services.items import ItemRow, items_add
from datasets.services.labels import label_publish
from datasets.services.parquet import version_parquet_write
from datasets.services.thumbnails import thumbnails_submit
from datasets.services.versions import SnapshotRequest, version_snapshot
from labeling import roles
from labeling.errors import AnnotatorPaused
from labeling.models import (
    Annotation,
    AnnotationRevision,
    GoldAnswer,
    Project,
    ProjectMember,
    QualityReport,
    Review,
)
from labeling.services.annotations import annotation_submit
from labeling.services.dashboard import quality_report_create
from labeling.services.gold import gold_mark
from labeling.services.predictions import predictions_import
from labeling.services.projects import Member, project_create, project_tasks_create
from labeling.services.queue import task_lease_next
from labeling.services.review import latest_revisions, review_decide, review_lease_next
from labeling.services.roles import roles_ensure
from storage.errors import StorageUnavailable

# username -> (role group, is_superuser)
DEMO_USERS: dict[str, tuple[str, bool]] = {
    "admin": (roles.ADMIN, True),
    "ops": (roles.OPS, False),
    "reviewer": (roles.REVIEWER, False),
    "annotator1": (roles.ANNOTATOR, False),
    "annotator2": (roles.ANNOTATOR, False),
}


def credentials_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-users.json"


# --- demo data --------------------------------------------------------------------------

DEMO_OWNER = "ops"
DEMO_ANNOTATORS = ("annotator1", "annotator2")
DEMO_REVIEWER = "reviewer"
DEMO_IMAGE_COUNT = 8
DEMO_IMAGE_SIZE = (640, 480)
DEMO_TEXTS = (
    "Alice Martin moved to Paris in 2019 and joined Acme Corp as a data engineer.",
    "The Red Cross opened a field hospital near Kharkiv on Tuesday, officials said.",
    "Satya Nadella spoke at Microsoft Build in Seattle about new AI tools.",
    "Heavy rain closed the A7 motorway between Lyon and Marseille overnight.",
    "Dr. Amara Okafor of the University of Lagos won the 2024 Africa Science Prize.",
    "Toyota will build a battery plant in North Carolina, the company announced.",
    "Greta and Jonas hiked from Zermatt to Saas-Fee over three days in August.",
    "The European Central Bank kept rates unchanged at its Frankfurt meeting.",
)
DEMO_BOX_SCHEMA: dict[str, Any] = {
    "type": "bbox",
    "labels": [
        {"name": "car", "color": "#e6194b"},
        {"name": "person", "color": "#3cb44b"},
        {"name": "traffic sign", "color": "#4363d8"},
    ],
    "attributes": [{"name": "occluded", "type": "bool", "default": False}],
}
DEMO_NER_SCHEMA: dict[str, Any] = {
    "type": "ner",
    "labels": [
        {"name": "PER", "color": "#e6194b"},
        {"name": "ORG", "color": "#4363d8"},
        {"name": "LOC", "color": "#3cb44b"},
    ],
}
DEMO_BOX_INSTRUCTIONS = """\
## Boxes
Draw a **tight** box around every *car*, *person* and *traffic sign* you can see.

- Include the parts hidden behind something else, and tick **occluded**.
- Ignore objects smaller than 10 pixels.
- Nothing to label? Skip the task with the reason "nothing to label".
"""
DEMO_NER_INSTRUCTIONS = """\
## Entities
Mark every name of a **person** (PER), **organisation** (ORG) and **place** (LOC).

- Titles are not part of a name: in "Dr. Amara Okafor" mark "Amara Okafor".
- Mark the whole name once: "University of Lagos" is one ORG.
"""


def demo_scene_png(seed: int, size: tuple[int, int] = DEMO_IMAGE_SIZE) -> bytes:
    """A small street scene (sky, road, a car, a person, a sign) that moves with `seed`,
    so each image has something to draw boxes around and its own content hash."""
    width, height = size
    image = Image.new("RGB", size, (150 + seed * 7 % 60, 190, 230))
    draw = ImageDraw.Draw(image)
    horizon = int(height * 0.55)
    draw.rectangle((0, horizon, width, height), fill=(90, 90, 96))
    draw.rectangle((0, int(height * 0.75), width, int(height * 0.78)), fill=(230, 230, 230))
    shift = seed * 37 % 160
    car = (40 + shift, horizon - 20, 250 + shift, horizon + 70)
    draw.rounded_rectangle(car, radius=18, fill=((200 + seed * 40) % 256, 40, 40 + seed * 20 % 120))
    for wheel_x in (car[0] + 30, car[2] - 80):
        draw.ellipse((wheel_x, car[3] - 20, wheel_x + 50, car[3] + 30), fill=(25, 25, 25))
    person_x = 420 - seed * 23 % 90
    draw.rectangle((person_x, 180, person_x + 40, 330), fill=(240, 170, 60))
    draw.ellipse((person_x - 2, 140, person_x + 42, 184), fill=(240, 200, 160))
    if seed % 2 == 0:
        draw.rectangle((560, 150, 566, horizon + 20), fill=(120, 120, 120))
        draw.regular_polygon((563, 140, 28), 8, fill=(210, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# The last scenes get ground truth (the boxes the scene was drawn with) and the dataset a
# first version, so the Versions tab and its Export panel have something to show.
DEMO_GROUND_TRUTH = 3


def demo_scene_boxes(seed: int, size: tuple[int, int] = DEMO_IMAGE_SIZE) -> list[dict[str, Any]]:
    """The boxes of what demo_scene_png(seed) draws (car with its wheels, person, sign)."""
    _, height = size
    horizon = int(height * 0.55)
    shift = seed * 37 % 160
    person_x = 420 - seed * 23 % 90
    boxes = [
        ("car", 40 + shift, horizon - 20, 210, 120),
        ("person", person_x - 2, 140, 44, 190),
    ]
    if seed % 2 == 0:
        boxes.append(("traffic sign", 535, 112, 56, horizon + 20 - 112))
    return [
        {
            "id": f"r{n}",
            "type": "rectanglelabels",
            "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [name]},
            "attributes": {"occluded": False},
        }
        for n, (name, x, y, w, h) in enumerate(boxes, start=1)
    ]


def _demo_version(*, images: Any, boxes: Project, owner: Any, item_ids: list[int]) -> Version:
    """Publish the ground truth of the last scenes and snapshot the dataset (the same
    version again when nothing changed)."""
    schema_hash = boxes.schema_revision.schema_hash
    first = len(item_ids) - DEMO_GROUND_TRUTH
    for seed, item_id in enumerate(item_ids[first:], start=first):
        label_publish(
            item=item_id,
            value=demo_scene_boxes(seed),
            schema_hash=schema_hash,
            source="seed_demo",
            provenance={"note": "the boxes the scene was drawn with"},
        )
    version, _ = version_snapshot(
        dataset=images,
        request=SnapshotRequest(
            code_commit="none", code_repo="", message="Demo: ground truth of three scenes"
        ),
        created_by_id=owner.pk,
    )
    version_parquet_write(version)  # as the snapshot job does
    return version


def _dataset_ensure(*, owner: Any, name: str, kind: str, description: str) -> Any:
    found = Dataset.objects.filter(created_by=owner, name=name).first()
    return found or dataset_create(created_by=owner, name=name, kind=kind, description=description)


def _items_ensure(dataset: Any, files: list[tuple[str, bytes]]) -> list[int]:
    """Store the files and add them as items (as an import would, without its job);
    return the item ids in order. Items already there are left as they are."""
    facts = [asset_inspect(content, kind=dataset.kind) for _, content in files]
    for (_, content), fact in zip(files, facts, strict=True):
        asset_blob_put(content, fact)
    assets_record(facts)
    with transaction.atomic():
        outcomes = items_add(
            dataset=dataset,
            rows=[
                ItemRow(key=n, external_id=name, sha256=fact.sha256)
                for n, ((name, _), fact) in enumerate(zip(files, facts, strict=True))
            ],
        )
        created = [o.key for o in outcomes if o.status == "created"]
        dataset_counters_add(
            dataset_id=dataset.pk,
            items=len(created),
            size=sum(facts[n].size for n in created),
        )
        if created:
            thumbnails_submit(sha256s=[facts[n].sha256 for n in created])
    return [o.item_id for o in outcomes if o.item_id is not None]


def _project_ensure(
    *, owner: Any, name: str, dataset: Any, schema: dict[str, Any], instructions: str
) -> Any:
    project = Project.objects.filter(name=name, dataset=dataset).first()
    if project is None:
        members = [Member(username) for username in DEMO_ANNOTATORS]
        members.append(Member(DEMO_REVIEWER, "reviewer"))
        project = project_create(
            created_by=owner,
            name=name,
            dataset=dataset,
            label_schema=schema,
            instructions=instructions,
            description="Made by seed_demo to try the annotator.",
            members=members,
        )
    # What the project's tasks job does (it runs too, and finds nothing left): the demo
    # is ready to label as soon as the command returns.
    project_tasks_create(project=project)
    return project


def _box_predictions(project: Any, item_ids: list[int]) -> None:
    """Pre-annotations of the first two images, as a model would send them: annotators
    start from these boxes and correct them."""
    rows = []
    for seed, item_id in enumerate(item_ids[:2]):
        shift = seed * 37 % 160
        rows.append(
            {
                "item": item_id,
                "model_name": "demo-detector-v1",
                "score": 0.8 - seed * 0.1,
                "result": [
                    {
                        "type": "rectanglelabels",
                        "value": {
                            "x": 40 + shift,
                            "y": 244,
                            "width": 212,
                            "height": 120,
                            "rectanglelabels": ["car"],
                        },
                    }
                ],
            }
        )
    predictions_import(project=project, rows=rows)


# --- the quality demo: a simulated crowd on a classification project ---------------------

# Five annotators of known accuracy and speed label every camera image three times
# (overlap 3) through the real queue; gold images are mixed in, a reviewer reviews a
# sample, and an agreement report is stored: the Quality tab has real numbers.
DEMO_CAMERA_COUNT = 60
DEMO_CAMERA_SIZE = (240, 160)
DEMO_TIMES_OF_DAY = ("day", "dusk", "night")
DEMO_CLASS_SCHEMA: dict[str, Any] = {
    "type": "image_class",
    "labels": [
        {"name": "day", "color": "#f5b400", "hotkey": "1"},
        {"name": "dusk", "color": "#e6194b", "hotkey": "2"},
        {"name": "night", "color": "#1f3c88", "hotkey": "3"},
    ],
}
DEMO_CLASS_INSTRUCTIONS = """\
## Time of day
Pick the time of day of each traffic camera image: **day**, **dusk** or **night**.
Street lights and headlights on a dark sky mean night; an orange or pink sky dusk.
"""
# username -> (probability of the right label, median seconds per image)
DEMO_CROWD: dict[str, tuple[float, float]] = {
    "crowd-ana": (0.97, 4.0),
    "crowd-ben": (0.93, 6.5),
    "crowd-chloe": (0.88, 3.0),
    "crowd-dev": (0.72, 9.0),
    "crowd-eli": (0.5, 2.2),
}
DEMO_GOLD_COUNT = 10
# Days the simulated work is spread over (ending today), so the daily charts have shape.
DEMO_WORK_DAYS = 12
DEMO_SEED = 7


def demo_camera_png(seed: int, size: tuple[int, int] = DEMO_CAMERA_SIZE) -> bytes:
    """A traffic camera frame whose sky says its time of day
    (DEMO_TIMES_OF_DAY[seed % 3]), different for every seed."""
    width, height = size
    kind = DEMO_TIMES_OF_DAY[seed % 3]
    jitter = seed * 13 % 30
    sky = {
        "day": (110 + jitter, 170 + jitter // 2, 235),
        "dusk": (230, 120 + jitter, 90 + jitter),
        "night": (12 + jitter // 3, 18 + jitter // 3, 45 + jitter),
    }[kind]
    image = Image.new("RGB", size, sky)
    draw = ImageDraw.Draw(image)
    horizon = int(height * 0.6)
    road = (70, 70, 76) if kind != "night" else (30, 30, 34)
    draw.rectangle((0, horizon, width, height), fill=road)
    draw.polygon(
        [
            (width // 2 - 4, horizon),
            (width // 2 + 4, horizon),
            (width // 2 + 14, height),
            (width // 2 - 14, height),
        ],
        fill=(210, 210, 200),
    )
    x = 20 + seed * 29 % (width - 80)
    draw.rounded_rectangle((x, horizon - 10, x + 56, horizon + 18), radius=6, fill=(160, 40, 40))
    if kind == "night":
        for lx in (x + 6, x + 42):
            draw.ellipse((lx, horizon + 4, lx + 8, horizon + 12), fill=(255, 250, 200))
        for px in range(10, width, 60):
            draw.ellipse((px, 20, px + 6, 26), fill=(255, 230, 150))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _choice(name: str) -> list[dict[str, Any]]:
    return [{"type": "choices", "value": {"choices": [name]}}]


def _crowd_ensure() -> list[Any]:
    """The crowd's users (annotators who cannot log in: they only exist to make data)."""
    User = get_user_model()
    group = Group.objects.get(name=roles.ANNOTATOR)
    users = []
    for username in DEMO_CROWD:
        user, created = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@demo.labelvault.invalid"}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        user.groups.add(group)
        users.append(user)
    return users


def _crowd_work(
    project: Project, crowd: list[Any], truth: dict[int, str], rng: random.Random
) -> list[int]:
    """Every crowd member takes tasks from the real queue in turn (gold ones included,
    as the queue mixes them in) and submits the right label with their accuracy, another
    one otherwise, with a lead time around their speed; a paused member stops. Return
    the ids of the annotations made or changed, in the order of the work."""
    order: list[int] = []
    active = list(crowd)
    while active:
        for user in list(active):
            try:
                grant = task_lease_next(project=project, annotator=user)
            except AnnotatorPaused:
                grant = None
            if grant is None:
                active.remove(user)
                continue
            accuracy, seconds = DEMO_CROWD[user.username]
            right = truth[grant.task.item_id]
            label = right
            if rng.random() > accuracy:
                label = rng.choice([n for n in DEMO_TIMES_OF_DAY if n != right])
            outcome = annotation_submit(
                task=grant.task,
                annotator=user,
                result=_choice(label),
                lease_id=grant.lease.pk,
                lead_time_ms=int(seconds * 1000 * rng.lognormvariate(0, 0.35)),
            )
            order.append(outcome.annotation.pk)
    return order


def _crowd_review(project: Project, reviewer: Any, truth: dict[int, str], limit: int) -> int:
    """The reviewer works through up to `limit` tasks waiting for review: a right
    majority is accepted (one odd answer out of two is sent back instead), a wrong one
    is fixed or its first wrong annotation sent back, in turn. Return how many decisions
    were made."""
    decided = 0
    while decided < limit:
        grant = review_lease_next(project=project, reviewer=reviewer)
        if grant is None:
            break
        task = grant.task
        task.project = project
        right = truth[task.item_id]
        revisions = latest_revisions(task_id=task.pk)
        wrong = [r for r in revisions if not r.result or r.result[0]["value"]["choices"] != [right]]
        decide = {"task": task, "reviewer": reviewer, "review_lease_id": grant.lease.pk}
        comment = f"This frame is {right}: look at the sky and the lights."
        if wrong and (len(wrong) * 2 > len(revisions) or decided % 2):
            if len(wrong) * 2 > len(revisions) and decided % 2:
                review_decide(
                    **decide,
                    decision="fix",
                    annotation_id=wrong[0].annotation_id,
                    result=_choice(right),
                )
            else:
                review_decide(
                    **decide,
                    decision="reject",
                    comment=comment,
                    annotation_id=wrong[0].annotation_id,
                )
        else:
            review_decide(**decide, decision="accept")
        decided += 1
    return decided


def _spread_over_days(annotation_ids: list[int], reviewer: Any, project: Project) -> None:
    """Date the simulated work as if it had taken DEMO_WORK_DAYS days, in its order (the
    services stamp everything now): annotations, their revisions, gold answers and
    reviews. Demo data only."""
    now = timezone.now()
    total = len(annotation_ids)
    for n, annotation_id in enumerate(annotation_ids):
        day = DEMO_WORK_DAYS - 1 - n * DEMO_WORK_DAYS // max(total, 1)
        when = now - timedelta(days=day, minutes=total - n)
        Annotation.objects.filter(pk=annotation_id).update(created_at=when, updated_at=when)
        AnnotationRevision.objects.filter(annotation_id=annotation_id).update(created_at=when)
        GoldAnswer.objects.filter(annotation_id=annotation_id).update(
            created_at=when, updated_at=when
        )
    # A review comes a little after the task's last annotation (a dozen rows).
    for review in Review.objects.filter(project=project, reviewer=reviewer):
        last = Annotation.objects.filter(task_id=review.task_id).aggregate(at=Max("updated_at"))
        Review.objects.filter(pk=review.pk).update(created_at=last["at"] + timedelta(minutes=5))


def demo_quality_ensure(*, owner: Any) -> str:
    """The quality demo: a classification project with overlap 3 on a dataset of camera
    frames, worked by the simulated crowd through the real queue, gold, review and
    agreement services. Does nothing once the project has its agreement report."""
    User = get_user_model()
    reviewer = User.objects.get(username=DEMO_REVIEWER)
    cameras = _dataset_ensure(
        owner=owner,
        name="Demo traffic cameras",
        kind="image",
        description="Camera frames drawn by seed_demo at day, dusk and night.",
    )
    item_ids = _items_ensure(
        cameras,
        [(f"camera-{n:03d}.png", demo_camera_png(n)) for n in range(DEMO_CAMERA_COUNT)],
    )
    truth = {item_id: DEMO_TIMES_OF_DAY[n % 3] for n, item_id in enumerate(item_ids)}
    crowd = _crowd_ensure()
    name = "Demo: time of day (crowd)"
    project = Project.objects.filter(name=name, dataset=cameras).first()
    if project is None:
        project = project_create(
            created_by=owner,
            name=name,
            dataset=cameras,
            label_schema=DEMO_CLASS_SCHEMA,
            instructions=DEMO_CLASS_INSTRUCTIONS,
            description="Made by seed_demo: a simulated crowd of five, for the Quality tab.",
            overlap=3,
            members=[Member(u.username) for u in crowd] + [Member(DEMO_REVIEWER, "reviewer")],
            review_mode="sampled",
            review_fraction=0.25,
            gold_rate=0.3,
            gold_threshold=0.65,
            gold_min_answers=5,
            # Flag, do not pause: with overlap 3 a paused member would leave tasks
            # without their third annotator in a five-person crowd.
            gold_pause=False,
        )
    project_tasks_create(project=project)
    report = QualityReport.objects.filter(project=project).order_by("-created_at").first()
    if report is None:
        project.refresh_from_db()
        # The last images are gold (known answers), spread over the classes.
        for item_id in item_ids[-DEMO_GOLD_COUNT:]:
            gold_mark(project=project, item=item_id, result=_choice(truth[item_id]), by=owner)
        project.refresh_from_db()
        rng = random.Random(DEMO_SEED)
        order = _crowd_work(project, crowd, truth, rng)
        _crowd_review(project, reviewer, truth, limit=30)
        order += _crowd_work(project, crowd, truth, rng)  # the rejected ones, redone
        # Keep each annotation's first place in the order (a redo keeps its date).
        seen: set[int] = set()
        _spread_over_days([a for a in order if not (a in seen or seen.add(a))], reviewer, project)
        report = quality_report_create(project=project)
    flagged = ProjectMember.objects.filter(project=project, flagged_at__isnull=False).count()
    return (
        f"{cameras.name} ({len(item_ids)} images) -> project {project.name!r}: "
        f"{report.annotation_count} annotations by {len(crowd)} simulated annotators, "
        f"{flagged} flagged (/projects/{project.pk}/quality)"
    )


def demo_data_ensure() -> list[str]:
    """Create the demo datasets and projects that are missing; return what exists."""
    User = get_user_model()
    owner = User.objects.get(username=DEMO_OWNER)
    images = _dataset_ensure(
        owner=owner,
        name="Demo street scenes",
        kind="image",
        description="Drawn by seed_demo: cars, people and signs to draw boxes around.",
    )
    image_ids = _items_ensure(
        images, [(f"street-{n:02d}.png", demo_scene_png(n)) for n in range(DEMO_IMAGE_COUNT)]
    )
    boxes = _project_ensure(
        owner=owner,
        name="Demo: cars and people",
        dataset=images,
        schema=DEMO_BOX_SCHEMA,
        instructions=DEMO_BOX_INSTRUCTIONS,
    )
    _box_predictions(boxes, image_ids)
    version = _demo_version(images=images, boxes=boxes, owner=owner, item_ids=image_ids)
    texts = _dataset_ensure(
        owner=owner,
        name="Demo news snippets",
        kind="text",
        description="Short sentences by seed_demo, full of names.",
    )
    _items_ensure(
        texts, [(f"snippet-{n:02d}.txt", text.encode()) for n, text in enumerate(DEMO_TEXTS)]
    )
    entities = _project_ensure(
        owner=owner,
        name="Demo: named entities",
        dataset=texts,
        schema=DEMO_NER_SCHEMA,
        instructions=DEMO_NER_INSTRUCTIONS,
    )
    quality = demo_quality_ensure(owner=owner)
    images.refresh_from_db()
    texts.refresh_from_db()
    return [
        f"{images.name} ({images.item_count} images) -> project {boxes.name!r} (/projects/{boxes.pk}/)",
        f"{images.name}: version {version.pk[:12]} with {version.labelled_count} labelled "
        f"(/datasets/{images.pk}/versions/{version.pk})",
        f"{texts.name} ({texts.item_count} texts) -> project {entities.name!r} "
        f"(/projects/{entities.pk}/)",
        quality,
    ]


class Command(BaseCommand):
    help = (
        "Create the demo users (admin, ops, reviewer, two annotators) with random "
        "passwords kept in VAR_DIR/demo-users.json, and print them; then a demo image "
        "dataset with a box project and a text dataset with an entity project. Idempotent."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="allow seeding with DEBUG off (never on a real deployment)",
        )
        parser.add_argument(
            "--users-only",
            action="store_true",
            help="create the demo users only, no demo datasets or projects",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "seed_demo creates users with known passwords; use DEBUG=1 or --force"
            )
        roles_ensure()
        path = credentials_path()
        saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        User = get_user_model()
        with transaction.atomic():
            for username, (role, superuser) in DEMO_USERS.items():
                user, created = User.objects.get_or_create(
                    username=username, defaults={"email": f"{username}@demo.labelvault.invalid"}
                )
                password = saved.get(username)
                # A password we cannot print (user made before the file, file lost) is reset,
                # so the printed list always works.
                if created or password is None or not user.check_password(password):
                    password = password or secrets.token_urlsafe(9)
                    user.set_password(password)
                user.is_superuser = superuser
                user.is_staff = superuser or role == roles.OPS
                user.is_active = True
                user.save()
                user.groups.add(Group.objects.get(name=role))
                saved[username] = password
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(saved, fh, indent=2)
        self.stdout.write(f"Demo users (also in {path}):")
        for username, (role, _) in DEMO_USERS.items():
            self.stdout.write(f"  {username:<11} {role:<10} password: {saved[username]}")
        if options["users_only"]:
            return
        try:
            made = demo_data_ensure()
        except StorageUnavailable as exc:
            # The users are what a first look needs; the data can come on the next run.
            self.stderr.write(f"No demo data: the object store is not answering ({exc}).")
            return
        self.stdout.write("Demo data (annotator1 and annotator2 label it):")
        for line in made:
            self.stdout.write(f"  {line}")
