"""``python -m judgealign`` runs the command-line interface."""

from judgealign._cli import main

raise SystemExit(main())
