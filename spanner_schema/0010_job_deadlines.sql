-- Timeouts (`timeout:` in a manifest): a job submitted with one gets a Deadline; the reconciler's pass finds
-- the SUBMITTED ones past it through this index, cancels them in BigQuery and fails them with reason `timeout`.
-- Only open, timed jobs are indexed (NULL_FILTERED on a column that is NULL otherwise), and the first hex digit of
-- the random RunId leads the key, so deadlines written at the same moment spread over 16 key ranges.
ALTER TABLE RunJobs ADD COLUMN Deadline TIMESTAMP;

ALTER TABLE RunJobs ADD COLUMN OpenDeadline TIMESTAMP AS (IF(Status = 'SUBMITTED', Deadline, NULL)) STORED;

ALTER TABLE RunJobs ADD COLUMN DeadlineShard STRING(1) AS (SUBSTR(RunId, 1, 1)) STORED;

CREATE NULL_FILTERED INDEX RunJobsByDeadline ON RunJobs(DeadlineShard, OpenDeadline);
