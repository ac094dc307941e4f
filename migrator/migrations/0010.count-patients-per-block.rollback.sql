-- The functions as migration 0006 made them.
CREATE OR REPLACE FUNCTION patients_count_changed() RETURNS trigger
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
CREATE OR REPLACE FUNCTION patients_count_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM patients_counts;
    INSERT INTO patients_counts (delta) VALUES (0);
    RETURN NULL;
END;
$$;
DROP TABLE patients_blocks;
