import BlockCache
import Dispatch
import Glibc
import LogFS
import Logging
import ObjectStore
import Synchronization
import SystemBase
import TestSupport
import Testing

/// A namespace made of fixed entries, counting how often it is asked, to test what LogFS does with
/// any namespace: symbolic links, inline bytes, per-listing TTLs and immutability.
final class FixedNamespace: Namespace {
  let rootKey = "/"
  let clients: [any ObjectClient]
  let tree: [String: [NamespaceEntry]]
  let ttl: Double?
  let calls = Mutex((lists: 0, lookups: 0))

  init(tree: [String: [NamespaceEntry]], ttl: Double?, clients: [any ObjectClient] = []) {
    self.tree = tree
    self.ttl = ttl
    self.clients = clients
  }

  func list(directory key: String) throws(FilesystemError) -> NamespaceListing {
    calls.withLock { $0.lists += 1 }
    guard let entries = tree[key] else { throw FilesystemError(.notFound, "no directory \(key)") }
    return NamespaceListing(entries: entries, ttl: ttl)
  }

  func lookup(directory key: String, name: String) throws(FilesystemError) -> NamespaceEntry? {
    calls.withLock { $0.lookups += 1 }
    return tree[key]?.first { $0.name == name }
  }
}

@Suite struct NamespaceProtocolTests {
  static let metadata = Array(#"{"number": 42, "state": "passed"}"#.utf8)
  static let store: InMemoryObjectClient = {
    let store = InMemoryObjectClient()
    store.put("org-uuid/pipe-uuid/build-uuid/job-uuid.log", "the log\r\n")
    return store
  }()

  static func tree(running: Bool) -> [String: [NamespaceEntry]] {
    let info = try! store.head(key: "org-uuid/pipe-uuid/build-uuid/job-uuid.log")
    let log = FileContent(
      size: info.size, modified: info.lastModified, isImmutable: !running,
      source: .object(client: store, key: info.key, etag: info.etag))
    return [
      "/": [NamespaceEntry(name: "acme", content: .directory(key: "/acme"))],
      "/acme": [NamespaceEntry(name: "42", content: .directory(key: "/acme/42"))],
      "/acme/42": [
        NamespaceEntry(name: "job-uuid.log", content: .file(log)),
        NamespaceEntry(
          name: "build.json",
          content: .file(
            FileContent(
              size: UInt64(metadata.count), modified: Timestamp(seconds: 1), isImmutable: true, source: .bytes(metadata)
            ))),
        NamespaceEntry(name: "test-1.log", content: .symlink(target: "job-uuid.log")),
      ],
    ]
  }

  func filesystem(_ namespace: FixedNamespace) -> LogFilesystem {
    LogFilesystem(
      namespace: namespace, configuration: FilesystemConfiguration(blockSize: 4096, directoryTTL: 60),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, logger: Logger(label: "test"))
  }

  func resolve(_ filesystem: LogFilesystem, _ path: String) throws -> Attributes {
    var attributes = try filesystem.attributes(of: LogFilesystem.rootInode)
    for component in path.split(separator: "/") {
      attributes = try filesystem.lookup(parent: attributes.inode, name: String(component))
    }
    return attributes
  }

  func contents(_ filesystem: LogFilesystem, _ path: String) throws -> [UInt8] {
    let handle = try filesystem.openFile(try resolve(filesystem, path).inode)
    defer { filesystem.releaseFile(handle) }
    return try filesystem.read(handle, offset: 0, count: 1 << 20)
  }

  @Test func symlinksInlineBytesAndObjects() throws {
    let filesystem = filesystem(FixedNamespace(tree: Self.tree(running: false), ttl: nil))
    let link = try resolve(filesystem, "acme/42/test-1.log")
    #expect(link.kind == .symlink)
    #expect(try filesystem.readLink(link.inode) == "job-uuid.log")
    #expect(link.size == UInt64("job-uuid.log".utf8.count))
    #expect(try contents(filesystem, "acme/42/build.json") == Self.metadata)
    #expect(try contents(filesystem, "acme/42/job-uuid.log") == Array("the log\r\n".utf8))
    let notALink = #expect(throws: FilesystemError.self) {
      try filesystem.readLink(try resolve(filesystem, "acme/42/build.json").inode)
    }
    #expect(notALink?.errno == EINVAL)
    let handle = try filesystem.openDirectory(try resolve(filesystem, "acme/42").inode)
    #expect(
      try filesystem.readDirectory(handle, from: 0).map(\.name) == [
        ".", "..", "build.json", "job-uuid.log", "test-1.log",
      ])
  }

  @Test func immutabilityComesFromTheNamespace() throws {
    let finished = filesystem(FixedNamespace(tree: Self.tree(running: false), ttl: nil))
    #expect(try resolve(finished, "acme/42/job-uuid.log").isImmutable)
    let running = filesystem(FixedNamespace(tree: Self.tree(running: true), ttl: nil))
    #expect(try !resolve(running, "acme/42/job-uuid.log").isImmutable)
    #expect(try !resolve(running, "acme").isImmutable)
  }

  @Test func aListingsOwnTTLDecidesWhenItIsListedAgain() throws {
    let trusted = FixedNamespace(tree: Self.tree(running: false), ttl: 3600)
    let fs = filesystem(trusted)
    for _ in 0..<3 { fs.releaseDirectory(try fs.openDirectory(LogFilesystem.rootInode)) }
    #expect(trusted.calls.withLock { $0.lists } == 1)

    let expiring = FixedNamespace(tree: Self.tree(running: true), ttl: 0)
    let fs2 = filesystem(expiring)
    for _ in 0..<3 { fs2.releaseDirectory(try fs2.openDirectory(LogFilesystem.rootInode)) }
    #expect(expiring.calls.withLock { $0.lists } == 3)
  }

  @Test func aTrustedListingAnswersLookupsWithoutAskingAgain() throws {
    let namespace = FixedNamespace(tree: Self.tree(running: false), ttl: 3600)
    let fs = filesystem(namespace)
    fs.releaseDirectory(try fs.openDirectory(LogFilesystem.rootInode))
    #expect(try resolve(fs, "acme").kind == .directory)
    #expect(throws: FilesystemError.self) { try resolve(fs, "nope") }
    #expect(namespace.calls.withLock { $0.lookups } == 0)
  }
}

/// A directory that lists only some of its names, as a pipeline lists only its newest builds.
final class WindowNamespace: Namespace {
  let rootKey = "/"
  let clients: [any ObjectClient] = []
  let lookups = Mutex(0)

  func list(directory key: String) throws(FilesystemError) -> NamespaceListing {
    NamespaceListing(
      entries: [NamespaceEntry(name: "302", content: .directory(key: "/302"))], ttl: 3600, isComplete: false)
  }

  func lookup(directory key: String, name: String) throws(FilesystemError) -> NamespaceEntry? {
    lookups.withLock { $0 += 1 }
    return name == "50" ? NamespaceEntry(name: "50", content: .directory(key: "/50")) : nil
  }
}

@Suite struct PartialListingTests {
  @Test func namesBeyondAPartialListingAreLookedUp() throws {
    let namespace = WindowNamespace()
    let fs = LogFilesystem(
      namespace: namespace, configuration: FilesystemConfiguration(), memoryCache: MemoryBlockCache(maxBytes: 1 << 20),
      diskCache: nil, logger: Logger(label: "test"))
    fs.releaseDirectory(try fs.openDirectory(LogFilesystem.rootInode))
    #expect(try fs.lookup(parent: LogFilesystem.rootInode, name: "302").kind == .directory)
    #expect(namespace.lookups.withLock { $0 } == 0)
    #expect(try fs.lookup(parent: LogFilesystem.rootInode, name: "50").kind == .directory)
    #expect(throws: FilesystemError.self) { try fs.lookup(parent: LogFilesystem.rootInode, name: "49") }
    #expect(namespace.lookups.withLock { $0 } == 2)
  }
}

@Suite struct FetchThreadTests {
  /// Readahead of files from two stores runs on the filesystem's one pool: with 2 fetch threads,
  /// at most 2 background GETs wait at once, not 2 per store.
  @Test func storesShareOneFetchPool() throws {
    let blockSize = 4096
    let stores = [0, 1].map { GatedObjectClient(InMemoryObjectClient(identity: "memory://store-\($0)")) }
    var entries: [NamespaceEntry] = []
    for (number, store) in stores.enumerated() {
      for file in 0..<4 {
        let key = "s\(number)/f\(file).log"
        store.inner.put(key, Array(repeating: UInt8(file), count: 16 * blockSize))
        let info = try store.inner.head(key: key)
        entries.append(
          NamespaceEntry(
            name: "s\(number)-f\(file).log",
            content: .file(
              FileContent(
                size: info.size, modified: info.lastModified, isImmutable: true,
                source: .object(client: store, key: key, etag: info.etag)))))
      }
    }
    let filesystem = LogFilesystem(
      namespace: FixedNamespace(tree: ["/": entries], ttl: nil, clients: stores),
      configuration: FilesystemConfiguration(
        blockSize: blockSize, partSize: blockSize, initialReadahead: UInt64(4 * blockSize),
        maxReadahead: UInt64(4 * blockSize), fetchThreads: 2, initialWalkAhead: 8, maxWalkAhead: 8),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 22), diskCache: nil, logger: Logger(label: "test"))
    defer {
      for store in stores { for _ in 0..<64 { store.gate.signal() } }
      filesystem.shutdown()
    }
    let directory = try filesystem.openDirectory(LogFilesystem.rootInode)
    filesystem.releaseDirectory(directory)
    // Opening the first two files of the directory in order starts a walk: the start of every
    // other file, from both stores, is fetched ahead in the background.
    for name in ["s0-f0.log", "s0-f1.log"] {
      let file = try filesystem.lookup(parent: LogFilesystem.rootInode, name: name)
      filesystem.releaseFile(try filesystem.openFile(file.inode))
    }
    func waiting() -> Int { stores.map { $0.waiting.load(ordering: .relaxed) }.reduce(0, +) }
    let deadline = SystemClock().now() + 5
    while waiting() < 2 && SystemClock().now() < deadline { usleep(10_000) }
    // Time for a third thread, if there were one, to reach the gate too.
    usleep(200_000)
    #expect(waiting() == 2)
  }
}

/// A tree whose entries a test changes between listings, as a source learns newer builds.
final class ChangingNamespace: Namespace {
  let rootKey = "/"
  let clients: [any ObjectClient] = []
  let tree: Mutex<[String: [NamespaceEntry]]>

  init(_ tree: [String: [NamespaceEntry]]) { self.tree = Mutex(tree) }

  func list(directory key: String) throws(FilesystemError) -> NamespaceListing {
    guard let entries = tree.withLock({ $0[key] }) else { throw FilesystemError(.notFound, "no directory \(key)") }
    return NamespaceListing(entries: entries)
  }

  func lookup(directory key: String, name: String) throws(FilesystemError) -> NamespaceEntry? {
    tree.withLock { $0[key]?.first { $0.name == name } }
  }
}

/// Directories and links show the time their namespace gives them, and 0 without one: never the
/// mount's time, so that every mount shows the same (doc/SEMANTICS.md, "Attributes").
@Suite struct DirectoryTimeTests {
  static let built = Timestamp(seconds: 1_717_200_000)
  static let linked = Timestamp(seconds: 1_717_300_000, nanoseconds: 5)
  static let file = FileContent(
    size: 3, modified: Timestamp(seconds: 1_717_400_000), isImmutable: true, source: .bytes([1, 2, 3]))

  static func tree(build: Timestamp?) -> [String: [NamespaceEntry]] {
    [
      "/": [
        NamespaceEntry(name: "timed", content: .directory(key: "/timed"), modified: build),
        NamespaceEntry(name: "untimed", content: .directory(key: "/untimed")),
      ],
      "/timed": [
        NamespaceEntry(name: "a.log", content: .file(file)),
        NamespaceEntry(name: "alias.log", content: .symlink(target: "a.log"), modified: linked),
        NamespaceEntry(name: "bare.log", content: .symlink(target: "a.log")),
      ],
      "/untimed": [],
    ]
  }

  /// A filesystem on a clock far from 1970, so a time taken from the clock would show.
  func filesystem(_ namespace: any Namespace, clock: FakeClock = FakeClock()) -> LogFilesystem {
    LogFilesystem(
      namespace: namespace, configuration: FilesystemConfiguration(directoryTTL: 60),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, clock: clock, logger: Logger(label: "test"))
  }

  func listing(_ fs: LogFilesystem, _ inode: UInt64) throws -> [String: Attributes] {
    let handle = try fs.openDirectory(inode)
    defer { fs.releaseDirectory(handle) }
    return Dictionary(uniqueKeysWithValues: try fs.readDirectory(handle, from: 0).map { ($0.name, $0.attributes) })
  }

  @Test func aDirectoryOrLinkShowsItsEntrysTimeInLookupsAndListings() throws {
    let fs = filesystem(FixedNamespace(tree: Self.tree(build: Self.built), ttl: nil))
    let timed = try fs.lookup(parent: LogFilesystem.rootInode, name: "timed")
    #expect(timed.modified == Self.built)
    #expect(try fs.lookup(parent: timed.inode, name: "alias.log").modified == Self.linked)
    let root = try listing(fs, LogFilesystem.rootInode)
    #expect(root["timed"]?.modified == Self.built)
    let inside = try listing(fs, timed.inode)
    #expect(inside["."]?.modified == Self.built)
    #expect(inside["alias.log"]?.modified == Self.linked)
    #expect(inside["a.log"]?.modified == Self.file.modified)
    #expect(try fs.attributes(of: timed.inode).modified == Self.built)
  }

  @Test func withoutATimeADirectoryALinkAndTheRootShowTheEpoch() throws {
    let clock = FakeClock()
    clock.advance(0.25)
    let fs = filesystem(FixedNamespace(tree: Self.tree(build: nil), ttl: nil), clock: clock)
    let epoch = Timestamp(seconds: 0)
    #expect(try fs.attributes(of: LogFilesystem.rootInode).modified == epoch)
    let root = try listing(fs, LogFilesystem.rootInode)
    #expect(root["."]?.modified == epoch && root[".."]?.modified == epoch)
    #expect(root["untimed"]?.modified == epoch && root["timed"]?.modified == epoch)
    let timed = try fs.lookup(parent: LogFilesystem.rootInode, name: "timed")
    #expect(try fs.lookup(parent: timed.inode, name: "bare.log").modified == epoch)
    #expect(try listing(fs, timed.inode)["bare.log"]?.modified == epoch)
  }

  @Test func aRelistingKeepsATimeUntilTheNamespaceGivesAnother() throws {
    let clock = FakeClock()
    let namespace = ChangingNamespace(Self.tree(build: Self.built))
    let fs = filesystem(namespace, clock: clock)
    let first = try listing(fs, LogFilesystem.rootInode)["timed"]
    #expect(first?.modified == Self.built)
    clock.advance(61)
    #expect(try listing(fs, LogFilesystem.rootInode)["timed"] == first)
    // The source learned of something newer: a relisting shows it, on the same inode.
    let newer = Timestamp(seconds: Self.built.seconds + 3600)
    namespace.tree.withLock { $0 = Self.tree(build: newer) }
    clock.advance(61)
    let second = try listing(fs, LogFilesystem.rootInode)["timed"]
    #expect(second?.modified == newer && second?.inode == first?.inode)
    #expect(try fs.attributes(of: try #require(first).inode).modified == newer)
    // And so does a lookup that records the entry again (the listing no longer trusted).
    namespace.tree.withLock { $0 = Self.tree(build: Self.built) }
    clock.advance(61)
    #expect(try fs.lookup(parent: LogFilesystem.rootInode, name: "timed").modified == Self.built)
  }
}
