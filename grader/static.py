"""Checks on a submission's source, on the trusted side, before any sandbox starts.

Size, encoding, syntax, and the imports and calls an exercise forbids. They are defence in depth
and fast feedback, not the security boundary: the sandbox is.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from grader.spec import ExerciseSpec

DYNAMIC_IMPORTS = {"__import__", "import_module"}
# A kernel's own operations: `tl.exp` in a Triton kernel is not `torch.exp`, whatever the exercise
# forbids of torch (the runtime guard on torch's operators still applies to everything else).
KERNEL_LANGUAGES = ("triton.language",)


class Rejected(Exception):
    """The submission cannot be graded as it stands; the message says why and what to change."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Use:
    name: str
    line: int


def check_source(raw: bytes, spec: ExerciseSpec, filename: str = "", size: int | None = None) -> str:
    """The decoded source if it may be graded; Rejected otherwise. `size` is the file's real size
    when only its first bytes were read."""
    module = filename or f"{spec.entrypoint}.py"
    limit = spec.source_kb * 1024
    real = max(len(raw), size or 0)
    if real > limit:
        raise Rejected(f"{module} is {_size(real)}; submissions are limited to {_size(limit)}.")
    try:
        source = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Rejected(
            f"{module} is not valid UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}). "
            "Save the file as UTF-8."
        ) from None
    if not source.strip():
        raise Rejected(f"{module} is empty. Start from the skeleton and fill in the functions.")
    if "\x00" in source:
        raise Rejected(f"{module} contains a NUL byte (offset {source.index(chr(0))}); is it a binary file?")
    try:
        tree = ast.parse(source, filename=module)
    except SyntaxError as exc:
        line = (exc.text or "").rstrip("\n")
        pointer = f"\n    {line}\n    {' ' * max((exc.offset or 1) - 1, 0)}^" if line else ""
        raise Rejected(
            f"Syntax error in {module}, line {exc.lineno}: {exc.msg}{pointer}", exc.lineno
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise Rejected(f"{module} cannot be parsed: {type(exc).__name__}") from None
    _check_forbidden(tree, spec, module)
    return source


def _check_forbidden(tree: ast.AST, spec: ExerciseSpec, module: str) -> None:
    why = f" {spec.forbidden.reason}" if spec.forbidden.reason else ""
    for use in imported_modules(tree):
        for banned in spec.forbidden.imports:
            if use.name == banned or use.name.startswith(banned + "."):
                raise Rejected(
                    f"{module}, line {use.line}: importing {use.name} is not allowed here.{why}", use.line
                )
    names = referenced_names(tree)
    for banned in spec.forbidden.calls:
        last = banned.rsplit(".", 1)[-1]
        for use in names:
            if use.name == last:
                raise Rejected(
                    f"{module}, line {use.line}: {last} is not allowed in this exercise ({banned}, "
                    f"however it is reached).{why}",
                    use.line,
                )


def imported_modules(tree: ast.AST) -> list[Use]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Use(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(Use(node.module, node.lineno))
            found += [Use(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and _call_name(node.func) in DYNAMIC_IMPORTS and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append(Use(first.value, node.lineno))
    return found


def referenced_names(tree: ast.AST) -> list[Use]:
    """Names reached as attributes (`F.name`), imported by name, or looked up with getattr.

    Bare names are left alone: a submission may define a function with the same name as the
    library function it must not call (the exercise often asks for exactly that).
    """
    found = []
    kernel_aliases = _kernel_language_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if not _in_kernel_language(node.value, kernel_aliases):
                found.append(Use(node.attr, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if not any((node.module or "").startswith(lang) for lang in KERNEL_LANGUAGES):
                found += [Use(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and _call_name(node.func) in {"getattr", "attrgetter"}:
            found += [
                Use(arg.value.rsplit(".", 1)[-1], node.lineno)
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ]
    return sorted(found, key=lambda u: u.line)


def _kernel_language_aliases(tree: ast.AST) -> set[str]:
    """The names a module binds to Triton's language (`import triton.language as tl`,
    `from triton import language as tl`)."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in KERNEL_LANGUAGES:
                    aliases.add(alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in KERNEL_LANGUAGES:
                    aliases.add(alias.asname or alias.name)
    return aliases


def _in_kernel_language(value: ast.expr, aliases: set[str]) -> bool:
    """Whether `value` (what an attribute is read from) is Triton's language or a part of it:
    `tl`, `tl.math`, `triton.language`."""
    parts = []
    while isinstance(value, ast.Attribute):
        parts.append(value.attr)
        value = value.value
    if not isinstance(value, ast.Name):
        return False
    dotted = ".".join([value.id, *reversed(parts)])
    if value.id in aliases:
        return True
    return any(dotted == lang or dotted.startswith(lang + ".") for lang in KERNEL_LANGUAGES)


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    return f"{n / 1024:.0f} KB"
