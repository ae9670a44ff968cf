"""Suites: YAML with line marks, the format-v1 schema, case expansion (lexicons, files) into typed objects."""
from .loader import Case, Perturbation, Suite, TestSpec, find_suites, load_suite, schema

__all__ = ["Case", "Perturbation", "Suite", "TestSpec", "find_suites", "load_suite", "schema"]
