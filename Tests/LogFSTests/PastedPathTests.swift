import LogFS
import ObjectStore
import TestSupport
import Testing

/// A path someone pasted (a job's UUIDs from Buildkite's page) on a fresh mount: its directories
/// are taken on their UUID names with no request, and the log is learned with one HEAD, so a
/// `tail` of it costs that HEAD and the GET of its end, and no listing.
@Suite struct PastedPathTests {
  static let org = "0190f1c2-1111-4222-8333-444455556666"
  static let pipeline = "0190f1c2-2222-4222-8333-444455556666"
  static let build = "0190f1c2-3333-4222-8333-444455556666"
  static let job = "0190f1c2-4444-4222-8333-444455556666"
  static let path = "\(org)/\(pipeline)/\(build)/\(job).log"

  func fixture() -> Fixture {
    let fixture = Fixture()
    fixture.store.put(Self.path, pattern(3 * Fixture.blockSize + 100))
    fixture.store.put("\(Self.org)/\(Self.pipeline)/\(Self.build)/0190f1c2-5555-4222-8333-444455556666.log", "other")
    return fixture
  }

  @Test func aPastedPathCostsNoListingAndOneHead() throws {
    let fixture = fixture()
    let found = try fixture.resolve(Self.path)
    #expect(found.kind == .file && found.size == UInt64(3 * Fixture.blockSize + 100))
    let looked = fixture.store.counters.snapshot
    #expect(looked.lists == 0 && looked.heads == 1 && looked.gets == 0)
    let handle = try fixture.filesystem.openFile(found.inode)
    defer { fixture.filesystem.releaseFile(handle) }
    let end = try fixture.filesystem.read(handle, offset: found.size - 4096, count: 4096)
    #expect(end == Array(pattern(3 * Fixture.blockSize + 100).suffix(4096)))
    let read = fixture.store.counters.snapshot
    #expect(read.lists == 0 && read.heads == 1 && read.gets == 1)
  }

  @Test func aMistypedLogIsNotFoundWithOneRequestAndAMistypedDirectoryIsEmpty() throws {
    let fixture = fixture()
    let wrongLog = "\(Self.org)/\(Self.pipeline)/\(Self.build)/0190f1c2-9999-4222-8333-444455556666.log"
    let missing = #expect(throws: FilesystemError.self) { try fixture.resolve(wrongLog) }
    #expect(missing?.kind == .notFound)
    #expect(fixture.store.counters.snapshot.lists == 0)
    // A wrong build on a fresh mount: a directory, empty once listed.
    let fresh = self.fixture()
    let wrongBuild = "\(Self.org)/\(Self.pipeline)/0190f1c2-9999-4222-8333-444455556666"
    let directory = try fresh.resolve(wrongBuild)
    #expect(directory.kind == .directory)
    let handle = try fresh.filesystem.openDirectory(directory.inode)
    defer { fresh.filesystem.releaseDirectory(handle) }
    #expect(try fresh.filesystem.readDirectory(handle, from: 0).map(\.name).filter { $0 != "." && $0 != ".." }.isEmpty)
    // The same name looked up after another in that directory: its keys are listed, and it is not there.
    let gone = #expect(throws: FilesystemError.self) { try fixture.resolve(wrongBuild) }
    #expect(gone?.kind == .notFound)
  }

  /// A second name looked up in the same directory is a reader going by path: the keys are listed
  /// a page at a time as before, not fetched one by one.
  @Test func aSecondLookupInADirectoryListsItsKeys() throws {
    let fixture = fixture()
    _ = try fixture.resolve(Self.path)
    let before = fixture.store.counters.snapshot
    let other = try fixture.resolve(
      "\(Self.org)/\(Self.pipeline)/\(Self.build)/0190f1c2-5555-4222-8333-444455556666.log")
    #expect(other.size == 5)
    let after = fixture.store.counters.snapshot
    #expect(after.lists == before.lists + 1)
    #expect(after.gets == before.gets && after.heads == before.heads)
  }

  /// Names not in Buildkite's layout are listed as before.
  @Test func otherNamesAreListed() throws {
    let fixture = Fixture()
    fixture.store.put("acme/web/1/job.log", "x")
    #expect(try fixture.resolve("acme/web/1/job.log").size == 1)
    #expect(fixture.store.counters.snapshot.lists >= 1)
  }
}
