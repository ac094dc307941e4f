-- depends: 0002.add-json-server-query-support
-- What each `python -m seed import` did, and every record it did not import, verbatim, so a
-- person can find it, fix it and import it again (dry runs write nothing here).

CREATE TABLE import_runs (
    id bigint GENERATED ALWAYS AS IDENTITY,
    source text NOT NULL,
    mode text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    counts jsonb NOT NULL,
    CONSTRAINT import_runs_pkey PRIMARY KEY (id),
    CONSTRAINT import_runs_mode_known CHECK (mode IN ('insert', 'upsert'))
);

CREATE TABLE import_rejects (
    run_id bigint NOT NULL,
    position bigint,
    collection text NOT NULL DEFAULT 'patients',
    reason text NOT NULL,
    record text NOT NULL,
    CONSTRAINT import_rejects_run_fkey FOREIGN KEY (run_id) REFERENCES import_runs (id)
        ON DELETE CASCADE
);

CREATE INDEX import_rejects_run_position ON import_rejects (run_id, position);
