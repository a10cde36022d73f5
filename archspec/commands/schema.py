"""archspec schema: print the JSON Schema of the IR (what `archspec analyze --format ir` writes)."""
from __future__ import annotations

import json

from . import command


def configure(p):
    p.add_argument("--indent", type=int, default=2, help="JSON indentation (0 for one line)")


@command("schema", "Print the JSON Schema of the IR (archspec.ir.Architecture).", configure)
def run(args) -> int:
    from ..ir import Architecture
    schema = Architecture.model_json_schema()
    schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    print(json.dumps(schema, indent=args.indent or None))
    return 0
