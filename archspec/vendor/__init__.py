"""Third-party code shipped inside archspec: lark_parser.py, Lark's standalone LALR parser generated for
the grammar by scripts/gen_parser.py (Mozilla Public License 2.0)."""
