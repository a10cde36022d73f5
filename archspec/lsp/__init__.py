"""Language server for archspec (`archspec lsp`); needs the `lsp` extra (pygls)."""
