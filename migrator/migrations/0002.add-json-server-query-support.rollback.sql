DROP INDEX patients_extra_path_ops;
DROP INDEX patients_search_text_trgm;
DROP FUNCTION patients_json(patients);
ALTER TABLE patients DROP COLUMN search_text;
DROP FUNCTION patients_search_text(bigint, text, text, integer, text, text, date, jsonb);
DROP FUNCTION json_server_date(date);
DROP FUNCTION json_server_text(jsonb);
