DROP INDEX patients_age_sort;
DROP INDEX patients_name_sort;
DROP INDEX patients_name_trgm;
DROP INDEX patients_search_text_c_utf8_trgm;
CREATE INDEX patients_search_text_trgm ON patients USING gin (search_text gin_trgm_ops);
