/**
 * `tensorwire bench`: parses the command line, runs the bench, prints the tables and writes
 * the --json/--csv/--plot files. lib/cli.ts calls `main` with the arguments after "bench".
 */
import { writeFileSync } from 'node:fs';
import { isTensorwireError } from '../errors';
import { parseArgs, USAGE } from './args';
import { renderPlot } from './plot';
import { formatLevels, formatServer, toCsv, toJson } from './report';
import { runBench, type BenchIO, type BenchReport } from './run';

/** Exit codes of `tensorwire bench`. */
export const EXIT = {
  /** Every level measured and some request succeeded. */
  OK: 0,
  /** The run could not be done (server unreachable, request refused), or no request succeeded. */
  FAILED: 1,
  /** Bad command line. */
  USAGE: 2,
} as const;

function describe(report: BenchReport): string {
  const inputs = report.inputs.map((i) => `${i.name} ${i.datatype}[${i.shape.join(',')}]`).join(', ');
  return `${report.model}${report.modelVersion ? ` version ${report.modelVersion}` : ''} at ${report.url}, ${report.protocol}${report.pipeline !== undefined && report.pipeline > 1 ? ` (pipeline ${report.pipeline})` : ''}, inputs ${inputs}\n`;
}

/**
 * Runs `tensorwire bench` with `argv` (the arguments after "bench"; a leading "bench" is
 * skipped). Writes tables to `io.stdout`, progress and errors to `io.stderr`, and resolves
 * to the process exit code (it never calls process.exit).
 */
export async function main(argv: string[], io: BenchIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const args = argv[0] === 'bench' ? argv.slice(1) : argv;
  let options;
  try {
    options = parseArgs(args);
  } catch (e) {
    io.stderr.write(`tensorwire bench: ${(e as Error).message}\n\n${USAGE}`);
    return EXIT.USAGE;
  }
  if (options === 'help') {
    io.stdout.write(USAGE);
    return EXIT.OK;
  }
  let report: BenchReport;
  try {
    report = await runBench(options, io);
  } catch (e) {
    const code = isTensorwireError(e) ? ` [${e.code}]` : '';
    io.stderr.write(`tensorwire bench: ${(e as Error).message}${code}\n`);
    return EXIT.FAILED;
  }
  for (const w of report.warnings) io.stderr.write(`warning: ${w}\n`);
  io.stdout.write(describe(report));
  io.stdout.write(formatLevels(report));
  const server = formatServer(report);
  if (server) io.stdout.write('\n' + server);
  try {
    if (options.jsonOut) writeFileSync(options.jsonOut, toJson(report));
    if (options.csvOut) writeFileSync(options.csvOut, toCsv(report));
    if (options.plotOut) writeFileSync(options.plotOut, renderPlot(report));
  } catch (e) {
    io.stderr.write(`tensorwire bench: cannot write results: ${(e as Error).message}\n`);
    return EXIT.FAILED;
  }
  return report.levels.some((l) => l.requests > 0) ? EXIT.OK : EXIT.FAILED;
}
