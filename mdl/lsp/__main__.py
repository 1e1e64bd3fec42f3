"""`python -m mdl.lsp`: the language server on stdio."""

from mdl.lsp.server import main

raise SystemExit(main())
