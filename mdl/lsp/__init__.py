"""The mdl language server (`mdlc lsp`, `python -m mdl.lsp`): see `mdl.lsp.server`."""
