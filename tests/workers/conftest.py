"""Helpers for the workers tests (worker-process fixtures live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kombu import Connection

from workers.models import Job


@pytest.fixture
def broker_messages() -> Callable[..., list[tuple[str, list[Any], dict[str, Any]]]]:
    """`broker_messages(broker)`: take the messages waiting on the broker's test queue,
    as (task name, args, kwargs). Proves what a sender really published."""

    def take(broker: Any, *, wait: float = 2.0) -> list[tuple[str, list[Any], dict[str, Any]]]:
        taken = []
        with Connection(broker.url) as conn:
            queue = conn.SimpleQueue(broker.queue, no_ack=True)
            try:
                timeout = wait
                while True:
                    try:
                        message = queue.get(block=True, timeout=timeout)
                    except queue.Empty:
                        break
                    args, kwargs, _embed = message.payload
                    taken.append((message.headers["task"], args, kwargs))
                    timeout = 0.5  # the rest were sent together: do not wait long
            finally:
                queue.close()
        return taken

    return take


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="ann")  # no password: hashing costs ~1 s


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="bob")


@pytest.fixture
def make_job() -> Callable[..., Job]:
    """`make_job(**fields)`: a Job row in any state, created without sending a message."""

    def make(**fields: Any) -> Job:
        defaults: dict[str, Any] = {"kind": "test.add", "handler": "tests.workers.handlers.add"}
        return Job.objects.create(**{**defaults, **fields})

    return make
