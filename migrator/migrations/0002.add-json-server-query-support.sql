-- depends: 0001.create-patients
-- What json-server's query language needs, evaluated inside PostgreSQL:
--   json_server_text(v)      JavaScript's String(v) for a JSON value (equality, _ne, _like, _gte)
--   patients_search_text(..) every truthy value of a record, lower-cased, for `q` (substring)
--   patients_json(p)         the record as the frontend reads it, built once, in SQL
-- Key decisions: text comparisons use COLLATE "C" (code-point order, like JavaScript's `<`),
-- lower-casing uses pg_c_utf8 (Unicode-aware whatever the database's default collation is).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- JavaScript's String(): numbers without trailing zeros, booleans as true/false, arrays joined
-- with commas (null elements as ""), objects as "[object Object]". NULL for JSON null.
CREATE FUNCTION json_server_text(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(v)
        WHEN 'string' THEN v #>> '{}'
        WHEN 'number' THEN trim_scale(v::numeric)::text
        WHEN 'boolean' THEN v::text
        WHEN 'object' THEN '[object Object]'
        WHEN 'array' THEN (
            SELECT coalesce(string_agg(coalesce(json_server_text(element), ''), ',' ORDER BY position), '')
            FROM jsonb_array_elements(v) WITH ORDINALITY AS elements(element, position)
        )
    END
$$;

-- Date text as JSON carries it. to_char with this pattern depends on no setting.
CREATE FUNCTION json_server_date(d date) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT to_char(d, 'YYYY-MM-DD')
$$;

-- json-server's `q` looks at every value of a record, nested ones included, and skips the falsy
-- ones (0, "", false, null). Values are separated by U+001F so a match never spans two fields.
CREATE FUNCTION patients_search_text(
    id bigint, patient_id text, name text, age integer, gender text,
    medical_condition text, last_visit date, extra jsonb
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(concat_ws(
        chr(31),
        id::text,
        nullif(patient_id, ''),
        nullif(name, ''),
        nullif(age, 0)::text,
        nullif(gender, ''),
        nullif(medical_condition, ''),
        json_server_date(last_visit),
        (
            SELECT string_agg(json_server_text(leaf), chr(31))
            FROM jsonb_path_query(extra, 'strict $.**') AS leaves(leaf)
            WHERE leaf NOT IN ('0', '""', 'false', 'null')
              AND jsonb_typeof(leaf) IN ('string', 'number', 'boolean')
        )
    ) COLLATE pg_c_utf8)
$$;

ALTER TABLE patients ADD COLUMN search_text text GENERATED ALWAYS AS (
    patients_search_text(id, patient_id, name, age, gender, medical_condition, last_visit, extra)
) STORED;

-- The wire record: id, the typed fields that have a value, then the extra fields. Typed fields
-- sent as explicit null live in `extra` (see api/patients.py), so they come back as null.
CREATE FUNCTION patients_json(p patients) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p.extra = '{}'::jsonb THEN typed
                ELSE left(typed, -1) || ', ' || substr(p.extra::text, 2) END
    FROM (SELECT json_strip_nulls(json_build_object(
        'id', p.id,
        'patientID', p.patient_id,
        'name', p.name,
        'age', p.age,
        'gender', p.gender,
        'medicalCondition', p.medical_condition,
        'lastVisit', json_server_date(p.last_visit)
    ))::text AS typed) AS built
$$;

CREATE INDEX patients_search_text_trgm ON patients USING gin (search_text gin_trgm_ops);
CREATE INDEX patients_extra_path_ops ON patients USING gin (extra jsonb_path_ops);
