"""The files `cd-checks init` writes, as templates with @TOKEN@ placeholders (package data)."""
