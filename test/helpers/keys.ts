/** One manifest key pair for a test process: Central signs with it, Edge trusts it. */
import { generateSigningKeys } from '../../src/contract/signing.ts';

export const TEST_KEYS = generateSigningKeys();
