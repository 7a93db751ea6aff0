import BlockCache
import Dispatch
import Glibc
import LogFS
import LogText
import Logging
import ObjectStore
import Synchronization
import SystemBase
import TestSupport
import Testing

/// A filesystem over an in-memory store, with small blocks so tests see many of them. The filesystem
/// reaches the store through `faults`, which passes every call on until a test injects a fault.
struct Fixture {
  let store: InMemoryObjectClient
  let faults: FaultInjectingObjectClient
  let filesystem: LogFilesystem
  static let blockSize = 4096

  init(
    store: InMemoryObjectClient = InMemoryObjectClient(), rootPrefix: String = "", disk: DiskBlockCache? = nil,
    readahead: UInt64 = 0, directoryTTL: Double = 60, listingFreshness: Double = 60, walkAhead: Int = 0,
    diskWriteQueue: Int = 0, metadataCacheNames: Int = 1_000_000, pagesBeforeStreaming: Int = 5,
    shared: SharedBlockCache? = nil, clock: any MonotonicClock = SystemClock(), logger: Logger = Logger(label: "test"),
    plainText: PlainTextOptions? = nil
  ) {
    self.store = store
    faults = FaultInjectingObjectClient(store)
    let configuration = FilesystemConfiguration(
      blockSize: Self.blockSize, partSize: 4 * Self.blockSize,
      initialReadahead: readahead, maxReadahead: readahead * 4, fetchThreads: 2, directoryTTL: directoryTTL,
      waitLimit: 30, initialWalkAhead: min(2, walkAhead), maxWalkAhead: walkAhead,
      diskWriteQueueBytes: diskWriteQueue, metadataCacheNames: metadataCacheNames, plainText: plainText)
    filesystem = LogFilesystem(
      namespace: ArchiveNamespace(
        client: faults, rootPrefix: rootPrefix, listingFreshness: listingFreshness,
        pagesBeforeStreaming: pagesBeforeStreaming, clock: clock),
      configuration: configuration,
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20),
      diskCache: disk, sharedCache: shared, clock: clock, logger: logger)
  }

  func resolve(_ path: String) throws -> Attributes {
    var attributes = try filesystem.attributes(of: LogFilesystem.rootInode)
    for component in path.split(separator: "/") {
      attributes = try filesystem.lookup(parent: attributes.inode, name: String(component))
    }
    return attributes
  }

  func names(_ path: String) throws -> [String] {
    let inode = path.isEmpty ? LogFilesystem.rootInode : try resolve(path).inode
    let handle = try filesystem.openDirectory(inode)
    defer { filesystem.releaseDirectory(handle) }
    // As the kernel reads: from where the last reply ended, until a reply is empty.
    var names: [String] = []
    while true {
      let entries = try filesystem.readDirectory(handle, from: names.count)
      if entries.isEmpty { return names }
      names += entries.map(\.name)
    }
  }

  /// Reads the whole file, then lets the fetches the reads started end: a read returns once its
  /// own bytes are there, and the rest of a block (its caching, its counters) may follow.
  func readAll(_ path: String, chunk: Int = 1000) throws -> [UInt8] {
    let handle = try filesystem.openFile(try resolve(path).inode)
    defer { filesystem.releaseFile(handle) }
    var bytes: [UInt8] = []
    while true {
      let piece = try filesystem.read(handle, offset: UInt64(bytes.count), count: chunk)
      if piece.isEmpty {
        filesystem.waitForFetches(seconds: 30)
        return bytes
      }
      bytes += piece
    }
  }
}

func pattern(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &+ ($0 >> 8)) }
}

@Suite struct NamespaceTests {
  @Test func treeMirrorsTheArchiveLayout() throws {
    let fixture = Fixture()
    fixture.store.put("org-1/pipe-1/build-1/job-1.log", "one")
    fixture.store.put("org-1/pipe-1/build-1/job-2.log", "two!")
    fixture.store.put("org-1/pipe-2/build-9/job-3.log", "three")
    fixture.store.put("old-pipe/build-2/job-4.log", "legacy layout")
    #expect(try fixture.names("") == [".", "..", "old-pipe", "org-1"])
    #expect(try fixture.names("org-1/pipe-1/build-1") == [".", "..", "job-1.log", "job-2.log"])
    let job = try fixture.resolve("org-1/pipe-1/build-1/job-2.log")
    #expect(job.kind == .file)
    #expect(job.size == 4)
    #expect(try fixture.resolve("org-1/pipe-2").kind == .directory)
  }

  @Test func lookupWithoutAListingCostsOneListPerLevel() throws {
    let fixture = Fixture()
    for build in 0..<50 { fixture.store.put("org/pipe/build-\(build)/job.log", "x") }
    _ = try fixture.resolve("org/pipe/build-42/job.log")
    #expect(fixture.store.counters.snapshot.lists == 4)
    #expect(throws: FilesystemError.self) { try fixture.resolve("org/pipe/build-420/job.log") }
  }

  @Test func aListingIsTrustedForItsTTLOnTheFilesystemsClock() throws {
    let clock = FakeClock()
    let fixture = Fixture(directoryTTL: 60, clock: clock)
    fixture.store.put("a/b.log", "b")
    #expect(try fixture.names("a") == [".", "..", "b.log"])
    fixture.store.put("a/c.log", "c")
    clock.advance(59)
    #expect(try fixture.names("a") == [".", "..", "b.log"])
    clock.advance(1)
    #expect(try fixture.names("a") == [".", "..", "b.log", "c.log"])
  }

  @Test func inodesStayTheSameAcrossListings() throws {
    let fixture = Fixture(directoryTTL: 0)
    fixture.store.put("a/b.log", "b")
    let first = try fixture.resolve("a/b.log").inode
    _ = try fixture.names("a")
    _ = try fixture.names("a")
    #expect(try fixture.resolve("a/b.log").inode == first)
  }

  @Test func namesThatCannotBeFileNamesAreLeftOut() throws {
    let fixture = Fixture()
    fixture.store.put("ok/a.log", "a")
    fixture.store.put("ok//double-slash.log", "x")
    fixture.store.put("ok/../escape.log", "x")
    fixture.store.put("ok/./dot.log", "x")
    fixture.store.put("ok/" + String(repeating: "n", count: 300), "x")
    fixture.store.put("ok/with space + plus %20 日本語.log", "x")
    fixture.store.put("ok/new\nline.log", "x")
    #expect(try fixture.names("ok") == [".", "..", "a.log", "new\nline.log", "with space + plus %20 日本語.log"])
    #expect(throws: FilesystemError.self) { try fixture.resolve("ok/..") }
  }

  @Test func aDirectoryHidesAFileOfTheSameNameAndMarkersAreNotFiles() throws {
    let fixture = Fixture()
    fixture.store.put("x", "file")
    fixture.store.put("x/inner.log", "inner")
    fixture.store.put("marker/", "")
    fixture.store.put("marker/in.log", "in")
    #expect(try fixture.names("") == [".", "..", "marker", "x"])
    #expect(try fixture.resolve("x").kind == .directory)
    #expect(try fixture.names("marker") == [".", "..", "in.log"])
  }

  @Test func rootPrefixShowsOnlyItsKeys() throws {
    let fixture = Fixture(rootPrefix: "logs/")
    fixture.store.put("logs/a/b.log", "b")
    fixture.store.put("other/c.log", "c")
    #expect(try fixture.names("") == [".", "..", "a"])
    #expect(try fixture.readAll("a/b.log") == Array("b".utf8))
  }

  @Test func manyPagesAreAllListed() throws {
    let fixture = Fixture()
    fixture.store.setPageSize(7)
    for index in 0..<100 { fixture.store.put("d/\(index).log", "x") }
    #expect(try fixture.names("d").count == 102)
  }
}

@Suite struct ReadPathTests {
  @Test func readsReturnTheObjectsBytesAtAnyOffset() throws {
    let fixture = Fixture()
    let bytes = pattern(50_000)
    fixture.store.put("a.log", bytes)
    #expect(try fixture.readAll("a.log") == bytes)
    #expect(try fixture.readAll("a.log", chunk: 4096) == bytes)
    let handle = try fixture.filesystem.openFile(try fixture.resolve("a.log").inode)
    for (offset, count) in [(0, 1), (4095, 2), (12_000, 9000), (49_999, 10), (50_000, 10), (60_000, 1)] {
      let expected = Array(bytes[min(offset, bytes.count)..<min(offset + count, bytes.count)])
      #expect(try fixture.filesystem.read(handle, offset: UInt64(offset), count: count) == expected)
    }
  }

  @Test func onlyTheBlocksReadAreFetched() throws {
    let fixture = Fixture()
    fixture.store.put("big.log", pattern(100 * Fixture.blockSize))
    let handle = try fixture.filesystem.openFile(try fixture.resolve("big.log").inode)
    let size = UInt64(100 * Fixture.blockSize)
    _ = try fixture.filesystem.read(handle, offset: size - 100, count: 100)
    #expect(fixture.store.counters.snapshot.gets == 1)
    #expect(fixture.store.counters.snapshot.bytesFetched == Fixture.blockSize)
  }

  @Test func concurrentReadersOfOneBlockShareOneFetch() async throws {
    let fixture = Fixture()
    let bytes = pattern(Fixture.blockSize)
    fixture.store.put("one.log", bytes)
    let inode = try fixture.resolve("one.log").inode
    try await withThrowingTaskGroup(of: [UInt8].self) { group in
      for _ in 0..<16 {
        group.addTask {
          let handle = try fixture.filesystem.openFile(inode)
          return try fixture.filesystem.read(handle, offset: 0, count: Fixture.blockSize)
        }
      }
      for try await result in group { #expect(result == bytes) }
    }
    #expect(fixture.store.counters.snapshot.gets == 1)
  }

  @Test func sequentialReadsFetchAheadInParts() throws {
    let fixture = Fixture(readahead: UInt64(2 * Fixture.blockSize))
    let bytes = pattern(64 * Fixture.blockSize)
    fixture.store.put("seq.log", bytes)
    #expect(try fixture.readAll("seq.log", chunk: Fixture.blockSize) == bytes)
    let gets = fixture.store.counters.snapshot.gets
    // Parts of 4 blocks: far fewer GETs than blocks, and nothing fetched twice.
    #expect(gets < 64)
    #expect(fixture.store.counters.snapshot.bytesFetched == bytes.count)
  }

  /// Eight sequential readers at once, whose windows together (8 x 64 blocks) would be twice the
  /// memory cache (256 blocks): each gets a share of half of it, so no block fetched ahead of one
  /// is pushed out by another's before it is read. Every block is fetched once, and read from
  /// memory, none from the disk cache, which would hold what memory lost. Without a disk cache the
  /// blocks read stay in memory, but are evicted before those fetched ahead.
  @Test(arguments: [true, false])
  func parallelReadersShareTheMemoryCacheAndFetchEachBlockOnce(withDisk: Bool) throws {
    try withTemporaryDirectory { directory in
      let disk =
        withDisk
        ? try DiskBlockCache(
          directory: directory, maxBytes: 1 << 24, blockSize: Fixture.blockSize, logger: Logger(label: "test"))
        : nil
      let fixture = Fixture(disk: disk, readahead: UInt64(16 * Fixture.blockSize), diskWriteQueue: 1 << 20)
      defer { fixture.filesystem.shutdown() }
      let files = (0..<8).map { ("p\($0).log", pattern(200 * Fixture.blockSize, seed: UInt8($0))) }
      for (name, bytes) in files { fixture.store.put(name, bytes) }
      let handles = try files.map { try fixture.filesystem.openFile(try fixture.resolve($0.0).inode) }
      var read = Array(repeating: [UInt8](), count: files.count)
      // Round robin, a block at a time: every reader is sequential and all are open at once.
      while zip(read, files).contains(where: { $0.count < $1.1.count }) {
        for (i, handle) in handles.enumerated() where read[i].count < files[i].1.count {
          for piece in try fixture.filesystem.readPieces(
            handle, offset: UInt64(read[i].count), count: Fixture.blockSize)
          {
            read[i] += piece
          }
        }
      }
      for handle in handles { fixture.filesystem.releaseFile(handle) }
      #expect(read == files.map(\.1))
      #expect(fixture.store.counters.snapshot.bytesFetched == 8 * 200 * Fixture.blockSize)
      #expect(fixture.filesystem.statistics().cache.diskHits == 0)
    }
  }

  /// Without a disk cache, what a sequential reader has read goes first when room is needed:
  /// streaming a file twice the size of the memory cache leaves the block another reader read (a
  /// tail) in memory, where plain LRU would have pushed it out.
  @Test func aStreamDoesNotPushOutAnotherReadersBlockWithoutADiskCache() throws {
    let fixture = Fixture(readahead: UInt64(4 * Fixture.blockSize))
    let other = pattern(8 * Fixture.blockSize, seed: 3)
    fixture.store.put("other.log", other)
    let stream = pattern(512 * Fixture.blockSize, seed: 4)
    fixture.store.put("stream.log", stream)
    let handle = try fixture.filesystem.openFile(try fixture.resolve("other.log").inode)
    defer { fixture.filesystem.releaseFile(handle) }
    let tail = 7 * Fixture.blockSize
    #expect(try fixture.filesystem.read(handle, offset: UInt64(tail), count: 100) == Array(other[tail..<tail + 100]))
    let streamHandle = try fixture.filesystem.openFile(try fixture.resolve("stream.log").inode)
    var offset = 0
    while offset < stream.count {
      let pieces = try fixture.filesystem.readPieces(streamHandle, offset: UInt64(offset), count: Fixture.blockSize)
      #expect(pieces.reduce(0) { $0 + $1.count } == Fixture.blockSize)
      offset += Fixture.blockSize
    }
    fixture.filesystem.releaseFile(streamHandle)
    let gets = fixture.store.counters.snapshot.gets
    #expect(try fixture.filesystem.read(handle, offset: UInt64(tail), count: 100) == Array(other[tail..<tail + 100]))
    #expect(fixture.store.counters.snapshot.gets == gets)
  }

  /// Written at once, or queued for the disk cache's writer (a queue the file fits in): either way
  /// an unmount (`shutdown`) leaves every block on disk.
  @Test(arguments: [0, 16 * Fixture.blockSize])
  func theDiskCacheServesARemount(diskWriteQueue: Int) throws {
    try withTemporaryDirectory { directory in try diskCacheServesARemount(directory, diskWriteQueue: diskWriteQueue) }
  }

  func diskCacheServesARemount(_ directory: String, diskWriteQueue: Int = 0) throws {
    let store = InMemoryObjectClient()
    let bytes = pattern(10 * Fixture.blockSize + 17)
    store.put("c.log", bytes)
    let logger = Logger(label: "test")
    do {
      let disk = try DiskBlockCache(
        directory: directory, maxBytes: 1 << 24, blockSize: Fixture.blockSize, logger: logger)
      let fixture = Fixture(store: store, disk: disk, diskWriteQueue: diskWriteQueue)
      #expect(try fixture.readAll("c.log") == bytes)
      fixture.filesystem.shutdown()
    }
    let getsBefore = store.counters.snapshot.gets
    let disk = try DiskBlockCache(directory: directory, maxBytes: 1 << 24, blockSize: Fixture.blockSize, logger: logger)
    #expect(try Fixture(store: store, disk: disk).readAll("c.log") == bytes)
    #expect(store.counters.snapshot.gets == getsBefore)
  }

  @Test func aReplacedObjectFailsWithESTALENotMixedBytes() throws {
    let fixture = Fixture()
    fixture.store.put("r.log", pattern(8 * Fixture.blockSize, seed: 1))
    let handle = try fixture.filesystem.openFile(try fixture.resolve("r.log").inode)
    _ = try fixture.filesystem.read(handle, offset: 0, count: Fixture.blockSize)
    fixture.store.put("r.log", pattern(8 * Fixture.blockSize, seed: 2))
    let error = #expect(throws: FilesystemError.self) {
      try fixture.filesystem.read(handle, offset: UInt64(4 * Fixture.blockSize), count: 10)
    }
    #expect(error?.errno == ESTALE)
  }

  @Test func aFailedFetchIsRetriedByTheNextRead() throws {
    let fixture = Fixture()
    let bytes = pattern(3000)
    fixture.store.put("f.log", bytes)
    let handle = try fixture.filesystem.openFile(try fixture.resolve("f.log").inode)
    fixture.faults.inject(.fail(.unreachable), into: .get)
    let error = #expect(throws: FilesystemError.self) { try fixture.filesystem.read(handle, offset: 0, count: 3000) }
    #expect(error?.errno == EIO)
    #expect(try fixture.filesystem.read(handle, offset: 0, count: 3000) == bytes)
  }

  @Test func statisticsAreJSON() throws {
    let fixture = Fixture()
    fixture.store.put("s.log", "stats")
    _ = try fixture.readAll("s.log")
    let json = fixture.filesystem.statistics().json()
    #expect(json.contains("\"get\":1"), "\(json)")
    #expect(json.contains("\"misses\":1"), "\(json)")
    #expect(json.contains("\"bytes_fetched\":5"), "\(json)")
    #expect(json.contains("\"heap_bytes\":"), "\(json)")
    // What `bklogfs warm` weighs a subtree against: the disk cache's bound (none here) and the block size.
    #expect(json.contains("\"disk_max_bytes\":0"), "\(json)")
    #expect(json.contains("\"block_size\":\(Fixture.blockSize)"), "\(json)")
    // The heap changes from one moment to the next; the rest does not.
    var now = fixture.filesystem.statistics()
    let read = try MountStatistics(json: json)
    #expect(read.heapBytes > 0)
    now.heapBytes = read.heapBytes
    #expect(read == now)
  }
}

/// A store that serves only suffixes (Buildkite's log endpoint): the in-memory store refuses any
/// other range, so these tests fail if the read path ever asks for one.
@Suite struct SuffixOnlySourceTests {
  func fixture(_ bytes: [UInt8]) -> Fixture {
    let store = InMemoryObjectClient(identity: "memory://api-logs", rangeSupport: .suffixOnly)
    store.put("org/pipe/1/job.log", bytes)
    return Fixture(store: store, readahead: UInt64(2 * Fixture.blockSize))
  }

  @Test func aTailCostsOneSuffixRequestOfTheLastBlocks() throws {
    let bytes = pattern(40 * Fixture.blockSize + 123)
    let fixture = fixture(bytes)
    let handle = try fixture.filesystem.openFile(try fixture.resolve("org/pipe/1/job.log").inode)
    let tail = try fixture.filesystem.read(handle, offset: UInt64(bytes.count - 4096), count: 4096)
    #expect(tail == Array(bytes.suffix(4096)))
    #expect(fixture.store.counters.snapshot.gets == 1)
    #expect(fixture.store.counters.snapshot.bytesFetched <= 2 * Fixture.blockSize)
  }

  @Test func anyOtherReadFetchesTheWholeObjectOnce() throws {
    let bytes = pattern(40 * Fixture.blockSize + 123)
    let fixture = fixture(bytes)
    #expect(try fixture.readAll("org/pipe/1/job.log", chunk: 3000) == bytes)
    let handle = try fixture.filesystem.openFile(try fixture.resolve("org/pipe/1/job.log").inode)
    #expect(try fixture.filesystem.read(handle, offset: 12_345, count: 10) == Array(bytes[12_345..<12_355]))
    #expect(fixture.store.counters.snapshot.gets == 1)
    #expect(fixture.store.counters.snapshot.bytesFetched == bytes.count)
  }

  @Test func aTailThenAFullReadFetchesTheRestOnce() throws {
    let bytes = pattern(20 * Fixture.blockSize)
    let fixture = fixture(bytes)
    let handle = try fixture.filesystem.openFile(try fixture.resolve("org/pipe/1/job.log").inode)
    _ = try fixture.filesystem.read(handle, offset: UInt64(bytes.count - 100), count: 100)
    #expect(try fixture.readAll("org/pipe/1/job.log", chunk: Fixture.blockSize) == bytes)
    #expect(fixture.store.counters.snapshot.gets == 2)
  }
}

/// A store whose GETs wait at a gate (10 s at most): lets a test hold one fetch in flight. With
/// `sendingFirst`, a GET sends that many bytes before it waits, so a block stays half-fetched.
final class GatedObjectClient: ObjectClient {
  let inner: InMemoryObjectClient
  let sendingFirst: Int
  let gate = DispatchSemaphore(value: 0)
  let waiting = Atomic<Int>(0)

  init(_ inner: InMemoryObjectClient, sendingFirst: Int = 0) {
    self.inner = inner
    self.sendingFirst = sendingFirst
  }

  var identity: String { inner.identity }
  var isRemote: Bool { true }
  var counters: RequestCounters { inner.counters }
  func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage { try inner.listPage(request) }
  func head(key: String) throws(ObjectStoreError) -> ObjectInfo { try inner.head(key: key) }
  func get(
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    guard sendingFirst > 0 else {
      waiting.add(1, ordering: .relaxed)
      _ = gate.wait(timeout: .now() + 10)
      try inner.get(key: key, version: version, range: range, ifMatch: ifMatch, body: body)
      return
    }
    let bytes = try inner.getBytes(key: key, version: version, range: range, ifMatch: ifMatch)
    let split = min(sendingFirst, bytes.count)
    bytes[..<split].withUnsafeBytes { body($0) }
    waiting.add(1, ordering: .relaxed)
    _ = gate.wait(timeout: .now() + 10)
    bytes[split...].withUnsafeBytes { body($0) }
  }
}

@Suite struct BoundedWaitTests {
  /// No wait is unbounded: a reader that finds its block in another reader's fetch waits at most
  /// the wait limit, then fails with ETIMEDOUT; the fetch it waited on still completes.
  @Test func aReaderWaitingOnAnotherReadersFetchGivesUpAfterTheWaitLimit() throws {
    let store = InMemoryObjectClient()
    let bytes = pattern(Fixture.blockSize)
    store.put("slow.log", bytes)
    let gated = GatedObjectClient(store)
    let filesystem = LogFilesystem(
      namespace: ArchiveNamespace(client: gated, rootPrefix: "", listingFreshness: 60),
      configuration: FilesystemConfiguration(
        blockSize: Fixture.blockSize, partSize: Fixture.blockSize, initialReadahead: 0, maxReadahead: 0,
        fetchThreads: 2, waitLimit: 0.5, initialWalkAhead: 0, maxWalkAhead: 0),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, logger: Logger(label: "test"))
    let inode = try filesystem.lookup(parent: LogFilesystem.rootInode, name: "slow.log").inode
    let first = try filesystem.openFile(inode)
    let second = try filesystem.openFile(inode)
    let leaderRead = Mutex<[UInt8]?>(nil)
    let leaderDone = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
      leaderRead.withLock { $0 = try? filesystem.read(first, offset: 0, count: 100) }
      leaderDone.signal()
    }
    for _ in 0..<500 where gated.waiting.load(ordering: .relaxed) == 0 { usleep(10_000) }
    #expect(gated.waiting.load(ordering: .relaxed) == 1)

    var started = timespec()
    clock_gettime(CLOCK_MONOTONIC, &started)
    let error = #expect(throws: FilesystemError.self) { try filesystem.read(second, offset: 200, count: 100) }
    var ended = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ended)
    let elapsed = Double(ended.tv_sec - started.tv_sec) + Double(ended.tv_nsec - started.tv_nsec) / 1e9
    #expect(error?.errno == ETIMEDOUT)
    #expect(elapsed >= 0.4 && elapsed < 5)

    gated.gate.signal()
    #expect(leaderDone.wait(timeout: .now() + 10) == .success)
    #expect(leaderRead.withLock { $0 } == Array(bytes[0..<100]))
    #expect(gated.waiting.load(ordering: .relaxed) == 1, "the waiting reader started no fetch of its own")
  }
}
