"""archspec fmt: rewrite specs in canonical form (or, with --check, list the ones that are not)."""
from __future__ import annotations

import sys
from pathlib import Path

from . import command
from ..errors import SpecError, printable
from ..output import write_atomic


def configure(p):
    p.add_argument("paths", nargs="+", metavar="PATH", help=".arch files or folders (searched for *.arch); "
                   "'-' formats standard input to standard output")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    p.add_argument("--diff", action="store_true", help="print a unified diff of the changes instead of writing")


def files(paths: list[str]) -> list[Path]:
    """The .arch files named by the arguments, folders searched recursively, in order, without repeats."""
    return list(_files(paths))


def _files(paths: list[str]) -> dict[Path, Path]:
    """file -> the folder it was found in (the folder argument, or a file argument's own folder)."""
    out: dict[Path, Path] = {}
    for p in map(Path, paths):
        found = sorted(p.rglob("*.arch")) if p.is_dir() else [p]
        for f in found:
            out.setdefault(f, p if p.is_dir() else f.parent)
    return out


def _target(path: Path, folder: Path) -> Path:
    """The file to write for `path`: itself, or the file its symlink names if that stays in `folder`."""
    real = path.resolve()
    if not real.is_relative_to(folder.resolve()):
        raise SpecError(f"{path} is a symlink to {real}, outside {folder}: not rewritten",
                        hint="format the file where it lives")
    return real


@command("fmt", "Rewrite specs in canonical form (4-space indents, operator spacing), keeping comments.", configure)
def run(args) -> int:
    import difflib

    from ..formatter import format_text
    from ..limits import DEFAULT_LIMITS
    from ..loader import read_text_bounded
    limit = DEFAULT_LIMITS.max_file_bytes
    if args.paths == ["-"]:
        text = sys.stdin.read(limit + 1)
        if len(text) > limit:
            raise SpecError(f"standard input is over the limit of {limit:,} characters for a spec")
        sys.stdout.write(format_text(text, "<stdin>"))
        return 0
    changed = failed = 0
    found = _files(args.paths)
    targets = list(found)
    for path in targets:
        if not path.is_file():
            print(f"error: no such spec file: {printable(str(path))}", file=sys.stderr)
            failed += 1
            continue
        text = None
        try:
            text = read_text_bounded(path, limit, "spec file")
            new = format_text(text, str(path))
        except SpecError as exc:
            if text is not None:
                exc.sources[str(path)] = text
            print(exc.render(), file=sys.stderr)
            failed += 1
            continue
        if new == text:
            continue
        changed += 1
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                       f"{path} (before)", f"{path} (formatted)"))
        elif args.check:
            print(f"would reformat {printable(str(path))}")
        else:
            try:
                write_atomic(_target(path, found[path]), new)
            except SpecError as exc:
                print(exc.render(), file=sys.stderr)
                failed += 1
                continue
            print(f"reformatted {printable(str(path))}")
    verb = "would be reformatted" if args.check or args.diff else "reformatted"
    print(f"{changed} of {len(targets)} file{'s' if len(targets) != 1 else ''} {verb}"
          + (f", {failed} failed" if failed else ""), file=sys.stderr)
    return 1 if failed or (changed and (args.check or args.diff)) else 0
