-- What operators look at (cost, failure detail, table sizes, lineage). Every column is nullable,
-- so rows written before this file read as "not recorded".

-- A run's metered BigQuery usage, summed over every recorded completion of its jobs and checks
-- (retried attempts included), so run events and `baton runs` price a run without reading its jobs.
-- NULL reads as 0.
ALTER TABLE Runs ADD COLUMN BytesProcessed INT64;

ALTER TABLE Runs ADD COLUMN BytesBilled INT64;

ALTER TABLE Runs ADD COLUMN SlotMs INT64;

-- Up to 10 offending rows of a failed check (a JSON list of objects, at most 8 KB: domain/samples.py),
-- read from the check's own result when it found rows.
ALTER TABLE RunJobChecks ADD COLUMN SampleRows STRING(MAX);

-- The table's size after the write (tables.get: BigQuery's numRows and numBytes), and the tables the
-- writing job read (its referencedTables): what `baton catalog` and `baton lineage` show.
ALTER TABLE Catalog ADD COLUMN TableRows INT64;

ALTER TABLE Catalog ADD COLUMN TableBytes INT64;

ALTER TABLE Catalog ADD COLUMN UpstreamTables ARRAY<STRING(1024)>;
