"""Prompt templates: loading them by name from the library (`prompts/*.toml` at the project's top level) or by
path, and rendering one request per document (`templates.py`)."""

from finephrase.prompts.templates import PromptTemplate, available_prompts, load_prompt, load_prompts

__all__ = ["PromptTemplate", "available_prompts", "load_prompt", "load_prompts"]
