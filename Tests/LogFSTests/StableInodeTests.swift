import BlockCache
import Logging
import ObjectStore
import TestSupport
import Testing

@testable import LogFS

/// Inode numbers are the same in every mount of one source, whatever the lookup order, so backup
/// tools that key change detection on them see nothing new after a remount.
@Suite struct StableInodeTests {
  static let paths = [
    "org-a/pipe-1/build-1/job-1.log", "org-a/pipe-1/build-1/job-2.log", "org-a/pipe-1/build-2/job-1.log",
    "org-b/pipe-9/build-7/caf\u{E9}.log", "org-b/pipe-9/build-7/cafe\u{301}.log",
  ]

  static func store() -> InMemoryObjectClient {
    let store = InMemoryObjectClient(identity: "s3://archive")
    for (index, path) in paths.enumerated() { store.put(path, Array(repeating: UInt8(index), count: 10 + index)) }
    return store
  }

  static func filesystem(_ store: InMemoryObjectClient, rootPrefix: String = "") -> LogFilesystem {
    LogFilesystem(
      namespace: ArchiveNamespace(client: store, rootPrefix: rootPrefix), configuration: FilesystemConfiguration(),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, logger: Logger(label: "test"))
  }

  /// The inode of every path and of the directories on the way, looked up in `order`, by the
  /// path's bytes (Swift's `String ==` would take the two spellings of café for one).
  static func inodes(_ filesystem: LogFilesystem, _ order: [String]) throws -> [[UInt8]: UInt64] {
    var found: [[UInt8]: UInt64] = [:]
    for path in order {
      var inode = LogFilesystem.rootInode
      var sofar = ""
      for component in path.split(separator: "/") {
        sofar += (sofar.isEmpty ? "" : "/") + component
        inode = try filesystem.lookup(parent: inode, name: String(component)).inode
        found[Array(sofar.utf8)] = inode
      }
    }
    return found
  }

  @Test func aRemountGivesEveryPathItsNumberInAnyLookupOrder() throws {
    let store = Self.store()
    let first = try Self.inodes(Self.filesystem(store), Self.paths)
    let second = try Self.inodes(Self.filesystem(store), Self.paths.reversed())
    // A mount that lists every directory before looking anything up.
    let listed = Self.filesystem(store)
    for directory in ["", "org-a", "org-a/pipe-1", "org-b/pipe-9/build-7"] {
      let inode =
        directory.isEmpty ? LogFilesystem.rootInode : try Self.inodes(listed, [directory])[Array(directory.utf8)]!
      listed.releaseDirectory(try listed.openDirectory(inode))
    }
    let third = try Self.inodes(listed, Self.paths.shuffled())
    #expect(first == second)
    #expect(first == third)
    // Every path has its own number, the two spellings of café included.
    #expect(first.count == 12)
    #expect(Set(first.values).count == first.count)
    #expect(!first.values.contains(0) && !first.values.contains(1))
  }

  /// Pinned, so that a change of hash (or Swift's per-process seeded `Hasher` creeping in) shows:
  /// these numbers must be the same on every machine and in every release that keeps the format.
  @Test func numbersArePinned() throws {
    let found = try Self.inodes(Self.filesystem(Self.store()), ["org-a/pipe-1/build-1/job-1.log"])
    #expect(found[Array("org-a".utf8)] == 17_638_504_342_365_990_012)
    #expect(found[Array("org-a/pipe-1/build-1/job-1.log".utf8)] == 15_033_250_533_262_663_397)
  }

  @Test func anotherSourceGivesOtherNumbers() throws {
    let store = Self.store()
    let whole = try Self.inodes(Self.filesystem(store), ["org-a/pipe-1/build-1/job-1.log"])
    let other = InMemoryObjectClient(identity: "s3://another")
    other.put("org-a/pipe-1/build-1/job-1.log", [1])
    let elsewhere = try Self.inodes(Self.filesystem(other), ["org-a/pipe-1/build-1/job-1.log"])
    #expect(Set(whole.values).isDisjoint(with: elsewhere.values))
    // The same keys under a root prefix are another source too.
    let prefixed = try Self.inodes(Self.filesystem(store, rootPrefix: "org-a/"), ["pipe-1/build-1/job-1.log"])
    #expect(prefixed[Array("pipe-1/build-1/job-1.log".utf8)] != whole[Array("org-a/pipe-1/build-1/job-1.log".utf8)])
  }

  @Test func aFileAndADirectoryOfOneNameHaveOtherNumbers() {
    let file = StableInode.seed(parent: 42, name: "x", kind: .file)
    let directory = StableInode.seed(parent: 42, name: "x", kind: .directory)
    let link = StableInode.seed(parent: 42, name: "x", kind: .symlink)
    #expect(Set([file, directory, link]).count == 3)
  }

  /// Two paths whose numbers collide: the one seen second gets the next free number, and no number
  /// ever stands for two paths in one mount.
  @Test func aCollisionGivesTheSecondPathTheNextFreeNumber() {
    var table = InodeTable(rootKey: "", source: "test", seedOf: { _, _, _ in 1000 })
    let a = table.recordLookup(in: InodeTable.rootInode, name: "a", entry: entry("a"))
    let b = table.recordLookup(in: InodeTable.rootInode, name: "b", entry: entry("b"))
    let c = table.recordLookup(in: InodeTable.rootInode, name: "c", entry: entry("c"))
    #expect([a, b, c] == [1000, 1001, 1002])
    // A path seen again keeps its number.
    #expect(table.recordLookup(in: InodeTable.rootInode, name: "b", entry: entry("b")) == 1001)
    // Seeds that would be 0 or 1 (no inode, the root) are moved past them.
    var low = InodeTable(rootKey: "", source: "test", seedOf: { _, name, _ in name == "z" ? 0 : 1 })
    #expect(low.recordLookup(in: InodeTable.rootInode, name: "z", entry: entry("z")) == 2)
    #expect(low.recordLookup(in: InodeTable.rootInode, name: "o", entry: entry("o")) == 3)
  }

  /// A collided path's number stays its own while the kernel holds it, even once the path that
  /// owned the hash is gone, and the table finds it again rather than making a second node.
  @Test func aDisplacedPathKeepsItsNumberWhenTheFirstGoes() {
    var table = InodeTable(rootKey: "", source: "test", seedOf: { _, _, _ in 1000 })
    let a = table.recordLookup(in: InodeTable.rootInode, name: "a", entry: entry("a"))!
    let b = table.recordLookup(in: InodeTable.rootInode, name: "b", entry: entry("b"))!
    _ = table.reference(b)
    _ = table.reference(a)
    // "a" is gone from the directory and forgotten: its number is free again.
    _ = table.recordLookup(in: InodeTable.rootInode, name: "a", entry: nil)
    table.forget(a, count: 1, now: 0)
    #expect(table.node(a) == nil)
    #expect(table.recordLookup(in: InodeTable.rootInode, name: "b", entry: entry("b")) == b)
    #expect(table.count == 2)
    // A new path hashing there takes the free number; "b" keeps its own.
    #expect(table.recordLookup(in: InodeTable.rootInode, name: "c", entry: entry("c")) == a)
    #expect(table.recordLookup(in: InodeTable.rootInode, name: "b", entry: entry("b")) == b)
  }

  @Test(arguments: [
    "\"0123456789abcdef0123456789abcdef\"", "\"00000000000000000000000000000000\"",
    "\"0123456789ABCDEF0123456789ABCDEF\"", "\"0123456789abcdef0123456789abcdef-12\"", "12-34-56-78", "\"\"", "",
  ])
  func anETagIsKeptExactly(etag: String) {
    #expect(CompactETag(etag).string == etag)
  }

  @Test func anS3ETagIsKeptIn16Bytes() {
    #expect(CompactETag("\"0123456789abcdef0123456789abcdef\"") == .md5(0x0123_4567_89ab_cdef, 0x0123_4567_89ab_cdef))
    #expect(CompactETag("\"0123456789abcdeg0123456789abcdef\"") == .text("\"0123456789abcdeg0123456789abcdef\""))
  }

  /// A one-byte file entry of this name.
  func entry(_ name: String) -> NamespaceEntry {
    NamespaceEntry(
      name: name,
      content: .file(FileContent(size: 1, modified: Timestamp(seconds: 0), isImmutable: true, source: .bytes([1]))))
  }
}
