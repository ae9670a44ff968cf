"""Silence transformers' own progress bars and warnings while rmcheck loads and scores a model."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


#: Schemes whose models load through transformers (the others never import it, so it is not imported for them).
LOADED_BY_TRANSFORMERS = ("hf", "demo", "dpo")


@contextmanager
def quiet_transformers(importing: bool = False) -> Iterator[None]:
    """Within the block, transformers logs errors only (no "Token indices sequence length" warnings) and
    shows no progress bars, through its own logging API; both settings are restored afterwards.
    ``importing``: the block may import transformers (a model load); otherwise nothing is done unless it
    already is imported."""
    if not importing and "transformers" not in sys.modules:
        yield
        return
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
