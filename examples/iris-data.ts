/**
 * The Iris data set as committed in examples/data/iris.csv, and the fixed train/test split
 * shared by the training script and the test that checks the bundled model.
 */
import { readFileSync } from 'node:fs';

/** Class names in label order: label 0 is setosa, 1 versicolor, 2 virginica. */
export const IRIS_CLASSES = ['setosa', 'versicolor', 'virginica'] as const;

/** The four measurements in cm, in CSV and model-input order. */
export const IRIS_FEATURES = ['sepal_length_cm', 'sepal_width_cm', 'petal_length_cm', 'petal_width_cm'] as const;

/** One flower: its four measurements and its class index. */
export interface IrisSample {
  features: [number, number, number, number];
  label: number;
}

/** Parses iris.csv (header + 150 rows); throws naming the line on anything unexpected. */
export function loadIris(csvPath: string): IrisSample[] {
  const lines = readFileSync(csvPath, 'utf8').trim().split('\n');
  const header = lines[0].split(',');
  if (header.slice(0, 4).join() !== IRIS_FEATURES.join() || header[4] !== 'species') {
    throw new Error(`${csvPath}: unexpected header "${lines[0]}"`);
  }
  return lines.slice(1).map((line, i) => {
    const cells = line.split(',');
    const nums = cells.slice(0, 4).map(Number);
    const label = (IRIS_CLASSES as readonly string[]).indexOf(cells[4]);
    if (cells.length !== 5 || nums.some((v) => !Number.isFinite(v)) || label < 0) {
      throw new Error(`${csvPath}:${i + 2}: expected 4 numbers and a species, got "${line}"`);
    }
    return { features: nums as IrisSample['features'], label };
  });
}

/**
 * The held-out test split: every fifth row (index % 5 == 4). The CSV is sorted by class in
 * blocks of 50, so this is a stratified 80/20 split (40 train / 10 test per class) with no
 * randomness to reproduce.
 */
export function isTestRow(index: number): boolean {
  return index % 5 === 4;
}
