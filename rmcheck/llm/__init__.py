"""Talking to LLMs: the OpenAI-compatible client settings and the cassettes that replay answers offline."""
