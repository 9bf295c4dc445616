-- Operator switches per manifest: `baton pause` / `baton resume`. A paused manifest starts no run.
CREATE TABLE ManifestControls (
  ManifestName STRING(128) NOT NULL,
  Paused BOOL NOT NULL,
  Reason STRING(MAX),
  UpdatedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
) PRIMARY KEY (ManifestName);
