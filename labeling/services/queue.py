"""The task queue: lease the next task slot to an annotator, keep the lease alive,
release it, skip a task.

Guarantees:
- a slot is never held by two live leases: the next task is picked with
  `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite serialises writers), its slots
  are counted under that lock, and a partial unique index allows one unended lease per
  (task, slot) as a backstop;
- an annotator is never offered a task they annotated or skipped, nor a slot of a task
  they already hold;
- work a reviewer rejected goes back to its annotator first; then, with probability
  `project.gold_rate`, a gold task they have not answered (labeling.services.gold); a
  paused annotator (gold accuracy under the threshold) gets AnnotatorPaused;
- a lease lives until `expires_at` (LABELING_LEASE_SECONDS, renewed by the page's
  heartbeat); an expired lease is ended by whoever takes its slot next, so a closed
  browser tab blocks a slot for one lease period at most.

Lock order, everywhere: the task row, then its lease rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from labeling.errors import AnnotatorPaused, LabelingError, LeaseLost
from labeling.models import Annotation, Lease, Project, Skip, Task
from labeling.rows import db_time, sql_row, sql_rows
from labeling.selectors import task_with_item

SKIP_REASON_MAX = 500
# A unique-index conflict on a slot can only come from a race the locks should prevent;
# retried this many times before giving up.
LEASE_ATTEMPTS = 3
# The pick's statement snapshot can predate a lease another transaction committed on the
# same task just before our row lock was granted (its lease row is new; the task row did
# not change, so PostgreSQL does not re-check the row). The slot count under the lock then
# finds no free slot, and the pick runs again with a fresh snapshot. Rare: only tasks at
# the head of the queue, taken within the same millisecond.
PICK_ATTEMPTS = 10


class InvalidSkip(LabelingError):
    code = "invalid_skip"


class QueueBusy(LabelingError):
    """Every task the pick found was taken by a concurrent lease (PICK_ATTEMPTS times in a
    row); asking again works. (503)"""

    code = "queue_busy"


def lease_seconds() -> int:
    return int(settings.LABELING_LEASE_SECONDS)


def heartbeat_seconds() -> int:
    """How often the page renews its lease: five times per lease period."""
    return max(lease_seconds() // 5, 1)


@dataclass(frozen=True)
class LeaseGrant:
    lease: Lease
    task: Task
    renewed: bool  # the annotator already held this lease (a reload of the page)


def _pick_sql(*, for_update: bool) -> str:
    task = Task._meta.db_table
    lease = Lease._meta.db_table
    annotation = Annotation._meta.db_table
    skip = Skip._meta.db_table
    # The planner walks task_queue (project, priority DESC, id WHERE open) and stops at
    # the first row that passes: with overlap 1 only the tasks leased right now are
    # stepped over, one index probe each.
    return (
        f"SELECT t.id FROM {task} t "  # noqa: S608
        "WHERE t.project_id = %(project)s AND t.status = 'open' "
        f"AND NOT EXISTS (SELECT 1 FROM {annotation} a "
        "WHERE a.task_id = t.id AND a.annotator_id = %(user)s) "
        f"AND NOT EXISTS (SELECT 1 FROM {skip} s WHERE s.task_id = t.id AND s.annotator_id = %(user)s) "
        f"AND (SELECT count(*) FROM {lease} l WHERE l.task_id = t.id AND l.ended_at IS NULL "
        "AND l.expires_at > %(now)s) < t.remaining "
        "ORDER BY t.priority DESC, t.id LIMIT 1"
        + (" FOR UPDATE OF t SKIP LOCKED" if for_update else "")
    )


def _task_for(task_id: int, project: Project, annotator: Any) -> Task:
    """The task with what its page shows (item, asset, draft ...) and the caller's
    project."""
    return task_with_item(task_id=task_id, project=project, annotator=annotator)


def _renew_mine(*, project: Project, annotator: Any, now: datetime) -> Lease | None:
    """Renew and return the annotator's live lease in the project, if any (one
    statement)."""
    expires = now + timedelta(seconds=lease_seconds())
    row = sql_row(
        "UPDATE labeling_lease SET expires_at = %s "
        "WHERE project_id = %s AND annotator_id = %s AND ended_at IS NULL "
        "AND expires_at > %s RETURNING id, task_id, slot",
        [db_time(expires), project.pk, annotator.pk, db_time(now)],
    )
    if row is None:
        return None
    lease_id, task_id, slot = row
    return _lease(lease_id, task_id, slot, project, annotator, now, expires)


def _lease(
    lease_id: int,
    task_id: int,
    slot: int,
    project: Project,
    annotator: Any,
    now: datetime,
    expires: datetime,
) -> Lease:
    """The Lease a statement wrote, without reading it back (leased_at of a renewed lease
    is the renewal's time)."""
    return Lease(
        pk=lease_id,
        task_id=task_id,
        project=project,
        slot=slot,
        annotator=annotator,
        leased_at=now,
        expires_at=expires,
    )


def _free_slot(*, task_id: int, overlap: int, now: datetime) -> int | None:
    """End the expired leases of the (locked) task and return its lowest free slot, or
    None when a lease committed since the pick's snapshot took the last one."""
    held = sql_rows(
        "SELECT id, slot, expires_at > %s FROM labeling_lease "
        "WHERE task_id = %s AND ended_at IS NULL",
        [db_time(now), task_id],
    )
    expired = [lease_id for lease_id, _, live in held if not live]
    taken = {slot for _, slot, live in held if live}
    if overlap > 1:
        rows = sql_rows("SELECT slot FROM labeling_annotation WHERE task_id = %s", [task_id])
        taken |= {slot for (slot,) in rows}
    free = [slot for slot in range(overlap) if slot not in taken]
    if not free:
        return None
    for lease_id in expired:  # one at most, but for a task with overlap > 1
        sql_rows(
            "UPDATE labeling_lease SET ended_at = %s, end_reason = %s "
            "WHERE ended_at IS NULL AND id = %s",
            [db_time(now), Lease.End.EXPIRED, lease_id],
        )
    return free[0]


def task_lease_next(*, project: Project, annotator: Any) -> LeaseGrant | None:
    """Lease the annotator the next task slot of the project, or return None when no
    task needs them (all done, or all left are held by others or were done/skipped by
    them).

    An annotator holds at most one lease per project: asking again (a reloaded page)
    returns the same lease, renewed. Membership is the caller's check. Transactional.
    The statements are plain SQL: this runs for every task an annotator opens, and the
    ORM's per-query cost (~0.4 ms of CPU here, against ~0.05 ms raw) was most of it.
    """
    for attempt in range(LEASE_ATTEMPTS):
        try:
            return _lease_next(project=project, annotator=annotator)
        except IntegrityError:
            if attempt == LEASE_ATTEMPTS - 1:
                raise
    return None  # unreachable


def _pick(sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    return sql_row(sql, {**params, "now": db_time(params["now"])})


# Before the normal pick, in one statement: is the annotator paused (and why), and the
# work a reviewer sent back to them (first; the annotation_rework partial index).
_BEFORE_PICK_SQL = (
    "SELECT (SELECT m.flag_reason FROM labeling_projectmember m WHERE m.project_id = %s "
    "AND m.user_id = %s AND m.paused_at IS NOT NULL), "
    "(SELECT a.id FROM labeling_annotation a WHERE a.annotator_id = %s AND a.project_id = %s "
    "AND a.needs_rework ORDER BY a.updated_at LIMIT 1)"
)
# A gold task this annotator has not answered, at random (gold sets are small: the
# task_gold partial index holds only them).
_GOLD_SQL = (
    "SELECT t.id FROM labeling_task t WHERE t.project_id = %s AND t.status = 'gold' "
    "AND NOT EXISTS (SELECT 1 FROM labeling_annotation a WHERE a.task_id = t.id "
    "AND a.annotator_id = %s) "
    "AND NOT EXISTS (SELECT 1 FROM labeling_skip s WHERE s.task_id = t.id AND s.annotator_id = %s) "
    "ORDER BY random() LIMIT 1"
)


def _lease_special(*, project: Project, annotator: Any) -> tuple[int, Any] | None:
    """(task id, slot) of rework or a gold task to serve before the normal pick, if any
    (slot None: a gold task). Raises AnnotatorPaused for a paused member."""
    row = sql_row(_BEFORE_PICK_SQL, [project.pk, annotator.pk, annotator.pk, project.pk])
    assert row is not None
    paused_reason, rework = row
    if paused_reason is not None:
        raise AnnotatorPaused(
            "Your queue in this project is paused: "
            + (paused_reason or "your gold accuracy is under the project's threshold.")
            + " Ask the project's ops to review it with you."
        )
    if rework is not None:
        found = sql_row("SELECT task_id, slot FROM labeling_annotation WHERE id = %s", [rework])
        assert found is not None
        return found[0], found[1]
    if project.gold_rate > 0 and random.random() < project.gold_rate:  # noqa: S311 (a sample, not a secret)
        row = sql_row(_GOLD_SQL, [project.pk, annotator.pk, annotator.pk])
        if row is not None:
            return row[0], None
    return None


def _lease_next(*, project: Project, annotator: Any) -> LeaseGrant | None:
    now = timezone.now()
    mine = _renew_mine(project=project, annotator=annotator, now=now)
    if mine is not None:
        return LeaseGrant(
            lease=mine, task=_task_for(mine.task_id, project, annotator), renewed=True
        )
    expires = now + timedelta(seconds=lease_seconds())
    pick = _pick_sql(for_update=connection.features.has_select_for_update_skip_locked)
    with transaction.atomic(durable=True):
        special = _lease_special(project=project, annotator=annotator)
        if special is not None:
            task_id, slot = special
            # A rework slot or a gold task (no slot) is this annotator's alone: no pick.
            sql_rows(
                "UPDATE labeling_lease SET ended_at = %s, end_reason = %s WHERE task_id = %s "
                "AND annotator_id = %s AND ended_at IS NULL",
                [db_time(now), Lease.End.EXPIRED, task_id, annotator.pk],
            )
            inserted = sql_row(
                "INSERT INTO labeling_lease "
                "(task_id, project_id, slot, annotator_id, leased_at, expires_at, end_reason) "
                "VALUES (%s, %s, %s, %s, %s, %s, '') RETURNING id",
                [task_id, project.pk, slot, annotator.pk, db_time(now), db_time(expires)],
            )
            assert inserted is not None
            lease = _lease(inserted[0], task_id, slot, project, annotator, now, expires)
            return LeaseGrant(
                lease=lease, task=_task_for(task_id, project, annotator), renewed=False
            )
        for _ in range(PICK_ATTEMPTS):
            row = _pick(pick, {"project": project.pk, "user": annotator.pk, "now": now})
            if row is None:
                return None
            slot = _free_slot(task_id=row[0], overlap=project.overlap, now=now)
            if slot is not None:
                break
        else:
            raise QueueBusy("Other annotators took every task this one was offered; ask again.")
        task_id = row[0]
        inserted = sql_row(
            "INSERT INTO labeling_lease "
            "(task_id, project_id, slot, annotator_id, leased_at, expires_at, end_reason) "
            "VALUES (%s, %s, %s, %s, %s, %s, '') RETURNING id",
            [task_id, project.pk, slot, annotator.pk, db_time(now), db_time(expires)],
        )
        assert inserted is not None
        (lease_id,) = inserted
    lease = _lease(lease_id, task_id, slot, project, annotator, now, expires)
    return LeaseGrant(lease=lease, task=_task_for(task_id, project, annotator), renewed=False)


def lease_heartbeat(*, lease_id: int, annotator: Any) -> Lease:
    """Extend the annotator's lease by a lease period from now.

    An expired lease whose slot nobody took yet is renewed (taking a slot ends the old
    lease first, under the task's lock). Raises LeaseLost when it was ended (submitted,
    skipped, released, or expired and taken), Lease.DoesNotExist for someone else's.
    """
    now = timezone.now()
    lease = Lease.objects.get(pk=lease_id, annotator=annotator)
    updated = Lease.objects.filter(pk=lease_id, annotator=annotator, ended_at__isnull=True).update(
        expires_at=now + timedelta(seconds=lease_seconds())
    )
    if not updated:
        raise LeaseLost(
            f"Lease {lease_id} has ended ({lease.end_reason or 'expired'}); ask for the next task."
        )
    lease.refresh_from_db(fields=["expires_at"])
    return lease


def lease_release(*, lease_id: int, annotator: Any) -> bool:
    """End the annotator's lease so its slot goes back to the queue at once. Idempotent:
    returns False when it had already ended. Lease.DoesNotExist for someone else's."""
    Lease.objects.only("pk").get(pk=lease_id, annotator=annotator)
    return bool(
        Lease.objects.filter(pk=lease_id, ended_at__isnull=True).update(
            ended_at=timezone.now(), end_reason=Lease.End.RELEASED
        )
    )


def task_skip(*, task: Task, annotator: Any, reason: str, lease_id: int | None = None) -> Skip:
    """Record that the annotator passes on the task (with a reason) and end their lease
    on it; they are not offered it again. Idempotent: a second skip keeps the first
    reason. Raises InvalidSkip for a missing or overlong reason."""
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if not reason:
        raise InvalidSkip("Say why you skip this task (a reason is required).", field="reason")
    if len(reason) > SKIP_REASON_MAX:
        raise InvalidSkip(f"The reason is over {SKIP_REASON_MAX} characters.", field="reason")
    now = timezone.now()
    with transaction.atomic(durable=True):
        Task.objects.select_for_update().only("pk").get(pk=task.pk)
        leases = Lease.objects.filter(task=task, annotator=annotator, ended_at__isnull=True)
        if lease_id is not None:
            leases = leases.filter(pk=lease_id)
        leases.update(ended_at=now, end_reason=Lease.End.SKIPPED)
        skip, _ = Skip.objects.get_or_create(
            task=task, annotator=annotator, defaults={"reason": reason}
        )
    return skip
