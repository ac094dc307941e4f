-- depends: 0006.store-wire-json-and-counts
-- The same functions as 0005, with the same results, for less work on every write (issue 4:
-- every INSERT computes search_text; at 1M imported rows it was the largest part of the
-- INSERT). Measured over 1M rows: computing search_text 6.6 -> ~5 us a row.
--   json_server_date   the year, month and day from date_part (double precision) instead of
--                      extract (numeric, ~3x slower here), padded as patients_wire pads them
--   patients_search_text  id is the first value, so its text starts the string instead of
--                      being prefixed with U+001F that substr() then cut off: substr counts
--                      characters, which in UTF-8 means reading the whole string

-- The year is 1 to 9999 (patients_last_visit_four_digit_year), so 10000 + year has five digits.
CREATE OR REPLACE FUNCTION json_server_date(d date) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT substr((10000 + date_part('year', d)::integer)::text, 2) || '-'
        || substr((100 + date_part('month', d)::integer)::text, 2) || '-'
        || substr((100 + date_part('day', d)::integer)::text, 2)
$$;

-- The values after id are spelled twice: the second copy only runs for a NULL id (never stored:
-- id is the primary key), where 0005's body began with the next value.
CREATE OR REPLACE FUNCTION patients_search_text(
    id bigint, patient_id text, name text, age integer, gender text,
    medical_condition text, last_visit date, extra jsonb
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(coalesce(
        id::text
        || coalesce(E'\x1f' || nullif(patient_id, ''), '')
        || coalesce(E'\x1f' || nullif(name, ''), '')
        || coalesce(E'\x1f' || nullif(age, 0)::text, '')
        || coalesce(E'\x1f' || nullif(gender, ''), '')
        || coalesce(E'\x1f' || nullif(medical_condition, ''), '')
        || coalesce(E'\x1f' || json_server_date(last_visit), '')
        || coalesce(E'\x1f' || CASE WHEN extra <> '{}'::jsonb
                                    THEN patients_extra_search_text(extra) END, ''),
        substr(
            coalesce(E'\x1f' || nullif(patient_id, ''), '')
            || coalesce(E'\x1f' || nullif(name, ''), '')
            || coalesce(E'\x1f' || nullif(age, 0)::text, '')
            || coalesce(E'\x1f' || nullif(gender, ''), '')
            || coalesce(E'\x1f' || nullif(medical_condition, ''), '')
            || coalesce(E'\x1f' || json_server_date(last_visit), '')
            || coalesce(E'\x1f' || CASE WHEN extra <> '{}'::jsonb
                                        THEN patients_extra_search_text(extra) END, ''),
            2)
    ) COLLATE pg_c_utf8)
$$;
