import LogFS
import ObjectStore
import SystemBase
import TestSupport
import Testing

/// A directory too big to list at once is listed that far when opened, and the rest streamed a
/// page at a time as readdir asks, holding one page however big the directory.
@Suite struct DirectoryStreamTests {
  static func name(_ index: Int) -> String {
    "job-\(String(repeating: "0", count: 3 - String(index).count))\(index).log"
  }

  /// 95 files in `flat/` (under `a/` when `nested`), listed 10 keys a page, 2 pages before streaming.
  func seeded(listingFreshness: Double, nested: Bool = false) -> (Fixture, String) {
    let fixture = Fixture(listingFreshness: listingFreshness, pagesBeforeStreaming: 2)
    fixture.store.setPageSize(10)
    let directory = nested ? "a/flat" : "flat"
    for index in 0..<95 { fixture.store.put("\(directory)/\(Self.name(index))", "\(index)") }
    if nested { fixture.store.put("a/zzz/x.log", "x") }
    return (fixture, directory)
  }

  /// Every entry of the handle, read as the kernel does: from each reply's last offset on, a few at a time.
  func readAll(_ fixture: Fixture, _ handle: UInt64, from start: Int = 0) throws -> [DirectoryEntry] {
    var all: [DirectoryEntry] = []
    var offset = start
    while true {
      let entries = try fixture.filesystem.readDirectory(handle, from: offset).prefix(7)
      if entries.isEmpty { return all }
      all += entries
      offset += entries.count
    }
  }

  @Test(arguments: [0.0, 60.0])
  func aBigDirectoryIsListedTwoPagesAtOpenThenAPageAtATimeAsItIsRead(listingFreshness: Double) throws {
    for nested in [false, true] {
      let (fixture, directory) = seeded(listingFreshness: listingFreshness, nested: nested)
      let inode = try fixture.resolve(directory).inode
      let listsBefore = fixture.store.counters.snapshot.lists
      let handle = try fixture.filesystem.openDirectory(inode)
      defer { fixture.filesystem.releaseDirectory(handle) }
      #expect(fixture.store.counters.snapshot.lists - listsBefore <= 2)
      let first = try fixture.filesystem.readDirectory(handle, from: 0)
      #expect(first.count <= 2 + 20)
      let all = try readAll(fixture, handle)
      #expect(all.map(\.name) == [".", ".."] + (0..<95).map(Self.name), "nested: \(nested)")
      // One LIST a page; the entries streamed are not kept by the filesystem.
      #expect(fixture.store.counters.snapshot.lists - listsBefore <= 11)
      #expect(fixture.filesystem.cachedNames <= 2 + 20 + 3)
      // A streamed entry's number is the one a lookup gives it.
      let last = try #require(all.last)
      #expect(!last.handsInode)
      #expect(try fixture.resolve("\(directory)/\(last.name)").inode == last.attributes.inode)
      #expect(try fixture.resolve("\(directory)/\(last.name)").size == 2)
    }
  }

  @Test func readingAgainFromAnOffsetBehindGivesTheSameEntries() throws {
    let (fixture, directory) = seeded(listingFreshness: 0)
    let handle = try fixture.filesystem.openDirectory(try fixture.resolve(directory).inode)
    defer { fixture.filesystem.releaseDirectory(handle) }
    let all = try readAll(fixture, handle)
    for offset in [0, 21, 22, 50, 73, 96] {
      #expect(try readAll(fixture, handle, from: offset) == Array(all[offset...]), "from \(offset)")
    }
    #expect(try fixture.filesystem.readDirectory(handle, from: 500).isEmpty)
  }

  @Test func aStreamedNameLookedUpComesOnceInTheNextReading() throws {
    let (fixture, directory) = seeded(listingFreshness: 0)
    let inode = try fixture.resolve(directory).inode
    for round in 0..<3 {
      // Once listed (and trusted), names past the listed part are looked up, as `ls -l` does.
      if round == 1 { for index in [0, 50, 94] { _ = try fixture.resolve("\(directory)/\(Self.name(index))") } }
      let handle = try fixture.filesystem.openDirectory(inode)
      defer { fixture.filesystem.releaseDirectory(handle) }
      #expect(try readAll(fixture, handle).map(\.name) == [".", ".."] + (0..<95).map(Self.name))
    }
  }

  @Test func aSmallDirectoryIsNotStreamed() throws {
    let fixture = Fixture(listingFreshness: 0, pagesBeforeStreaming: 2)
    fixture.store.setPageSize(10)
    for index in 0..<19 { fixture.store.put("small/\(Self.name(index))", "x") }
    fixture.store.put("small/sub/x", "x")
    let handle = try fixture.filesystem.openDirectory(try fixture.resolve("small").inode)
    defer { fixture.filesystem.releaseDirectory(handle) }
    let all = try readAll(fixture, handle)
    // Every entry's d_ino is its inode number; directories are handed to the kernel with
    // readdirplus, files by name only (a walk such as `find -type f` then never makes the kernel
    // hold, and later forget, an inode per file).
    #expect(all.count == 22 && all.allSatisfy { !$0.numberIsPosition })
    #expect(all.filter(\.handsInode).map(\.name).sorted() == [".", "..", "sub"])
    #expect(
      try fixture.resolve("small/\(Self.name(3))").inode == all.first { $0.name == Self.name(3) }?.attributes.inode)
  }
}
