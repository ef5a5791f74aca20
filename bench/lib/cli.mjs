// Command-line options of the bench helpers: `--name value` flags parsed by node's parseArgs
// (unknown flags are an error), plus repeated `--header 'Name: value'` collected into an
// object of lower-cased header names, and (when `positionals` is set) the other arguments.
import { parseArgs } from 'node:util';

export function options(script, spec, { positionals: allowPositionals = false } = {}) {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({ options: { ...spec, header: { type: 'string', multiple: true } }, strict: true, allowPositionals }));
  } catch (e) {
    console.error(`${script}: ${e.message}`);
    process.exit(2);
  }
  const headers = {};
  for (const h of values.header ?? []) {
    const k = h.indexOf(':');
    headers[h.slice(0, k).trim().toLowerCase()] = h.slice(k + 1).trim();
  }
  return { ...values, base: values.base?.replace(/\/+$/, ''), headers, positionals };
}
