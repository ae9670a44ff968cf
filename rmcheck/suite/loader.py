"""Suite files: load with line marks, validate against the JSON Schema composed from the test kinds, expand into
cases, and parse each test with its kind's parser."""
from __future__ import annotations

import difflib
import itertools
import math
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import fastjsonschema
import jsonschema

from ..backends.base import Pair, Prompt
from .datasets import Row, confined, file_stem, read_rows
from ..errors import RmcheckError, SuiteError
from ..expect import Expectation, Tolerance
from ..kinds.registry import ParseContext, get_kind
from ..limits import CASES
from ..perturb.base import dose_of
from ..process.cases import checked_label, checked_steps, join_steps
from .compose import base, suite_schema
from .marks import DocPath, line_of, load_with_lines
from .naming import suite_file

SUITE_GLOB = "*.rmcheck.yaml"
#: The keys of a data file's row that are read (an inline case's own); a row's other keys are ignored.
ROW_KEYS = ("id", "prompt", "response", "chosen", "rejected", "steps", "label", "style", "subset")
#: Operator arguments that name a lexicon of the suite.
LEXICON_ARGUMENTS = ("lexicon",)
#: At most this many problems of one file are reported (one line each).
MAX_ERRORS = 20
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w-]*)\}")


class SuiteErrors(SuiteError):
    """Every problem found in one suite file (up to :data:`MAX_ERRORS`), one line each."""

    def __init__(self, errors: list[SuiteError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, where=first.where, fix=first.fix)

    def __str__(self) -> str:
        if not hasattr(self, "errors"):
            return super().__str__()
        lines = [RmcheckError.__str__(e) for e in self.errors[:MAX_ERRORS]]
        if len(self.errors) > MAX_ERRORS:
            file = (self.errors[0].where or "this file").rpartition(":")[0] or self.errors[0].where
            lines.append(f"... and {len(self.errors) - MAX_ERRORS} more errors in {file}")
        return "\n".join(lines)


def raise_all(errors: list[SuiteError]) -> None:
    """Raise the problems found, if any: one as itself, several as :class:`SuiteErrors`."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SuiteErrors(errors)


@dataclass(frozen=True)
class Case:
    """One prompt with a response, or with a chosen and a rejected response (or several rejected:
    roles ``rejected_1`` ... ``rejected_N``, for ``kind: best_of_n``)."""

    id: str
    prompt: Prompt
    responses: tuple[tuple[str, str], ...]  # (role, text): ("response", ...) or ("chosen", ...), ("rejected", ...)
    source: str  # "file:line" of the YAML item or the JSONL row
    style: str = ""  # the responses' style (e.g. RM-Bench's concise); the id then ends in [style=NAME]
    subset: str = ""  # the benchmark subset or domain the case belongs to (RewardBench 2's subset, RM-Bench's domain)
    steps: tuple[str, ...] = ()  # a solution in steps (its response is the steps joined by blank lines)
    label: int | None = None  # with steps: the first wrong step (0-based), -1 when none is wrong (ProcessBench)

    @property
    def is_pair(self) -> bool:
        return dict(self.responses).keys() == {"chosen", "rejected"}

    @property
    def item(self) -> str:
        """The id shared by every style of the same item (the id without its ``[style=NAME]``)."""
        return self.id.replace(_style_suffix(self.style), "") if self.style else self.id

    def text(self, role: str) -> str:
        return dict(self.responses)[role]

    def has(self, role: str) -> bool:
        return any(r == role for r, _ in self.responses)

    @property
    def rejected_texts(self) -> list[str]:
        """Every rejected response (one for a pair case, N for a best-of-N case)."""
        return [text for role, text in self.responses if role == "rejected" or role.startswith("rejected_")]

    @property
    def last_user_turn(self) -> str:
        """The question a prompt-side operator edits: the prompt itself, or a conversation's last user turn."""
        if isinstance(self.prompt, str):
            return self.prompt
        return next((content for role, content in reversed(self.prompt) if role == "user"), "")

    def with_last_user_turn(self, text: str) -> Prompt:
        """The prompt with its question (see :attr:`last_user_turn`) replaced by ``text``."""
        if isinstance(self.prompt, str):
            return text
        last = max((i for i, (role, _) in enumerate(self.prompt) if role == "user"), default=None)
        return tuple((role, text if i == last else content) for i, (role, content) in enumerate(self.prompt))


@dataclass(frozen=True)
class Perturbation:
    """An operator call: its name, its arguments, its seed and its target (``prompt``, ``conversation``,
    ``response``, or for pair cases ``chosen``, ``rejected`` or ``both``)."""

    op: str
    args: tuple[tuple[str, Any], ...] = ()
    seed: str = "0"
    target: str = "both"
    dose: tuple[int, ...] = ()  # ``dose: [1, 2, 4]``: each case is tried at every dose (ascending)

    def at(self, dose: int) -> "Perturbation":
        """This call at one dose: the operator's strength argument set by it."""
        strength = dose_of(self.op).args(dose)  # type: ignore[union-attr]  (the loader checked the operator has one)
        return replace(self, args=tuple(sorted({**dict(self.args), **strength}.items())), dose=())

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args)
        return f"{self.op}({args})" if args else self.op


@dataclass(frozen=True)
class TestSpec:
    """One test of a suite: a perturbation, an expectation and its tolerance."""

    name: str
    expect: Expectation
    perturb: Perturbation | None
    tolerance: Tolerance
    min_pass_rate: float
    attribute: str
    objective: str | None
    line: int
    description: str = ""


@dataclass
class Suite:
    name: str
    path: Path
    file: str  # the path results name it by (suite_file): see rmcheck.suite.naming.suite_file
    description: str
    cases: list[Case]
    tests: list[Any]  # TestSpec, or the spec of another test kind (see rmcheck.kinds)
    lexicons: dict[str, list[str]] = field(default_factory=dict)

    def where(self, test: Any) -> str:
        return f"{self.path}:{test.line}"

    def pairs(self) -> list[Pair]:
        """Every (prompt, response) the suite's cases hold, unperturbed."""
        return [Pair(case.prompt, text) for case in self.cases for _, text in case.responses]


def schema() -> dict[str, Any]:
    """The suite format's JSON Schema: the base with every registered test kind's sub-schema (see
    :mod:`.compose`)."""
    return suite_schema()


@lru_cache(maxsize=1)
def _case_schema() -> dict[str, Any]:
    return {"$ref": "#/$defs/case", "$defs": base()["$defs"]}


@lru_cache(maxsize=1)
def _valid_case() -> Callable[[Any], Any]:
    """The case schema compiled by fastjsonschema (about 7 us a row, against 110 for jsonschema, which then
    only explains a row that fails)."""
    return fastjsonschema.compile(_case_schema())


def check_rows(rows: list[Row]) -> list[Row]:
    """``rows`` of a data file when each meets the rules of an inline case (``chosen: null`` is no text), else
    every problem, each at its row's ``file:line``. Keys an inline case does not have are ignored."""
    errors: list[SuiteError] = []
    for row, source in rows:
        case = {k: v for k, v in row.items() if k in ROW_KEYS}
        try:
            _valid_case()(case)
            continue
        except fastjsonschema.JsonSchemaValueException:
            pass
        found: dict[Any, SuiteError] = {}
        for error in jsonschema.Draft202012Validator(_case_schema()).iter_errors(case):
            key = error.absolute_path[0] if error.absolute_path else None
            found.setdefault(key, SuiteError(_describe(error), where=source, fix=_fix(error)))
        errors.extend(found.values())
    raise_all(errors)
    return rows


def load_suite(path: str | Path, root: str | Path | None = None) -> Suite:
    """Load and validate one suite file; every problem raises :class:`SuiteError` with ``file:line``.
    Results name the file relative to ``root`` (the pytest rootdir; the current directory by default)."""
    path = Path(path)
    data, lines = load_with_lines(path)
    if not isinstance(data, dict):
        raise SuiteError("a suite must be a YAML mapping with rmcheck, suite, cases and tests",
                         where=f"{path}:1", fix="Start the file with 'rmcheck: 1'")
    _validate(data, lines, path)
    raise_all(list(_non_finite(data, (), lines, path)))
    at = ParseContext(path, lines)
    lexicons = {k: [str(v) for v in vs] for k, vs in data.get("lexicons", {}).items()}
    errors: list[SuiteError] = []
    cases = _collect(errors, lambda: _unique(list(_cases(data.get("cases", []), lexicons, path, at)))) or []
    errors.extend(_placeholder_errors(data.get("cases", []), lexicons, at))
    tests = []
    for i, raw in enumerate(data["tests"]):
        test = _collect(errors, lambda: _parse_test(raw, i, at))
        errors.extend(_lexicon_argument_errors(raw, lexicons, ("tests", i), at))
        if test is not None:
            tests.append(test)
    names = [t.get("name") for t in data["tests"]]
    for i, name in enumerate(names):
        if names.index(name) != i:
            errors.append(SuiteError(f"duplicate test name {name!r}", where=at.where("tests", i, "name"),
                                     fix="Give every test of a suite its own name"))
    raise_all(sorted(errors, key=lambda e: _line(e.where)))
    return Suite(data["suite"], path, suite_file(path, root), data.get("description", ""), cases, tests, lexicons)


def _collect(errors: list[SuiteError], step: Callable[[], Any]) -> Any:
    """``step()``, or None with its error (the errors a step found) appended to ``errors``."""
    try:
        return step()
    except SuiteErrors as exc:
        errors.extend(exc.errors)
    except RmcheckError as exc:
        errors.append(exc if isinstance(exc, SuiteError) else SuiteError(exc.message, where=exc.where, fix=exc.fix))
    return None


def _line(where: str | None) -> int:
    tail = (where or "").rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def _lexicon_argument_errors(raw: Mapping[str, Any], lexicons: Mapping[str, Any], here: DocPath,
                             at: ParseContext) -> list[SuiteError]:
    """An operator argument (``lexicon: NAME``) naming a lexicon the suite does not define, at its line."""
    perturb = raw.get("perturb")
    if not isinstance(perturb, Mapping):
        return []
    errors = []
    for key in LEXICON_ARGUMENTS:
        name = perturb.get(key)
        if isinstance(name, str) and name not in lexicons:
            close = difflib.get_close_matches(name, list(lexicons), n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            errors.append(SuiteError(f"{perturb.get('op', 'the operator')} names the lexicon {name!r}, which the "
                                     "suite does not define", where=at.where(*here, "perturb", key),
                                     fix=f"{hint}Defined lexicons: {', '.join(sorted(lexicons)) or 'none'}; add it "
                                         "under lexicons:"))
    return errors


def _placeholder_errors(items: list[Any], lexicons: Mapping[str, Any], at: ParseContext) -> list[SuiteError]:
    """A ``{placeholder}`` in an inline prompt or response that is no lexicon but within edit distance 2 of one
    (a typo); other braces are text (code and JSON in responses are common)."""
    errors = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        for key in ("prompt", "response", "chosen", "rejected"):
            value = item.get(key)
            texts = [value] if isinstance(value, str) else [t.get("content") for t in value or ()
                                                            if isinstance(t, Mapping)] if isinstance(value, list) else []
            for name in dict.fromkeys(n for t in texts if isinstance(t, str) for n in _PLACEHOLDER.findall(t)):
                close = [lex for lex in lexicons if name not in lexicons and edit_distance(name, lex) <= 2]
                if close:
                    errors.append(SuiteError(f"{{{name}}} in {key} is not a lexicon",
                                             where=at.where("cases", index, key),
                                             fix=f"Did you mean {{{close[0]}}}? (lexicons: {', '.join(lexicons)})"))
    return errors


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def find_suites(paths: list[str | Path]) -> list[Path]:
    """Suite files named by ``paths``: files as given, directories searched for ``*.rmcheck.yaml``."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(path.rglob(SUITE_GLOB)))
        elif path.exists():
            found.append(path)
        else:
            raise SuiteError("no such file or directory", where=str(path),
                             fix="Name a *.rmcheck.yaml file or a directory that holds some")
    return found


def _validate(data: dict[str, Any], lines: dict[DocPath, int], path: Path) -> None:
    """Every schema error of the file (one per place, up to :data:`MAX_ERRORS`), in plain words."""
    validator = jsonschema.Draft202012Validator(schema())
    # An unknown key usually explains a missing one (a typo), so it is reported first.
    found = sorted(map(_mapping_form, validator.iter_errors(data)), key=lambda e: (
        e.validator != "additionalProperties", line_of(lines, tuple(e.absolute_path)), len(e.path)))
    errors: dict[DocPath, SuiteError] = {}
    for error in found:
        at = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            at = (*at, extra[0]) if extra else at
        if not any(at[:len(p)] == p or p[:len(at)] == at for p in errors):  # one error per place
            errors[at] = SuiteError(_describe(error), where=f"{path}:{line_of(lines, at)}", fix=_fix(error))
    raise_all(sorted(errors.values(), key=lambda e: _line(e.where)))


def _mapping_form(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a mapping where a oneOf allows one mapping form (``perturb: {op: ...}``), that form's own error at its
    key (``perturb.dose[0]: 0 is out of range``), not "neither text nor a mapping"."""
    if error.validator != "oneOf" or not isinstance(error.instance, dict):
        return error
    forms = [i for i, form in enumerate(error.validator_value) if form.get("type") == "object"]
    inner = [e for e in error.context if len(forms) == 1 and e.relative_schema_path[0] == forms[0]]
    return _mapping_form(jsonschema.exceptions.best_match(inner)) if inner else error


def _key(error: jsonschema.ValidationError) -> str:
    return _dotted(tuple(error.absolute_path))


def _dotted(at: DocPath) -> str:
    parts = [str(p) if isinstance(p, str) else f"[{p}]" for p in at]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _non_finite(value: Any, at: DocPath, lines: dict[DocPath, int], path: Path) -> Iterator[SuiteError]:
    """``.nan`` and ``.inf`` anywhere in the suite: every comparison with NaN is false, so the schema's ranges let
    it through (a NaN min_pass_rate or tolerance decided nothing), and no bound or threshold is infinite."""
    if isinstance(value, float) and not math.isfinite(value):
        yield SuiteError(f"{_dotted(at)}: {value} is not a number a suite may use",
                         where=f"{path}:{line_of(lines, at)}", fix="Write a finite number")
    elif isinstance(value, (dict, list)):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            yield from _non_finite(item, (*at, key), lines, path)


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key(error)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key {extra[0]!r} in {key}" if key != "(top level)" else f"unknown key {extra[0]!r}"
    if error.validator == "required":
        missing = re.search(r"'([^']+)'", error.message)
        return f"{key} is missing the required key {missing.group(1) if missing else error.message!r}"
    if error.validator == "const" and key == "rmcheck":
        return f"rmcheck: {error.instance!r} is not a format version this rmcheck reads"
    return f"{key}: {_plain(error)}"


_TYPES = {"string": "text", "integer": "a whole number", "number": "a number", "array": "a list",
          "object": "a mapping", "boolean": "true or false", "null": "empty"}


def _plain(error: jsonschema.ValidationError) -> str:
    """What is wrong with a value, in plain words (never "is not valid under any of the given schemas")."""
    value = _shown(error.instance)
    rule = error.validator
    if rule in ("oneOf", "anyOf"):
        return f"{value} is {_expected(error.schema)}"
    if rule == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{value} is not {' or '.join(_TYPES.get(t, t) for t in wanted)}"
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{value} is out of range: {_range(error.schema)}"
    if rule == "enum":
        return f"{value} is not one of: {', '.join(map(str, error.validator_value))}"
    if rule == "pattern":
        return f"{value} has a character or form this key does not allow"
    if rule == "minItems":
        return f"needs at least {error.validator_value} item(s)"
    if rule == "const":
        return f"{value} must be {error.validator_value!r}"
    return error.message


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _expected(schema_part: Mapping[str, Any]) -> str:
    """What a oneOf/anyOf accepts, as its alternatives' kinds (and ranges)."""
    options = []
    for option in schema_part.get("oneOf", schema_part.get("anyOf", [])):
        kind = option.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind else []
        options.append(_range(option) or " or ".join(_TYPES.get(k, k) for k in kinds) or "another form")
    if len(options) == 2:
        return f"neither {options[0]} nor {options[1]}"
    return f"none of: {'; '.join(options)}" if options else "a value this key accepts"


def _range(schema_part: Mapping[str, Any]) -> str:
    """``a number >= 0 and <= 1`` from a schema's bounds; empty without any."""
    bounds = []
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in schema_part:
            bounds.append(f"{sign} {schema_part[key]}")
    return f"a number {' and '.join(bounds)}" if bounds else ""


def _fix(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        close = difflib.get_close_matches(extra[0], allowed, n=1) if extra else []
        hint = f"Did you mean {close[0]!r}? " if close else ""
        return f"{hint}Allowed keys here: {', '.join(allowed)}"
    if error.validator == "required":
        return "Add it (see the suite format: docs/suites.md)"
    if error.validator == "const":
        return "Write 'rmcheck: 1'"
    if error.validator in ("oneOf", "anyOf") and error.schema.get("description"):
        return f"Expected {error.schema['description']}"
    if error.schema.get("description"):
        return error.schema["description"]
    return "See the suite format: docs/suites.md"


def _parse_test(raw: Mapping[str, Any], index: int, at: ParseContext) -> Any:
    """Dispatch on ``kind`` to the kind's registered parser."""
    context = at.under("tests", index)
    return get_kind(raw.get("kind", "expectation"), where=context.where("kind")).parse(raw, context)


def _cases(items: list[Any], lexicons: dict[str, list[str]], path: Path, at: ParseContext) -> Iterator[Case]:
    """Every case of the suite, at most ``max_cases`` (a lexicon product is counted before it is built)."""
    count = 0
    for index, item in enumerate(items):
        here: DocPath = ("cases", index)
        if "file" in item:
            extra = sorted(set(item) - {"file", "format", "limit", "id"})
            if extra:
                raise SuiteError(f"a file case takes no {extra[0]!r}", where=at.where(*here, extra[0]),
                                 fix="Put prompts and responses in the file's rows")
            rows = check_rows(read_rows(confined(path, item["file"], where=at.where(*here, "file")),
                                        item.get("format", "jsonl"), item.get("limit"), where=at.where(*here, "file")))
        else:
            misplaced = sorted({"format", "limit"} & set(item))
            if misplaced:
                raise SuiteError(f"{misplaced[0]!r} applies to file cases only", where=at.where(*here, misplaced[0]),
                                 fix="Add 'file: PATH', or remove it")
            rows = [(dict(item), at.where(*here))]
        for number, (row, source) in enumerate(rows, start=1):
            fallback = f"{file_stem(Path(item['file']))}-{number}" if "file" in item else f"case-{index}"
            case_id = str(row.get("id", fallback))
            case = _case(row, case_id, source)
            count += combinations(case, lexicons)
            CASES.check(count, "the suite's cases with their lexicon combinations", where=source, error=SuiteError)
            yield from _expand(case, lexicons)


def _case(row: Mapping[str, Any], case_id: str, source: str) -> Case:
    if "prompt" not in row:
        raise SuiteError("case has no prompt", where=source, fix="Add 'prompt:' (a string or a list of turns)")
    keys = {k for k in ("response", "chosen", "rejected", "steps") if k in row}
    steps: tuple[str, ...] = ()
    if keys == {"steps"}:
        steps = checked_steps(row["steps"], case_id, source)
        responses: tuple[tuple[str, str], ...] = (("response", join_steps(steps)),)
    elif keys == {"response"}:
        responses = (("response", str(row["response"])),)
    elif keys == {"chosen", "rejected"} and isinstance(row["rejected"], list):
        if not row["rejected"] or not all(isinstance(r, str) for r in row["rejected"]):
            raise SuiteError(f"case {case_id!r}: rejected must be a string or a non-empty list of strings",
                             where=source, fix="Write rejected: [first wrong answer, second wrong answer]")
        rejected = row["rejected"]
        responses = (("chosen", str(row["chosen"])),
                     *((("rejected", rejected[0]),) if len(rejected) == 1 else
                       ((f"rejected_{i}", text) for i, text in enumerate(rejected, start=1))))
    elif keys == {"chosen", "rejected"}:
        responses = (("chosen", str(row["chosen"])), ("rejected", str(row["rejected"])))
    else:
        raise SuiteError(f"case {case_id!r} has {', '.join(sorted(keys)) or 'no response'}", where=source,
                         fix="Give either 'response', 'steps', or both 'chosen' and 'rejected'")
    prompt = row["prompt"]
    if isinstance(prompt, list):
        try:
            prompt = tuple((str(turn["role"]), str(turn["content"])) for turn in prompt)
        except (TypeError, KeyError):
            raise SuiteError("a conversation prompt is a list of {role, content} turns", where=source) from None
    elif not isinstance(prompt, str):
        raise SuiteError("prompt must be a string or a list of {role, content} turns", where=source)
    style = str(row.get("style", ""))
    return Case(case_id + _style_suffix(style) if style else case_id, prompt, responses, source, style,
                str(row.get("subset", "")), steps, checked_label(row.get("label"), steps, case_id, source))


def _style_suffix(style: str) -> str:
    return f"[style={style}]"


def _placeholders(case: Case, lexicons: Mapping[str, list[str]]) -> list[str]:
    """The lexicons whose ``{name}`` occurs in the case's prompt or responses."""
    texts = [case.prompt if isinstance(case.prompt, str) else " ".join(c for _, c in case.prompt),
             *(text for _, text in case.responses)]
    return [name for name in lexicons if any("{" + name + "}" in text for text in texts)]


def combinations(case: Case, lexicons: Mapping[str, list[str]]) -> int:
    """How many cases ``case`` expands to, counted without building them."""
    return math.prod(len(lexicons[name]) for name in _placeholders(case, lexicons))


def _expand(case: Case, lexicons: dict[str, list[str]]) -> Iterator[Case]:
    """One case per combination of the lexicon entries its ``{name}`` placeholders use."""
    used = _placeholders(case, lexicons)
    if not used:
        yield case
        return
    for combo in itertools.product(*(lexicons[name] for name in used)):
        values = dict(zip(used, combo))
        fill = lambda text: _fill(text, values)  # noqa: E731
        prompt = fill(case.prompt) if isinstance(case.prompt, str) else tuple((r, fill(c)) for r, c in case.prompt)
        suffix = ",".join(f"{k}={v}" for k, v in values.items())
        yield Case(f"{case.id}[{suffix}]", prompt, tuple((r, fill(t)) for r, t in case.responses), case.source,
                   case.style, case.subset, tuple(map(fill, case.steps)), case.label)


def _fill(text: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _unique(cases: list[Case]) -> list[Case]:
    seen: dict[str, str] = {}
    for case in cases:
        if case.id in seen:
            raise SuiteError(f"duplicate case id {case.id!r} (first at {seen[case.id]})", where=case.source,
                             fix="Give every case its own id")
        seen[case.id] = case.source
    return cases
