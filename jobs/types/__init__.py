"""Job types shipped with ApiOps; importing this package registers them all."""

from jobs.types import pg_backup, pg_rebuild, rollout_restart  # noqa: F401
