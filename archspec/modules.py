"""Spec files -> modules: read a .arch file (bounded), parse it, index its declarations, and follow its
`use` declarations inside the spec's directory tree. Nothing here is evaluated yet (see lower/)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from . import ops as op_table
from . import syntax
from .errors import Diagnostic, Pos, SpecError, remember_source
from .limits import Limits
from .parser import Token, parse, pos_of
from .values import BlockValue

@dataclass
class SpecModule:
    """One parsed .arch file: its declarations, not yet evaluated."""

    path: Path
    file: str                      # the name used in positions
    text: str
    arch: str | None = None
    params: dict[str, tuple[Any, Pos]] = field(default_factory=dict)
    variants: dict[str, tuple[list[tuple[Token, Any]], Pos]] = field(default_factory=dict)
    blocks: dict[str, BlockValue] = field(default_factory=dict)
    inputs: list[tuple[Token, Any]] = field(default_factory=list)
    network: syntax.Body | None = None
    network_pos: Pos | None = None
    budgets: list[syntax.Budget] = field(default_factory=list)
    inits: list[syntax.InitDecl] = field(default_factory=list)


def display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_module(path: Path, root: Path, limits: Limits, errors: list[Diagnostic], stack: tuple[Path, ...] = (),
                use_pos: Pos | None = None, done: dict | None = None, text: str | None = None) -> SpecModule | None:
    """Read, parse and index a spec file and, recursively, the files it `use`s. `done` maps the files
    already read in this load to their modules: a file used twice (a diamond) is read once, and its blocks
    are the same blocks on both paths. `text` stands for the file's contents when given (an editor's unsaved
    buffer, `archspec lsp`), under the same checks."""
    done = {} if done is None else done
    key = path.resolve()
    if key in done:
        return done[key]
    done[key] = None  # a failed read is reported once
    file = display_name(path)
    data = b"" if text is None else text.encode("utf-8", errors="replace")  # a lone surrogate from JSON: '?'
    try:
        size = path.stat().st_size if text is None else len(data)
        if size <= limits.max_file_bytes and text is None:  # st_size may lie (a growing file): read 1 byte more
            with path.open("rb") as f:
                data = f.read(limits.max_file_bytes + 1)
            size = max(size, len(data))
        if size > limits.max_file_bytes:
            errors.append(Diagnostic(f"spec file is {size} bytes, over the limit of {limits.max_file_bytes}",
                                     use_pos or Pos(file, 1, 1), "split it, or raise Limits.max_file_bytes"))
            return None
        text = data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is not part of the text
    except UnicodeDecodeError as exc:
        errors.append(Diagnostic("spec file is not valid UTF-8 text", _byte_pos(data, exc.start, file)))
        return None
    except OSError as exc:
        errors.append(Diagnostic(f"cannot read spec file '{file}': {exc.strerror or exc}", use_pos))
        return None
    if "\x00" in text:
        errors.append(Diagnostic("spec file contains NUL bytes: it is not a text file",
                                 _byte_pos(data, data.index(b"\x00"), file)))
        return None
    remember_source(file, text)
    try:
        tree = parse(text, file, limits.max_nesting)
    except SpecError as exc:
        errors.extend(exc.diagnostics)
        return None
    mod = SpecModule(path=path, file=file, text=text)
    for item in tree.items:
        _index_item(mod, item, errors)
        if len(errors) >= limits.max_errors:  # 21,000 duplicate declarations are not 21,000 reports
            return None
    for item in tree.items:
        if isinstance(item, syntax.UseDecl):
            _resolve_use(mod, item, root, limits, errors, stack + (key,), done)
    done[key] = mod
    return mod


def _byte_pos(data: bytes, offset: int, file: str) -> Pos:
    """The line and column (in characters) of a byte offset."""
    start = data.rfind(b"\n", 0, offset) + 1
    col = len(data[start:offset].decode("utf-8", errors="replace")) + 1
    return Pos(file, data.count(b"\n", 0, offset) + 1, col)


def _index_item(mod: SpecModule, item, errors: list[Diagnostic]) -> None:
    p = lambda x: pos_of(x, mod.file)  # noqa: E731
    if isinstance(item, syntax.ArchDecl):
        mod.arch = item.name.value
    elif isinstance(item, syntax.ParamDecl):
        name = item.name
        if name.value in mod.params:
            errors.append(Diagnostic(f"parameter '{name}' declared twice", p(name),
                                     f"first declared at {mod.params[name.value][1]}"))
        mod.params[name.value] = (item.value, p(name))
    elif isinstance(item, syntax.InputDecl):
        mod.inputs.append((item.name, item.shape))
    elif isinstance(item, syntax.VariantDecl):
        name = item.name
        if name.value in mod.variants:
            errors.append(Diagnostic(f"variant '{name}' declared twice", p(name)))
        mod.variants[name.value] = ([(a.name, a.value) for a in item.assigns], p(name))
    elif isinstance(item, syntax.BlockDecl):
        _index_block(mod, item, errors)
    elif isinstance(item, syntax.NetworkDecl):
        if mod.network is not None:
            errors.append(Diagnostic("a spec has one network", pos_of(item, mod.file), f"the first is at {mod.network_pos}"))
        mod.network, mod.network_pos = item.body, pos_of(item, mod.file)
    elif isinstance(item, syntax.Budget):
        mod.budgets.append(item)
    elif isinstance(item, syntax.InitDecl):
        mod.inits.append(item)


def _index_block(mod: SpecModule, item: syntax.BlockDecl, errors: list[Diagnostic]) -> None:
    p = lambda x: pos_of(x, mod.file)  # noqa: E731
    name = item.name
    params = []
    seen_default = False
    for prm in item.params:
        pname, default = prm.name, prm.default
        if default is None and seen_default:
            errors.append(Diagnostic(f"parameter '{pname}' without a default follows one with a default", p(pname)))
        seen_default |= default is not None
        if any(pname.value == q for q, _ in params):
            errors.append(Diagnostic(f"block parameter '{pname}' declared twice", p(pname)))
        params.append((pname.value, default))
    if name.value in op_table.REGISTRY:
        errors.append(Diagnostic(f"block '{name}' has the name of an op", p(name), "choose another name"))
    elif name.value in mod.blocks:
        errors.append(Diagnostic(f"block '{name}' defined twice", p(name),
                                 f"first defined at {mod.blocks[name.value].pos}"))
    mod.blocks[name.value] = BlockValue(name.value, tuple(params), item.body, mod, p(name))


def _resolve_use(mod: SpecModule, item: syntax.UseDecl, root: Path, limits: Limits, errors: list[Diagnostic], stack,
                 done: dict) -> None:
    tok = item.path
    where = pos_of(tok, mod.file)
    rel = tok.value[1:-1]
    hint = "use a relative path to a .arch file inside the spec's folder"
    if not rel:
        errors.append(Diagnostic("use of an empty path", where, hint))
        return
    if rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        errors.append(Diagnostic(f"use of an absolute path '{rel}' is not allowed", where, hint))
        return
    try:
        target = (mod.path.parent / rel).resolve()  # resolves symlinks too: a link out of the tree is refused
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a name the system refuses
        errors.append(Diagnostic(f"use of '{rel}': the path cannot be resolved", where, hint))
        return
    if not target.is_relative_to(root):
        errors.append(Diagnostic(f"use of '{rel}' leaves the spec's directory tree ({display_name(root)})", where, hint))
        return
    if not rel.endswith(".arch"):
        errors.append(Diagnostic(f"use of '{rel}': only .arch files can be used", where, hint))
        return
    if target in stack:
        errors.append(Diagnostic(f"use of '{rel}' is circular", where, "a file cannot use itself, directly or not"))
        return
    if len(stack) > limits.max_use_depth:
        errors.append(Diagnostic(f"use chain deeper than {limits.max_use_depth} files", where,
                                 "use the blocks through fewer files, or raise Limits.max_use_depth"))
        return
    if not target.is_file():
        errors.append(Diagnostic(f"use of '{rel}': no such file", where, hint))
        return
    used = read_module(target, root, limits, errors, stack, where, done)
    if used is None:
        return
    for name, block in used.blocks.items():
        if name in mod.blocks and mod.blocks[name] is not block:
            errors.append(Diagnostic(f"block '{name}' from '{rel}' clashes with a block of the same name", where,
                                     f"the other is defined at {mod.blocks[name].pos}"))
        else:
            mod.blocks.setdefault(name, block)
