import Dispatch
import ObjectStore
import Synchronization
import SystemBase

/// Lists the key space of a directory a walk is going through ahead of it, several key ranges at
/// once, so that a walk (`find`, `du`, `grep -r`, `rsync`) goes at the pace the store answers in
/// parallel rather than one page after another.
///
/// A walk through a directory whose subdirectories are small (a pipeline of builds of a few dozen
/// logs each) lists it a page of 1,000 keys at a time without delimiter (`SubtreeListings`); one
/// page's continuation is known only once it arrives. Here the keys after the walk are cut into
/// ranges at names between its subdirectories (`start-after` the range's first name, stopping past
/// its last), sized from what the pages so far held to `pagesPerRange` pages each, and up to `concurrency`
/// ranges are listed at once, as s5cmd and goofys do. Each range learns whole the subdirectories it
/// holds. The walk takes them in key order, waiting for a range still being listed rather than
/// listing its keys again; a range stays listed ahead only while the walk has yet to reach it, so
/// at most `concurrency` ranges' keys are held. A range whose estimate was too small is cut after
/// `maximumPages` pages and goes on as a new range.
///
/// The cost stays about one LIST per 1,000 keys: a range's last page may stop short (about half a
/// page per range).
final class ListingAhead: Sendable {
  /// Where a range stands. A range holds the keys of its parent above `after` and at most `end` (nil:
  /// to the parent's end); its ends fall between subdirectories, so each is listed by one range.
  final class Range: Sendable {
    let after: String
    let end: String?
    let listed = DispatchGroup()
    private let state = Mutex<(done: Bool, found: Found?)>((false, nil))

    init(after: String, end: String?) {
      self.after = after
      self.end = end
      listed.enter()
    }

    /// Ends the range with what it found, nil if it failed.
    func finish(_ found: Found?) {
      state.withLock { $0 = (true, found) }
      listed.leave()
    }

    var isDone: Bool { state.withLock { $0.done } }
    /// What the range found, once it was listed; nil before, or after a failure.
    var found: Found? { state.withLock { $0.found } }

    /// Whether a key of the entry `name` (a key in the parent without its "/": the file `name` and
    /// the keys below `name/`) falls in the range.
    func meets(_ name: String) -> Bool {
      (end.map { !utf8Less($0, name) } ?? true) && (utf8Less(after, name) || hasBytePrefix(after, name + "/"))
    }

    /// Whether every key of the entry `name` falls in what the range listed.
    func holds(_ name: String) -> Bool {
      guard let found else { return false }
      let directory = name + "/"
      return utf8Less(after, name)
        && (found.end.map { utf8Less(directory, $0) && !hasBytePrefix($0, directory) } ?? true)
    }
  }

  /// The names directly in the parent a range holds: the keys of its subdirectories (without the
  /// "/") and its files, each in byte order.
  struct Found: Sendable {
    var directories: [String] = []
    var files: [ObjectInfo] = []
    /// The last key listed: the range's end, or where it was cut (nil: the parent's end).
    var end: String?
    /// When the range was listed, on the walk's clock: what it found is trusted for the directory TTL.
    var listedAt = 0.0

    /// The entry the keys that start with `prefix` make: a directory, a file, or nothing.
    func entry(_ prefix: String) -> Entry {
      if sortedContains(prefix, in: directories, key: { $0 }) { return .directory }
      return files.first { sameBytes($0.key, prefix) }.map { .file($0) } ?? .missing
    }

    enum Entry {
      case directory
      case file(ObjectInfo)
      case missing
    }
  }

  /// What listing a range gave: the keys it held and the names they make, and whether it reached
  /// the parent's end; or where it stopped after `maximumPages` pages (the rest is a new range).
  struct Outcome {
    var keys: Int
    var found: Found
    var reachedEnd: Bool
    var stoppedAfter: String?
  }

  typealias Lister = @Sendable (_ parent: String, _ range: Range, _ maximumPages: Int) throws -> Outcome

  private struct Walk {
    let parent: String
    var ranges: [Range] = []
    /// Where the next range starts; nil once a range reached the parent's end.
    var next: String?
    /// The furthest key the walk asked for.
    var position: String
    /// The parent's last key, if a listing of it told.
    var last: String?
    var scale: NameScale
    /// Keys in a full page: a range is about `pagesPerRange` of them.
    var pageKeys: Int
    /// Keys listed, and the part of the name scale they spanned: how wide a range of a few pages is.
    var keys: Double
    var span: Double
    var lastUsed: Double

    /// The name of the parent's entry that `key` (a key in the parent) is in, as bytes.
    func childName(of key: String) -> Substring.UTF8View {
      key.utf8.dropFirst(parent.utf8.count).prefix { $0 != UInt8(ascii: "/") }
    }
  }

  let concurrency: Int
  let pagesPerRange: Int
  let maximumPages: Int
  let freshness: Double
  let clock: any MonotonicClock
  /// How long a walk waits for a range before listing the keys itself.
  let patience: Double
  private let lister: Lister
  private let walks = Mutex<[ExactName: Walk]>([:])
  /// The last subdirectory of directories listed to their end, for the walks through them to come:
  /// no range is started past it.
  private let lastKeys = Mutex<[ExactName: String]>([:])
  private let pool: WorkerPool

  init(
    concurrency: Int, pagesPerRange: Int = 4, maximumPages: Int = 6, freshness: Double, patience: Double = 60,
    clock: any MonotonicClock, lister: @escaping Lister
  ) {
    self.concurrency = max(1, concurrency)
    self.pagesPerRange = max(1, pagesPerRange)
    self.maximumPages = max(1, maximumPages)
    self.freshness = freshness
    self.patience = patience
    self.clock = clock
    self.lister = lister
    self.pool = WorkerPool(threads: self.concurrency)
  }

  deinit { pool.shutdown() }

  /// The last subdirectory (its name and "/") a listing of `parent` to its end held.
  func noteLast(_ key: String, in parent: String) {
    lastKeys.withLock { keys in
      if keys.count >= 256 { keys.removeAll() }
      keys[ExactName(parent)] = key
    }
  }

  /// A walk through `parent` listed a full page of its keys from where it is, holding `keys` keys of
  /// the subdirectories `names` (in order), up to `through`: the keys after it are listed ahead.
  func start(parent: String, through: String, names: [String], keys: Int) {
    guard names.count >= 2 else { return }
    let now = clock.now()
    walks.withLock { walks in
      if let walk = walks[ExactName(parent)], walk.ranges.contains(where: { $0.meets(through) }) { return }
      var scale = NameScale()
      for name in names { scale.learn(name.utf8) }
      let span = scale.value(of: names.last!.utf8) - scale.value(of: names.first!.utf8)
      // Names the scale cannot tell apart give no estimate: the walk lists on page by page.
      guard span > 0 else { return }
      var walk = Walk(
        parent: parent, next: through, position: through, last: lastKeys.withLock { $0[ExactName(parent)] },
        scale: scale, pageKeys: keys, keys: Double(keys), span: max(span, 0), lastUsed: now)
      schedule(&walk)
      if walks.count >= 8, walks[ExactName(parent)] == nil,
        let oldest = walks.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key
      {
        walks[oldest] = nil
      }
      walks[ExactName(parent)] = walk
    }
  }

  /// The walk reached the keys that start with `prefix` (a subdirectory's or file's key, no "/" at
  /// its end) in `parent`: ranges past it are started, and the ranges holding its keys waited for.
  /// Returns what a listed range that holds every key of `prefix` found, if one does.
  @discardableResult
  func reach(_ prefix: String, in parent: String) -> Found? {
    let now = clock.now()
    let waiting = walks.withLock { walks -> [Range] in
      guard var walk = walks[ExactName(parent)] else { return [] }
      guard now - walk.lastUsed < freshness else {
        walks[ExactName(parent)] = nil
        return []
      }
      walk.lastUsed = now
      if utf8Less(walk.position, prefix) { walk.position = prefix }
      schedule(&walk)
      walks[ExactName(parent)] = walk
      return walk.ranges.filter { !$0.isDone && $0.meets(prefix) }
    }
    guard !waiting.isEmpty else { return holding(prefix, in: parent) }
    let deadline = DispatchTime.now() + patience
    for range in waiting where range.listed.wait(timeout: deadline) == .timedOut { return nil }
    // A range cut short went on as a new range, which may hold the rest.
    return reach(prefix, in: parent)
  }

  private func holding(_ prefix: String, in parent: String) -> Found? {
    let now = clock.now()
    let found = walks.withLock { walks in walks[ExactName(parent)]?.ranges.first { $0.holds(prefix) }?.found }
    return found.flatMap { now - $0.listedAt < freshness ? $0 : nil }
  }

  /// Drops the ranges the walk is past, then starts ranges after the last until `concurrency` are ahead.
  private func schedule(_ walk: inout Walk) {
    walk.ranges.removeAll { range in
      guard range.isDone, let end = range.end else { return false }
      return utf8Less(end, walk.position)
    }
    while walk.ranges.count < concurrency, let after = walk.next {
      let end = nextEnd(after: after, walk)
      let range = Range(after: after, end: end)
      walk.ranges.append(range)
      walk.next = end
      let parent = walk.parent
      pool.submit { [self] in list(range, in: parent) }
    }
  }

  /// The end of a range that starts after `after`: about `pagesPerRange` pages of keys on, by the
  /// density of keys over the names listed so far.
  private func nextEnd(after: String, _ walk: Walk) -> String? {
    let name = walk.childName(of: after)
    let start = walk.scale.value(of: name)
    let target = Double(pagesPerRange * walk.pageKeys)
    let width = walk.keys > 0 && walk.span > 0 ? target * walk.span / walk.keys : walk.scale.quantum
    let value = start + max(width, walk.scale.quantum)
    guard value < 1 else { return nil }
    let end = String(decoding: Array(walk.parent.utf8) + walk.scale.name(at: value), as: UTF8.self)
    // Past the parent's last name, the range may as well run to the parent's end.
    if let last = walk.last, !utf8Less(end, walk.parent + last) { return nil }
    // Where the scale cannot name a point past `after` (names alike in all its digits), the range
    // runs to the parent's end, a few pages at a time.
    return utf8Less(after, end) && !hasBytePrefix(end, String(decoding: Array(walk.parent.utf8) + name, as: UTF8.self))
      ? end : nil
  }

  private func list(_ range: Range, in parent: String) {
    let outcome: Outcome
    do {
      outcome = try lister(parent, range, maximumPages)
    } catch {
      range.finish(nil)
      // A store that fails here fails the walk's own listing too, which reports it: no more ahead.
      walks.withLock { walks in
        if var walk = walks[ExactName(parent)] {
          walk.next = nil
          walks[ExactName(parent)] = walk
        }
      }
      return
    }
    walks.withLock { walks in
      guard var walk = walks[ExactName(parent)], walk.ranges.contains(where: { $0 === range }) else { return }
      let from = walk.scale.value(of: walk.childName(of: range.after))
      let to = (outcome.stoppedAfter ?? range.end).map { walk.scale.value(of: walk.childName(of: $0)) } ?? 1
      walk.keys += Double(outcome.keys)
      walk.span += max(0, to - from)
      if let stoppedAfter = outcome.stoppedAfter, let index = walk.ranges.firstIndex(where: { $0 === range }) {
        walk.ranges.insert(Range(after: stoppedAfter, end: range.end), at: index + 1)
        let rest = walk.ranges[index + 1]
        pool.submit { [self] in list(rest, in: parent) }
      }
      if outcome.reachedEnd {
        // Ranges after this one hold nothing: they end at once when listed, and none is started.
        walk.next = nil
      }
      walks[ExactName(parent)] = walk
    }
    var found = outcome.found
    found.listedAt = clock.now()
    range.finish(found)
  }
}

/// Names as points in [0, 1), for cutting a directory's key space into ranges of about equal
/// numbers of keys: a name's first `digits` bytes are digits in the alphabet of the bytes seen in
/// names (for UUIDs, the 16 hex digits and "-"), so that a range's width in this scale says about
/// how many names it holds. Twelve digits tell apart names that share their first few bytes and
/// still fit a Double's precision for an alphabet of UUIDs.
struct NameScale {
  static let digits = 12
  private(set) var alphabet: [UInt8] = []

  private var base: Double { Double(max(alphabet.count, 2)) }

  /// The width of one step in the last digit.
  var quantum: Double {
    var step = 1.0
    for _ in 0..<Self.digits { step /= base }
    return step
  }

  mutating func learn(_ name: some Collection<UInt8>) {
    for byte in name where byte != UInt8(ascii: "/") {
      let index = lowerBound(byte)
      if index == alphabet.count || alphabet[index] != byte { alphabet.insert(byte, at: index) }
    }
  }

  /// Where `name` falls, in byte order.
  func value(of name: some Collection<UInt8>) -> Double {
    var value = 0.0
    var step = 1.0
    for byte in name.prefix(Self.digits) {
      step /= base
      let index = lowerBound(byte)
      // A byte not in the alphabet falls between its neighbours.
      let digit = index < alphabet.count && alphabet[index] == byte ? Double(index) : Double(index) - 0.5
      value += max(0, digit) * step
    }
    return min(value, 1)
  }

  /// A name at `value` (0 ≤ value < 1), of `digits` digits.
  func name(at value: Double) -> [UInt8] {
    guard alphabet.count >= 2 else { return [alphabet.first ?? UInt8(ascii: "0")] }
    var name: [UInt8] = []
    var rest = min(max(value, 0), 1)
    for _ in 0..<Self.digits {
      rest *= base
      let digit = min(Int(rest), alphabet.count - 1)
      name.append(alphabet[digit])
      rest -= Double(digit)
    }
    return name
  }

  private func lowerBound(_ byte: UInt8) -> Int {
    var low = 0
    var high = alphabet.count
    while low < high {
      let middle = (low + high) / 2
      if alphabet[middle] < byte { low = middle + 1 } else { high = middle }
    }
    return low
  }
}

/// Whether the sorted `items` hold one whose key is `key`, byte for byte.
func sortedContains<Item>(_ key: String, in items: [Item], key itemKey: (Item) -> String) -> Bool {
  var low = 0
  var high = items.count
  while low < high {
    let middle = (low + high) / 2
    if utf8Less(itemKey(items[middle]), key) { low = middle + 1 } else { high = middle }
  }
  return low < items.count && sameBytes(itemKey(items[low]), key)
}
