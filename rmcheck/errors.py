"""Errors a user can cause. Each carries a location and a fix, and prints as one line."""
from __future__ import annotations


class RmcheckError(Exception):
    """A user-facing error: ``where: what. fix`` on one line, never a traceback."""

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.message = message
        self.where = where
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.fix:
            text = f"{text.rstrip('.')}. {self.fix}"
        return text


class SuiteError(RmcheckError):
    """A suite file that cannot be loaded or does not match the format."""


class OperatorError(RmcheckError):
    """An unknown operator or bad operator arguments."""


class BackendError(RmcheckError):
    """A model spec that cannot be resolved, loaded or scored."""

    #: Set (to the model's spec) when the model failed during a run, so that every test of it is an error
    #: whose reason is shown once; None for a problem of one test (e.g. an objective the model lacks).
    failed_model: str | None = None


def model_failure(error: BaseException) -> str | None:
    """The spec of the model whose failure ``error`` is, or None."""
    return getattr(error, "failed_model", None) if isinstance(error, BackendError) else None


class ScoreError(BackendError):
    """A model returned scores that cannot be trusted (NaN, wrong count, wrong type)."""
