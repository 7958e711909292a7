"""One monotonic deadline: a job's (checked between stages) or one download's."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn

from .errors import DeadlineExceeded, PipelineError


def _job_deadline(stage: str) -> PipelineError:
    return DeadlineExceeded(f"job deadline passed before {stage}")


class Deadline:
    """A point in monotonic time, and the error to raise once it has passed.

    ``error`` makes that error from what was about to happen (a stage name, or ``""``): a
    job's is ``deadline_exceeded``; a download says which URL ran out of time.
    """

    def __init__(self, seconds: float,
                 error: Callable[[str], PipelineError] = _job_deadline) -> None:
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self._error = error

    def left_s(self) -> float:
        """Seconds left, negative once passed.

        Raises:
            Nothing.
        """
        return self.expires_at - time.monotonic()

    def remaining(self) -> float:
        """Seconds left for a tool call: never below one, so it always gets a chance to fail
        cleanly.

        Raises:
            Nothing.
        """
        return max(1.0, self.left_s())

    def expired(self) -> bool:
        """Whether the deadline has passed.

        Raises:
            Nothing.
        """
        return self.left_s() < 0

    def check(self, stage: str) -> None:
        """Raise when the deadline has passed, before ``stage``.

        Raises:
            PipelineError: past the deadline (``DeadlineExceeded`` for a job).
        """
        if self.expired():
            raise self._error(stage)

    def time_left(self) -> float:
        """Seconds left; raises once there are none.

        Raises:
            PipelineError: the deadline has passed.
        """
        left = self.left_s()
        if left <= 0:
            self.expire()
        return left

    def expire(self, cause: BaseException | None = None, *, stage: str = "") -> NoReturn:
        """Raise the deadline's error now (a wait would end past it), before ``stage``.

        Raises:
            PipelineError: always.
        """
        raise self._error(stage) from cause
