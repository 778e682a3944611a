"""The provable audit: ``audit_id`` on every row, the hash chain over finished rows, and the
trigger that keeps finished rows as they were (see ops/chain.py).

Rows already there get an ``audit_id`` and are chained in ``id`` order (the order they were
written); rows still ``pending`` are chained when they are finished, like new ones.
"""

import uuid

from django.contrib.postgres.functions import RandomUUID
from django.db import migrations, models

from ops import chain

GUARD = r"""
CREATE FUNCTION ops_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'ops_log row % is audit history: it cannot be deleted', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.chain_seq IS NOT NULL OR OLD.status <> 'pending') THEN
        RAISE EXCEPTION 'ops_log row % is finished: it cannot be changed', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.status = 'pending' THEN
        NEW.row_hash := NULL;
        NEW.chain_seq := NULL;
        NEW.chain_hash := NULL;
        RETURN NEW;
    END IF;
    IF NEW.row_hash IS NULL OR NEW.row_hash !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'a finished ops_log row needs its row_hash (see ops/chain.py)'
            USING ERRCODE = 'not_null_violation';
    END IF;
    -- The head row's lock orders concurrent finishers: one chain, no gap, no fork.
    INSERT INTO ops_log_chain AS c (id, size, head)
    VALUES (1, 1, encode(sha256(convert_to(repeat('0', 64) || ':' || NEW.id || ':'
                                           || NEW.row_hash, 'UTF8')), 'hex'))
    ON CONFLICT (id) DO UPDATE
        SET size = c.size + 1,
            head = encode(sha256(convert_to(c.head || ':' || NEW.id || ':' || NEW.row_hash,
                                            'UTF8')), 'hex')
    RETURNING c.size, c.head INTO NEW.chain_seq, NEW.chain_hash;
    RETURN NEW;
END $$;

CREATE FUNCTION ops_log_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is audit history: it cannot be truncated', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- The head is written by ops_log_guard only (a trigger inside a trigger: depth 2).
CREATE FUNCTION ops_log_chain_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'ops_log_chain is written by the ops_log trigger only'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER ops_log_guard BEFORE INSERT OR UPDATE OR DELETE ON ops_log
    FOR EACH ROW EXECUTE FUNCTION ops_log_guard();
CREATE TRIGGER ops_log_refuse_truncate BEFORE TRUNCATE ON ops_log
    FOR EACH STATEMENT EXECUTE FUNCTION ops_log_refuse_truncate();
CREATE TRIGGER ops_log_chain_guard BEFORE INSERT OR UPDATE OR DELETE ON ops_log_chain
    FOR EACH ROW EXECUTE FUNCTION ops_log_chain_guard();
CREATE TRIGGER ops_log_chain_refuse_truncate BEFORE TRUNCATE ON ops_log_chain
    FOR EACH STATEMENT EXECUTE FUNCTION ops_log_refuse_truncate();
"""

UNGUARD = """
DROP TRIGGER ops_log_chain_refuse_truncate ON ops_log_chain;
DROP TRIGGER ops_log_chain_guard ON ops_log_chain;
DROP TRIGGER ops_log_refuse_truncate ON ops_log;
DROP TRIGGER ops_log_guard ON ops_log;
DROP FUNCTION ops_log_chain_guard();
DROP FUNCTION ops_log_refuse_truncate();
DROP FUNCTION ops_log_guard();
"""


def chain_existing_rows(apps, schema_editor):
    """Give every row an audit_id, and chain the finished ones in id order."""
    OpsLog = apps.get_model("ops", "OpsLog")
    Head = apps.get_model("ops", "AuditChainHead")
    db = schema_editor.connection.alias
    layout = chain.Layout.of(OpsLog)
    size, head = 0, chain.GENESIS
    for row in OpsLog.objects.using(db).order_by("id").iterator(chunk_size=2000):
        row.audit_id = uuid.uuid4()
        fields = ["audit_id"]
        if row.status != "pending":
            values = [getattr(row, f.attname) for f in chain.content_fields(OpsLog)]
            row.row_hash = chain.digest(layout.canonical(values, json_as_text=False))
            size += 1
            head = chain.link(head, row.id, row.row_hash)
            row.chain_seq, row.chain_hash = size, head
            fields += ["row_hash", "chain_seq", "chain_hash"]
        row.save(using=db, update_fields=fields)
    if size:
        Head.objects.using(db).create(id=1, size=size, head=head)


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0007_notifications"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditChainHead",
            fields=[
                ("id", models.PositiveSmallIntegerField(primary_key=True, serialize=False)),
                ("size", models.BigIntegerField()),
                ("head", models.CharField(max_length=64)),
            ],
            options={"db_table": "ops_log_chain"},
        ),
        migrations.AddField(
            model_name="opslog",
            name="audit_id",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="opslog",
            name="row_hash",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="opslog",
            name="chain_seq",
            field=models.BigIntegerField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.AddField(
            model_name="opslog",
            name="chain_hash",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.RunPython(chain_existing_rows, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="opslog",
            name="audit_id",
            field=models.UUIDField(
                db_default=RandomUUID(), default=uuid.uuid4, editable=False, unique=True
            ),
        ),
        migrations.AddIndex(
            model_name="opslog",
            index=models.Index(
                condition=models.Q(chain_seq__isnull=True),
                fields=["id"],
                name="ops_log_unchained_idx",
            ),
        ),
        migrations.RunSQL(GUARD, UNGUARD),
    ]
