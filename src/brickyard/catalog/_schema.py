"""Metastore tables. Portable SQL (SQLite and PostgreSQL); append new migrations, never edit old ones."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0001_initial",
        [
            "CREATE TABLE metastore_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE principals (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                name TEXT NOT NULL UNIQUE,
                display_name TEXT,
                application_id TEXT UNIQUE,
                external_id TEXT,
                active INTEGER NOT NULL DEFAULT 1,
                created_at BIGINT NOT NULL)""",
            """CREATE TABLE group_members (
                group_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
                member_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
                PRIMARY KEY (group_id, member_id))""",
            "CREATE INDEX group_members_member ON group_members(member_id)",
            """CREATE TABLE tokens (
                id TEXT PRIMARY KEY,
                principal_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
                token_hash TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                comment TEXT,
                created_at BIGINT NOT NULL,
                expires_at BIGINT,
                revoked_at BIGINT)""",
            "CREATE INDEX tokens_principal ON tokens(principal_id)",
            """CREATE TABLE sp_secrets (
                id TEXT PRIMARY KEY,
                principal_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
                secret_hash TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT)""",
            """CREATE TABLE securables (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                namespace TEXT NOT NULL,
                full_name TEXT NOT NULL,
                parent_id TEXT REFERENCES securables(id) ON DELETE CASCADE,
                owner TEXT NOT NULL,
                comment TEXT,
                properties TEXT NOT NULL DEFAULT '{}',
                spec TEXT NOT NULL DEFAULT '{}',
                created_at BIGINT NOT NULL,
                created_by TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                updated_by TEXT NOT NULL,
                UNIQUE (namespace, full_name))""",
            "CREATE INDEX securables_parent ON securables(parent_id)",
            """CREATE TABLE grants (
                securable_id TEXT NOT NULL REFERENCES securables(id) ON DELETE CASCADE,
                principal TEXT NOT NULL,
                privilege TEXT NOT NULL,
                granted_by TEXT NOT NULL,
                granted_at BIGINT NOT NULL,
                PRIMARY KEY (securable_id, principal, privilege))""",
            "CREATE INDEX grants_principal ON grants(principal)",
            """CREATE TABLE model_versions (
                model_id TEXT NOT NULL REFERENCES securables(id) ON DELETE CASCADE,
                version INTEGER NOT NULL,
                source TEXT,
                run_id TEXT,
                status TEXT NOT NULL,
                comment TEXT,
                storage_location TEXT,
                spec TEXT NOT NULL DEFAULT '{}',
                created_at BIGINT NOT NULL,
                created_by TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                updated_by TEXT NOT NULL,
                PRIMARY KEY (model_id, version))""",
            """CREATE TABLE model_aliases (
                model_id TEXT NOT NULL,
                alias TEXT NOT NULL,
                version INTEGER NOT NULL,
                PRIMARY KEY (model_id, alias),
                FOREIGN KEY (model_id, version) REFERENCES model_versions(model_id, version) ON DELETE CASCADE)""",
            """CREATE TABLE lineage (
                id TEXT PRIMARY KEY,
                source_id TEXT NOT NULL REFERENCES securables(id) ON DELETE CASCADE,
                target_id TEXT NOT NULL REFERENCES securables(id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                created_by TEXT NOT NULL,
                UNIQUE (source_id, target_id, kind))""",
            """CREATE TABLE audit (
                id TEXT PRIMARY KEY,
                event_time BIGINT NOT NULL,
                principal TEXT NOT NULL,
                action TEXT NOT NULL,
                securable_type TEXT,
                full_name TEXT,
                allowed INTEGER NOT NULL,
                reason TEXT,
                request_params TEXT)""",
            "CREATE INDEX audit_time ON audit(event_time)",
        ],
    ),
]

MIGRATIONS.append(
    (
        "0002_connection_secrets",
        [
            """CREATE TABLE connection_secrets (
                securable_id TEXT PRIMARY KEY REFERENCES securables(id) ON DELETE CASCADE,
                options TEXT NOT NULL)""",
        ],
    )
)

MIGRATIONS.append(
    (
        "0003_serving",
        [
            """CREATE TABLE serving_endpoints (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                creator TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                task TEXT,
                description TEXT,
                config_version INTEGER NOT NULL,
                config TEXT NOT NULL,
                pending_config TEXT,
                ai_gateway TEXT NOT NULL DEFAULT '{}',
                tags TEXT NOT NULL DEFAULT '[]',
                state_ready TEXT NOT NULL,
                state_update TEXT NOT NULL,
                state_message TEXT)""",
            """CREATE TABLE endpoint_acl (
                endpoint_id TEXT NOT NULL REFERENCES serving_endpoints(id) ON DELETE CASCADE,
                principal TEXT NOT NULL,
                level TEXT NOT NULL,
                PRIMARY KEY (endpoint_id, principal))""",
            """CREATE TABLE secret_scopes (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                created_at BIGINT NOT NULL)""",
            """CREATE TABLE secrets (
                scope TEXT NOT NULL REFERENCES secret_scopes(name) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (scope, key))""",
            """CREATE TABLE secret_acl (
                scope TEXT NOT NULL REFERENCES secret_scopes(name) ON DELETE CASCADE,
                principal TEXT NOT NULL,
                permission TEXT NOT NULL,
                PRIMARY KEY (scope, principal))""",
        ],
    )
)

MIGRATIONS.append(
    (
        "0004_vector_search",
        [
            """CREATE TABLE vs_endpoints (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                endpoint_type TEXT NOT NULL,
                creator TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                updated_by TEXT NOT NULL,
                tags TEXT NOT NULL DEFAULT '[]')""",
            """CREATE TABLE vs_indexes (
                securable_id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                endpoint_name TEXT NOT NULL REFERENCES vs_endpoints(name),
                created_at BIGINT NOT NULL)""",
        ],
    )
)

MIGRATIONS.append(
    (
        "0005_tracking",
        [
            """CREATE TABLE ml_experiments (
                experiment_id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                artifact_location TEXT NOT NULL,
                lifecycle_stage TEXT NOT NULL,
                creator TEXT NOT NULL,
                creation_time BIGINT NOT NULL,
                last_update_time BIGINT NOT NULL)""",
            """CREATE TABLE ml_experiment_tags (
                experiment_id TEXT NOT NULL REFERENCES ml_experiments(experiment_id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (experiment_id, key))""",
            """CREATE TABLE ml_experiment_acl (
                experiment_id TEXT NOT NULL REFERENCES ml_experiments(experiment_id) ON DELETE CASCADE,
                principal TEXT NOT NULL,
                level TEXT NOT NULL,
                PRIMARY KEY (experiment_id, principal))""",
            """CREATE TABLE ml_runs (
                run_id TEXT PRIMARY KEY,
                experiment_id TEXT NOT NULL REFERENCES ml_experiments(experiment_id) ON DELETE CASCADE,
                run_name TEXT NOT NULL,
                user_id TEXT NOT NULL,
                status TEXT NOT NULL,
                start_time BIGINT NOT NULL,
                end_time BIGINT,
                lifecycle_stage TEXT NOT NULL,
                artifact_uri TEXT NOT NULL)""",
            "CREATE INDEX ml_runs_experiment ON ml_runs(experiment_id, start_time)",
            """CREATE TABLE ml_params (
                run_id TEXT NOT NULL REFERENCES ml_runs(run_id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (run_id, key))""",
            """CREATE TABLE ml_run_tags (
                run_id TEXT NOT NULL REFERENCES ml_runs(run_id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (run_id, key))""",
            """CREATE TABLE ml_metrics (
                run_id TEXT NOT NULL REFERENCES ml_runs(run_id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value DOUBLE PRECISION,
                is_nan INTEGER NOT NULL,
                timestamp BIGINT NOT NULL,
                step BIGINT NOT NULL,
                model_id TEXT,
                dataset_name TEXT,
                dataset_digest TEXT)""",
            "CREATE INDEX ml_metrics_run ON ml_metrics(run_id, key, step, timestamp)",
            """CREATE TABLE ml_run_inputs (
                run_id TEXT NOT NULL REFERENCES ml_runs(run_id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                body TEXT NOT NULL)""",
            """CREATE TABLE ml_logged_models (
                model_id TEXT PRIMARY KEY,
                experiment_id TEXT NOT NULL REFERENCES ml_experiments(experiment_id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                artifact_uri TEXT NOT NULL,
                status TEXT NOT NULL,
                status_message TEXT,
                model_type TEXT,
                source_run_id TEXT,
                creator TEXT NOT NULL,
                creation_time BIGINT NOT NULL,
                last_update_time BIGINT NOT NULL,
                lifecycle_stage TEXT NOT NULL)""",
            "CREATE INDEX ml_logged_models_experiment ON ml_logged_models(experiment_id)",
            """CREATE TABLE ml_logged_model_tags (
                model_id TEXT NOT NULL REFERENCES ml_logged_models(model_id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (model_id, key))""",
            """CREATE TABLE ml_traces (
                trace_id TEXT PRIMARY KEY,
                experiment_id TEXT NOT NULL REFERENCES ml_experiments(experiment_id) ON DELETE CASCADE,
                request_time BIGINT NOT NULL,
                execution_duration BIGINT NOT NULL,
                state TEXT NOT NULL,
                client_request_id TEXT,
                info TEXT NOT NULL,
                creator TEXT NOT NULL)""",
            "CREATE INDEX ml_traces_experiment ON ml_traces(experiment_id, request_time)",
            """CREATE TABLE ml_trace_tags (
                trace_id TEXT NOT NULL REFERENCES ml_traces(trace_id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (trace_id, key))""",
            """CREATE TABLE ml_assessments (
                assessment_id TEXT PRIMARY KEY,
                trace_id TEXT NOT NULL REFERENCES ml_traces(trace_id) ON DELETE CASCADE,
                body TEXT NOT NULL,
                create_time BIGINT NOT NULL,
                creator TEXT NOT NULL)""",
            """CREATE TABLE prompts (
                name TEXT PRIMARY KEY,
                schema_id TEXT NOT NULL REFERENCES securables(id) ON DELETE CASCADE,
                owner TEXT NOT NULL,
                description TEXT,
                tags TEXT NOT NULL DEFAULT '{}',
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)""",
            """CREATE TABLE prompt_versions (
                name TEXT NOT NULL REFERENCES prompts(name) ON DELETE CASCADE,
                version INTEGER NOT NULL,
                template TEXT NOT NULL,
                description TEXT,
                tags TEXT NOT NULL DEFAULT '{}',
                created_at BIGINT NOT NULL,
                created_by TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (name, version))""",
            """CREATE TABLE prompt_aliases (
                name TEXT NOT NULL,
                alias TEXT NOT NULL,
                version INTEGER NOT NULL,
                PRIMARY KEY (name, alias),
                FOREIGN KEY (name, version) REFERENCES prompt_versions(name, version) ON DELETE CASCADE)""",
            """CREATE TABLE ml_logged_model_params (
                model_id TEXT NOT NULL REFERENCES ml_logged_models(model_id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (model_id, key))""",
        ],
    )
)

MIGRATIONS.append(
    (
        "0006_trace_runs",
        [
            # traces linked to runs (``LinkTracesToRun``): an evaluation's traces belong to its run even when
            # they were recorded outside it
            """CREATE TABLE ml_trace_runs (
                trace_id TEXT NOT NULL REFERENCES ml_traces(trace_id) ON DELETE CASCADE,
                run_id TEXT NOT NULL REFERENCES ml_runs(run_id) ON DELETE CASCADE,
                PRIMARY KEY (trace_id, run_id))""",
            "CREATE INDEX ml_trace_runs_run ON ml_trace_runs(run_id)",
        ],
    )
)

MIGRATIONS.append(
    (
        "0007_scheduled_scorers",
        [
            # scorers that judge an experiment's new traces in the background (``scorer.register/start``)
            """CREATE TABLE eval_scheduled_scorers (
                experiment_id TEXT NOT NULL REFERENCES ml_experiments(experiment_id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                serialized_scorer TEXT NOT NULL,
                builtin_name TEXT,
                sample_rate DOUBLE PRECISION NOT NULL DEFAULT 0,
                filter_string TEXT,
                version INTEGER NOT NULL,
                owner TEXT NOT NULL,
                started_at BIGINT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (experiment_id, name))""",
            # one row per (trace, scorer) the scheduler decided on: never scored twice; ``monitor_row`` is the
            # monitoring table's row, appended to Delta in ``batch`` (idempotently, as Delta app transaction)
            """CREATE TABLE eval_scored (
                trace_id TEXT NOT NULL REFERENCES ml_traces(trace_id) ON DELETE CASCADE,
                scorer TEXT NOT NULL,
                experiment_id TEXT NOT NULL,
                outcome TEXT NOT NULL,
                scored_at BIGINT NOT NULL,
                monitor_row TEXT,
                batch BIGINT,
                PRIMARY KEY (trace_id, scorer))""",
            "CREATE INDEX eval_scored_batch ON eval_scored(experiment_id, batch)",
            """CREATE TABLE eval_backfills (
                job_id TEXT PRIMARY KEY,
                experiment_id TEXT NOT NULL REFERENCES ml_experiments(experiment_id) ON DELETE CASCADE,
                spec TEXT NOT NULL,
                state TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                finished_at BIGINT)""",
        ],
    )
)

MIGRATIONS.append(
    (
        "0008_review_apps",
        [
            # review apps (one per experiment), their labeling sessions and the items reviewers label
            """CREATE TABLE review_apps (
                review_app_id TEXT PRIMARY KEY,
                experiment_id TEXT NOT NULL UNIQUE REFERENCES ml_experiments(experiment_id) ON DELETE CASCADE,
                body TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)""",
            """CREATE TABLE labeling_sessions (
                labeling_session_id TEXT PRIMARY KEY,
                review_app_id TEXT NOT NULL REFERENCES review_apps(review_app_id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                assigned_users TEXT NOT NULL,
                body TEXT NOT NULL,
                mlflow_run_id TEXT,
                created_by TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)""",
            """CREATE TABLE labeling_items (
                item_id TEXT PRIMARY KEY,
                labeling_session_id TEXT NOT NULL REFERENCES labeling_sessions(labeling_session_id) ON DELETE CASCADE,
                position BIGINT NOT NULL,
                source TEXT NOT NULL,
                trace_id TEXT,
                state TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                last_updated_by TEXT NOT NULL,
                last_update_time BIGINT NOT NULL)""",
            "CREATE INDEX labeling_items_session ON labeling_items(labeling_session_id, position)",
        ],
    )
)

MIGRATIONS.append(
    (
        "0009_deployments",
        [
            # agents.deploy: which model version was deployed to which endpoint, and the URLs the client prints
            """CREATE TABLE agent_deployments (
                model_name TEXT NOT NULL,
                model_version TEXT NOT NULL,
                endpoint_name TEXT NOT NULL,
                served_entity_name TEXT NOT NULL,
                query_endpoint TEXT NOT NULL,
                review_app_url TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (model_name, model_version))""",
            # lineage between a securable and a serving endpoint (which is not a securable): a model version
            # served by an endpoint (direction 'down'), an endpoint an agent's model declares ('up')
            """CREATE TABLE endpoint_lineage (
                securable_id TEXT NOT NULL REFERENCES securables(id) ON DELETE CASCADE,
                endpoint_name TEXT NOT NULL,
                direction TEXT NOT NULL,
                edge TEXT NOT NULL,
                detail TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                created_by TEXT NOT NULL,
                PRIMARY KEY (securable_id, endpoint_name, direction, edge, detail))""",
            "CREATE INDEX endpoint_lineage_endpoint ON endpoint_lineage(endpoint_name)",
        ],
    )
)

MIGRATIONS.append(
    (
        "0010_workspace_files",
        [
            # the workspace file system (/api/2.0/workspace): folders, notebooks and files, their bytes kept in
            # <home>/wsfs/<object_id>; grants on an object apply to everything below it
            """CREATE TABLE workspace_objects (
                object_id BIGINT PRIMARY KEY,
                path TEXT NOT NULL UNIQUE,
                parent TEXT,
                object_type TEXT NOT NULL,
                language TEXT,
                owner TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                modified_at BIGINT NOT NULL,
                size BIGINT NOT NULL)""",
            "CREATE INDEX workspace_objects_parent ON workspace_objects(parent)",
            """CREATE TABLE workspace_acl (
                object_id BIGINT NOT NULL REFERENCES workspace_objects(object_id) ON DELETE CASCADE,
                principal TEXT NOT NULL,
                level TEXT NOT NULL,
                PRIMARY KEY (object_id, principal))""",
        ],
    )
)

MIGRATIONS.append(
    (
        "0011_jobs",
        [
            # jobs (settings as JSON), their runs and each run's task runs; logs live in <home>/jobs/runs/<run_id>
            """CREATE TABLE jobs (
                job_id BIGINT PRIMARY KEY,
                creator TEXT NOT NULL,
                run_as TEXT NOT NULL,
                settings TEXT NOT NULL,
                created_at BIGINT NOT NULL)""",
            """CREATE TABLE job_runs (
                run_id BIGINT PRIMARY KEY,
                job_id BIGINT,
                number_in_job BIGINT NOT NULL,
                run_name TEXT NOT NULL,
                creator TEXT NOT NULL,
                run_as TEXT NOT NULL,
                trigger_type TEXT NOT NULL,
                run_type TEXT NOT NULL,
                state TEXT NOT NULL,
                result TEXT,
                message TEXT NOT NULL,
                params TEXT NOT NULL,
                settings TEXT NOT NULL,
                start_time BIGINT NOT NULL,
                end_time BIGINT)""",
            "CREATE INDEX job_runs_job ON job_runs(job_id)",
            """CREATE TABLE job_task_runs (
                run_id BIGINT PRIMARY KEY,
                parent_run_id BIGINT NOT NULL REFERENCES job_runs(run_id) ON DELETE CASCADE,
                task_key TEXT NOT NULL,
                state TEXT NOT NULL,
                result TEXT,
                message TEXT NOT NULL,
                attempt BIGINT NOT NULL,
                start_time BIGINT,
                end_time BIGINT,
                output TEXT,
                pid BIGINT)""",
            "CREATE INDEX job_task_runs_parent ON job_task_runs(parent_run_id)",
            """CREATE TABLE job_acl (
                job_id BIGINT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
                principal TEXT NOT NULL,
                level TEXT NOT NULL,
                PRIMARY KEY (job_id, principal))""",
            # generic webhooks jobs notify (the config, URL and password included, sealed with the secret key)
            """CREATE TABLE notification_destinations (
                id TEXT PRIMARY KEY,
                display_name TEXT NOT NULL,
                config TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at BIGINT NOT NULL)""",
        ],
    )
)

MIGRATIONS.append(
    (
        "0012_apps",
        [
            # a token may be limited to API families (Databricks OAuth scopes, JSON list): an app's user token
            "ALTER TABLE tokens ADD COLUMN scopes TEXT",
            # apps: the desired compute state, the running process (port, pid) and the service principal made for
            # it; the grants its declared resources gave that principal, so that delete takes back exactly those
            """CREATE TABLE apps (
                name TEXT PRIMARY KEY,
                id TEXT NOT NULL,
                description TEXT,
                creator TEXT NOT NULL,
                updater TEXT NOT NULL,
                sp_id TEXT NOT NULL,
                sp_name TEXT NOT NULL,
                resources TEXT NOT NULL,
                user_api_scopes TEXT NOT NULL,
                granted TEXT NOT NULL,
                compute_state TEXT NOT NULL,
                compute_message TEXT NOT NULL,
                app_state TEXT NOT NULL,
                app_message TEXT NOT NULL,
                active_deployment TEXT,
                pending_deployment TEXT,
                port BIGINT,
                pid BIGINT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)""",
            """CREATE TABLE app_deployments (
                deployment_id TEXT PRIMARY KEY,
                app_name TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
                source_code_path TEXT NOT NULL,
                mode TEXT NOT NULL,
                command TEXT NOT NULL,
                env TEXT NOT NULL,
                state TEXT NOT NULL,
                message TEXT NOT NULL,
                creator TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                pid BIGINT)""",
            "CREATE INDEX app_deployments_app ON app_deployments(app_name)",
            """CREATE TABLE app_acl (
                app_name TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
                principal TEXT NOT NULL,
                level TEXT NOT NULL,
                PRIMARY KEY (app_name, principal))""",
        ],
    )
)

MIGRATIONS.append(
    (
        "0013_sql_queries",
        [
            # saved queries (w.queries): the query's fields as JSON; ACTIVE or TRASHED
            """CREATE TABLE sql_queries (
                id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                modifier TEXT NOT NULL,
                body TEXT NOT NULL,
                state TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)""",
            """CREATE TABLE sql_query_acl (
                query_id TEXT NOT NULL REFERENCES sql_queries(id) ON DELETE CASCADE,
                principal TEXT NOT NULL,
                level TEXT NOT NULL,
                PRIMARY KEY (query_id, principal))""",
        ],
    )
)
