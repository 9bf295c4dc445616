-- Runs and their jobs. RunJobs and RunJobDependents are interleaved so that one
-- run's rows live together and every completion is a handful of point reads.
CREATE TABLE Runs (
  RunId STRING(64) NOT NULL,
  ManifestName STRING(128) NOT NULL,
  ManifestVersion STRING(64) NOT NULL,
  Environment STRING(32) NOT NULL,
  Params STRING(MAX) NOT NULL,
  Status STRING(16) NOT NULL,
  TotalJobs INT64 NOT NULL,
  OpenJobs INT64 NOT NULL,
  SucceededJobs INT64 NOT NULL,
  FailedJobs INT64 NOT NULL,
  SkippedJobs INT64 NOT NULL,
  CancelledJobs INT64 NOT NULL,
  CreatedAt TIMESTAMP NOT NULL,
  FinishedAt TIMESTAMP,
  UpdatedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
) PRIMARY KEY (RunId);

CREATE INDEX RunsByStatus ON Runs(Status, CreatedAt DESC);

CREATE INDEX RunsByManifest ON Runs(ManifestName, CreatedAt DESC);

CREATE TABLE RunJobs (
  RunId STRING(64) NOT NULL,
  JobKey STRING(64) NOT NULL,
  Status STRING(16) NOT NULL,
  Attempt INT64 NOT NULL,
  PendingUpstreams INT64 NOT NULL,
  Spec STRING(MAX) NOT NULL,
  BigQueryJobId STRING(1024),
  Error STRING(MAX),
  ErrorReason STRING(64),
  Stats STRING(MAX),
  NotBefore TIMESTAMP,
  ReadyAt TIMESTAMP,
  SubmittedAt TIMESTAMP,
  FinishedAt TIMESTAMP,
  UpdatedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
) PRIMARY KEY (RunId, JobKey),
  INTERLEAVE IN PARENT Runs ON DELETE CASCADE;

-- Open jobs only matter to the reconciler and to cancellation; finished jobs
-- leave this index's hot range.
CREATE INDEX RunJobsByStatus ON RunJobs(Status, UpdatedAt);

CREATE TABLE RunJobDependents (
  RunId STRING(64) NOT NULL,
  JobKey STRING(64) NOT NULL,
  DependentKey STRING(64) NOT NULL,
) PRIMARY KEY (RunId, JobKey, DependentKey),
  INTERLEAVE IN PARENT RunJobs ON DELETE CASCADE;
