-- depends: 0002.add-json-server-query-support
-- Indexes that the SQL of api/sqlquery.py uses as it is written today, for 100,000 to 1,000,000
-- patients. Measured with `scripts/benchmark.py --explain` (EXPLAIN ANALYZE of the generated SQL).
--
-- q: the search compares `search_text LIKE <pattern>` where the pattern carries an explicit
-- COLLATE pg_c_utf8, so the comparison runs in pg_c_utf8, and an index serves a comparison only
-- in the index's own collation: patients_search_text_trgm (the column's collation) was never
-- used, yet every write maintained it. Its replacement is built in pg_c_utf8 (LIKE is byte-wise
-- under any deterministic collation, so the results are the same).
DROP INDEX patients_search_text_trgm;
CREATE INDEX patients_search_text_c_utf8_trgm ON patients
    USING gin (search_text COLLATE pg_c_utf8 gin_trgm_ops);

-- name_like: `name ~* <regex>` (json-server's case-insensitive regular expression).
CREATE INDEX patients_name_trgm ON patients USING gin (name gin_trgm_ops);

-- _sort=name: ORDER BY name COLLATE "C", storage_order, so a page is read in order, not sorted.
CREATE INDEX patients_name_sort ON patients (name COLLATE "C", storage_order);

-- _sort=age: sqlquery orders a nullable column by "value, null, missing" first. The key name is
-- a bound parameter, which PostgreSQL folds into this constant in the custom plans it uses here.
-- Descending order is a backward scan plus an incremental sort of each age's ties.
CREATE INDEX patients_age_sort ON patients (
    (CASE WHEN age IS NOT NULL THEN 0 WHEN extra ? 'age' THEN 1 ELSE 2 END), age, storage_order
);
