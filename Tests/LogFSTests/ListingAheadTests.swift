import BlockCache
import Dispatch
import Glibc
import Logging
import ObjectStore
import Synchronization
import SystemBase
import TestSupport
import Testing

@testable import LogFS

/// A walk through a directory of many small subdirectories lists the keys ahead of it in ranges,
/// several at once (`ListingAhead`).
@Suite struct ListingAheadTests {
  /// A store that counts the LISTs in flight at once. Until `gate` LISTs of `prefix` (delimiter-less)
  /// are in flight, such a LIST waits for the others (5 s at most): a walk that lists one page after
  /// another then shows a peak of 1.
  /// The first `failures` LISTs that start at a range's first name (no "/" after the parent's)
  /// fail.
  final class ConcurrencyProbe: ObjectClient {
    let store: InMemoryObjectClient
    let gate: Int
    private let state = Mutex<(inFlight: Int, peak: Int, arrived: Int, failures: Int)>((0, 0, 0, 0))
    private let gateOpen = DispatchSemaphore(value: 0)

    init(_ store: InMemoryObjectClient, gate: Int, failures: Int = 0) {
      self.store = store
      self.gate = gate
      state.withLock { $0.failures = failures }
    }

    static func startsRange(_ request: ListRequest) -> Bool {
      guard request.delimiter == nil, let after = request.startAfter else { return false }
      return !after.utf8.dropFirst(request.prefix.utf8.count).contains(UInt8(ascii: "/"))
    }

    var identity: String { store.identity }
    var isRemote: Bool { true }
    var counters: RequestCounters { store.counters }
    var peak: Int { state.withLock { $0.peak } }

    func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage {
      let ranged = Self.startsRange(request)
      let fails =
        ranged
        && state.withLock { state in
          defer { state.failures -= 1 }
          return state.failures > 0
        }
      if fails { throw ObjectStoreError(.serverError, "a range's LIST failed") }
      let arrived = state.withLock { state -> Int in
        state.inFlight += 1
        state.peak = max(state.peak, state.inFlight)
        if ranged { state.arrived += 1 }
        return state.arrived
      }
      defer { state.withLock { $0.inFlight -= 1 } }
      if ranged && arrived <= gate {
        if arrived == gate {
          for _ in 1..<gate { gateOpen.signal() }
        } else {
          _ = gateOpen.wait(timeout: .now() + 5)
        }
      }
      return try store.listPage(request)
    }

    func head(key: String) throws(ObjectStoreError) -> ObjectInfo { try store.head(key: key) }

    func get(
      key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
    ) throws(ObjectStoreError) {
      try store.get(key: key, version: version, range: range, ifMatch: ifMatch, body: body)
    }
  }

  /// A name like a UUID's, in the order of `index` among `count`: its first group spreads the
  /// names over the hex space, as random UUIDs sort.
  static func uuid(_ index: Int, of count: Int) -> String {
    let first = UInt32(truncatingIfNeeded: (UInt64(index) << 32) / UInt64(count) + UInt64(index % 7))
    let hex = String(first, radix: 16)
    return String(repeating: "0", count: 8 - hex.count) + hex + "-4e2a-9c1b-\(String(index % 10_000 + 10_000))abcdef"
  }

  static func seeded(_ store: InMemoryObjectClient, builds: Int, jobs: Int, name: (Int) -> String) -> Int {
    for build in 0..<builds {
      for job in 0..<jobs { store.put("org/pipe/\(name(build))/job-\(job).log", "\(build).\(job)") }
    }
    store.put("org/pipe/notes.txt", "a file among the builds")
    store.put("org/zzz/b/job.log", "z")
    return builds * jobs + 2
  }

  func filesystem(_ client: any ObjectClient, concurrency: Int, freshness: Double = 60) -> Fixture.Walker {
    Fixture.Walker(
      LogFilesystem(
        namespace: ArchiveNamespace(
          client: client, rootPrefix: "", listingFreshness: freshness, listingConcurrency: concurrency),
        configuration: FilesystemConfiguration(
          blockSize: Fixture.blockSize, initialReadahead: 0, maxReadahead: 0, fetchThreads: 1,
          initialWalkAhead: 0, maxWalkAhead: 0),
        memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, logger: Logger(label: "test")))
  }

  @Test(arguments: [(1, 0), (4, 0), (4, 1), (8, 2), (1, 2)])
  func aWalkListsRangesAtOnceAndSeesWhatDelimiterListingsShow(concurrency: Int, naming: Int) throws {
    let names: [(Int) -> String] = [{ Self.uuid($0, of: 300) }, { "build-\(String($0 + 1000))" }, { "b\($0)" }]
    let store = InMemoryObjectClient()
    store.setPageSize(50)
    let keys = Self.seeded(store, builds: 300, jobs: 5, name: names[naming])
    let probe = ConcurrencyProbe(store, gate: concurrency > 1 ? 2 : 1)
    let walked = try filesystem(probe, concurrency: concurrency).walk("")

    let plainStore = InMemoryObjectClient()
    plainStore.setPageSize(50)
    _ = Self.seeded(plainStore, builds: 300, jobs: 5, name: names[naming])
    #expect(walked == (try filesystem(plainStore, concurrency: 1, freshness: 0).walk("")))
    #expect(walked.filter { $0.contains(" file ") }.count == keys)

    // A page per 50 keys (31), the delimiter listings of the root, org and pipe (8 pages), and for
    // ranges (of about 4 pages here, 15 or so) about half a page each for the pages they end early.
    let lists = store.counters.snapshot.lists
    #expect(lists <= 31 + 8 + (concurrency > 1 ? 16 : 2), "\(lists) LISTs")
    if concurrency > 1 {
      #expect(probe.peak >= 2, "ranges were listed one at a time")
    }
  }

  @Test func aFailedRangeLeavesTheWalkToListItself() throws {
    let store = InMemoryObjectClient()
    store.setPageSize(100)
    let keys = Self.seeded(store, builds: 300, jobs: 5) { Self.uuid($0, of: 300) }
    // The first LISTs of ranges fail; the walk's own listings succeed.
    let probe = ConcurrencyProbe(store, gate: 1, failures: 3)
    let walked = try filesystem(probe, concurrency: 4).walk("")
    #expect(walked.filter { $0.contains(" file ") }.count == keys)
  }

  @Test func nameScaleKeepsByteOrder() {
    var scale = NameScale()
    for index in stride(from: 0, to: 600, by: 7) { scale.learn(Self.uuid(index, of: 600).utf8) }
    var previous = -1.0
    for index in 0..<600 {
      let value = scale.value(of: Self.uuid(index, of: 600).utf8)
      #expect(value >= previous)
      previous = value
    }
    #expect(scale.value(of: Self.uuid(599, of: 600).utf8) - scale.value(of: Self.uuid(0, of: 600).utf8) > 0.9)
    // A name made at a point sorts where the point falls.
    for point in stride(from: 0.05, to: 1, by: 0.1) {
      let name = scale.name(at: point)
      #expect(abs(scale.value(of: name) - point) < 0.001)
      #expect(scale.name(at: point + 0.01).lexicographicallyPrecedes(name) == false)
    }
  }
}

extension Fixture {
  /// Walks a filesystem as `find` does: each directory read whole, then its subdirectories in order.
  struct Walker {
    let filesystem: LogFilesystem

    init(_ filesystem: LogFilesystem) { self.filesystem = filesystem }

    func walk(_ path: String, inode: UInt64 = LogFilesystem.rootInode) throws -> [String] {
      let handle = try filesystem.openDirectory(inode)
      var entries: [DirectoryEntry] = []
      while true {
        let more = try filesystem.readDirectory(handle, from: entries.count)
        if more.isEmpty { break }
        entries += more
      }
      filesystem.releaseDirectory(handle)
      var found: [String] = []
      for entry in entries where entry.name != "." && entry.name != ".." {
        let child = path.isEmpty ? entry.name : path + "/" + entry.name
        let attributes = try filesystem.lookup(parent: inode, name: entry.name)
        found.append(child + " \(attributes.kind) \(attributes.size)")
        if attributes.kind == .directory { found += try walk(child, inode: attributes.inode) }
      }
      return found
    }
  }
}
