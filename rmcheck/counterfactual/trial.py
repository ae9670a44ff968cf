"""A trial: one case, the roles it compares and the edits proposed for them, at a dose.

Expectation tests and ``rmcheck explain`` (its dose ladder included) both judge trials, and both shrink a
failing trial's edits (:func:`.minimise.minimise`) to the fewest that still fail.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..backends.base import Pair
from ..perturb.base import PROMPT, Change, in_prompt, turn_role

if TYPE_CHECKING:
    from ..suite.loader import Case


@dataclass(frozen=True)
class Trial:
    """One case of one test (or of one explained comparison): the roles it compares and the edits proposed for them."""

    case: "Case"
    label: str
    roles: tuple[str, ...]  # ("response",) etc. for a single check; ("chosen", "rejected") for a pair check
    # (role, change): a response's role; "prompt" edits the last user turn, "prompt[i]" turn i of a conversation
    changes: tuple[tuple[str, Change], ...] = ()
    dose: int | None = None  # the dose of an operator with a strength (``dose:``, explain's ladder)

    @functools.cached_property
    def edits(self) -> list[tuple[tuple[str, int], ...]]:
        """What the shrinker keeps or removes: each hunk as (role, index), the hunks that share a tie as one
        edit (a name swapped in the prompt and the response together)."""
        units: dict[object, list[tuple[str, int]]] = {}
        for role, change in self.changes:
            for i, hunk in enumerate(change.hunks):
                units.setdefault(hunk.tie or (role, i), []).append((role, i))
        return [tuple(unit) for unit in units.values()]

    @property
    def sides(self) -> list[str]:
        """The roles the edits change (responses first), then the other compared roles."""
        changed = [role for role, _ in self.changes]
        return changed + [r for r in self.roles if r not in changed]

    @property
    def target(self) -> str:
        """The main side of a counterfactual: the first role an edit changes."""
        return self.sides[0]

    def texts(self, keep: Iterable[int] | None = None) -> dict[str, str]:
        """The compared responses (and the edited parts of the prompt) with the edits in ``keep`` applied
        (all when None)."""
        return dict(self._edited) if keep is None else self._apply(keep)

    @functools.cached_property
    def _edited(self) -> dict[str, str]:
        """Every edit applied (judging and explaining a trial read it several times)."""
        return self._apply(range(len(self.edits)))

    def _apply(self, keep: Iterable[int]) -> dict[str, str]:
        texts = {role: self.case.text(role) for role in self.roles}
        per_role: dict[str, list[int]] = {role: [] for role, _ in self.changes}
        for index in keep:
            for role, local in self.edits[index]:
                per_role[role].append(local)
        for role, change in self.changes:
            texts[role] = change.apply(per_role[role])
        return texts

    def pair(self, role: str, texts: Mapping[str, str]) -> Pair:
        """What is scored for ``role`` in ``texts``: its response, under the edited prompt if there is one."""
        return Pair(self.prompt(texts), texts[role])

    def pairs(self, keep: Iterable[int] | None = None) -> list[Pair]:
        """Every pair needed to judge the edits in ``keep``: the compared responses and, for a single check,
        the original."""
        texts = self.texts(keep)
        found = [self.pair(role, texts) for role in self.roles]
        if len(self.roles) == 1:
            found.append(self.original(self.roles[0]))
        return found

    def prompt(self, texts: Mapping[str, str]) -> Any:
        """The case's prompt with the parts that ``texts`` edits (``prompt``, or ``prompt[i]`` of a conversation)."""
        prompt = self.case.prompt
        if PROMPT in texts:
            return self.case.with_last_user_turn(texts[PROMPT])
        if isinstance(prompt, str) or not any(map(in_prompt, texts)):
            return prompt
        return tuple((who, texts.get(turn_role(i), content)) for i, (who, content) in enumerate(prompt))

    def original(self, role: str) -> Pair:
        return Pair(self.case.prompt, self.case.text(role))
