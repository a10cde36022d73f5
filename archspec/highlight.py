"""A Pygments lexer for .arch specs, registered as the `archspec` lexer (entry point `pygments.lexers`), so
that Sphinx, MkDocs and `pygmentize` highlight specs. Imported only by Pygments: `import archspec` does not
load it. Op names come from the op table, keywords from the grammar (grammar/archspec.lark)."""
from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

from .ops import REGISTRY

from .lsp.features import BUILTINS, KEYWORDS

DECLARATIONS = ("arch", "param", "input", "variant", "block", "network", "use", "init", "budget")
OPERATORS = ("and", "or", "not", "in")
CONSTANTS = ("true", "false")
STATEMENTS = tuple(k for k in KEYWORDS if k not in DECLARATIONS + OPERATORS + CONSTANTS)


class ArchspecLexer(RegexLexer):
    name = "archspec"
    aliases = ["archspec", "arch"]
    filenames = ["*.arch"]
    mimetypes = ["text/x-archspec"]
    url = "https://github.com/archspec/archspec"

    tokens = {
        "root": [
            (r"[ \t\f]+", Whitespace),
            (r"\r?\n", Whitespace),
            (r"\\\r?\n", Text),  # a line continuation
            (r"#[^\n]*", Comment.Single),
            (r'"[^"\n]*"|\'[^\'\n]*\'', String),
            (r"(block|variant|arch)([ \t]+)([A-Za-z_][A-Za-z0-9_]*)",
             bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (r"(param|input|init)([ \t]+)([A-Za-z_][A-Za-z0-9_]*)",
             bygroups(Keyword.Declaration, Whitespace, Name.Variable)),
            (words(DECLARATIONS, suffix=r"\b"), Keyword.Declaration),
            (words(STATEMENTS, suffix=r"\b"), Keyword),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(OPERATORS, suffix=r"\b"), Operator.Word),
            (r"(\d[\d_]*(\.\d[\d_]*)?|\.\d[\d_]*)([eE][+-]?\d+)?[KMG]?\b", Number),
            (r"[A-Za-z_][A-Za-z0-9_]*(?=[ \t]*:)", Name.Label),
            (words(tuple(REGISTRY), suffix=r"(?=[ \t]*\()"), Name.Builtin),
            (words(BUILTINS, suffix=r"(?=[ \t]*\()"), Name.Builtin.Pseudo),
            (r"[A-Za-z_][A-Za-z0-9_]*(?=[ \t]*\()", Name.Function),
            (r"[A-Za-z_][A-Za-z0-9_]*", Name),
            (r"==|!=|<=|>=|\*\*|//|[-+*/%<>=]", Operator),
            (r"[()\[\]{},;:.]", Punctuation),
        ],
    }
