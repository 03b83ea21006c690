"""``python -m judgealign`` runs the command-line interface."""

from judgealign.cli._main import main

raise SystemExit(main())
