"""Entry point for ``python -m tasks_app``."""

from tasks_app.cli import main

raise SystemExit(main())
