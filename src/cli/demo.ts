import { AppError } from '../platform/errors.ts';

export async function demo(_argv: string[]): Promise<number> {
  throw new AppError('USAGE', 'the demo arrives with the edge service');
}
