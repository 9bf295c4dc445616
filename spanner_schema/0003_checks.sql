-- Data checks: a job whose BigQuery job succeeded waits in CHECKING until its last
-- check reports. Existing rows read a NULL PendingChecks as 0.
ALTER TABLE RunJobs ADD COLUMN PendingChecks INT64;

ALTER TABLE RunJobs ADD COLUMN ChecksStartedAt TIMESTAMP;

-- One row per check per attempt, so a retried job keeps the outcomes of earlier
-- attempts and a late check event of an older attempt finds its own row.
CREATE TABLE RunJobChecks (
  RunId STRING(64) NOT NULL,
  JobKey STRING(64) NOT NULL,
  Attempt INT64 NOT NULL,
  CheckName STRING(64) NOT NULL,
  Severity STRING(8) NOT NULL,
  Status STRING(16) NOT NULL,
  BigQueryJobId STRING(1024) NOT NULL,
  OutputRows INT64,
  Error STRING(MAX),
  Stats STRING(MAX),
  CreatedAt TIMESTAMP NOT NULL,
  FinishedAt TIMESTAMP,
  UpdatedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
) PRIMARY KEY (RunId, JobKey, Attempt, CheckName),
  INTERLEAVE IN PARENT RunJobs ON DELETE CASCADE;
