"""``manage.py ops_pg_rebuild NAMESPACE STATEFULSET ORDINAL TARGET_REPLICAS [--strategy
in-place|scale-to-zero] [--allow-outage] [--allow-scale-down] [--wait]``.

Starts the same job as ``POST /ops/jobs/pg-rebuild`` (same rules, same audit row, actor
``cli:<OS user>``) and prints its id. The job is run by the django-q2 worker (``make run``
starts one); with ``--wait`` this command only watches the job's rows and shows its steps as
they move, then exits 0 when the job succeeded and 1 when it did not.
"""

from jobs.command import JobStartCommand


class Command(JobStartCommand):
    job_type = "pg-rebuild"
