-- Run queues: one run per manifest at a time (`concurrency:` in a manifest), starts held while a manifest is
-- paused (`when_paused: queue`), and backfills started N runs at a time. A run names its queue (its manifest, or
-- `backfill:<id>`) and how many runs of that queue may be RUNNING at once (NULL: no limit). A start reads the
-- queue's open runs through OpenRunsByQueue in its own transaction, and a run's end starts the oldest QUEUED run
-- of its queue in the transaction that records that end. Only open runs of a queue are indexed (NULL_FILTERED on
-- the generated OpenStatus, NULL once a run is terminal). Rows written before this file have no queue.
ALTER TABLE Runs ADD COLUMN Queue STRING(160);

ALTER TABLE Runs ADD COLUMN QueueLimit INT64;

ALTER TABLE Runs ADD COLUMN BackfillId STRING(64);

-- When the run last became RUNNING (after waiting QUEUED, or again at a retry): with FinishedAt, how long it ran.
ALTER TABLE Runs ADD COLUMN StartedAt TIMESTAMP;

CREATE NULL_FILTERED INDEX OpenRunsByQueue ON Runs(Queue, OpenStatus, CreatedAt);

-- A backfill's runs, finished ones included: its progress per date.
CREATE NULL_FILTERED INDEX RunsByBackfill ON Runs(BackfillId, CreatedAt);

-- `baton backfill MANIFEST --from --to`: one run per date of [FirstDate, LastDate], bound to the param `Param`,
-- at most MaxActiveRuns of them RUNNING at once. Status is RUNNING until every run has ended.
CREATE TABLE Backfills (
  BackfillId STRING(64) NOT NULL,
  ManifestName STRING(128) NOT NULL,
  Param STRING(128) NOT NULL,
  FirstDate DATE NOT NULL,
  LastDate DATE NOT NULL,
  MaxActiveRuns INT64 NOT NULL,
  TotalRuns INT64 NOT NULL,
  SelectSpec STRING(MAX),
  ExcludeSpec STRING(MAX),
  Status STRING(16) NOT NULL,
  CreatedAt TIMESTAMP NOT NULL,
  FinishedAt TIMESTAMP,
  UpdatedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
) PRIMARY KEY (BackfillId);

-- Finished backfills go with their runs (Runs keep 90 days, spanner_schema/0005).
ALTER TABLE Backfills ADD ROW DELETION POLICY (OLDER_THAN(FinishedAt, INTERVAL 90 DAY));
