import BlockCache
import Foundation
import LogFS
import Logging
import ObjectStore
import Synchronization
import SystemBase
import TestSupport
import Testing

/// A store of logs that grow, as running jobs' logs in Buildkite's storage do: listed and read with
/// `"grow-N"` ETags that read the first N bytes however much the log has grown since.
final class GrowingStore: GrowingObjectClient {
  let inner = InMemoryObjectClient(identity: "growing:logs")
  let tails = Atomic<Int>(0)
  let wholeReads = Atomic<Int>(0)
  let finishedAsks = Atomic<Int>(0)
  private let finished = Mutex<Set<String>>([])

  var identity: String { inner.identity }
  var isRemote: Bool { true }
  var counters: RequestCounters { inner.counters }

  func append(_ key: String, _ text: String) {
    inner.put(key, (inner.bytes(of: key) ?? []) + Array(text.utf8))
  }

  func finish(_ key: String) { finished.withLock { _ = $0.insert(key) } }

  func isFixed(etag: String) -> Bool { false }
  func mayGrow(etag: String) -> Bool { etag.hasPrefix("\"grow-") }
  func etagOfGrowing(size: UInt64) -> String { "\"grow-\(size)\"" }

  func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage {
    var page = try inner.listPage(request)
    page.objects = page.objects.map { object in
      var grown = object
      grown.etag = etagOfGrowing(size: object.size)
      return grown
    }
    return page
  }

  func head(key: String) throws(ObjectStoreError) -> ObjectInfo {
    var info = try inner.head(key: key)
    info.etag = etagOfGrowing(size: info.size)
    return info
  }

  func get(
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    wholeReads.add(1, ordering: .relaxed)
    let bytes = inner.bytes(of: key) ?? []
    if let ifMatch, let size = UInt64(ifMatch.dropFirst(6).dropLast()), UInt64(bytes.count) < size {
      throw ObjectStoreError(.preconditionFailed, "\(key) is shorter than it was")
    }
    try inner.get(key: key, version: nil, range: range, ifMatch: nil, body: body)
  }

  func tail(key: String, count: Int) throws(ObjectStoreError) -> (bytes: [UInt8], size: UInt64) {
    tails.add(1, ordering: .relaxed)
    guard let bytes = inner.bytes(of: key) else { throw ObjectStoreError(.notFound, "no \(key)") }
    return (Array(bytes.suffix(count)), UInt64(bytes.count))
  }

  func hasStoppedGrowing(key: String) throws(ObjectStoreError) -> Bool {
    finishedAsks.add(1, ordering: .relaxed)
    return finished.withLock { $0.contains(key) }
  }
}

/// Following a log that grows while a file of it is open (`tail -f`): new bytes come from polls of
/// its end, shared by all its readers, never read again; the follow ends when its job finishes.
@Suite struct LiveLogTests {
  let store = GrowingStore()
  let clock = FakeClock()
  let filesystem: LogFilesystem

  init() {
    filesystem = LogFilesystem(
      namespace: ArchiveNamespace(client: store, rootPrefix: "", clock: clock),
      configuration: FilesystemConfiguration(
        blockSize: 4096, partSize: 16384, initialReadahead: 0, maxReadahead: 0, fetchThreads: 2, waitLimit: 30,
        maxWalkAhead: 0, followInterval: 2),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, clock: clock, logger: Logger(label: "test"))
  }

  func inode(_ path: String) throws -> UInt64 {
    var inode = LogFilesystem.rootInode
    for part in path.split(separator: "/") { inode = try filesystem.lookup(parent: inode, name: String(part)).inode }
    return inode
  }

  /// Asks for the attributes (as `tail -f`'s `fstat` does) until `until` holds of them, the clock
  /// moving on a second each time; polls run in the background.
  func stat(_ inode: UInt64, until: (Attributes) -> Bool) throws -> Attributes {
    for _ in 0..<200 {
      let attributes = try filesystem.attributes(of: inode)
      if until(attributes) { return attributes }
      clock.advance(1)
      Thread.sleep(forTimeInterval: 0.01)
    }
    Issue.record("the attributes never changed as expected")
    return try filesystem.attributes(of: inode)
  }

  @Test func newOutputIsReadFromPollsOfTheEndAndTheFollowEndsWhenTheJobFinishes() throws {
    let key = "o/p/b/run.log"
    store.append(key, "line 1\n")
    let file = try inode(key)
    let handle = try filesystem.openFile(file)
    #expect(try filesystem.read(handle, offset: 0, count: 100) == Array("line 1\n".utf8))
    #expect(try filesystem.attributes(of: file).isGrowing)

    store.append(key, "line 2\n")
    let grown = try stat(file) { $0.size == 14 }
    #expect(grown.isGrowing)
    #expect(try filesystem.read(handle, offset: 7, count: 100) == Array("line 2\n".utf8))
    #expect(try filesystem.read(handle, offset: 14, count: 100).isEmpty)
    // Only the end was asked for: one whole read (the open's first block), then tails.
    let wholeReads = store.wholeReads.load(ordering: .relaxed)
    #expect(wholeReads <= 1)
    #expect(store.tails.load(ordering: .relaxed) >= 1)

    // A second reader shares the polls: no more tails than polls the interval allows.
    let second = try filesystem.openFile(file)
    let tailsBefore = store.tails.load(ordering: .relaxed)
    store.append(key, "line 3\n")
    _ = try stat(file) { $0.size == 21 }
    #expect(try filesystem.read(second, offset: 14, count: 7) == Array("line 3\n".utf8))
    #expect(try filesystem.read(handle, offset: 14, count: 7) == Array("line 3\n".utf8))
    #expect(store.tails.load(ordering: .relaxed) - tailsBefore <= 2)
    #expect(store.wholeReads.load(ordering: .relaxed) == wholeReads)

    // The job finishes with a last line: once the store says so, the size is final and polls stop.
    store.append(key, "finished\n")
    store.finish(key)
    let done = try stat(file) { !$0.isGrowing }
    #expect(done.size == 30)
    #expect(try filesystem.read(handle, offset: 21, count: 100) == Array("finished\n".utf8))
    let tails = store.tails.load(ordering: .relaxed)
    for _ in 0..<5 {
      clock.advance(10)
      _ = try filesystem.attributes(of: file)
      Thread.sleep(forTimeInterval: 0.01)
    }
    #expect(store.tails.load(ordering: .relaxed) == tails)
    filesystem.releaseFile(handle)
    filesystem.releaseFile(second)
  }

  /// A log that grew by more than a poll asks for: the next poll asks for more, and the bytes
  /// between are read from the store when a reader wants them.
  @Test func aBigJumpIsReadFromTheStore() throws {
    let key = "o/p/b/jump.log"
    store.append(key, "start\n")
    let file = try inode(key)
    let handle = try filesystem.openFile(file)
    defer { filesystem.releaseFile(handle) }
    _ = try filesystem.read(handle, offset: 0, count: 6)
    let big = String(repeating: "0123456789abcde\n", count: 8192)  // 128 KiB, past the first poll's 64 KiB
    store.append(key, big)
    let grown = try stat(file) { $0.size == UInt64(6 + big.utf8.count) }
    var text: [UInt8] = []
    while text.count < big.utf8.count {
      let piece = try filesystem.read(handle, offset: 6 + UInt64(text.count), count: 32768)
      #expect(!piece.isEmpty)
      if piece.isEmpty { break }
      text += piece
    }
    #expect(text == Array(big.utf8))
    #expect(grown.isGrowing)
  }

  /// A file of a log that is not open is not followed: its attributes ask nothing.
  @Test func aLogNoFileHasOpenIsNotPolled() throws {
    let key = "o/p/b/idle.log"
    store.append(key, "idle\n")
    let file = try inode(key)
    store.append(key, "more\n")
    for _ in 0..<5 {
      clock.advance(10)
      #expect(try !filesystem.attributes(of: file).isGrowing)
    }
    #expect(store.tails.load(ordering: .relaxed) == 0)
  }
}
