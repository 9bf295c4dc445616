-- Status indexes without hotspots. An index keyed by a low-cardinality status and then a timestamp
-- sends every write of a status to the same end of one key range. These index only open rows (the
-- generated OpenStatus is NULL once a row is terminal, and NULL_FILTERED leaves such rows out), keyed
-- by the random RunId after the status, so writes spread and the index stays as small as the work in
-- flight. The terminal statuses here are JobStatus/RunStatus.terminal in the engine (a test compares).
ALTER TABLE RunJobs ADD COLUMN OpenStatus STRING(16)
  AS (IF(Status IN ('SUCCEEDED', 'FAILED', 'SKIPPED', 'CANCELLED'), NULL, Status)) STORED;

CREATE NULL_FILTERED INDEX OpenRunJobs ON RunJobs(OpenStatus, RunId, JobKey);

DROP INDEX RunJobsByStatus;

ALTER TABLE Runs ADD COLUMN OpenStatus STRING(16)
  AS (IF(Status IN ('SUCCEEDED', 'FAILED', 'CANCELLED'), NULL, Status)) STORED;

CREATE NULL_FILTERED INDEX OpenRuns ON Runs(OpenStatus, RunId) STORING (CreatedAt);

DROP INDEX RunsByStatus;

-- Finished runs are deleted 90 days after they finish, with their jobs, edges and checks (interleaved,
-- ON DELETE CASCADE); a run that has not finished has a NULL FinishedAt and is never deleted. To keep
-- runs longer or shorter, add a file with `ALTER TABLE Runs REPLACE ROW DELETION POLICY (...)`: never
-- edit this statement, which would make Terraform recreate the database.
ALTER TABLE Runs ADD ROW DELETION POLICY (OLDER_THAN(FinishedAt, INTERVAL 90 DAY));
