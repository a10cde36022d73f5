"""CLI commands: one module per command, registered with @command. Heavy imports (torch, onnx, rich)
happen inside the command's run function, so `archspec check` starts fast."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import SpecError, printable

COMMANDS: dict[str, "Command"] = {}


@dataclass
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


def command(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Decorator for a command's run function: `@command("check", "...", configure)`."""
    def wrap(run):
        COMMANDS[name] = Command(name, help, configure, run)
        return run
    return wrap


def discover() -> dict[str, Command]:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return COMMANDS


# ---- what the backend commands need ----

def require(command_name: str, extra: str, *modules: str) -> None:
    """A one-line error naming the `pip install` to run when a command's extra is not installed."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise SpecError(f"archspec {command_name} needs {' and '.join(missing)}, not installed: "
                        f"pip install 'archspec-dsl[{extra}]'")


@contextlib.contextmanager
def progress(text: str, total: int | None = None):
    """Progress on stderr while a slow step runs: a spinner, or a bar of `total` steps (advance with the callable
    it yields). Only on a terminal with rich installed; nothing when piped."""
    if not sys.stderr.isatty() or importlib.util.find_spec("rich") is None:
        yield lambda n=1: None
        return
    from rich.console import Console
    console = Console(file=sys.stderr)
    if total is None:
        with console.status(text):
            yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(text, total=total)
        yield lambda n=1: bar.advance(task, n)


def check_destination(path: Path, option: str = "-o") -> None:
    """Refuse an output path that cannot be written before any work is done."""
    parent = path.parent
    if path.is_dir():
        raise SpecError(f"{option} {path}: is a folder", hint=f"give a file name, e.g. {option} {path / 'model.onnx'}")
    if not parent.is_dir():
        raise SpecError(f"{option} {path}: the folder '{parent}' does not exist", hint="create it first, or choose "
                        "another path")
    if not os.access(parent, os.W_OK) or path.exists() and not os.access(path, os.W_OK):
        raise SpecError(f"{option} {path}: cannot write there (permission denied)", hint="choose another path")


def write_output(path: str | None, data: str | bytes, note: str) -> None:
    """A command's result: written atomically to the file `path`, then `note` on stderr; on stdout without one."""
    if not path:
        sys.stdout.write(data.decode() if isinstance(data, bytes) else data)
        return
    from ..output import write_atomic
    write_atomic(path, data)
    print(printable(note), file=sys.stderr)


# ---- options shared by the commands ----

def add_spec_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    p.add_argument("spec", nargs="+" if many else None, help="a zoo name (resnet50) or a path to a .arch file")
    p.add_argument("--variant", help="the variant to build, for a family file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter (repeatable): --set width=1.2")


def add_format_arg(p: argparse.ArgumentParser, choices=("table", "json", "md")) -> None:
    p.add_argument("--format", choices=choices, default=choices[0], help="output format")


def parse_value(text: str, depth: int = 0):
    """A --set value: number (with _ and K/M/G), true/false, [list], or else a string."""
    from ..expressions import parse_number
    t = text.strip()
    if t in ("true", "false"):
        return t == "true"
    if t.startswith("[") and t.endswith("]"):
        if depth > 8:
            raise SpecError(f"--set value nested deeper than 8 lists: {text[:40]}...")
        inner = t[1:-1].strip()
        return [parse_value(x, depth + 1) for x in _split_items(inner, text)] if inner else []
    try:
        return parse_number(t.lstrip("-")) * (-1 if t.startswith("-") else 1)
    except (ValueError, IndexError):
        return t.strip("\"'")


def _split_items(inner: str, text: str) -> list[str]:
    """The top-level comma-separated items of a list's inside ('[4,1],[8,2]' -> '[4,1]', '[8,2]')."""
    items, level, start = [], 0, 0
    for i, c in enumerate(inner):
        if c == "[":
            level += 1
        elif c == "]":
            level -= 1
        elif c == "," and level == 0:
            items.append(inner[start:i])
            start = i + 1
        if level < 0:
            break
    if level != 0:
        raise SpecError(f"--set value has unbalanced brackets: {text[:60]}", hint="for example --set 'stages=[[4,1],[8,2]]'")
    return items + [inner[start:]]


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SpecError(f"--set expects KEY=VALUE, got '{item}'", hint="for example --set width=1.2")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


def name_options(exc: SpecError, args: argparse.Namespace) -> None:
    """Report a mistake in --variant or --set as the command-line option the user typed, not at a spec position."""
    sets = [s for a in ("overrides", "overrides_a", "overrides_b") for s in (getattr(args, a, None) or [])]
    for d in exc.diagnostics:
        if d.arg is None or d.message.startswith("--"):
            continue
        kind, name = d.arg
        if kind == "variant":
            option = f"--variant {name}"
        else:
            typed = [s for s in sets if s.split("=", 1)[0].strip() == name]
            option = f"--set {typed[0] if typed else name + '=...'}"
        d.message = f"{option}: {d.message}"


def load_spec(args: argparse.Namespace, spec: str | None = None):
    from ..loader import load
    return load(spec if spec is not None else args.spec, variant=args.variant, **parse_overrides(args.overrides))
