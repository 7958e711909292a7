"""``python -m pipeline`` runs the ``conform`` command line."""

from __future__ import annotations

from .cli import main

main()
