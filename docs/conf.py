"""Sphinx configuration of rmcheck's documentation site (MyST Markdown, the furo theme).

Build it as CI does, warnings as errors: ``sphinx-build -W --keep-going -b html docs .rmcheck/site``.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

project = "rmcheck"
author = "the rmcheck developers"
extensions = ["myst_parser", "scripts.docs_tables"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["findings", "ci-gate.yml", "_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
html_theme = "furo"
html_title = "rmcheck"
suppress_warnings = ["myst.header"]  # pages that open at a level-2 heading under their title
