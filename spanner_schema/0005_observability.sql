-- What operators look at (cost, failure detail, table sizes, lineage). Every column is nullable,
-- so rows written before this file read as "not recorded".

-- A run's metered BigQuery usage, summed over every recorded completion of its jobs and checks
-- (retried attempts included), so run events and `baton runs` price a run without reading its jobs.
-- NULL reads as 0.
ALTER TABLE Runs ADD COLUMN BytesProcessed INT64;

ALTER TABLE Runs ADD COLUMN BytesBilled INT64;

ALTER TABLE Runs ADD COLUMN SlotMs INT64;
