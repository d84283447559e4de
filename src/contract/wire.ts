/**
 * Wire types shared by Central and Edge: one TypeBox schema each, used for
 * validation, OpenAPI and TypeScript types alike.
 */
import { Type, type Static } from 'typebox';
import { KEY_PATTERN } from './pieces.ts';
import { TABLE_NAMES } from './tables.ts';

/** Bumped with every change to the data model; Edge refuses a manifest of another version. */
export const SCHEMA_VERSION = 1;

/**
 * Every edge request carries these headers: the data-model version the edge's tables are
 * at, and its software version. Headers, not body fields, so an edge upgraded before its
 * Central is still understood. An edge that sends none predates them and is at version 1.
 */
export const SCHEMA_VERSION_HEADER = 'dbupdate-schema-version';
export const SOFTWARE_VERSION_HEADER = 'dbupdate-software-version';
/**
 * Sent by an edge that holds nothing, with `pieces: true`: Central may send every piece in the
 * answer, after the manifest (docs/protocol.md, "Inline pieces"). A header, not a body field, so
 * that a Central of an earlier release, which refuses unknown fields, ignores it.
 */
export const INLINE_PIECES_HEADER = 'dbupdate-inline-pieces';

/** Content type of the snapshot stream (see docs/protocol.md). */
export const SNAPSHOT_MEDIA_TYPE = 'application/vnd.dbupdate.snapshot.v1';
/** Content type of the pieces stream (see docs/protocol.md, "Pieces"). */
export const PIECES_MEDIA_TYPE = 'application/vnd.dbupdate.pieces.v1';

const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Ulid = Type.String({ pattern: '^[0-9A-HJKMNP-TV-Z]{26}$' });
const Uuid = Type.String({ format: 'uuid' });
/**
 * Text PostgreSQL can store: no NUL and no unpaired surrogate (which it refuses, and which
 * would turn a bad body into a 500). The validator's regular expressions are Unicode-aware.
 */
export const STORABLE_TEXT = '^[^\\u0000\\p{Cs}]*$';
const MacText = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: STORABLE_TEXT,
  description: 'MAC in a common spelling',
});
/** `text` with what PostgreSQL cannot store replaced by U+FFFD, for audit and ledger rows. */
export function storableText(text: string): string {
  // eslint-disable-next-line no-control-regex -- NUL is exactly what must go
  return text.replace(/[\u0000\p{Cs}]/gu, '\uFFFD');
}

/** Keys of per-table maps: table names, as the edge reports them. */
const TableKey = Type.String({ pattern: '^[a-z_]{1,63}$' });

/** 128 random bits from the edge, signed back into the manifest: an answer to this request, not a replay. */
const RequestNonce = Type.String({
  pattern: '^[0-9a-f]{32}$',
  description: "random per request; Central signs it into the manifest's requestNonce",
});

/**
 * What an edge tells Central about itself, sent when it changed (docs/protocol.md, "Device
 * reports"): its last failed sync, even one that never reached a manifest, and the tables its
 * last scheduled verify found drifted (none: an empty list).
 */
export const DeviceReport = Type.Object(
  {
    failure: Type.Optional(
      Type.Object(
        {
          code: Type.String({ pattern: '^[A-Z_]{1,40}$' }),
          message: Type.String({ maxLength: 1000, pattern: STORABLE_TEXT }),
          at: Type.String({ format: 'date-time' }),
        },
        { additionalProperties: false },
      ),
    ),
    drift: Type.Optional(
      Type.Object(
        {
          tables: Type.Array(TableKey, { maxItems: TABLE_NAMES.length }),
          checkedAt: Type.String({ format: 'date-time' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type DeviceReport = Static<typeof DeviceReport>;

export const SyncRequestBody = Type.Object(
  {
    mac: MacText,
    knownGlobalSha256: Type.Optional(
      Type.Union([Sha256, Type.Null()], {
        description: 'globalSha256 the device holds now; when it still matches, no rows are sent',
      }),
    ),
    knownTables: Type.Optional(
      Type.Record(TableKey, Sha256, {
        maxProperties: TABLE_NAMES.length,
        additionalProperties: false,
        description:
          'sha256 of each table the device holds now; tables that still match are sent without rows',
      }),
    ),
    pieces: Type.Optional(
      Type.Boolean({
        description:
          'true: the manifest lists the pieces of every table to load and no rows follow; the edge fetches them from /api/device-sync/pieces',
      }),
    ),
    nonce: Type.Optional(RequestNonce),
    report: Type.Optional(DeviceReport),
  },
  { additionalProperties: false },
);
export type SyncRequestBody = Static<typeof SyncRequestBody>;

export const TableSummary = Type.Object(
  {
    name: Type.Enum(TABLE_NAMES),
    rowCount: Type.Integer({ minimum: 0 }),
    sha256: Sha256,
  },
  { additionalProperties: false },
);
export type TableSummary = Static<typeof TableSummary>;

const KeyText = Type.String({ maxLength: 400, pattern: KEY_PATTERN });
/** `[id, rowCount, lastKey]` (src/contract/pieces.ts). */
export const PieceRef = Type.Tuple([Sha256, Type.Integer({ minimum: 1 }), KeyText]);

export const Manifest = Type.Object({
  manifestId: Ulid,
  generatedAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.String({ format: 'date-time' }),
  schemaVersion: Type.Integer(),
  tables: Type.Array(TableSummary),
  globalSha256: Sha256,
  filters: Type.Object({ companyId: Uuid, locationId: Uuid, deviceId: Uuid }),
  rowsIncluded: Type.Boolean({ description: 'false when knownGlobalSha256 matched: the stream ends here' }),
  requestNonce: Type.Optional(RequestNonce),
  held: Type.Optional(
    Type.Object(
      {
        reason: Type.Union([
          Type.Literal('paused'),
          Type.Literal('guard'),
          Type.Literal('wave'),
          Type.Literal('window'),
        ]),
        since: Type.String({ format: 'date-time' }),
        until: Type.Optional(Type.String({ format: 'date-time', description: 'a window: when it opens' })),
      },
      {
        additionalProperties: false,
        description:
          'release control holds a change (docs/releases.md): rowsIncluded is false and the edge keeps what it holds; tables are what Central holds now',
      },
    ),
  ),
  wipe: Type.Optional(
    Type.Object(
      { requestedAt: Type.String({ format: 'date-time' }) },
      {
        additionalProperties: false,
        description:
          'an operator asked the device to hold no data (docs/releases.md): every table is empty and the edge empties its own',
      },
    ),
  ),
  pieces: Type.Optional(
    Type.Record(TableKey, Type.Array(PieceRef), {
      additionalProperties: false,
      description:
        'asked for with `pieces: true`: the pieces of each table whose sha256 differs from knownTables',
    }),
  ),
});
export type Manifest = Static<typeof Manifest>;

export const ManifestSignature = Type.Object({
  alg: Type.Literal('Ed25519'),
  keyId: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  value: Type.String({ maxLength: 200 }),
});
export type ManifestSignature = Static<typeof ManifestSignature>;

/** Stream frames: one JSON line each; a table frame is followed by rowCount COPY text lines. */
export const ManifestFrame = Type.Object({ manifest: Manifest, signature: Type.Optional(ManifestSignature) });
export type ManifestFrame = Static<typeof ManifestFrame>;
export const TableFrame = Type.Object({
  table: Type.String(),
  rowCount: Type.Integer({ minimum: 0 }),
  columns: Type.Array(Type.String()),
  /** false: the device's copy already matches; no rows follow this frame. */
  rowsIncluded: Type.Optional(Type.Boolean()),
});
export type TableFrame = Static<typeof TableFrame>;
export const EndFrame = Type.Object({ end: Type.Literal(true), tables: Type.Integer({ minimum: 0 }) });
export type EndFrame = Static<typeof EndFrame>;

/** Pieces of one manifest by their index in its lists: runs `[from, to]`, inclusive, ascending. */
/**
 * A piece's index: a table of PIECE_INDEX_MAX pieces holds billions of rows (a piece averages
 * 256), and the bound keeps every count made of them an integer the audit can store.
 */
export const PIECE_INDEX_MAX = 2 ** 24 - 1;
const PieceIndex = Type.Integer({ minimum: 0, maximum: PIECE_INDEX_MAX });

export const PiecesRequestBody = Type.Object(
  {
    mac: MacText,
    manifestId: Ulid,
    want: Type.Record(
      TableKey,
      Type.Array(Type.Tuple([PieceIndex, PieceIndex]), {
        minItems: 1,
        maxItems: 1024,
      }),
      { maxProperties: TABLE_NAMES.length, minProperties: 1, additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type PiecesRequestBody = Static<typeof PiecesRequestBody>;

/** A piece in the pieces stream: rowCount COPY text lines follow; `gone`: its content changed since the manifest, none follow. */
export const PieceFrame = Type.Object({
  table: Type.String(),
  index: Type.Integer({ minimum: 0 }),
  rowCount: Type.Integer({ minimum: 0 }),
  gone: Type.Optional(Type.Literal(true)),
});
export type PieceFrame = Static<typeof PieceFrame>;
export const PiecesEndFrame = Type.Object({ end: Type.Literal(true), pieces: Type.Integer({ minimum: 0 }) });
export type PiecesEndFrame = Static<typeof PiecesEndFrame>;

export const AckBody = Type.Object(
  {
    manifestId: Ulid,
    mac: MacText,
    status: Type.Union([Type.Literal('Success'), Type.Literal('Failed')]),
    localCounts: Type.Record(TableKey, Type.Integer({ minimum: 0 }), {
      maxProperties: 32,
      additionalProperties: false,
    }),
    localChecksums: Type.Record(TableKey, Type.String({ maxLength: 64, pattern: '^[0-9a-f]*$' }), {
      maxProperties: 32,
      additionalProperties: false,
    }),
    durationMs: Type.Integer({ minimum: 0, maximum: 86_400_000 }),
    error: Type.Union([Type.String({ maxLength: 4000, pattern: STORABLE_TEXT }), Type.Null()]),
    payloadSha256: Type.Optional(Type.Union([Sha256, Type.Null()])),
  },
  { additionalProperties: false },
);
export type AckBody = Static<typeof AckBody>;

export const AckResponse = Type.Object({
  manifestId: Ulid,
  // An enum, not a union of literals: the response serializer checks a union (anyOf) with a
  // validator on every ack; an enum it writes directly.
  result: Type.Enum(['Success', 'Failed']),
  completedAt: Type.String({ format: 'date-time' }),
});
export type AckResponse = Static<typeof AckResponse>;

export const ErrorBody = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() }),
});
export type ErrorBody = Static<typeof ErrorBody>;
