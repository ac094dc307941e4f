-- depends: 0005.inline-record-functions
-- Lists at scale (issue 3): what a list reads is stored, not computed on every read.
--   patients.wire      each record's wire JSON, the same text as patients_json(p), kept by
--                      PostgreSQL: a list is a string_agg of stored text (~1 us a row instead
--                      of ~12 us for patients_json), the whole list of 100,000 patients ~0.15 s
--   patients_counts    the number of patients as a sum of a few deltas, kept by statement-level
--                      triggers: an unfiltered X-Total-Count without count(*) over the table
--   patients_name_c_utf8_trgm  name_like's index, in the collation its comparison now names
-- Every write pays for the first two: +4.9 us a row for wire, nothing measurable for the count
-- (one statement-level trigger per statement); dropping patients_extra_path_ops saves ~2 us.

-- A JSON string literal of `s`, as json_build_object writes it. Most values need no escaping and
-- are just quoted; the others go through json_object, which escapes exactly like json_build_object.
-- Not STRICT and a single expression, so that PostgreSQL inlines it (a call costs ~27 us a row).
CREATE FUNCTION json_server_string(s text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN s ~ '[\x01-\x1f"\\]' THEN left(substr(json_object(ARRAY['', s])::text, 7), -1)
                ELSE '"' || s || '"' END
$$;

-- patients_json's text, spelled with IMMUTABLE pieces only (a generated column needs them;
-- json_build_object and to_char are STABLE). Every write computes it, so it is built for cost
-- (INSERT ... SELECT of 100,000 rows into a bare table: +4.9 us a row; json_build_object would
-- not be allowed, and patients_json costs ~12): one regular expression decides whether any text
-- needs escaping (almost none does), patient_id and name are NOT NULL so need no coalesce, and
-- the date is json_server_date's YYYY-MM-DD from date_part (immutable for a date; extract's
-- numeric is slower).
CREATE FUNCTION patients_wire(
    id bigint, patient_id text, name text, age integer, gender text,
    medical_condition text, last_visit date, extra jsonb
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{"id":' || id::text
        || CASE WHEN patient_id || name || coalesce(gender, '') || coalesce(medical_condition, '')
                     ~ '[\x01-\x1f"\\]'
            THEN ',"patientID":' || json_server_string(patient_id)
                || ',"name":' || json_server_string(name)
                || coalesce(',"age":' || age::text, '')
                || coalesce(',"gender":' || json_server_string(gender), '')
                || coalesce(',"medicalCondition":' || json_server_string(medical_condition), '')
            ELSE ',"patientID":"' || patient_id || '","name":"' || name || '"'
                || coalesce(',"age":' || age::text, '')
                || coalesce(',"gender":"' || gender || '"', '')
                || coalesce(',"medicalCondition":"' || medical_condition || '"', '')
            END
        || coalesce(',"lastVisit":"'
            || substr((10000 + date_part('year', last_visit)::integer)::text, 2) || '-'
            || substr((100 + date_part('month', last_visit)::integer)::text, 2) || '-'
            || substr((100 + date_part('day', last_visit)::integer)::text, 2) || '"', '')
        || CASE WHEN extra = '{}'::jsonb THEN '}' ELSE ', ' || substr(extra::text, 2) END
$$;

ALTER TABLE patients ADD COLUMN wire text GENERATED ALWAYS AS (
    patients_wire(id, patient_id, name, age, gender, medical_condition, last_visit, extra)
) STORED;

-- The count is a sum of deltas, one row per writing statement, folded together by each writing
-- statement. A single counter row would be simpler, but every insert would then wait for the row
-- lock of any transaction that inserted before it, e.g. a bulk import holding it for a minute.
-- Folding takes only the rows nobody else holds (SKIP LOCKED), so writers never wait on it.
CREATE TABLE patients_counts (delta bigint NOT NULL);
INSERT INTO patients_counts (delta) SELECT count(*) FROM patients;

CREATE FUNCTION patients_count_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH folded AS (
        DELETE FROM patients_counts
        WHERE ctid = ANY (ARRAY(SELECT ctid FROM patients_counts FOR UPDATE SKIP LOCKED))
        RETURNING delta
    )
    INSERT INTO patients_counts (delta)
    SELECT coalesce((SELECT sum(delta) FROM folded), 0)
        + CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END * (SELECT count(*) FROM changed);
    RETURN NULL;
END;
$$;

-- TRUNCATE waits for every writer of patients to finish, so every delta is committed by then.
CREATE FUNCTION patients_count_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM patients_counts;
    INSERT INTO patients_counts (delta) VALUES (0);
    RETURN NULL;
END;
$$;

CREATE TRIGGER patients_count_inserted AFTER INSERT ON patients
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION patients_count_changed();
CREATE TRIGGER patients_count_deleted AFTER DELETE ON patients
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION patients_count_changed();
CREATE TRIGGER patients_count_truncated AFTER TRUNCATE ON patients
    FOR EACH STATEMENT EXECUTE FUNCTION patients_count_truncated();

-- Never used: the list SQL reads extra with `?` and `#>`, which jsonb_path_ops does not serve,
-- and every write maintained it.
DROP INDEX patients_extra_path_ops;

-- _like compares `name COLLATE pg_c_utf8 ~* <regex>` (case-insensitive for every letter, like
-- JavaScript's `i` flag, whatever the database's collation), and an index serves a comparison only
-- in the index's own collation.
DROP INDEX patients_name_trgm;
CREATE INDEX patients_name_c_utf8_trgm ON patients USING gin (name COLLATE pg_c_utf8 gin_trgm_ops);
