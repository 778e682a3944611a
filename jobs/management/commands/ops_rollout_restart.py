"""``manage.py ops_rollout_restart NAMESPACE KIND NAME [--wait]``: the ``rollout-restart``
job (``POST /ops/jobs/rollout-restart``) as actor ``cli:<OS user>``; prints its id, and with
``--wait`` follows it (exit 0 when every pod is replaced, 1 otherwise)."""

from jobs.command import JobStartCommand


class Command(JobStartCommand):
    job_type = "rollout-restart"
