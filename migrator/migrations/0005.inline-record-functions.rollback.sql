-- 0002's bodies (same results, not inlinable).
CREATE OR REPLACE FUNCTION patients_json(p patients) RETURNS text
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

CREATE OR REPLACE FUNCTION patients_search_text(
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

DROP FUNCTION patients_extra_search_text(jsonb);

CREATE OR REPLACE FUNCTION json_server_date(d date) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT to_char(d, 'YYYY-MM-DD')
$$;

ALTER TABLE patients DROP CONSTRAINT patients_last_visit_four_digit_year;
