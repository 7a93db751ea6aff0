import ObjectStore
import Synchronization
import SystemBase

/// Stretches of a directory's keys known whole from pages of a listing without delimiter: within a
/// run, every key the store held under the directory when it was listed is there, so a name that
/// falls inside a run is found, or known missing, without a request.
///
/// A script that reads the paths it was given (`sha256sum -c`, `rsync --files-from`, `tar -T`)
/// looks names up one by one, mostly in key order, in directories nobody listed. The first lookup
/// in a directory costs one targeted LIST, as a lone `stat` should; from the second on, a lookup
/// lists a page of up to 1,000 keys from the name on, and the names after it are answered from that
/// run, which the next page extends: about one request per 1,000 keys, as a walk costs.
///
/// Runs are trusted for `freshness` seconds (the directory TTL) and hold at most `capacity` keys in
/// all: the oldest runs are dropped first. A directory's run holds at most a tenth of that (and a
/// page at least): a walk reads on from a run's end, so a longer one loses its first keys.
final class KeyRuns: Sendable {
  struct Run: Sendable {
    /// Keys above this one, and at most `through` (nil: to the directory's end), are all known.
    var after: String
    var through: String?
    /// The keys of the run, in byte order.
    var objects: [ObjectInfo]
    /// Keys of the run that are not UTF-8, percent-encoded as listed: only to be reported.
    var undecodable: [String]
    var learnedAt: Double

    /// Whether the run holds `key` within its bounds.
    func covers(_ key: String) -> Bool {
      utf8Less(after, key) && (through.map { !utf8Less($0, key) } ?? true)
    }
  }

  private struct State {
    var runs: [ExactName: [Run]] = [:]
    var keys = 0
    /// When each directory last had a name looked up by a targeted request.
    var lookups: [ExactName: Double] = [:]
  }

  let freshness: Double
  let capacity: Int
  let clock: any MonotonicClock
  private let state = Mutex(State())

  init(freshness: Double, capacity: Int = 100_000, clock: any MonotonicClock) {
    self.freshness = freshness
    self.capacity = capacity
    self.clock = clock
  }

  /// What the runs of `directory` say of `name`: the keys that make it (the file `directory+name`,
  /// and one key below `directory+name+"/"` if it is a directory), an empty page when it is known
  /// missing, or nil when no run decides it.
  func answer(directory: String, name: String) -> ListPage? {
    let file = directory + name
    let subdirectory = file + "/"
    let now = clock.now()
    return state.withLock { state -> ListPage? in
      for run in state.runs[ExactName(directory)] ?? [] where now - run.learnedAt < freshness {
        guard utf8Less(run.after, file) else { continue }
        let below = run.objects[lowerBound(subdirectory, in: run.objects)...].first
        if let below, hasBytePrefix(below.key, subdirectory) {
          // A directory: it hides a file of the same name, so nothing more need be known.
          return ListPage(objects: [], commonPrefixes: [subdirectory], nextContinuationToken: nil)
        }
        // Missing or a file only if the run reaches past every key a directory of that name could hold.
        if let through = run.through, hasBytePrefix(through, subdirectory) || utf8Less(through, subdirectory) {
          continue
        }
        let index = lowerBound(file, in: run.objects)
        let found = index < run.objects.count && sameBytes(run.objects[index].key, file) ? [run.objects[index]] : []
        return ListPage(objects: found, commonPrefixes: [], nextContinuationToken: nil)
      }
      return nil
    }
  }

  /// Where a page that is to decide `name` starts (exclusive): where a run it would continue ends,
  /// else just below the name (the name less its last character sorts before every key that
  /// could make it, and after nearly every other).
  func pageStart(directory: String, name: String) -> String {
    var below = name
    below.removeLast()
    let start = directory + below
    let now = clock.now()
    return state.withLock { state in
      let continued = (state.runs[ExactName(directory)] ?? []).first { run in
        guard now - run.learnedAt < freshness, let through = run.through else { return false }
        return !utf8Less(start, run.after) && !utf8Less(through, start)
      }
      return continued?.through ?? start
    }
  }

  /// The first key of `directory` past every key below `key` (a subdirectory's key), if a run holds
  /// all the keys between them: what follows that subdirectory.
  func entry(in directory: String, after key: String) -> String? {
    let now = clock.now()
    return state.withLock { state in
      for run in state.runs[ExactName(directory)] ?? [] where now - run.learnedAt < freshness {
        guard !utf8Less(key, run.after) else { continue }
        var index = lowerBound(key, in: run.objects)
        while index < run.objects.count && hasBytePrefix(run.objects[index].key, key) { index += 1 }
        if index < run.objects.count { return run.objects[index].key }
      }
      return nil
    }
  }

  /// Records that every key under `directory` above `after` and at most `through` (nil: all of
  /// them) is in `objects` (sorted), merging it with the runs it overlaps or touches.
  func record(
    directory: String, after: String, through: String?, objects: [ObjectInfo], undecodable: [String] = []
  ) {
    let now = clock.now()
    state.withLock { state in
      var run = Run(after: after, through: through, objects: objects, undecodable: undecodable, learnedAt: now)
      var kept: [Run] = []
      for other in state.runs[ExactName(directory)] ?? [] {
        state.keys -= other.objects.count
        guard now - other.learnedAt < freshness else { continue }
        let overlaps =
          (other.through.map { !utf8Less($0, run.after) } ?? true)
          && (run.through.map { !utf8Less($0, other.after) } ?? true)
        guard overlaps else {
          kept.append(other)
          continue
        }
        // The newer page is what the store holds now within its bounds; the older run adds the rest.
        if let end = other.through, !utf8Less(run.after, end) {
          // The usual case, a page that goes on where the run ended: every older key comes before it.
          run.objects = other.objects + run.objects
        } else {
          let outside = other.objects.filter { !run.covers($0.key) }
          run.objects = (outside + run.objects).sorted { utf8Less($0.key, $1.key) }
        }
        run.undecodable += other.undecodable.filter { old in !run.undecodable.contains { sameBytes($0, old) } }
        if utf8Less(other.after, run.after) { run.after = other.after }
        if let end = run.through { run.through = other.through.map { utf8Less(end, $0) ? $0 : end } }
        run.learnedAt = min(run.learnedAt, other.learnedAt)
      }
      let limit = max(1000, capacity / 10)
      if run.objects.count > limit {
        // Keeping what is behind the reader would make every page that extends the run copy it all.
        let dropped = run.objects.count - limit / 2
        run.after = run.objects[dropped - 1].key
        run.objects.removeFirst(dropped)
      }
      kept.append(run)
      state.keys += kept.reduce(0) { $0 + $1.objects.count }
      state.runs[ExactName(directory)] = kept
      if state.keys > capacity { evict(&state, now: now) }
    }
  }

  /// The keys of `directory` (and those not UTF-8), if a fresh run holds all of them.
  func whole(_ directory: String) -> (objects: [ObjectInfo], undecodable: [String])? {
    let now = clock.now()
    return state.withLock { state in
      state.runs[ExactName(directory)]?.first { run in
        now - run.learnedAt < freshness && !utf8Less(directory, run.after) && run.through == nil
      }.map { ($0.objects, $0.undecodable) }
    }
  }

  /// A run that starts at the directory's first key, so that listing the directory can go on from
  /// where it ends rather than list its start again.
  func start(of directory: String) -> (through: String, objects: [ObjectInfo])? {
    let now = clock.now()
    return state.withLock { state in
      for run in state.runs[ExactName(directory)] ?? [] where now - run.learnedAt < freshness {
        if let through = run.through, !utf8Less(directory, run.after) { return (through, run.objects) }
      }
      return nil
    }
  }

  /// Notes a lookup of a name of `directory` and says whether the directory is being read name by
  /// name: another lookup was made there within the last `freshness` seconds, or a page of it is held.
  func noteLookup(in directory: String) -> Bool {
    let now = clock.now()
    return state.withLock { state in
      let paged = state.runs[ExactName(directory)]?.contains { now - $0.learnedAt < freshness } ?? false
      if state.lookups.count >= 10_000 { state.lookups = state.lookups.filter { now - $0.value < freshness } }
      if state.lookups.count >= 10_000 { state.lookups.removeAll() }
      let previous = state.lookups.updateValue(now, forKey: ExactName(directory))
      return paged || (previous.map { now - $0 < freshness } ?? false)
    }
  }

  /// Drops stale runs, then the oldest, until the runs hold at most three quarters of `capacity`.
  private func evict(_ state: inout State, now: Double) {
    var all = state.runs.flatMap { entry in entry.value.map { (entry.key, $0) } }
    all.removeAll { now - $0.1.learnedAt >= freshness }
    all.sort { $0.1.learnedAt > $1.1.learnedAt }
    var keys = 0
    var runs: [ExactName: [Run]] = [:]
    for (directory, run) in all where keys + run.objects.count <= capacity * 3 / 4 {
      keys += run.objects.count
      runs[directory, default: []].append(run)
    }
    state.runs = runs
    state.keys = keys
  }
}

/// The index of the first object whose key is not below `key`.
private func lowerBound(_ key: String, in objects: [ObjectInfo]) -> Int {
  var low = 0
  var high = objects.count
  while low < high {
    let middle = (low + high) / 2
    if utf8Less(objects[middle].key, key) { low = middle + 1 } else { high = middle }
  }
  return low
}
