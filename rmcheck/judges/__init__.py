"""Generative judges: pairwise and listwise reward models, and the presentation tests that check them.

:mod:`.interface` is the judge protocol (every scalar RM is a judge through its adaptor); :mod:`.presentation`
the presentation operators (``swap_order``, ``relabel``, ``shuffle``, ``repeat``); :mod:`.kind` the
``expect: consistent`` tests; :mod:`.python_pairwise` and :mod:`.openai_pairwise` the judge backends; and
:mod:`.best_of_n` RewardBench 2's best-of-N accuracy under a judge, averaged over orders.
"""
from ..lazy import exports_of, face

_EXPORTS = {**exports_of(".interface", "Judge", "Query", "ScalarJudge", "Verdict", "is_judge", "judge_of"),
            **exports_of(".presentation", "PRESENTERS", "Presentation", "Presenter")}
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
