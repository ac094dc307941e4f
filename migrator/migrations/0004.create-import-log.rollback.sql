DROP TABLE import_rejects;
DROP TABLE import_runs;
