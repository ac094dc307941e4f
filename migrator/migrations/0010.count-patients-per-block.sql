-- depends: 0009.create-audit-events
-- A deep page of the list in storage order (json-server's default order: `_page=25000&_limit=20`)
-- skipped every row before it in the storage_order index: 6 ms in the middle of 100,000 patients,
-- growing with the table. Now the patients are also counted per block of 1024 consecutive
-- storage_order values:
--   patients_blocks   a few deltas per block, kept by migration 0006's statement triggers in the
--                     same way as patients_counts; a page sums ~1 row per block, skips whole
--                     blocks, and steps over fewer than 1024 index entries of its own block.
-- Writers never wait on each other for it: folding takes only the rows nobody holds (SKIP LOCKED).

CREATE TABLE patients_blocks (block bigint NOT NULL, delta bigint NOT NULL);
CREATE INDEX patients_blocks_block ON patients_blocks (block);
INSERT INTO patients_blocks (block, delta)
SELECT storage_order >> 10, count(*) FROM patients GROUP BY 1;

CREATE OR REPLACE FUNCTION patients_count_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sign CONSTANT bigint := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    WITH folded AS (
        DELETE FROM patients_counts
        WHERE ctid = ANY (ARRAY(SELECT ctid FROM patients_counts FOR UPDATE SKIP LOCKED))
        RETURNING delta
    )
    INSERT INTO patients_counts (delta)
    SELECT coalesce((SELECT sum(delta) FROM folded), 0) + sign * (SELECT count(*) FROM changed);

    WITH touched AS (
        SELECT storage_order >> 10 AS block, count(*) AS rows FROM changed GROUP BY 1
    ), folded AS (
        DELETE FROM patients_blocks
        WHERE ctid = ANY (ARRAY(
            SELECT b.ctid FROM patients_blocks AS b
            WHERE b.block IN (SELECT block FROM touched)
            FOR UPDATE OF b SKIP LOCKED))
        RETURNING block, delta
    )
    INSERT INTO patients_blocks (block, delta)
    SELECT t.block,
           sign * t.rows + coalesce((SELECT sum(f.delta) FROM folded AS f WHERE f.block = t.block), 0)
    FROM touched AS t;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION patients_count_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM patients_counts;
    INSERT INTO patients_counts (delta) VALUES (0);
    DELETE FROM patients_blocks;
    RETURN NULL;
END;
$$;
