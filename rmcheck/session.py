"""One run of rmcheck, whoever drives it: ``rmcheck run`` and the pytest plugin both open a :class:`Session`.

A session checks the configuration before any test runs (pyproject.toml, plugin modules, the models, the
output path, the baseline and the gating mode), opens the score cache, builds the :class:`~rmcheck.engine.Engine`,
judges each result against the release gate (:mod:`rmcheck.report.gate`), builds the run document (running
the run-document hooks of plugin modules, with or without pytest) and decides the CLI's exit code. The CLI and
the plugin only present what it decides: a table and exit code, or pytest items and their outcomes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from .backends.base import ModelOptions
    from .engine import Engine
    from .report.baselines import Baseline
    from .report.gate import Judged
    from .results import TestResult

#: A run-document hook: it changes the document in place (adds provenance), just before it is written.
RunDocumentHook = Callable[[dict[str, Any]], None]

#: ``rmcheck run``'s exit codes (docs/options.md lists them).
EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_NOTHING = 0, 1, 2, 3, 5

#: The function a plugin module defines to add to every run document (the CLI's and pytest's alike).
HOOK_NAME = "rmcheck_run_document"


@dataclass
class Session:
    """The models, engine, baseline and gating of one run, checked before any test runs."""

    rootdir: Path
    specs: list[str]
    engine: Engine
    json_path: str | None
    baseline: Baseline | None = None
    fail_on: str = "absolute"
    update_baseline: bool = False
    hooks: list[RunDocumentHook] = field(default_factory=list)

    @classmethod
    def open(cls, get: Callable[[str], Any], rootdir: Path, *, flag: Callable[[str], str] = lambda cli: cli,
             progress: Callable[[str, int, int], None] | None = None) -> Session:
        """A session from parsed options (``get(dest)``): every setting a user can get wrong is an RmcheckError
        here, naming the option (``flag`` turns a CLI flag into the caller's spelling, e.g. ``--rmcheck-json``)."""
        from .backends.base import check_spec
        from .engine import DEFAULT_SHRINK_BUDGET, Engine
        from .options import check_output, check_pyproject, load_plugins, model_options, resolve_models, score_cache
        from .report.baselines import open_baseline
        from .report.compare import parse_thresholds
        from .report.gate import fail_on_mode

        check_pyproject(rootdir)
        modules = load_plugins(rootdir)
        options = model_options(get)
        check_output(get("rmcheck_json"), flag("--json"))
        specs = resolve_models(get("rm"), rootdir)
        for spec in specs:  # a model that cannot be named, found or imported: a usage error before any test runs
            check_spec(spec, options)
        update = bool(get("rmcheck_update_baseline"))
        baseline = open_baseline(get("rmcheck_baseline"),
                                 parse_thresholds(get("rmcheck_max_regression"), flag("--max-regression")),
                                 get("rmcheck_regression_alpha"), required=not update, root=rootdir)
        fail_on = fail_on_mode(get("rmcheck_fail_on"), baseline is not None, flag("--fail-on"))
        engine = Engine(options, get("rmcheck_shrink_budget") or DEFAULT_SHRINK_BUDGET, progress,
                        cache=score_cache(get, rootdir))
        return cls(rootdir, specs, engine, get("rmcheck_json"), baseline, fail_on, update, plugin_hooks(modules))

    @property
    def options(self) -> ModelOptions:
        return self.engine.options

    # -- the release gate ----------------------------------------------------------------------------------

    @property
    def gated(self) -> bool:
        """Whether a result needs its baseline: one is given and the run fails on regressions."""
        return self.baseline is not None and self.fail_on != "absolute"

    def require_baseline(self, result: dict[str, Any]) -> None:
        """Raise the error naming the command that writes a gated test's missing baseline."""
        if self.gated:
            self.baseline.require(result)  # type: ignore[union-attr]

    def judge(self, outcome: TestResult) -> Judged:
        """``outcome`` under ``--fail-on``: its status (passed, failed, skipped or xfailed), the comparison with
        the baseline and the baseline's path and digest in the result."""
        from .report.gate import Judged, gate_status

        result = outcome.to_json()
        change = self.baseline.check(result) if self.baseline else None
        result["status"], reason = gate_status(result, change, self.fail_on)
        if change is not None:
            result["baseline"] = self.baseline.source(result)  # type: ignore[union-attr]
        return Judged(result, reason, change)

    def gate_lines(self, results: Sequence[dict[str, Any]]) -> list[str]:
        """Per model, the results against the baseline; then the baselines no test can use."""
        if self.baseline is None:
            return []
        lines = []
        for spec in self.specs:
            mine = [r for r in results if r["model"] == spec]
            if mine:
                lines.append(f"against {self.baseline.label}:\n{self.baseline.compare(mine).text()}")
        return lines

    def unused_baselines(self) -> list[str]:
        return self.baseline.unused() if self.baseline else []

    def write_baselines(self, results: list[dict[str, Any]], models: list[dict[str, Any]]) -> list[str]:
        """``--update-baseline``: the baselines written (and deleted) beside the suites, one line each."""
        from .report.baselines import update_baselines

        return update_baselines(results, models, self.rootdir) if self.update_baseline and results else []

    # -- the run document ----------------------------------------------------------------------------------

    def model_entry(self, spec: str) -> dict[str, Any]:
        from .provenance import model_entry

        return model_entry(self.engine.model(spec), self.options)

    def document(self, results: list[dict[str, Any]], models: list[dict[str, Any]],
                 errors: Sequence[dict[str, Any]] = (), hooks: Sequence[RunDocumentHook] = ()) -> dict[str, Any]:
        """The run document, after every run-document hook (the plugin modules', then ``hooks``) changed it, as
        plain JSON values."""
        from .errors import RmcheckError
        from .plain import plain
        from .results import run_document

        document = run_document(results, models, errors)
        for hook in [*self.hooks, *hooks]:
            try:
                hook(document)
            except Exception as exc:  # a user's hook: one line naming it, never a traceback
                name = f"{getattr(hook, '__module__', '?')}.{getattr(hook, '__qualname__', hook)}"
                raise RmcheckError(f"run-document hook {name} failed: {type(exc).__name__}: {exc}", where=name,
                                   fix="Fix the hook; it gets the document (a dict) and changes it in place") from None
        return plain(document)

    def write_document(self, document: dict[str, Any], path: str | Path) -> Path:
        from .report.rundoc import write_atomically

        return write_atomically(path, json.dumps(document, indent=2))


def plugin_hooks(modules: Sequence[str]) -> list[RunDocumentHook]:
    """The ``rmcheck_run_document(document)`` functions of the plugin modules (``[tool.rmcheck] plugins`` and the
    ``rmcheck.plugins`` entry points), in that order."""
    import importlib
    from importlib.metadata import entry_points

    from .errors import RmcheckError

    found = [importlib.import_module(name) for name in modules]  # imported already by load_plugins
    for ep in entry_points(group="rmcheck.plugins"):
        try:
            found.append(ep.load())
        except (Exception, SystemExit) as exc:  # an installed package's module failing as it imports
            raise RmcheckError(f"plugin {ep.name} ({ep.value}) could not be imported: {type(exc).__name__}: {exc}",
                               where="entry point group rmcheck.plugins",
                               fix="Fix or uninstall the package that declares it") from None
    return [getattr(module, HOOK_NAME) for module in found if callable(getattr(module, HOOK_NAME, None))]


def exit_code(counts: dict[str, int], *, usage_errors: bool, model_errors: bool) -> int:
    """``rmcheck run``'s exit code: a usage or suite error (2) before a model error (3) before a failed test (1);
    5 when no test had an applicable case."""
    if usage_errors:
        return EXIT_USAGE
    if model_errors:
        return EXIT_MODEL
    if counts["failed"]:
        return EXIT_FAILED
    if not (counts["passed"] or counts["xfailed"]):
        return EXIT_NOTHING
    return EXIT_PASSED
