/** `tensorwire bench`, the KServe v2 load generator: the CLI entry and its programmatic form. */
export { main, EXIT } from './cli';
export { parseArgs, USAGE, type BenchOptions, type BenchProtocol } from './args';
export { runBench, type BenchReport, type LevelResult, type LatencySummary, type BenchIO } from './run';
export { formatLevels, formatServer, toCsv, toJson } from './report';
export { renderPlot } from './plot';
export type { ServerBreakdown } from './server-metrics';
