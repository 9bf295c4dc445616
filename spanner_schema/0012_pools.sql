-- Pools (BATON_POOLS in the environment's config sets their sizes): the slots each pool's jobs hold now,
-- and the jobs waiting for one. A job of a pool holds a slot from its release (READY) until BigQuery reports
-- its job done; the transaction that frees a slot hands it to the head of the queue (domain/transitions/pools.py).
-- Size is the configured size as last written, for a process without BATON_POOLS (an operator's `baton cancel`).
CREATE TABLE Pools (
  PoolName STRING(64) NOT NULL,
  Size INT64 NOT NULL,
  InUse INT64 NOT NULL,
  UpdatedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
) PRIMARY KEY (PoolName);

-- QUEUED jobs in release order: higher priority first (Rank is the negated priority), then the older, across
-- runs. Keyed by what the job fixes (its ready time), so admitting a job twice writes one entry.
CREATE TABLE PoolQueue (
  PoolName STRING(64) NOT NULL,
  Rank INT64 NOT NULL,
  QueuedAt TIMESTAMP NOT NULL,
  RunId STRING(64) NOT NULL,
  JobKey STRING(64) NOT NULL,
  Attempt INT64 NOT NULL,
) PRIMARY KEY (PoolName, Rank, QueuedAt, RunId, JobKey);
