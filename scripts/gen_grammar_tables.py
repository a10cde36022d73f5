"""Regenerate grammar/archspec.lark.json, the parser tables loaded at start-up (run after editing the grammar)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from archspec.parser import _tables_file, tables_json  # noqa: E402

_tables_file().write_text(tables_json() + "\n", encoding="utf-8")
print(f"wrote {_tables_file()}")
