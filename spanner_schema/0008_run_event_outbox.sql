-- Run events waiting for Pub/Sub: written in the transaction of the transition they
-- report, deleted once published; the reconciler publishes what a crash or a failed
-- publish left here. Not interleaved, so that the reconciler's scan reads this small
-- table and not every run; RunId is random, so writes spread across splits.
CREATE TABLE RunEventOutbox (
  RunId STRING(64) NOT NULL,
  EventId STRING(256) NOT NULL,
  Payload STRING(MAX) NOT NULL,
  CreatedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
) PRIMARY KEY (RunId, EventId);
