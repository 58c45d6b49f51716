"""The task queue through the API: leases, heartbeats, release, skip, expiry, overlap."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Lease, Skip, Task
from labeling.services.queue import task_lease_next
from tests.labeling.conftest import api_for, box, make_project

pytestmark = pytest.mark.django_db


def lease(api, project):
    response = api.post(f"/api/v1/projects/{project.pk}/next")
    assert response.status_code in (200, 204), response.content
    return response.json() if response.status_code == 200 else None


def test_next_hands_distinct_tasks_and_the_same_lease_again(image_project, annotator, annotator2):
    project, items = image_project
    first = lease(api_for(annotator), project)
    second = lease(api_for(annotator2), project)
    assert first["task"]["id"] != second["task"]["id"]
    assert first["task"]["item"]["width"] == 64 and first["task"]["item"]["url"].startswith("http")
    assert first["task"]["schema_revision"]["schema"]["type"] == "bbox"
    assert first["lease"]["heartbeat_seconds"] == 60
    # a reload asks again: the same lease, renewed
    again = lease(api_for(annotator), project)
    assert again["lease"]["id"] == first["lease"]["id"]
    assert Lease.objects.filter(ended_at__isnull=True).count() == 2


def test_priority_rules_order_the_queue(ops, annotator):
    project, items = make_project(
        ops, [annotator], priority_rules=[{"split": "", "priority": 1}], count=2
    )
    Task.objects.filter(item=items[1]).update(priority=5)
    assert lease(api_for(annotator), project)["task"]["item"]["id"] == items[1].pk


def test_nothing_left_is_204(ops, annotator):
    project, _ = make_project(ops, [annotator], count=1)
    api = api_for(annotator)
    got = lease(api, project)
    response = api.post(
        f"/api/v1/tasks/{got['task']['id']}/annotations/",
        {"result": [box()], "lease": got["lease"]["id"]},
        format="json",
    )
    assert response.status_code == 201
    assert api.post(f"/api/v1/projects/{project.pk}/next").status_code == 204


def test_non_member_cannot_lease_and_outsider_sees_no_project(image_project, outsider, ops):
    project, _ = image_project
    response = api_for(outsider).post(f"/api/v1/projects/{project.pk}/next")
    assert response.status_code == 404  # not a member: the project is not visible
    response = api_for(ops).post(f"/api/v1/projects/{project.pk}/next")
    assert response.status_code == 403
    assert "not a member" in response.json()["detail"]


def test_heartbeat_extends_and_release_frees_the_slot(ops, annotator, annotator2):
    project, _ = make_project(ops, [annotator, annotator2], count=1)
    a1, a2 = api_for(annotator), api_for(annotator2)
    got = lease(a1, project)
    assert lease(a2, project) is None  # the only slot is held
    before = Lease.objects.get(pk=got["lease"]["id"]).expires_at
    response = a1.patch(f"/api/v1/leases/{got['lease']['id']}")
    assert response.status_code == 200
    assert Lease.objects.get(pk=got["lease"]["id"]).expires_at >= before
    assert a2.patch(f"/api/v1/leases/{got['lease']['id']}").status_code == 404  # not theirs
    assert a1.delete(f"/api/v1/leases/{got['lease']['id']}").status_code == 204
    assert lease(a2, project)["task"]["id"] == got["task"]["id"]
    response = a1.patch(f"/api/v1/leases/{got['lease']['id']}")
    assert response.status_code == 409
    assert response.json()["error"] == "lease_lost"


def test_an_expired_lease_is_taken_over_and_its_submit_refused_but_kept(ops, annotator, annotator2):
    project, _ = make_project(ops, [annotator, annotator2], count=1)
    a1, a2 = api_for(annotator), api_for(annotator2)
    got = lease(a1, project)
    Lease.objects.filter(pk=got["lease"]["id"]).update(
        leased_at=timezone.now() - timedelta(hours=2),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    taken = lease(a2, project)
    assert taken["task"]["id"] == got["task"]["id"]
    old = Lease.objects.get(pk=got["lease"]["id"])
    assert old.end_reason == "expired" and old.ended_at is not None
    response = a1.post(
        f"/api/v1/tasks/{got['task']['id']}/annotations/",
        {"result": [box()], "lease": got["lease"]["id"]},
        format="json",
    )
    assert response.status_code == 409
    assert "kept as a draft" in response.json()["detail"]
    assert a1.get(f"/api/v1/tasks/{got['task']['id']}/draft").json()["result"][0]["type"] == (
        "rectanglelabels"
    )


def test_an_expired_lease_nobody_took_still_submits(ops, annotator):
    project, _ = make_project(ops, [annotator], count=1)
    api = api_for(annotator)
    got = lease(api, project)
    Lease.objects.filter(pk=got["lease"]["id"]).update(
        leased_at=timezone.now() - timedelta(hours=2),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    response = api.post(
        f"/api/v1/tasks/{got['task']['id']}/annotations/",
        {"result": [box()], "lease": got["lease"]["id"]},
        format="json",
    )
    assert response.status_code == 201


def test_skip_needs_a_reason_and_is_not_offered_again(ops, annotator):
    project, _ = make_project(ops, [annotator], count=2)
    api = api_for(annotator)
    got = lease(api, project)
    url = f"/api/v1/tasks/{got['task']['id']}/skip"
    response = api.post(url, {"reason": "  ", "lease": got["lease"]["id"]}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["detail"]
    response = api.post(url, {"reason": "blurry", "lease": got["lease"]["id"]}, format="json")
    assert response.status_code == 200
    assert Skip.objects.get().reason == "blurry"
    assert Lease.objects.get(pk=got["lease"]["id"]).end_reason == "skipped"
    following = lease(api, project)
    assert following["task"]["id"] != got["task"]["id"]


def test_overlap_gives_each_slot_to_a_different_annotator(ops, annotator, annotator2):
    project, items = make_project(ops, [annotator, annotator2], overlap=2, count=1)
    a1, a2 = api_for(annotator), api_for(annotator2)
    one, two = lease(a1, project), lease(a2, project)
    assert one["task"]["id"] == two["task"]["id"]
    assert {one["lease"]["slot"], two["lease"]["slot"]} == {0, 1}
    for api, got in ((a1, one), (a2, two)):
        response = api.post(
            f"/api/v1/tasks/{got['task']['id']}/annotations/",
            {"result": [box()], "lease": got["lease"]["id"]},
            format="json",
        )
        assert response.status_code == 201, response.content
    task = Task.objects.get(pk=one["task"]["id"])
    assert task.status == "done" and task.remaining == 0
    # both agree: the label is published with both revisions as provenance
    label = items[0].__class__.objects.get(pk=items[0].pk).label
    assert len(label.provenance["annotation_revisions"]) == 2
    # the annotator who did it is never offered it again
    assert lease(a1, project) is None


def test_service_level_no_double_lease_under_repeated_calls(ops):
    from tests.factories import UserFactory

    people = [UserFactory(roles=["annotator"]) for _ in range(5)]
    project, _ = make_project(ops, people, count=3)
    grants = [task_lease_next(project=project, annotator=p) for p in people]
    held = [g for g in grants if g is not None]
    assert len(held) == 3 and len({g.task.pk for g in held}) == 3
    assert grants[3] is None and grants[4] is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_leases_never_share_a_slot_nor_fail(ops):
    """Many annotators asking at once, on real connections (PostgreSQL: SKIP LOCKED and
    the pick race; SQLite: serialised writers)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, connections

    from tests.factories import UserFactory

    people = [UserFactory(roles=["annotator"]) for _ in range(12)]
    project, _ = make_project(ops, people, count=8, overlap=1)
    if connection.vendor == "sqlite":
        people = people[:4]  # one writer at a time: the point is correctness, not speed

    def ask(person):
        try:
            grant = task_lease_next(project=project, annotator=person)
            return None if grant is None else (grant.task.pk, grant.lease.slot)
        finally:
            connections.close_all()

    for _ in range(3):
        Lease.objects.all().delete()
        with ThreadPoolExecutor(len(people)) as pool:
            grants = list(pool.map(ask, people))
        held = [g for g in grants if g is not None]
        assert len(held) == min(8, len(people))
        assert len(set(held)) == len(held)  # no (task, slot) twice
        assert Lease.objects.filter(ended_at__isnull=True).count() == len(held)


def test_the_lease_shape_matches_its_documented_serializer(image_project, annotator):
    from labeling.api import LeaseOutput, lease_shape

    project, _ = image_project
    lease(api_for(annotator), project)
    stored = Lease.objects.get()
    assert lease_shape(stored) == dict(LeaseOutput(stored).data)


def test_someone_elses_lease_cannot_be_released_and_a_lease_of_another_task_cannot_submit(
    ops, annotator, annotator2
):
    project, _ = make_project(ops, [annotator, annotator2], count=2)
    a1, a2 = api_for(annotator), api_for(annotator2)
    mine, theirs = lease(a1, project), lease(a2, project)
    assert a1.delete(f"/api/v1/leases/{theirs['lease']['id']}").status_code == 404
    assert Lease.objects.get(pk=theirs["lease"]["id"]).ended_at is None
    response = a1.post(
        f"/api/v1/tasks/{theirs['task']['id']}/annotations/",
        {"result": [box()], "lease": mine["lease"]["id"]},
        format="json",
    )
    assert response.status_code == 409
    assert "not yours on task" in response.json()["detail"]
    assert not Task.objects.filter(remaining=0).exists()  # nothing counted


def test_a_pick_that_keeps_losing_races_answers_503(image_project, annotator, monkeypatch):
    from labeling.services import queue

    project, _ = image_project
    monkeypatch.setattr(queue, "_free_slot", lambda **kwargs: None)  # every pick was taken
    response = api_for(annotator).post(f"/api/v1/projects/{project.pk}/next")
    assert response.status_code == 503
    assert response.json()["error"] == "queue_busy" and response["Retry-After"] == "5"
    assert not Lease.objects.exists()
