/**
 * Signed manifests: Central signs the RFC 8785 form of each manifest with Ed25519;
 * Edge verifies it against its configured public keys before loading anything. The
 * manifest carries every table hash, and Edge checks the loaded rows against them, so
 * the signature covers the rows too. Keys travel as base64 DER (PKCS#8 / SPKI) or PEM.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import canonicalize from 'canonicalize';
import type { Manifest, ManifestSignature } from './wire.ts';

export interface SigningKey {
  keyId: string;
  privateKey: KeyObject;
}

function keyFromText(text: string, kind: 'private' | 'public'): KeyObject {
  const trimmed = text.trim();
  const der = Buffer.from(trimmed, 'base64');
  const pem = trimmed.startsWith('-----');
  let key: KeyObject;
  try {
    key =
      kind === 'private'
        ? createPrivateKey(pem ? trimmed : { key: der, format: 'der', type: 'pkcs8' })
        : createPublicKey(pem ? trimmed : { key: der, format: 'der', type: 'spki' });
  } catch {
    // The crypto library's words (an asn1 decoding error) would not tell anyone what to do.
    throw new Error(
      `not an Ed25519 ${kind} key: paste the ${kind === 'private' ? 'MANIFEST_SIGNING_KEY' : 'MANIFEST_PUBLIC_KEYS'} line that \`dbupdate central keygen\` prints`,
    );
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`not an Ed25519 ${kind} key`);
  return key;
}

/** The first 16 hex digits of the SHA-256 of the public key's SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ format: 'der', type: 'spki' }))
    .digest('hex')
    .slice(0, 16);
}

export function generateSigningKeys(): { privateKey: string; publicKey: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
    publicKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    keyId: keyIdOf(publicKey),
  };
}

export function parseSigningKey(text: string): SigningKey {
  const privateKey = keyFromText(text, 'private');
  return { keyId: keyIdOf(createPublicKey(privateKey)), privateKey };
}

/** A list of public keys (comma or whitespace separated), by key id: Edge accepts any of them. */
export function parsePublicKeys(text: string): ReadonlyMap<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const part of text.split(/[\s,]+/).filter(Boolean)) {
    const key = keyFromText(part, 'public');
    keys.set(keyIdOf(key), key);
  }
  if (keys.size === 0) throw new Error('no public key given');
  return keys;
}

export function signManifest(manifest: Manifest, key: SigningKey): ManifestSignature {
  const value = sign(null, Buffer.from(canonicalize(manifest) as string), key.privateKey).toString('base64');
  return { alg: 'Ed25519', keyId: key.keyId, value };
}

export function verifyManifest(
  manifest: Manifest,
  signature: ManifestSignature | undefined,
  keys: ReadonlyMap<string, KeyObject>,
): 'ok' | 'unsigned' | 'unknown-key' | 'invalid' {
  if (!signature) return 'unsigned';
  const key = keys.get(signature.keyId);
  if (!key) return 'unknown-key';
  const ok = verify(
    null,
    Buffer.from(canonicalize(manifest) as string),
    key,
    Buffer.from(signature.value, 'base64'),
  );
  return ok ? 'ok' : 'invalid';
}
