DROP TRIGGER patients_touch_updated_at ON patients;
DROP FUNCTION patients_touch_updated_at();
DROP TABLE patients;
