/**
 * `tensorwire auth add-key --file FILE --name NAME --scopes infer,monitor`: adds an API key to
 * an auth file (created with mode 0600 when missing) and prints the key once, alone on the
 * last line of stdout, so scripts can take it with `tail -n 1`. The file keeps only its hash:
 * a lost key cannot be shown again, only replaced.
 */
import { parseArgs } from 'node:util';
import { basename } from 'node:path';
import { addKey } from './api-key';
import { parseListFlag } from './browser-checks';

const USAGE = `usage:
  tensorwire auth add-key --file FILE --name NAME --scopes SCOPE[,SCOPE...]
    scopes: infer, infer:<model or glob>, monitor, manage, feed:inputs`;

/** Entry point of `tensorwire auth ...`; returns the exit code. */
export function main(args: string[]): number {
  const [sub, ...rest] = args;
  if (sub !== 'add-key') {
    console.error(sub === undefined ? USAGE : `unknown auth command '${sub}'\n${USAGE}`);
    return 1;
  }
  try {
    const { values } = parseArgs({ args: rest, options: { file: { type: 'string' }, name: { type: 'string' }, scopes: { type: 'string' } } });
    if (values.file === undefined || values.name === undefined || values.scopes === undefined) throw new Error('add-key needs --file, --name and --scopes');
    const key = addKey(values.file, values.name, parseListFlag(values.scopes, '--scopes'));
    console.log(`added key '${values.name}' to ${basename(values.file)}; it is shown only now, store it safely:`);
    console.log(key);
    return 0;
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 1;
  }
}
