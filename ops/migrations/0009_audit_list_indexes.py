"""The audit list's indexes for tables of millions of rows (see ops.pagination and the admin
search), built and dropped concurrently: audit rows keep being written meanwhile."""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("ops", "0008_audit_chain"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="opslog",
            index=models.Index(
                fields=["-ts", "-id"],
                include=("namespace", "status", "action", "actor"),
                name="ops_log_ts_cover_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="opslog",
            index=models.Index(
                fields=["status", "action", "namespace", "actor", "-ts"],
                include=("id",),
                name="ops_log_filters_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="opslog",
            index=models.Index(
                fields=["namespace", "-ts"], include=("id",), name="ops_log_ns_ts_id_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="opslog",
            index=models.Index(
                fields=["actor", "-ts"], include=("id",), name="ops_log_actor_ts_id_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="opslog",
            index=models.Index(
                fields=["resource_name"],
                name="ops_log_name_prefix_idx",
                opclasses=["text_pattern_ops"],
            ),
        ),
        AddIndexConcurrently(
            model_name="opslog",
            index=models.Index(
                fields=["source_ip"], name="ops_log_ip_prefix_idx", opclasses=["text_pattern_ops"]
            ),
        ),
        RemoveIndexConcurrently(
            model_name="opslog",
            name="ops_log_ts_idx",
        ),
        RemoveIndexConcurrently(
            model_name="opslog",
            name="ops_log_ns_ts_idx",
        ),
        RemoveIndexConcurrently(
            model_name="opslog",
            name="ops_log_actor_ts_idx",
        ),
        RemoveIndexConcurrently(
            model_name="opslog",
            name="ops_log_status_ts_idx",
        ),
        RemoveIndexConcurrently(
            model_name="opslog",
            name="ops_log_action_ts_idx",
        ),
        RemoveIndexConcurrently(
            model_name="opslog",
            name="ops_log_ns_status_ts_idx",
        ),
    ]
