import ObjectStore
import TestSupport
import Testing

@testable import LogFS

/// The inode table keeps names and contents compactly (`PackedName`, derived keys, ETags as 16
/// bytes, the rest aside): what it gives back must be what it was given, whatever the mix.
@Suite struct InodeTableTests {
  static let store = try! LocalDirectoryClient(root: "/")

  static func uuid(_ index: Int, _ salt: UInt64 = 0) -> String {
    var random = SeededGenerator(seed: UInt64(index) &+ salt &* 1_000_003)
    let hex = Array("0123456789abcdef")
    var text = String((0..<32).map { _ in hex[Int(random.next() % 16)] })
    for position in [8, 13, 18, 23] { text.insert("-", at: text.index(text.startIndex, offsetBy: position)) }
    return text
  }

  static func file(_ name: String, key: String, etag: String, size: UInt64?, seconds: Int64 = 1_700_000_000)
    -> NamespaceEntry
  {
    NamespaceEntry(
      name: name,
      content: .file(
        FileContent(
          size: size, modified: Timestamp(seconds: seconds, nanoseconds: 123_000_000), isImmutable: true,
          source: .object(client: store, key: key, etag: etag))))
  }

  /// What a name held costs is mostly its record (doc/ARCHITECTURE.md): it must not grow unnoticed.
  @Test func aRecordTakes80Bytes() {
    #expect(InodeTable.recordSize == 80)
    #expect(MemoryLayout<PackedName>.size == 17)
  }

  /// A build directory of UUID logs, readable aliases, a link, a bytes file, a file whose key is
  /// not its path and one whose ETag is not an MD5: listed in a shuffled order, read back exactly.
  @Test func aMixedDirectoryIsReadBackExactlyInByteOrder() {
    var table = InodeTable(rootKey: "org/", source: "test")
    let build = Self.uuid(0)
    table.replaceListing(
      of: InodeTable.rootInode, with: [NamespaceEntry(name: build, content: .directory(key: "org/\(build)/"))],
      trustedUntil: 100, isComplete: true)
    let directory = table.child(named: build, in: InodeTable.rootInode)!
    var entries: [NamespaceEntry] = (1...40).map { index in
      let name = Self.uuid(index) + (index % 3 == 0 ? "" : ".log")
      return Self.file(
        name, key: "org/\(build)/\(name)", etag: "\"\(String(repeating: "0a", count: 16))\"", size: UInt64(index))
    }
    entries.append(Self.file("rspec-3.log", key: "elsewhere/rspec", etag: "\"abc-2\"", size: nil))
    entries.append(
      Self.file(Self.uuid(99).uppercased(), key: "org/\(build)/\(Self.uuid(99).uppercased())", etag: "", size: 5))
    entries.append(NamespaceEntry(name: "latest", content: .symlink(target: Self.uuid(1) + ".log")))
    entries.append(
      NamespaceEntry(
        name: "build.json",
        content: .file(
          FileContent(size: 2, modified: Timestamp(seconds: 1), isImmutable: false, source: .bytes([7, 8])))))
    var random = SeededGenerator(seed: 7)
    entries.shuffle(using: &random)
    table.replaceListing(of: directory, with: entries, trustedUntil: 100, isComplete: true)

    let listed = table.entries(of: directory)
    #expect(listed.map(\.name) == entries.map(\.name).sorted(by: utf8Less))
    #expect(table.listing(directory)?.count == entries.count)
    for entry in entries {
      guard let inode = table.child(named: entry.name, in: directory), let node = table.node(inode) else {
        Issue.record("\(entry.name) is not found")
        continue
      }
      #expect(sameBytes(node.name, entry.name))
      #expect(node.parent == directory)
      #expect(inode == table.number(in: directory, name: entry.name, kind: entry.content.kind))
      #expect(table.position(of: entry.name, in: directory) == listed.firstIndex { sameBytes($0.name, entry.name) })
      switch (node.content, entry.content) {
      case (.file(let kept), .file(let given)):
        #expect(kept.size == given.size && kept.modified == given.modified && kept.isImmutable == given.isImmutable)
        switch (kept.source, given.source) {
        case (.object(_, let key, let etag, let version), .object(_, let givenKey, let givenEtag, let givenVersion)):
          #expect(sameBytes(key, givenKey) && sameBytes(etag, givenEtag) && version == givenVersion)
        case (.bytes(let bytes), .bytes(let givenBytes)): #expect(bytes == givenBytes)
        default: Issue.record("\(entry.name) changed its source")
        }
      case (.symlink(let target), .symlink(let givenTarget)): #expect(target == givenTarget)
      default: Issue.record("\(entry.name) changed its kind")
      }
    }
    #expect(table.child(named: Self.uuid(1), in: directory) == nil)  // a UUID without its ".log"
    #expect(table.child(named: Self.uuid(99), in: directory) == nil)  // lowercase of an uppercase name
  }

  /// Names looked up join the known names in their place; a streamed directory's snapshot shows
  /// only what its listing gave; a name found gone leaves; a new version of a file is reported.
  @Test func lookupsKeepTheKnownNamesInOrder() {
    var table = InodeTable(rootKey: "", source: "test")
    let names = (0..<30).map { Self.uuid($0, 5) + ".log" }
    let entries = names.map { Self.file($0, key: $0, etag: "\"\(String(repeating: "1f", count: 16))\"", size: 9) }
    table.replaceListing(
      of: InodeTable.rootInode, with: Array(entries.prefix(10)), trustedUntil: 100, isComplete: false,
      continuation: "after")
    for entry in entries.dropFirst(10) {
      _ = table.recordLookup(in: InodeTable.rootInode, name: entry.name, entry: entry)
    }
    #expect(table.entries(of: InodeTable.rootInode).map(\.name) == names.sorted(by: utf8Less))
    #expect(
      table.entries(of: InodeTable.rootInode, listedOnly: true).map(\.name) == names.prefix(10).sorted(by: utf8Less))
    let gone = names[15]
    #expect(table.recordLookup(in: InodeTable.rootInode, name: gone, entry: nil) == nil)
    #expect(table.child(named: gone, in: InodeTable.rootInode) == nil)
    #expect(table.count == 30)
    _ = table.takeChangedFiles()
    let changed = Self.file(names[3], key: names[3], etag: "\"\(String(repeating: "2e", count: 16))\"", size: 9)
    let inode = table.recordLookup(in: InodeTable.rootInode, name: names[3], entry: changed)!
    #expect(table.takeChangedFiles() == [inode])
    _ = table.recordLookup(in: InodeTable.rootInode, name: names[3], entry: changed)
    #expect(table.takeChangedFiles().isEmpty)
  }

  /// Past its capacity the table lets go of the least recently used listings; what it let go comes
  /// back with the same numbers, and slots it freed are used again.
  @Test func evictedNamesComeBackWithTheirNumbers() {
    var table = InodeTable(rootKey: "", source: "test", capacity: 500)
    let builds = (0..<50).map { Self.uuid($0, 9) }
    table.replaceListing(
      of: InodeTable.rootInode, with: builds.map { NamespaceEntry(name: $0, content: .directory(key: $0 + "/")) },
      trustedUntil: 100, isComplete: true)
    var numbers: [String: UInt64] = [:]
    for build in builds {
      table.touch(InodeTable.rootInode)  // as a walk's lookups in it do
      let directory = table.child(named: build, in: InodeTable.rootInode)!
      let jobs = (0..<20).map { Self.uuid($0, UInt64(build.utf8.first!)) + ".log" }
      table.replaceListing(
        of: directory, with: jobs.map { Self.file($0, key: build + "/" + $0, etag: "\"\"", size: 1) },
        trustedUntil: 100, isComplete: true)
      for job in jobs { numbers[build + "/" + job] = table.child(named: job, in: directory) }
      _ = table.evict()
      #expect(table.count <= 500 + 500 / 20 + 21)
    }
    var seen = 0
    // The root's listing may have gone too: listed again, as the filesystem would.
    table.replaceListing(
      of: InodeTable.rootInode, with: builds.map { NamespaceEntry(name: $0, content: .directory(key: $0 + "/")) },
      trustedUntil: 100, isComplete: true)
    for (path, number) in numbers {
      let parts = path.split(separator: "/").map(String.init)
      let directory = table.child(named: parts[0], in: InodeTable.rootInode)!
      #expect(table.number(in: directory, name: parts[1], kind: .file) == number)
      if table.child(named: parts[1], in: directory) != nil { seen += 1 }
    }
    #expect(seen < numbers.count)  // some were let go
  }
}
