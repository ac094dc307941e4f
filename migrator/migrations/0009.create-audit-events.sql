-- depends: 0008.create-users
-- The audit trail: one event per change of a patient record (create, replace, update, delete),
-- written in the same statement as the change, and one per import run. Append-only: a trigger
-- refuses UPDATE, DELETE and TRUNCATE for every role that does not drop it first (see
-- docs/audit.md for retention). `before`/`after` are the records' stored wire JSON.

CREATE TABLE audit_events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    user_id bigint,
    action text NOT NULL,
    patient_id bigint,
    before jsonb,
    after jsonb,
    request_id text,
    import_run_id bigint,
    details jsonb,
    CONSTRAINT audit_events_pkey PRIMARY KEY (id),
    CONSTRAINT audit_events_user_fkey FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT audit_events_import_run_fkey FOREIGN KEY (import_run_id) REFERENCES import_runs (id),
    CONSTRAINT audit_events_action_known
        CHECK (action IN ('create', 'replace', 'update', 'delete', 'import')),
    CONSTRAINT audit_events_names_its_target
        CHECK ((action = 'import') = (patient_id IS NULL AND import_run_id IS NOT NULL))
);

-- Newest first (id descending) under each filter of GET /audit.
CREATE INDEX audit_events_patient ON audit_events (patient_id, id);
CREATE INDEX audit_events_user ON audit_events (user_id, id);
CREATE INDEX audit_events_action ON audit_events (action, id);
CREATE INDEX audit_events_occurred ON audit_events (occurred_at, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
