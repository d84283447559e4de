-- Pieces (docs/protocol.md, "Pieces").

-- Pieces received and verified, kept until a load uses them, so that a transfer cut
-- midway resumes with what is missing. Unlogged: a crash of PostgreSQL empties it, and
-- the pieces are fetched again. Stored uncompressed: COPY text of uuids barely compresses.
CREATE UNLOGGED TABLE edge_staged_pieces (
  id text PRIMARY KEY,
  table_name text NOT NULL,
  row_count integer NOT NULL,
  data bytea NOT NULL,
  staged_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE edge_staged_pieces ALTER COLUMN data SET STORAGE EXTERNAL;

-- The pieces of the tables as held now (from the manifest last applied), so that a changed
-- table is patched piece by piece. Written in the load transaction; schema_version and
-- table_sha256 say which content they describe.
CREATE TABLE edge_held_pieces (
  table_name text NOT NULL,
  ord integer NOT NULL,
  schema_version integer NOT NULL,
  table_sha256 text NOT NULL,
  id text NOT NULL,
  row_count integer NOT NULL,
  last_key text NOT NULL,
  PRIMARY KEY (table_name, ord)
);
