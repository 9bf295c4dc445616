-- The last successful write to each table Baton manages.
CREATE TABLE Catalog (
  TableRef STRING(1024) NOT NULL,
  RunId STRING(64) NOT NULL,
  JobKey STRING(64) NOT NULL,
  BigQueryJobId STRING(1024) NOT NULL,
  RowsAffected INT64,
  BytesProcessed INT64,
  WrittenAt TIMESTAMP NOT NULL,
  UpdatedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
) PRIMARY KEY (TableRef);
