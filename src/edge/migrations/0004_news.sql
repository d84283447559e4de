-- News that local apps can check (docs/protocol.md, "dbupdate_data_changed"). Any login may
-- NOTIFY any channel, so a listener cannot trust a notification by its channel alone: the
-- edge writes each notice here, in the same transaction as the NOTIFY, and only this
-- service's role can write the table. The reader role is granted SELECT (grantReader).
CREATE TABLE dbupdate_news (
  manifest_id text PRIMARY KEY,
  tables text[] NOT NULL,
  committed_at timestamptz NOT NULL
);
CREATE INDEX dbupdate_news_committed_at_idx ON dbupdate_news (committed_at);
