/**
 * An epsilon-greedy bandit over versions (`routing.bandit`): each unversioned request goes,
 * with probability epsilon, to a version drawn at random (exploration), otherwise to the
 * version with the best mean reward so far (a version without rewards yet counts as 1, so
 * each is tried). Rewards in [0, 1] arrive later by request id (POST /v2/models/{m}/feedback),
 * so the bandit remembers which version answered each recent request that carried an `id`:
 * at most MAX_REMEMBERED ids per model for at most REMEMBER_MS, oldest forgotten first.
 */

/** Request ids remembered per model (each about 100 bytes): 10,000. */
export const MAX_REMEMBERED = 10_000;
/** How long an id can get its reward: 10 minutes. */
export const REMEMBER_MS = 10 * 60 * 1000;
/** Longest request id remembered (longer ids are not remembered: their feedback gets 404). */
export const MAX_FEEDBACK_ID_CHARS = 256;

/** What GET .../routing shows of the bandit. */
export interface BanditView {
  epsilon: number;
  versions: Record<string, { answers: number; rewards: number; reward_sum: number; mean_reward: number | null }>;
  remembered_ids: number;
}

export class EpsilonGreedy {
  private readonly answers: Float64Array;
  private readonly rewards: Float64Array;
  private readonly rewardSums: Float64Array;
  /** Request id → (version index, time answered); Map order is insertion order, so the oldest come first. */
  private readonly recent = new Map<string, { index: number; at: number }>();

  constructor(
    private readonly versions: readonly string[],
    private readonly epsilon: number,
    private readonly now: () => number,
  ) {
    this.answers = new Float64Array(versions.length);
    this.rewards = new Float64Array(versions.length);
    this.rewardSums = new Float64Array(versions.length);
  }

  /** The version for an unversioned request. */
  choose(random: () => number = Math.random): string {
    const n = this.versions.length;
    if (random() < this.epsilon) return this.versions[Math.floor(random() * n)]!;
    let best = 0;
    let bestMean = -1;
    for (let i = 0; i < n; i++) {
      const mean = this.rewards[i] === 0 ? 1 : this.rewardSums[i]! / this.rewards[i]!;
      if (mean > bestMean) {
        best = i;
        bestMean = mean;
      }
    }
    return this.versions[best]!;
  }

  /** Records that `version` answered the request `id` (ids of other versions, or too long, are not remembered). */
  answered(id: string | undefined, version: string): void {
    const index = this.versions.indexOf(version);
    if (index < 0) return;
    this.answers[index]!++;
    if (id === undefined || id === '' || id.length > MAX_FEEDBACK_ID_CHARS) return;
    const now = this.now();
    this.recent.delete(id); // a reused id is the latest request's
    this.recent.set(id, { index, at: now });
    this.forget(now);
  }

  /** Credits `reward` (0..1, checked by the caller) to the version that answered `id`; false when the id is unknown or expired. */
  reward(id: string, reward: number): string | undefined {
    this.forget(this.now());
    const entry = this.recent.get(id);
    if (entry === undefined) return undefined;
    this.recent.delete(id); // one reward per request
    this.rewards[entry.index]!++;
    this.rewardSums[entry.index]! += reward;
    return this.versions[entry.index];
  }

  private forget(now: number): void {
    for (const [id, e] of this.recent) {
      if (this.recent.size <= MAX_REMEMBERED && now - e.at < REMEMBER_MS) break;
      this.recent.delete(id);
    }
  }

  view(): BanditView {
    const versions: BanditView['versions'] = {};
    this.versions.forEach((v, i) => {
      const n = this.rewards[i]!;
      versions[v] = { answers: this.answers[i]!, rewards: n, reward_sum: Number(this.rewardSums[i]!.toFixed(6)), mean_reward: n === 0 ? null : Number((this.rewardSums[i]! / n).toFixed(6)) };
    });
    return { epsilon: this.epsilon, versions, remembered_ids: this.recent.size };
  }
}
