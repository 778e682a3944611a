"""``manage.py ops_pg_backup NAMESPACE STATEFULSET [--ordinal N] [--wait]``: the ``pg-backup``
job (``POST /ops/jobs/pg-backup``) as actor ``cli:<OS user>``; prints its id, and with
``--wait`` follows it (exit 0 when the snapshot is ready to use, 1 otherwise)."""

from jobs.command import JobStartCommand


class Command(JobStartCommand):
    job_type = "pg-backup"
