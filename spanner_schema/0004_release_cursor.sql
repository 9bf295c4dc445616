-- A job with more dependents than one commit may update releases them in key order, a bounded
-- step per transaction; ReleaseCursor is the last dependent released so far (NULL: nothing pending).
ALTER TABLE RunJobs ADD COLUMN ReleaseCursor STRING(64);
