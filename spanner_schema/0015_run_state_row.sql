-- A run's state also lives on a row of its own in RunJobs, under the JobKey '' (no job has it: a job key
-- starts with a letter), written in every commit that writes the run's Runs row. A completion then reads
-- its job, the dependents it expects and its run in one round trip (a read is of one table), instead of
-- reading the Runs row after its job. Runs stays what every other reader and index reads.
-- The row's Status is 'RUN' while the run is open and the run's final status once it ended, so it is in
-- OpenRunJobs exactly while its run is open; no job query asks for 'RUN'.
ALTER TABLE RunJobs ADD COLUMN RunState STRING(MAX);
