/**
 * Which version of a model handles a request. One router per model: its owner (ServedModel)
 * tells it the set of serving versions in the same synchronous step that switches traffic,
 * and every request asks it. Today's rule: a request naming a version goes to that version,
 * one naming none to the highest serving version. Traffic splitting (canaries, shadows)
 * replaces this class, not the callers.
 *
 * The router only picks among serving versions; why a version does not serve (loading,
 * failed, unknown) is its owner's answer.
 */

/** What a router needs to know of a version. */
export interface Routable {
  readonly version: number;
}

/** Picks the version that handles a request. */
export interface VersionRouter<V extends Routable> {
  /** The versions taking traffic now (replaces the previous set). */
  update(serving: Iterable<V>): void;
  /** The version for a request naming `requested` (undefined: none named), or undefined when none of the serving ones fits. */
  route(requested: number | undefined): V | undefined;
}

/** The rule of today: the named version, or the highest serving one. */
export class LatestVersionRouter<V extends Routable> implements VersionRouter<V> {
  private byNumber = new Map<number, V>();
  /** Cached so an unversioned request (the common case) costs one field read. */
  private latest: V | undefined;

  update(serving: Iterable<V>): void {
    const byNumber = new Map<number, V>();
    let latest: V | undefined;
    for (const v of serving) {
      byNumber.set(v.version, v);
      if (!latest || v.version > latest.version) latest = v;
    }
    this.byNumber = byNumber;
    this.latest = latest;
  }

  route(requested: number | undefined): V | undefined {
    return requested === undefined ? this.latest : this.byNumber.get(requested);
  }
}
