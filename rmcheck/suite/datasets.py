"""Case sources in dataset formats: JSON Lines, HH-RLHF dialogues, RM-Bench items, RewardBench 2 rows and
ProcessBench rows (gzip too).

Every reader returns rows in the suite's own case shape (``prompt`` plus ``response``, or
``chosen`` and ``rejected`` (a list for best-of-N); optionally ``id``, ``style`` and ``subset``),
each with its ``file:line``.
"""
from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import os
import re
import warnings
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from ..errors import SuiteError
from ..limits import FILE_BYTES, FILE_LINES, FILE_ROWS
from ..process.cases import one_paragraph

#: A case mapping and the ``file:line`` it came from.
Row = tuple[dict[str, Any], str]

FORMATS = ("jsonl", "hh-rlhf", "rm-bench", "rewardbench2", "processbench")
#: The environment variable that moves (or, set to ``/``, lifts) the confinement of ``file:`` paths.
DATA_ROOT = "RMCHECK_DATA_ROOT"
#: Files that mark a project's root folder (as pytest's rootdir and ini-files do).
ROOT_MARKERS = ("pyproject.toml", "pytest.ini", "tox.ini", "setup.cfg", "setup.py", ".git")
#: System folders: data there is copied into the project, never allowed through ``RMCHECK_DATA_ROOT``.
SYSTEM_FOLDERS = tuple(Path(f) for f in ("/proc", "/sys", "/dev", "/etc", "/run", "/boot", "/var/run"))
#: RM-Bench's three response styles, in the order of its ``chosen``/``rejected`` lists (least elaborate first).
RM_BENCH_STYLES = ("concise", "detailed", "detailed_markdown")

_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


class DatasetWarning(UserWarning):
    """Rows of a dataset file were skipped (they are counted in the message)."""


def read_rows(path: Path, fmt: str, limit: int | None, *, where: str) -> list[Row]:
    """Case rows of a ``file:`` source in format ``fmt``; ``limit`` caps the rows read (RM-Bench: items)."""
    _no_nul(str(path), where)
    if not path.is_file():
        raise SuiteError(f"case file {str(path)!r} does not exist", where=where,
                         fix="Paths in 'file:' are relative to the suite file")
    return READERS[fmt](path, limit, where)


def confined(suite: Path, name: str, *, where: str) -> Path:
    """The data file ``name`` (relative to the suite file), resolved with its symlinks; it must lie under
    :func:`data_root`. Suites are code you choose to run; the data they read stays in their project."""
    _no_nul(name, where)
    resolved = (suite.parent / name).resolve()
    root = data_root(suite)
    if not resolved.is_relative_to(root):
        system = resolved.parent == Path(resolved.anchor) or any(resolved.is_relative_to(f) for f in SYSTEM_FOLDERS)
        allow = "" if system else f", or allow a folder that holds it with {DATA_ROOT}={resolved.parent}"
        raise SuiteError(f"file {name!r} resolves to {str(resolved)!r}, outside the suite's rootdir {str(root)!r}",
                         where=where, fix=f"Copy the data into the project ({root}){allow}")
    return resolved


def _no_nul(name: str, where: str) -> None:
    if "\0" in name:
        raise SuiteError(f"file {name!r} has a NUL character in its name", where=where, fix="Remove it from the path")


def data_root(suite: Path) -> Path:
    """The folder ``file:`` data must stay under: ``$RMCHECK_DATA_ROOT`` when set (``/`` allows any file),
    else the suite's rootdir: the nearest folder above it holding one of :data:`ROOT_MARKERS`, else its own."""
    chosen = os.environ.get(DATA_ROOT, "").strip()
    if chosen:
        return Path(chosen).expanduser().resolve()
    folder = suite.resolve().parent
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            return candidate
    return folder


def file_stem(path: Path) -> str:
    """The file name without its data suffixes: ``data/hh.jsonl.gz`` -> ``hh``."""
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name else name


def read_jsonl(path: Path, limit: int | None, where: str) -> list[Row]:
    """Rows of a JSON Lines file as written (objects in the suite's case shape)."""
    rows: list[Row] = []
    for row, source in _json_lines(path):
        if limit is not None and len(rows) >= limit:
            break
        rows.append((row, source))
    return rows


def read_hh_rlhf(path: Path, limit: int | None, where: str) -> list[Row]:
    """HH-RLHF rows ``{chosen, rejected}`` (whole dialogues) as multi-turn pair cases."""
    rows, skipped = _convert(_json_lines(path), hh_rlhf_case, limit)
    _report_skipped(path, where, "HH-RLHF", len(rows), skipped,
                    "rows whose two dialogues do not share every turn but a non-empty, different last "
                    "assistant turn")
    return _named(path, rows)


def hh_rlhf_case(row: dict[str, Any]) -> dict[str, Any] | None:
    """``{prompt: [turns], chosen, rejected}`` from one HH-RLHF row, or None when it is malformed.

    The dialogues' shared turns up to the last assistant turn become the prompt; their last
    assistant turns are the chosen and rejected responses.
    """
    chosen, rejected = _dialogue(row.get("chosen")), _dialogue(row.get("rejected"))
    if not chosen or not rejected or chosen[:-1] != rejected[:-1] or not chosen[:-1]:
        return None
    (role_c, text_c), (role_r, text_r) = chosen[-1], rejected[-1]
    if role_c != role_r or role_c != "assistant" or not text_c or not text_r or text_c == text_r:
        return None
    prompt = [{"role": role, "content": text} for role, text in chosen[:-1]]
    return {"prompt": prompt, "chosen": text_c, "rejected": text_r}


def _dialogue(text: Any) -> list[tuple[str, str]] | None:
    """``\\n\\nHuman: ...\\n\\nAssistant: ...`` as (role, content) turns, or None when it is not one."""
    if not isinstance(text, str):
        return None
    parts = _HH_TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        return None
    return [(_HH_ROLES[role], content.strip()) for role, content in zip(parts[1::2], parts[2::2])]


def read_rm_bench(path: Path, limit: int | None, where: str) -> list[Row]:
    """RM-Bench items (a JSON array): each yields one pair case per style, sharing the item's id
    (``FILE-LINE`` for an item without one)."""
    items, skipped = _convert(_json_array(path), rm_bench_cases, limit)
    _report_skipped(path, where, "RM-Bench", len(items), skipped,
                    f"items without a prompt and {len(RM_BENCH_STYLES)} chosen and rejected responses")
    domain = file_stem(path)  # RM-Bench ships one file per domain: chat, math, code, safety-refuse, ...
    return _named(path, [({"subset": domain, **case}, source) for cases, source in items for case in cases])


def rm_bench_cases(item: Any) -> list[dict[str, Any]] | None:
    """One RM-Bench item as pair cases, one per style, or None when it is malformed."""
    if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
        return None
    chosen, rejected = item.get("chosen"), item.get("rejected")
    if not all(isinstance(side, list) and len(side) == len(RM_BENCH_STYLES)
               and all(isinstance(text, str) for text in side) for side in (chosen, rejected)):
        return None
    known = {"id": str(item["id"])} if "id" in item else {}
    if isinstance(item.get("domain"), str):
        known["subset"] = item["domain"]
    return [{**known, "style": style, "prompt": item["prompt"], "chosen": c, "rejected": r}
            for style, c, r in zip(RM_BENCH_STYLES, chosen, rejected)]


def read_rewardbench2(path: Path, limit: int | None, where: str) -> list[Row]:
    """RewardBench 2 rows (JSON Lines, as its Hugging Face split exports) as best-of-N cases;
    ``limit`` caps the rows read. Ids are the rows' ``id`` (``FILE-LINE`` without one); a row with
    several correct answers (the Ties subset) gives one case per correct answer, ``ID/1``, ``ID/2`` ..."""
    rows, skipped = _convert(_json_lines(path), rewardbench2_cases, limit)
    _report_skipped(path, where, "RewardBench 2", len(rows), skipped,
                    "rows without a prompt, a non-empty chosen list and a non-empty rejected list")
    named: list[Row] = []
    for (row_id, cases), source in rows:
        base = row_id or f"{file_stem(path)}-{source.rsplit(':', 1)[1]}"
        named.extend(({"id": base if len(cases) == 1 else f"{base}/{k}", **case}, source)
                     for k, case in enumerate(cases, start=1))
    return named


def rewardbench2_cases(row: Any) -> tuple[str | None, list[dict[str, Any]]] | None:
    """One RewardBench 2 row ``{id, prompt, chosen: [...], rejected: [...], subset}`` as its id and one case
    per chosen response (each with every rejected response), or None when it is malformed."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if not isinstance(row.get("prompt"), str) or not all(
            isinstance(side, list) and side and all(isinstance(t, str) for t in side) for side in (chosen, rejected)):
        return None
    base = {"prompt": row["prompt"], "rejected": list(rejected),
            **({"subset": row["subset"]} if isinstance(row.get("subset"), str) else {})}
    return (str(row["id"]) if "id" in row else None), [{**base, "chosen": text} for text in chosen]


def read_processbench(path: Path, limit: int | None, where: str) -> list[Row]:
    """ProcessBench rows (JSON Lines, as its Hugging Face splits export) as step cases: ``{id, problem, steps,
    label}`` becomes ``{id, prompt, steps, label, subset}``. The subset is the row's ``subset``, else its id without
    the trailing number (``gsm8k-0`` is in ``gsm8k``), else the file's name; a step's blank lines become line
    breaks (a blank line separates steps)."""
    rows, skipped = _convert(_json_lines(path), processbench_case, limit)
    _report_skipped(path, where, "ProcessBench", len(rows), skipped,
                    "rows without a problem, a non-empty list of text steps and a label from -1 to the last step")
    return _named(path, [({"subset": file_stem(path), **case}, source) for case, source in rows])


def processbench_case(row: Any) -> dict[str, Any] | None:
    """One ProcessBench row as a step case, or None when it is malformed."""
    steps, label = row.get("steps"), row.get("label")
    if (not isinstance(row.get("problem"), str) or not isinstance(steps, list) or not steps
            or not all(isinstance(s, str) and s.strip() for s in steps)
            or isinstance(label, bool) or not isinstance(label, int) or not -1 <= label < len(steps)):
        return None
    case: dict[str, Any] = {"prompt": row["problem"], "steps": [one_paragraph(s) for s in steps], "label": label}
    if "id" in row:
        case["id"] = str(row["id"])
    head, sep, tail = case.get("id", "").rpartition("-")
    subset = row["subset"] if isinstance(row.get("subset"), str) else head if sep and tail.isdigit() else ""
    return {**case, "subset": subset} if subset else case


READERS: dict[str, Callable[[Path, int | None, str], list[Row]]] = {
    "jsonl": read_jsonl, "hh-rlhf": read_hh_rlhf, "rm-bench": read_rm_bench, "rewardbench2": read_rewardbench2,
    "processbench": read_processbench}


# -- helpers --------------------------------------------------------------------------------------


def _open(path: Path) -> BinaryIO:
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")  # type: ignore[return-value]
    except OSError as exc:
        raise SuiteError(f"cannot read {str(path)!r}: {exc.strerror or exc}", where=str(path)) from None


def _raw_lines(path: Path) -> Iterator[bytes]:
    """The file's lines as bytes, streamed: at most ``max_file_bytes`` are read (after decompression) and
    ``max_file_lines`` lines, so a gzip bomb stops there instead of filling memory or taking minutes."""
    budget, lines = FILE_BYTES.value, FILE_LINES.value
    with _reading(path) as handle:
        for number in itertools.count(1):
            line = handle.readline(budget + 1)
            if not line:
                return
            budget -= len(line)
            if budget < 0:
                raise FILE_BYTES.exceeded(f"more than {FILE_BYTES.value}", f"reading {str(path)!r}",
                                          where=str(path), error=SuiteError)
            if number > lines:
                raise FILE_LINES.exceeded(str(number), f"lines of {str(path)!r}", where=f"{path}:{number}",
                                          error=SuiteError)
            yield line


def _read_bytes(path: Path) -> bytes:
    """The whole file (after decompression), at most ``max_file_bytes``."""
    with _reading(path) as handle:
        data = handle.read(FILE_BYTES.value + 1)
    if len(data) > FILE_BYTES.value:
        raise FILE_BYTES.exceeded(f"more than {FILE_BYTES.value}", f"reading {str(path)!r}",
                                  where=str(path), error=SuiteError)
    return data


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[BinaryIO]:
    """The open file; a read that fails (a corrupt gzip, say) is one SuiteError."""
    try:
        with _open(path) as handle:
            yield handle
    except (OSError, EOFError, zlib.error) as exc:
        raise SuiteError(f"cannot read {str(path)!r}: {exc}", where=str(path),
                         fix="Give a UTF-8 text file, gzip-compressed only when its name ends in .gz") from None


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SuiteError("not UTF-8 text", where=where, fix="Save the file as UTF-8") from None


def _read_text(path: Path) -> str:
    return _decode(_read_bytes(path), str(path))


def _counted(rows: Iterator[tuple[Any, str]], path: Path) -> Iterator[tuple[Any, str]]:
    """``rows`` up to ``max_file_rows``; reading past it is an error (``limit:`` stops before)."""
    for number, row in enumerate(rows, start=1):
        FILE_ROWS.check(number, f"rows of {str(path)!r}", where=row[1], error=SuiteError)
        yield row


def _json_lines(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    return _counted(_json_rows(path), path)


def _json_rows(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    for number, raw in enumerate(_raw_lines(path), start=1):
        line = _decode(raw, f"{path}:{number}")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise SuiteError(f"invalid JSON: {reason}", where=f"{path}:{number}",
                             fix="Each line of a JSON Lines file is one JSON object") from None
        if not isinstance(row, dict):
            raise SuiteError("each row must be a JSON object", where=f"{path}:{number}")
        yield row, f"{path}:{number}"


def _json_array(path: Path) -> Iterator[tuple[Any, str]]:
    """The elements of a top-level JSON array (at most ``max_file_rows``), each with the line it starts on."""
    return _counted(_json_items(path), path)


def _json_items(path: Path) -> Iterator[tuple[Any, str]]:
    text, decoder = _read_text(path), json.JSONDecoder()
    pos, line, counted = _skip_space(text, 0), 1, 0

    def here(at: int) -> str:
        nonlocal line, counted
        line += text.count("\n", counted, at)
        counted = at
        return f"{path}:{line}"

    if text[pos:pos + 1] != "[":
        raise SuiteError("expected a JSON array of items", where=here(pos),
                         fix="Use format: jsonl for JSON Lines files")
    pos = _skip_space(text, pos + 1)
    while text[pos:pos + 1] != "]":
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"invalid JSON: {exc.msg}", where=f"{path}:{exc.lineno}") from None
        except RecursionError:
            raise SuiteError("invalid JSON: nested too deeply", where=here(pos)) from None
        yield item, here(pos)
        pos = _skip_space(text, end)
        if text[pos:pos + 1] == ",":
            pos = _skip_space(text, pos + 1)
        elif text[pos:pos + 1] != "]":
            raise SuiteError("invalid JSON: expected ',' or ']' after an item", where=here(pos))


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _convert(rows: Iterator[tuple[Any, str]], convert: Callable[[Any], Any],
             limit: int | None) -> tuple[list[tuple[Any, str]], int]:
    """Converted rows (up to ``limit``) and how many rows were malformed (``convert`` gave None)."""
    out: list[tuple[Any, str]] = []
    skipped = 0
    for row, source in rows:
        if limit is not None and len(out) >= limit:
            break
        converted = convert(row)
        if converted is None:
            skipped += 1
        else:
            out.append((converted, source))
    return out, skipped


def _named(path: Path, rows: list[Row]) -> list[Row]:
    """Rows with an ``id`` (``FILE-LINE`` unless they have their own)."""
    stem = file_stem(path)
    return [({"id": f"{stem}-{source.rsplit(':', 1)[1]}", **case}, source) for case, source in rows]


def _report_skipped(path: Path, where: str, fmt: str, kept: int, skipped: int, what: str) -> None:
    if skipped and not kept:
        raise SuiteError(f"no row of {str(path)!r} is in {fmt} format ({skipped} rows read)", where=where,
                         fix=f"Check 'format:' ({', '.join(FORMATS)})")
    if skipped:
        warnings.warn(f"{where}: skipped {skipped} malformed {fmt} rows of {str(path)!r} ({what}); "
                      f"kept {kept}", DatasetWarning, stacklevel=2)
