-- Piece fetches (docs/protocol.md, "Pieces"): one row per call of /api/device-sync/pieces,
-- written when it starts and finished with its outcome, so that resumed and delta
-- transfers are audited like snapshot requests.
CREATE TABLE sync_piece_fetches (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  manifest_id text NOT NULL,
  mac text NOT NULL,
  device_id uuid NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz NULL,
  status text NOT NULL CHECK (status IN ('started', 'served', 'refused', 'error', 'aborted')),
  error_code text NULL,
  pieces_requested integer NOT NULL,
  pieces_sent integer NULL,
  pieces_gone integer NULL,
  bytes_sent bigint NULL
);
CREATE INDEX sync_piece_fetches_requested_at_idx ON sync_piece_fetches (requested_at);
CREATE INDEX sync_piece_fetches_manifest_idx ON sync_piece_fetches (manifest_id);
