/**
 * A device's scope version, `<location version>:<device row xmin>`, as scopeVersionSql reads
 * it (sync/repo/scope.ts, migration 0008): the location's part moves with any change to the
 * tables its devices share, the device's part with its own row. Split here and nowhere else.
 */
export interface ScopeVersionParts {
  location: string;
  deviceXmin: string;
}

export function scopeVersionParts(version: string): ScopeVersionParts {
  const at = version.indexOf(':');
  return at < 0
    ? { location: version, deviceXmin: '' }
    : { location: version.slice(0, at), deviceXmin: version.slice(at + 1) };
}

/** Whether the replica's version is behind the primary's, so a session must read the primary. */
export function replicaBehind(primary: string, replica: string): boolean {
  if (primary === replica) return false;
  const p = scopeVersionParts(primary);
  const r = scopeVersionParts(replica);
  // A newer location version on the replica (committed since the primary was read) is fine;
  // a different device row at the same location version cannot be ordered: read the primary.
  return (
    Number(r.location) < Number(p.location) || (r.location === p.location && r.deviceXmin !== p.deviceXmin)
  );
}
