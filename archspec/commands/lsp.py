"""archspec lsp: the language server for editors, over stdio (needs the `lsp` extra: pygls)."""
from __future__ import annotations

from . import command
from ..errors import SpecError


def configure(p):
    p.add_argument("--stdio", action="store_true", help="talk over standard input and output (the default; "
                   "accepted because editors pass it)")


@command("lsp", "Run the language server (diagnostics, hover with shapes and costs, completion...) over stdio.",
         configure)
def run(args) -> int:
    try:
        from ..lsp.server import main
    except ImportError as exc:
        raise SpecError(f"the language server needs pygls and lsprotocol ({exc.name or exc} is missing)",
                        hint="pip install 'archspec-dsl[lsp]'") from None
    return main()
