import BlockCache
import Glibc
import LogFS
import Logging
import ObjectStore
import Synchronization
import TestSupport
import Testing

/// The matrix of hostile S3 keys (doc/SEMANTICS.md, "Hostile names"): each is shown as it is, or
/// left out with one warning; nothing is a path, nothing crashes.
@Suite struct HostileNamesTests {
  static let long = String(repeating: "n", count: 1000)
  /// A key of more than 1,024 bytes whose components are each a legal name.
  static let deep = (0..<6).map { _ in String(repeating: "d", count: 200) }.joined(separator: "/") + "/deep.log"

  func fixture(_ log: CapturedLog, listingFreshness: Double = 60) -> Fixture {
    let fixture = Fixture(listingFreshness: listingFreshness, logger: log.logger)
    let store = fixture.store
    for (key, body) in [
      ("h/ok.log", "ok"),
      ("h/a/./dot.log", "dot"), ("h/a/../up.log", "up"), ("h/a//empty.log", "empty"), ("/lead.log", "lead"),
      ("h/nul\u{0}x.log", "nul"), ("h/new\nline.log", "newline"), ("h/cr\rx.log", "cr"), ("h/   ", "spaces"),
      ("h/sp/   /x.log", "in spaces"), ("h/" + Self.long, "long"), ("h/x", "file x"), ("h/x/y.log", "y"),
      ("h/" + Self.deep, "deep"), ("h/.fuse_hidden0000000100000001", "fuse"), ("h/.Trash-0", "trash"),
      ("h/caf\u{E9}.log", "composed"), ("h/cafe\u{301}.log", "decomposed"), ("h/\u{212A}.log", "kelvin"),
      ("h/K.log", "k"),
    ] {
      store.put(key, body)
    }
    store.putUndecodable("h/bad%FFname.log")
    store.putUndecodable("h/half%C3.log")
    return fixture
  }

  @Test func eachHostileKeyIsShownAsItIsOrLeftOutWithOneWarning() throws {
    let log = CapturedLog()
    let fixture = fixture(log)
    #expect(try fixture.names("") == [".", "..", "h"])
    let names = try fixture.names("h")
    #expect(
      names.map { Array($0.utf8) }
        == [
          ".", "..", "   ", ".Trash-0", ".fuse_hidden0000000100000001", "K.log", "a", "cafe\u{301}.log",
          "caf\u{E9}.log", "cr\rx.log", "d" + String(repeating: "d", count: 199), "new\nline.log", "ok.log", "sp",
          "x", "\u{212A}.log",
        ].map { Array($0.utf8) })
    #expect(try fixture.names("h/a") == [".", ".."])
    #expect(try fixture.names("h/sp") == [".", "..", "   "])
    #expect(try fixture.names("h/sp/   ") == [".", "..", "x.log"])
    // Every byte of the names that are kept reads back the right object.
    for (name, body) in [
      ("   ", "spaces"), ("caf\u{E9}.log", "composed"), ("cafe\u{301}.log", "decomposed"), ("cr\rx.log", "cr"),
      ("new\nline.log", "newline"), ("\u{212A}.log", "kelvin"), ("K.log", "k"), ("sp/   /x.log", "in spaces"),
      (Self.deep, "deep"), (".fuse_hidden0000000100000001", "fuse"), ("x/y.log", "y"),
    ] {
      #expect(try fixture.readAll("h/" + name) == Array(body.utf8), "\(name)")
    }
    #expect(try fixture.resolve("h/caf\u{E9}.log").inode != fixture.resolve("h/cafe\u{301}.log").inode)
    #expect(try fixture.resolve("h/x").kind == .directory)
    // One warning per key left out, naming it.
    _ = try fixture.names("h/a")
    let warnings = log.leftOut
    for (needle, reason) in [
      ("h/a/./", "cannot be a file name"), ("h/a/../", "cannot be a file name"), ("h/a//", "empty"),
      ("left out /:", "empty"), ("nul\\x0x.log", "NUL"), ("h/" + Self.long, "1000 bytes long"),
      ("h/x: ", "a directory of the same name hides it"), ("h/bad%FFname.log", "not UTF-8"),
      ("h/half%C3.log", "not UTF-8"),
    ] {
      let matching = warnings.filter { $0.contains(needle) }
      #expect(matching.count == 1, "\(needle): \(warnings)")
      #expect(matching.first?.contains(reason) == true, "\(needle): \(matching)")
    }
    #expect(warnings.count == 9, "\(warnings)")
  }

  @Test func aLeftOutNameIsNotFoundByLookupEither() throws {
    let log = CapturedLog()
    let fixture = fixture(log)
    for name in [".", "..", "nul\u{0}x.log", Self.long, "bad\u{FFFD}name.log"] {
      #expect(throws: FilesystemError.self, "\(name)") { try fixture.resolve("h/\(name)") }
    }
    #expect(throws: FilesystemError.self) { try fixture.filesystem.lookup(parent: LogFilesystem.rootInode, name: "") }
    // A lookup by name (no listing yet) of a name that differs only in its bytes finds that one.
    let fresh = self.fixture(CapturedLog())
    #expect(try fresh.readAll("h/cafe\u{301}.log") == Array("decomposed".utf8))
    #expect(try fresh.readAll("h/caf\u{E9}.log") == Array("composed".utf8))
  }

  @Test func aSubtreeListingLeavesOutTheSameKeys() throws {
    // The walk path (subtree listings, no delimiter) reaches the same verdicts as listing each directory.
    let log = CapturedLog()
    let walked = fixture(log)
    let plain = fixture(CapturedLog(), listingFreshness: 0)
    for path in ["h", "h/a", "h/sp", "h/sp/   ", "h/x"] {
      #expect(try walked.names(path).map { Array($0.utf8) } == plain.names(path).map { Array($0.utf8) }, "\(path)")
    }
  }

  @Test func twoLeftOutKeysThatDifferOnlyInTheirBytesGetAWarningEach() throws {
    let log = CapturedLog()
    let fixture = Fixture(logger: log.logger)
    fixture.store.put("caf\u{E9}\u{0}.log", "composed")
    fixture.store.put("cafe\u{301}\u{0}.log", "decomposed")
    #expect(try fixture.names("") == [".", ".."])
    #expect(log.leftOut.count == 2, "\(log.leftOut)")
  }

  @Test func aLocalFileNameThatIsNotUTF8IsLeftOutWithAWarning() throws {
    try withTemporaryDirectory { root in
      for name: [UInt8] in [Array("ok.log".utf8), Array("bad".utf8) + [0xFF] + Array("name.log".utf8)] {
        let path = Array((root + "/").utf8) + name + [0]
        let fd = path.withUnsafeBufferPointer { bytes in
          bytes.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o644) }
        }
        #expect(fd >= 0)
        close(fd)
      }
      let log = CapturedLog()
      let filesystem = LogFilesystem(
        namespace: ArchiveNamespace(client: try LocalDirectoryClient(root: root), rootPrefix: ""),
        configuration: FilesystemConfiguration(), memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil,
        logger: log.logger)
      let handle = try filesystem.openDirectory(LogFilesystem.rootInode)
      #expect(try filesystem.readDirectory(handle, from: 0).map(\.name) == [".", "..", "ok.log"])
      #expect(log.leftOut == ["warning left out bad%FFname.log (percent-encoded as listed): its key is not UTF-8"])
    }
  }

  @Test func aNamespaceThatSendsDuplicatesOrEscapingLinksIsHeldToTheRules() throws {
    let log = CapturedLog()
    let filesystem = LogFilesystem(
      namespace: CraftedNamespace(), configuration: FilesystemConfiguration(),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, logger: log.logger)
    let handle = try filesystem.openDirectory(LogFilesystem.rootInode)
    let names = try filesystem.readDirectory(handle, from: 0).map(\.name)
    #expect(names == [".", "..", "inside", "same", "sibling"])
    let same = try filesystem.lookup(parent: LogFilesystem.rootInode, name: "same")
    #expect(same.kind == .file && same.size == 5)
    let link = try filesystem.lookup(parent: LogFilesystem.rootInode, name: "sibling")
    #expect(try filesystem.readLink(link.inode) == "same")
    for name in ["up", "absolute", "deep-up", "slash/name", "empty-link"] {
      #expect(throws: FilesystemError.self, "\(name)") {
        try filesystem.lookup(parent: LogFilesystem.rootInode, name: name)
      }
    }
    let warnings = log.leftOut
    #expect(warnings.count == 6, "\(warnings)")
    #expect(warnings.filter { $0.contains("lead outside the mount") }.count == 4, "\(warnings)")
    #expect(warnings.filter { $0.contains("a second entry of that name") }.count == 1, "\(warnings)")
  }
}

/// A namespace that breaks the rules the real ones keep, to check that the filesystem holds them anyway.
struct CraftedNamespace: Namespace {
  var rootKey: String { "" }
  var clients: [any ObjectClient] { [] }

  func list(directory key: String) throws(FilesystemError) -> NamespaceListing {
    func file(_ text: String) -> NamespaceEntry.Content {
      .file(
        FileContent(
          size: UInt64(text.utf8.count), modified: Timestamp(seconds: 0), isImmutable: true,
          source: .bytes(Array(text.utf8))))
    }
    return NamespaceListing(entries: [
      NamespaceEntry(name: "same", content: file("first")),
      NamespaceEntry(name: "same", content: file("second one")),
      NamespaceEntry(name: "sibling", content: .symlink(target: "same")),
      NamespaceEntry(name: "inside", content: .symlink(target: "a/b/c")),
      NamespaceEntry(name: "up", content: .symlink(target: "../outside")),
      NamespaceEntry(name: "absolute", content: .symlink(target: "/etc/passwd")),
      NamespaceEntry(name: "deep-up", content: .symlink(target: "a/../../b")),
      NamespaceEntry(name: "empty-link", content: .symlink(target: "")),
      NamespaceEntry(name: "slash/name", content: file("x")),
    ])
  }

  func lookup(directory key: String, name: String) throws(FilesystemError) -> NamespaceEntry? {
    try list(directory: key).entries.first { sameBytes($0.name, name) }
  }
}
