"""Versioned schema migrations, shared by the engines.

Each entry is applied once, in order, and the applied version is recorded in ``schema_version``. The SQL
is the common subset of SQLite and PostgreSQL (REAL timestamps as epoch seconds, TEXT JSON), so one list
serves both engines.
"""

from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS tasks (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            context_id TEXT NOT NULL,
            state TEXT NOT NULL,
            owner TEXT NOT NULL,
            owner_roles TEXT NOT NULL,
            agent TEXT,
            status TEXT NOT NULL,
            artifacts TEXT NOT NULL,
            metadata TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS tasks_tenant_state ON tasks (tenant, state)",
        """CREATE TABLE IF NOT EXISTS history (
            task_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            message TEXT NOT NULL,
            PRIMARY KEY (task_id, seq)
        )""",
        """CREATE TABLE IF NOT EXISTS approvals (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            policy TEXT,
            tool TEXT,
            action TEXT NOT NULL,
            form TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            requester_roles TEXT NOT NULL,
            session_id TEXT,
            user_input TEXT NOT NULL,
            channels TEXT NOT NULL,
            token_hash TEXT,
            fingerprint TEXT,
            run_id TEXT,
            second_pair INTEGER NOT NULL DEFAULT 0,
            expires_at REAL NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            resolved_at REAL,
            resolved_by TEXT,
            surface TEXT,
            resolution TEXT,
            reason TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS approvals_pending ON approvals (tenant, status, created_at)",
        "CREATE INDEX IF NOT EXISTS approvals_task ON approvals (task_id, created_at)",
        "CREATE INDEX IF NOT EXISTS approvals_expiry ON approvals (status, expires_at)",
        """CREATE TABLE IF NOT EXISTS policies (
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (tenant, name)
        )""",
        """CREATE TABLE IF NOT EXISTS channels (
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            config TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (tenant, name)
        )""",
        """CREATE TABLE IF NOT EXISTS outbox (
            id INTEGER PRIMARY KEY {autoincrement},
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            delivered_at REAL,
            last_error TEXT,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, next_attempt_at)",
        """CREATE TABLE IF NOT EXISTS audit (
            seq INTEGER PRIMARY KEY {autoincrement},
            at REAL NOT NULL,
            tenant TEXT NOT NULL,
            kind TEXT NOT NULL,
            actor TEXT NOT NULL,
            subject TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
    ],
    [
        """CREATE TABLE IF NOT EXISTS push_configs (
            id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            url TEXT NOT NULL,
            token TEXT,
            authentication TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (task_id, id)
        )""",
        """CREATE TABLE IF NOT EXISTS agents (
            name TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            card TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS tasks_tenant_context ON tasks (tenant, context_id, updated_at)",
        "CREATE INDEX IF NOT EXISTS tasks_tenant_updated ON tasks (tenant, updated_at)",
    ],
    [
        """CREATE TABLE IF NOT EXISTS events (
            seq INTEGER PRIMARY KEY {autoincrement},
            at REAL NOT NULL,
            tenant TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS events_tenant_seq ON events (tenant, seq)",
        """CREATE TABLE IF NOT EXISTS run_grants (
            tenant TEXT NOT NULL,
            agent TEXT NOT NULL,
            run_id TEXT NOT NULL,
            granted_by TEXT NOT NULL,
            expires_at REAL NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (tenant, agent, run_id)
        )""",
        "CREATE INDEX IF NOT EXISTS approvals_run ON approvals (tenant, run_id, status)",
    ],
    [
        # a page of pending approvals in its exact order (created_at, then id) with no sort at all, even
        # when many share a created_at
        "CREATE INDEX IF NOT EXISTS approvals_pending_page ON approvals (tenant, status, created_at, id)",
        "DROP INDEX IF EXISTS approvals_pending",
    ],
    [
        # a run grant covers the calls of the caller whose held calls were approved, not any caller naming
        # the same agent (an agent name is a label the caller states); grants are short-lived, so the old
        # ones are dropped rather than guessed at
        "DROP TABLE IF EXISTS run_grants",
        """CREATE TABLE run_grants (
            tenant TEXT NOT NULL,
            caller TEXT NOT NULL,
            agent TEXT NOT NULL,
            run_id TEXT NOT NULL,
            granted_by TEXT NOT NULL,
            expires_at REAL NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (tenant, caller, agent, run_id)
        )""",
    ],
    [
        # which events a channel takes (NULL: all of them)
        "ALTER TABLE channels ADD COLUMN events TEXT",
        # a row's tenant, so an admin lists only their own deliveries; a dead row used up its attempts
        "ALTER TABLE outbox ADD COLUMN tenant TEXT",
        "ALTER TABLE outbox ADD COLUMN dead_at REAL",
        "CREATE INDEX IF NOT EXISTS outbox_tenant ON outbox (tenant, id)",
        # what a channel posted for an approval (a Slack message's channel and ts), so it can be updated
        """CREATE TABLE IF NOT EXISTS channel_messages (
            approval_id TEXT NOT NULL,
            channel TEXT NOT NULL,
            tenant TEXT NOT NULL,
            ref TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (approval_id, channel)
        )""",
    ],
    [
        # dashboard sessions, kept by the SHA-256 of the cookie's token; ended by logout or their expiry
        """CREATE TABLE IF NOT EXISTS dashboard_sessions (
            token_hash TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            sub TEXT NOT NULL,
            roles TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS dashboard_sessions_expiry ON dashboard_sessions (expires_at)",
        # the ids of login links already used (single use: one conditional insert)
        """CREATE TABLE IF NOT EXISTS login_links (
            id TEXT PRIMARY KEY,
            used_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )""",
    ],
    [
        # the audit trail's head (its last entry's seq and hash, signed), written in the same transaction as
        # each entry: deleting the trail's last entries leaves the head naming one the trail no longer has.
        # A trail kept before this starts from its last entry, unsigned until the next entry signs it.
        """CREATE TABLE IF NOT EXISTS audit_head (
            id INTEGER PRIMARY KEY,
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL,
            mac TEXT NOT NULL
        )""",
        "INSERT INTO audit_head (id, seq, hash, mac) SELECT 1, seq, hash, '' FROM audit "
        "WHERE seq = (SELECT MAX(seq) FROM audit)",
    ],
    [
        # a quorum: how many distinct approvers a hold needs, and the approvals given so far (JSON list of
        # {by, at, surface}); the last one needed is the conditional write that approves
        "ALTER TABLE approvals ADD COLUMN approvals_required INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE approvals ADD COLUMN approvals TEXT NOT NULL DEFAULT '[]'",
        # escalation: when a still-pending hold is sent to more channels, which ones, and when it was (once)
        "ALTER TABLE approvals ADD COLUMN escalate_at REAL",
        "ALTER TABLE approvals ADD COLUMN escalate_to TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE approvals ADD COLUMN escalated_at REAL",
        "CREATE INDEX IF NOT EXISTS approvals_escalation ON approvals (status, escalate_at)",
        # approve with edits: whether the policy let approvers change the call, and the call as approved
        "ALTER TABLE approvals ADD COLUMN allow_edits INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE approvals ADD COLUMN edited_action TEXT",
    ],
    [
        # each policy decision's action (tool, agent, arguments masked where a form marks them sensitive, text),
        # written with the decision's audit entry (``seq`` is that entry's) so a policy change can be tried
        # against what agents really did (a dry-run). No primary key: the rows are read by tenant newest first
        # and pruned by age, the two indexes below, and a third index would only slow the allow path down.
        """CREATE TABLE IF NOT EXISTS decisions (
            seq BIGINT NOT NULL,
            tenant TEXT NOT NULL,
            at REAL NOT NULL,
            task_id TEXT NOT NULL,
            agent TEXT,
            tool TEXT,
            action TEXT NOT NULL,
            enforcement TEXT NOT NULL,
            policy TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS decisions_tenant_newest ON decisions (tenant, at, seq)",
        "CREATE INDEX IF NOT EXISTS decisions_age ON decisions (at)",
    ],
    [
        # the whole history of a task that ended in its first turn (allowed, blocked, answered at once), as a
        # JSON array in the task's own row: such a task takes no more messages, so its history is written once,
        # with the task, instead of as rows of ``history`` (NULL: the history is in ``history``, as before)
        "ALTER TABLE tasks ADD COLUMN history TEXT",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
