import LogFS
import LogText
import ObjectStore
import TestSupport
import Testing

/// The plain view (`FilesystemConfiguration.plainText`): logs shown as plain text, with `stat`'s
/// size the size reads return, and other files as stored.
@Suite struct PlainViewTests {
  static let log = Array(
    ("\u{1B}_bk;t=1764924000000\u{07}~~~ Preparing\r\n\u{1B}[32mok\u{1B}[0m 10%\r\u{1B}[32mok\u{1B}[0m 100%\n"
      + "--- Running\n").utf8)

  static func plain(_ log: [UInt8], timestamps: Bool = false) -> [UInt8] {
    PlainTextRenderer.text(of: log, options: PlainTextOptions(timestamps: timestamps))
  }

  @Test func aLogShowsItsPlainTextAndItsSizeBeforeItIsRead() throws {
    let fixture = Fixture(plainText: PlainTextOptions())
    fixture.store.put("o/p/b/job.log", Self.log)
    let json = Array("{\"a\": \"\u{1B}[31m\"}\r\n".utf8)
    fixture.store.put("o/p/b/build.json", json)
    let text = Self.plain(Self.log)
    #expect(String(decoding: text, as: UTF8.self) == "~~~ Preparing\nok 100%\n--- Running\n")
    let attributes = try fixture.resolve("o/p/b/job.log")
    #expect(attributes.size == UInt64(text.count))
    #expect(attributes.sizeIsKnown)
    #expect(try fixture.filesystem.attributes(of: attributes.inode).size == UInt64(text.count))
    #expect(try fixture.readAll("o/p/b/job.log", chunk: 7) == text)
    // Other files are shown as stored.
    #expect(try fixture.resolve("o/p/b/build.json").size == UInt64(json.count))
    #expect(try fixture.readAll("o/p/b/build.json") == json)
  }

  @Test func timestampsStartTheLinesThatHaveThem() throws {
    let fixture = Fixture(plainText: PlainTextOptions(timestamps: true))
    fixture.store.put("o/p/b/job.log", Self.log)
    let text = try fixture.readAll("o/p/b/job.log")
    #expect(String(decoding: text, as: UTF8.self) == "2025-12-05T08:40:00Z ~~~ Preparing\nok 100%\n--- Running\n")
    #expect(try fixture.resolve("o/p/b/job.log").size == UInt64(text.count))
  }

  /// A listing shows a log not yet rendered with no size, for the kernel to ask again; once looked
  /// up, its plain size.
  @Test func aListingShowsThePlainSizeOnceKnown() throws {
    let fixture = Fixture(plainText: PlainTextOptions())
    fixture.store.put("o/p/b/job.log", Self.log)
    func listed() throws -> Attributes {
      let directory = try fixture.resolve("o/p/b").inode
      let handle = try fixture.filesystem.openDirectory(directory)
      defer { fixture.filesystem.releaseDirectory(handle) }
      return try #require(try fixture.filesystem.readDirectory(handle, from: 0).first { $0.name == "job.log" })
        .attributes
    }
    #expect(try !listed().sizeIsKnown)
    let size = try fixture.resolve("o/p/b/job.log").size
    let after = try listed()
    #expect(after.sizeIsKnown && after.size == size)
  }

  /// Reads anywhere in a long log (many blocks, many places in its index) return its text there,
  /// in order or not, with one handle or several.
  @Test func readsAnywhereInALongLogReturnItsText() throws {
    let fixture = Fixture(plainText: PlainTextOptions())
    var log: [UInt8] = []
    var line = 0
    while log.count < 3 << 20 {
      log += Array("\u{1B}[1m\(line)\u{1B}[0m progress 1%\rline \(line) done\u{1B}[K   \r\n".utf8)
      line += 1
    }
    fixture.store.put("o/p/b/long.log", log)
    let text = Self.plain(log)
    #expect(text.count < log.count / 2)
    #expect(try fixture.readAll("o/p/b/long.log", chunk: 131_072) == text)
    let handle = try fixture.filesystem.openFile(try fixture.resolve("o/p/b/long.log").inode)
    defer { fixture.filesystem.releaseFile(handle) }
    for offset in [text.count - 10, 5, text.count / 2, text.count / 2 - 4096, 1_500_000, text.count + 5] {
      let got = try fixture.filesystem.read(handle, offset: UInt64(offset), count: 4096)
      let expected = offset < text.count ? Array(text[offset..<min(text.count, offset + 4096)]) : []
      #expect(got == expected, "at \(offset)")
    }
  }

  /// An archived log cannot be rendered: it shows its object's size, offline, with no request.
  @Test func anArchivedLogShowsItsObjectsSize() throws {
    let store = InMemoryObjectClient(identity: "s3://logs", hasStorageClasses: true)
    let fixture = Fixture(store: store, plainText: PlainTextOptions())
    let glacier = ObjectStorage(storageClass: "GLACIER", restore: .notRestored)
    store.put("o/p/b/cold.log", Self.log)
    store.setStorage("o/p/b/cold.log", listed: glacier, actual: glacier)
    let attributes = try fixture.resolve("o/p/b/cold.log")
    #expect(attributes.isOffline)
    #expect(attributes.size == UInt64(Self.log.count))
    #expect(store.counters.snapshot.gets == 0)
  }
}
