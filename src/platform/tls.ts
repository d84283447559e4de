/**
 * TLS for a service that terminates it itself: certificate and key read from files at
 * start, checked before listening, and read again on SIGHUP (a renewed certificate is
 * served to new connections without a restart; a bad renewal keeps the old one).
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:https';
import { createSecureContext } from 'node:tls';
import { AppError } from './errors.ts';
import type { Logger } from './logger.ts';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

export function readTls(files: TlsFiles): TlsMaterial {
  let material: TlsMaterial;
  try {
    material = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  } catch (err) {
    throw new AppError(
      'CONFIG_INVALID',
      `TLS_CERT_FILE or TLS_KEY_FILE cannot be read: ${(err as Error).message}`,
    );
  }
  try {
    createSecureContext(material);
  } catch (err) {
    throw new AppError(
      'CONFIG_INVALID',
      `TLS_CERT_FILE and TLS_KEY_FILE are not a PEM certificate and its key: ${(err as Error).message}`,
    );
  }
  return material;
}

/** Reloads the certificate on SIGHUP; returns the function that stops listening for it. */
export function reloadTlsOnHangup(server: Server, files: TlsFiles, log: Logger): () => void {
  const reload = () => {
    try {
      server.setSecureContext(readTls(files));
      log.info({ event: 'tls.reload', outcome: 'success' }, 'TLS certificate reloaded');
    } catch (err) {
      log.error(
        { event: 'tls.reload', outcome: 'error', err },
        'TLS certificate not reloaded; the old one stays',
      );
    }
  };
  process.on('SIGHUP', reload);
  return () => process.removeListener('SIGHUP', reload);
}

/**
 * Without TLS there is nothing to reload, but SIGHUP must not end the process (its default
 * action): operators and tools send it to every service after renewing certificates.
 */
export function ignoreHangup(log: Logger): () => void {
  const hangup = () =>
    log.info(
      { event: 'tls.reload', outcome: 'skipped' },
      'SIGHUP: nothing to reload (TLS_CERT_FILE is not set: plain HTTP behind a terminator)',
    );
  process.on('SIGHUP', hangup);
  return () => process.removeListener('SIGHUP', hangup);
}
