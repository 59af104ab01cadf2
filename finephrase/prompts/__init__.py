"""Prompts: the template (`templates.py`: one request per document), the library that finds templates by name
(`library.py`: `prompts/*.toml` at the project's top level, --prompts-dir), and prompt files in the FinePhrase
paper's format (`paper_files.py`: markdown with `[TEXT]`, loaded as they are)."""

from finephrase.prompts.library import available_prompts, load_prompt, load_prompts
from finephrase.prompts.templates import PromptTemplate

__all__ = ["PromptTemplate", "available_prompts", "load_prompt", "load_prompts"]
