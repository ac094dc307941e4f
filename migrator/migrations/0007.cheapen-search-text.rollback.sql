-- 0005's bodies (same results).
CREATE OR REPLACE FUNCTION json_server_date(d date) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lpad(extract(year FROM d)::integer::text, 4, '0') || '-'
        || lpad(extract(month FROM d)::integer::text, 2, '0') || '-'
        || lpad(extract(day FROM d)::integer::text, 2, '0')
$$;

CREATE OR REPLACE FUNCTION patients_search_text(
    id bigint, patient_id text, name text, age integer, gender text,
    medical_condition text, last_visit date, extra jsonb
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(substr(
        coalesce(E'\x1f' || id::text, '')
        || coalesce(E'\x1f' || nullif(patient_id, ''), '')
        || coalesce(E'\x1f' || nullif(name, ''), '')
        || coalesce(E'\x1f' || nullif(age, 0)::text, '')
        || coalesce(E'\x1f' || nullif(gender, ''), '')
        || coalesce(E'\x1f' || nullif(medical_condition, ''), '')
        || coalesce(E'\x1f' || json_server_date(last_visit), '')
        || coalesce(E'\x1f' || CASE WHEN extra <> '{}'::jsonb
                                    THEN patients_extra_search_text(extra) END, ''),
        2) COLLATE pg_c_utf8)
$$;
