-- The keys of a job's dependents, kept on its own row when there are few of them (NULL when there
-- are many: those are read from RunJobDependents in bounded steps). A completion then reads its job,
-- and its run and dependents' rows side by side: two round trips instead of four one after another.
-- Written once when the run is created; edges never change within a run.
ALTER TABLE RunJobs ADD COLUMN DependentKeys ARRAY<STRING(64)>;
