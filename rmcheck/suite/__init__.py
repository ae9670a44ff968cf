"""Suites: YAML with line marks, the format-v1 schema, case expansion (lexicons, files) into typed objects."""
from ..lazy import exports_of, face

_EXPORTS = exports_of(".loader", "Case", "Perturbation", "Suite", "TestSpec", "find_suites", "load_suite", "schema")
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
