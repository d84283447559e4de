/**
 * Sync windows per cohort (RELEASE_WINDOWS, in UTC; docs/releases.md): `site-a=02:00-05:00`.
 * A bulk change reaches a device of that cohort only inside its window; a window may pass
 * midnight (`22:00-04:00`). A device gives itself a window by a cohort of its own.
 */
export interface SyncWindow {
  /** Minutes after midnight UTC: from inclusive, to exclusive. */
  from: number;
  to: number;
  text: string;
}

export const WINDOW_PATTERN =
  '^([a-z0-9][a-z0-9_-]{0,62}=[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9](,|$))*$';

export function parseWindows(text: string): Map<string, SyncWindow> {
  const windows = new Map<string, SyncWindow>();
  for (const entry of text.split(',').filter(Boolean)) {
    const [cohort, span] = entry.split('=') as [string, string];
    const [from, to] = span.split('-').map(minutes) as [number, number];
    if (from === to) throw new Error(`${cohort}=${span} is a window that never opens`);
    windows.set(cohort, { from, to, text: span });
  }
  return windows;
}

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number];
  if (h > 24 || (h === 24 && m > 0)) throw new Error(`${hhmm} is not a time of day`);
  return h * 60 + m;
}

export function inWindow(w: SyncWindow, now: Date): boolean {
  const t = now.getUTCHours() * 60 + now.getUTCMinutes();
  return w.from <= w.to ? t >= w.from && t < w.to : t >= w.from || t < w.to;
}
