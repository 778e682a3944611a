"""``python -m opsctl``."""

from opsctl.cli import main

raise SystemExit(main())
