"""What a filter does, as run settings: the part of the run's fingerprint that notices a changed filter.

`describe_filter(f)` describes a datatrove filter by what decides its refusals, deterministically and as JSON:

- its class, by qualified name (`module.Class`); a class of your own (not datatrove's, finephrase's or an
  installed package's) also by its source;
- its parameters: the instance's attributes, except datatrove's runtime ones (`stats`, `exclusion_writer`,
  `batch_size`), its `name` (fingerprinted already) and private ones (`_...`);
- values: JSON values as they are (tuples as lists, sets sorted, non-finite floats as text), a regex by its
  pattern and flags, a path as text, a class or a library function by its qualified name, a function of your own
  by its source (a lambda: just the lambda expression; comments, blank lines and indentation aside) with the
  globals, closure variables and defaults it uses, a `functools.partial` by its function and arguments, any other
  object by its class and attributes; a value longer than 400 characters of JSON by its hash;
- a filter with a `fingerprint()` method: by what that returns (its own say on what matters).

What cannot be known (a function without readable source, an object of a C extension) is recorded as such and
returned in the second value, so the caller can warn that a change to it will not be noticed.
"""

from __future__ import annotations

import ast
import dis
import enum
import functools
import hashlib
import inspect
import io
import json
import linecache
import math
import re
import sysconfig
import textwrap
import tokenize
import types
from pathlib import Path, PurePath

LIMIT = 400  # characters of JSON: a longer value is fingerprinted by its hash
_MAX_DEPTH = 6
_RUNTIME = frozenset({"stats", "exclusion_writer", "batch_size", "name"})
_OWN = ("datatrove", "finephrase")


def describe_filter(f) -> tuple[dict, list[str]]:
    """(what `f` does as JSON, what of it could not be known: empty when the description is complete)."""
    try:
        return _describe(f)
    except Exception as e:  # noqa: BLE001 (describing must never stop a run: it warns instead)
        return {"class": qualified_name(type(f))}, [f"describing it failed ({type(e).__name__}: {e})"]


def _describe(f) -> tuple[dict, list[str]]:
    d = _Describer()
    desc = {"class": d.cls(type(f))}
    own = getattr(f, "fingerprint", None)
    if callable(own):
        try:
            desc["fingerprint"] = d.compact(d.value(own(), 1))
        except Exception as e:  # noqa: BLE001 (a filter's own code: any error means "cannot be known")
            desc["fingerprint"] = d.unknown(f, f"its fingerprint() failed ({type(e).__name__})")
    elif not hasattr(f, "__dict__"):
        desc["params"] = d.unknown(f, "an object without readable attributes (a C extension?)")
    else:
        params = {k: d.compact(d.value(v, 1)) for k, v in sorted(vars(f).items()) if k not in _RUNTIME
                  and not k.startswith("_")}
        if params:
            desc["params"] = params
    return desc, d.missing


def qualified_name(obj) -> str:
    return f"{getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', None) or obj.__name__}"


def is_library(obj) -> bool:
    """Code identified by its name: datatrove's, finephrase's, the standard library's, an installed package's,
    a built-in. Anything else (a pipeline file, a notebook, a module of your own) is described by its source."""
    module = getattr(obj, "__module__", None) or ""
    if module.split(".")[0] in _OWN or module == "builtins":
        return True
    try:
        path = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except (TypeError, OSError):
        return module != "__main__" and not isinstance(obj, types.FunctionType)
    resolved = str(Path(path).resolve())
    return any(resolved.startswith(p + "/") for p in _installed()) or "site-packages" in Path(path).parts


@functools.cache
def _installed() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(sorted({str(Path(paths[k]).resolve()) for k in ("stdlib", "platstdlib", "purelib", "platlib")}))


class _Describer:
    def __init__(self):
        self.missing: list[str] = []
        self.active: set[int] = set()  # objects being described (a cycle is named, not followed)

    def unknown(self, obj, why: str) -> str:
        what = getattr(obj, "__qualname__", None) or type(obj).__name__
        self.missing.append(f"{what}: {why}")
        return f"<unknown {what}>"

    def compact(self, value):
        text = _canonical(value)
        return f"sha256:{hashlib.sha256(text.encode()).hexdigest()[:16]}" if len(text) > LIMIT else value

    def value(self, v, depth: int = 0):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int) and not isinstance(v, enum.Enum):
            return v if abs(v) < 2**63 else str(v)
        if isinstance(v, float):
            return v if math.isfinite(v) else repr(v)
        if depth > _MAX_DEPTH:
            return self.unknown(v, "nested too deep")
        if id(v) in self.active:
            return "<cycle>"
        self.active.add(id(v))
        try:
            return self._composite(v, depth + 1)
        finally:
            self.active.discard(id(v))

    def _composite(self, v, depth: int):
        if isinstance(v, (list, tuple)):
            return [self.value(x, depth) for x in v]
        if isinstance(v, (set, frozenset)):
            return sorted((self.value(x, depth) for x in v), key=_canonical)
        if isinstance(v, dict):
            if not all(isinstance(k, (str, int, float, bool)) or k is None for k in v):
                return self.unknown(v, "a dict with keys that are not plain values")
            return {str(k): self.value(x, depth) for k, x in v.items()}
        if isinstance(v, enum.Enum):
            return f"{qualified_name(type(v))}.{v.name}"
        if isinstance(v, re.Pattern):
            return {"regex": v.pattern if isinstance(v.pattern, str) else repr(v.pattern), "flags": int(v.flags)}
        if isinstance(v, PurePath):
            return str(v)
        if isinstance(v, (bytes, bytearray)):
            return f"bytes sha256:{hashlib.sha256(v).hexdigest()[:16]}"
        if isinstance(v, types.ModuleType):
            return f"module {v.__name__}"
        if isinstance(v, type):
            return self.cls(v)
        return self._callable_or_object(v, depth)

    def _callable_or_object(self, v, depth: int):
        if isinstance(v, functools.partial):
            out = {"partial": self.value(v.func, depth), "args": self.value(v.args, depth)}
            return {**out, "keywords": self.value(v.keywords, depth)} if v.keywords else out
        if isinstance(v, types.MethodType):
            return {"method": self.value(v.__func__, depth), "of": self.value(v.__self__, depth)}
        if isinstance(v, types.FunctionType):
            return self.function(v, depth)
        if isinstance(v, (types.BuiltinFunctionType, types.MethodWrapperType)):
            owner = getattr(v, "__self__", None)
            if owner is None or isinstance(owner, (types.ModuleType, type)):
                return qualified_name(v) if hasattr(v, "__qualname__") else v.__name__
            return {"builtin": v.__name__, "of": self.value(owner, depth)}
        if isinstance(v, (types.MethodDescriptorType, types.WrapperDescriptorType, types.ClassMethodDescriptorType)):
            return f"{qualified_name(v.__objclass__)}.{v.__name__}"
        if not hasattr(v, "__dict__"):
            return self.unknown(v, "an object without readable attributes (a C extension?)")
        params = {k: self.compact(self.value(x, depth)) for k, x in sorted(vars(v).items()) if not k.startswith("_")}
        return {"class": self.cls(type(v)), "params": params}

    def cls(self, c: type):
        """A library class by its name; one of your own by its source and the globals its methods use."""
        name = qualified_name(c)
        if is_library(c):
            return name
        source = _node_source(c, _class_node)
        if source is None:
            return self.unknown(c, "its source cannot be read")
        methods = [getattr(m, "__func__", m) for m in vars(c).values()]
        used = self.globals_used([m for m in methods if isinstance(m, types.FunctionType)], 1)
        return {"name": name, "source": self.compact(source), **({"globals": used} if used else {})}

    def function(self, fn: types.FunctionType, depth: int):
        """A library function by its name; one of your own by its source, and the globals, closure variables and
        defaults it uses (just the source when it uses none)."""
        if is_library(fn):
            return qualified_name(fn)
        source = _node_source(fn, _lambda_node if fn.__name__ == "<lambda>" else _def_node)
        if source is None:
            return self.unknown(fn, "its source cannot be read")
        cells = zip(fn.__code__.co_freevars, fn.__closure__ or ())
        closure = {n: self.compact(self.value(_cell(c), depth)) for n, c in cells}
        out = {"source": self.compact(source)}
        for key, part in (("globals", self.globals_used([fn], depth)), ("closure", closure),
                          ("defaults", self.value(fn.__defaults__, depth)),
                          ("kwdefaults", self.value(fn.__kwdefaults__, depth))):
            if part:
                out[key] = part
        return out if len(out) > 1 else out["source"]

    def globals_used(self, functions: list, depth: int) -> dict:
        """The globals the functions' code reads, by value, except modules and library classes and functions
        (their names in the source say what they are)."""
        used = {}
        for fn in functions:
            for n in sorted(_global_names(fn.__code__)):
                if n in fn.__globals__ and n not in used and not _by_name(fn.__globals__[n]):
                    used[n] = self.compact(self.value(fn.__globals__[n], depth))
        return used


def _by_name(v) -> bool:
    """A global named in the source that stands for itself: a module, or a library's class or function."""
    return isinstance(v, types.ModuleType) or (isinstance(v, (type, types.FunctionType, types.BuiltinFunctionType))
                                               and is_library(v))


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:  # not yet assigned
        return None


def _global_names(code: types.CodeType) -> set[str]:
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


@functools.lru_cache(maxsize=64)
def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _node_source(obj, find) -> str | None:
    """The normalized source of a function, lambda or class, read from its whole file (so a lambda inside a
    longer line is found by its position); else what `inspect.getsource` gives; None when nothing can be read."""
    code = getattr(obj, "__code__", None)
    try:
        filename = code.co_filename if code else inspect.getsourcefile(obj)
    except TypeError:
        filename = None
    lines = linecache.getlines(filename, getattr(obj, "__globals__", None)) if filename else []
    tree = _parse("".join(lines)) if lines else None
    node = find(tree, obj) if tree else None
    if isinstance(node, ast.Lambda):
        return _normalize(ast.get_source_segment("".join(lines), node) or "", node)
    if node is not None:  # a def or class: its whole lines, decorators included
        return _normalize("".join(lines[_first_line(node) - 1:node.end_lineno]), node)
    try:
        return _normalize(inspect.getsource(obj), None)
    except (OSError, TypeError):
        return None


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", None)
    return decorators[0].lineno if decorators else node.lineno


def _lambda_node(tree: ast.AST, fn) -> ast.Lambda | None:
    """The lambda expression of `fn`: on its first line, the one whose body holds the code's positions (the
    innermost, for a lambda inside a lambda)."""
    code = fn.__code__
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == code.co_firstlineno]
    at = [(p[0], p[2]) for p in code.co_positions() if p[0] is not None and p[2] is not None]
    if len(found) > 1:
        found = [n for n in found if any((n.body.lineno, n.body.col_offset) <= q
                                         <= (n.body.end_lineno, n.body.end_col_offset) for q in at)]
    return max(found, key=lambda n: (n.lineno, n.col_offset)) if found else None


def _def_node(tree: ast.AST, fn) -> ast.AST | None:
    code = fn.__code__
    found = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
             and n.name == code.co_name
             and (n.decorator_list[0].lineno if n.decorator_list else n.lineno) == code.co_firstlineno]
    return found[0] if len(found) == 1 else None


def _class_node(tree: ast.AST, c: type) -> ast.ClassDef | None:
    found = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == c.__name__]
    line = getattr(c, "__firstlineno__", None)  # Python 3.13+
    if line is not None:
        found = [n for n in found if (n.decorator_list[0].lineno if n.decorator_list else n.lineno) == line]
    return found[0] if len(found) == 1 else None


def _normalize(source: str, node: ast.AST | None) -> str:
    """Comments, docstrings, blank lines, trailing spaces and the common indentation removed; a lambda on one
    line. What remains is the code as written."""
    text = textwrap.dedent(source)
    lines = text.splitlines()
    for row, col in _comments(text):
        lines[row - 1] = lines[row - 1][:col]
    drop = _docstring_lines(node) if node is not None and not isinstance(node, ast.Lambda) else set()
    kept = [line.rstrip() for i, line in enumerate(lines, start=1) if i not in drop and line.strip()]
    if isinstance(node, ast.Lambda) or (node is None and "lambda" in text and not text.lstrip().startswith(
            ("def ", "async def ", "class ", "@"))):
        return " ".join(line.strip() for line in kept)
    return textwrap.dedent("\n".join(kept))


def _comments(text: str) -> list[tuple[int, int]]:
    try:
        return [t.start for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def _docstring_lines(node: ast.AST) -> set[int]:
    """Lines (counted from the node's first line, decorators included) of the docstrings in `node` that have
    lines of their own."""
    first, drop = _first_line(node), set()
    for n in ast.walk(node):
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or not n.body:
            continue
        doc, body = n.body[0], n.body
        if (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)
                and doc.lineno > n.lineno and (len(body) == 1 or body[1].lineno > doc.end_lineno)):
            drop |= set(range(doc.lineno - first + 1, doc.end_lineno - first + 2))
    return drop
