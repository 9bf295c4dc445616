-- `baton rerun RUN --from JOB`: the jobs a rerun does not run are recorded SUCCEEDED, taken from that run.
ALTER TABLE RunJobs ADD COLUMN ReusedFrom STRING(64);
