-- A backfill's runs are written one after another by the call that starts it (service/backfills.py). Starting
-- is TRUE until that call has written its last date's run; a start that stopped before (a crash, a Ctrl-C of
-- the CLI) is finished by the reconciler once it is older than a start may take, from the row itself: Params
-- holds the start's params other than the date (JSON, as given). Each date's run ID derives from the backfill's
-- ID and the date, so the start and the reconciler can never both write one date. Rows written before this
-- file have neither column, and are never resumed (as before).
ALTER TABLE Backfills ADD COLUMN Starting BOOL;

ALTER TABLE Backfills ADD COLUMN Params STRING(MAX);
