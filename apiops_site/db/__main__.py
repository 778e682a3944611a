"""``python -m apiops_site.db start|stop|status``: the embedded PostgreSQL without Django.

``make run`` starts the server this way (a child it can interrupt), ``make stop`` stops it;
``manage.py embedded_db`` does the same from Django's command line.
"""

from __future__ import annotations

import sys

from apiops_site import db


def main(argv: list[str]) -> int:
    """Entry point: one action argument."""
    if len(argv) != 1:
        print("usage: python -m apiops_site.db start|stop|status", file=sys.stderr)
        return 2
    status, line = db.control(argv[0])
    print(line, file=sys.stderr if status == 2 else sys.stdout, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
