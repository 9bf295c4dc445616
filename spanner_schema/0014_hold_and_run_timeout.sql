-- `baton hold` / `baton release`: a held run (HeldAt set while RUNNING) submits nothing until released.
ALTER TABLE Runs ADD COLUMN HeldAt TIMESTAMP;

ALTER TABLE Runs ADD COLUMN HoldReason STRING(MAX);

-- `run_timeout:` in a manifest: the run's own timeout, and the deadline it gives (set at creation, renewed by a
-- retry). The reconciler's existing pass finds RUNNING runs past it through RunsByDeadline and cancels them,
-- recording why in EndReason. As RunJobsByDeadline (0010): only RUNNING, timed runs are indexed (NULL_FILTERED
-- on a column that is NULL otherwise), led by the first hex digit of the random RunId so that deadlines written
-- at the same moment spread over 16 key ranges.
ALTER TABLE Runs ADD COLUMN TimeoutSeconds INT64;

ALTER TABLE Runs ADD COLUMN Deadline TIMESTAMP;

ALTER TABLE Runs ADD COLUMN EndReason STRING(MAX);

ALTER TABLE Runs ADD COLUMN OpenDeadline TIMESTAMP AS (IF(Status = 'RUNNING', Deadline, NULL)) STORED;

ALTER TABLE Runs ADD COLUMN DeadlineShard STRING(1) AS (SUBSTR(RunId, 1, 1)) STORED;

CREATE NULL_FILTERED INDEX RunsByDeadline ON Runs(DeadlineShard, OpenDeadline);
