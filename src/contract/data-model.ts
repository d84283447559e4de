import { fileURLToPath } from 'node:url';

/**
 * The shared data model's migrations (`v<N>_name.sql`, N = 1..SCHEMA_VERSION), which
 * both services take into their own numbered sequences (src/platform/migrate.ts).
 */
export const DATA_MODEL_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
