import Glibc
import LogFS
import ObjectStore
import SystemBase
import TestSupport
import Testing

/// Objects in S3's archive classes (GLACIER, DEEP_ARCHIVE, INTELLIGENT_TIERING's archive tiers):
/// what a file shows, what an open and a read answer, and how a restore reaches the mount.
@Suite struct ArchivedObjectTests {
  static let glacier = ObjectStorage(storageClass: "GLACIER", restore: .notRestored)

  func fixture(clock: FakeClock = FakeClock()) -> Fixture {
    Fixture(store: InMemoryObjectClient(identity: "s3://logs", hasStorageClasses: true), clock: clock)
  }

  /// A listing that says "not restored" decides at once: the open fails as `.archived` (EREMOTE,
  /// never EACCES) naming the object, its class and how to restore it, with no request.
  @Test func aListedArchivedFileFailsAtOpenWithoutARequest() throws {
    let fixture = fixture()
    fixture.store.put("o/p/b/cold.log", "cold")
    fixture.store.setStorage("o/p/b/cold.log", listed: Self.glacier, actual: Self.glacier)
    let attributes = try fixture.resolve("o/p/b/cold.log")
    #expect(attributes.isOffline)
    #expect(!attributes.isImmutable)
    #expect(attributes.size == 4)
    let before = fixture.store.counters.snapshot
    let error = #expect(throws: FilesystemError.self) { try fixture.readAll("o/p/b/cold.log") }
    #expect(error?.kind == .archived)
    #expect(error?.errno == EREMOTE)
    #expect(error?.message.contains("s3://logs/o/p/b/cold.log") == true)
    #expect(error?.message.contains("GLACIER, not restored") == true)
    #expect(error?.message.contains("bklogfs restore") == true)
    #expect(throws: FilesystemError.self) { try fixture.filesystem.checkReadable(attributes.inode) }
    let after = fixture.store.counters.snapshot
    #expect(after.gets == before.gets && after.heads == before.heads)
  }

  /// A listing from a server that does not send restore states (moto, Ceph) leaves an archived
  /// file's state unknown: one HEAD at the first open decides, and is kept until the next listing;
  /// once the directory TTL has passed, a restore finished since shows, without a remount.
  @Test func anUnknownStateIsAskedOnceAndARestoreShowsAfterTheTTL() throws {
    let clock = FakeClock()
    let fixture = fixture(clock: clock)
    fixture.store.put("o/p/b/cold.log", "cold")
    let listed = ObjectStorage(storageClass: "DEEP_ARCHIVE")
    fixture.store.setStorage(
      "o/p/b/cold.log", listed: listed, actual: ObjectStorage(storageClass: "DEEP_ARCHIVE", restore: .inProgress))
    let inode = try fixture.resolve("o/p/b/cold.log").inode
    #expect(try fixture.filesystem.attributes(of: inode).isOffline)
    let error = #expect(throws: FilesystemError.self) { try fixture.filesystem.checkReadable(inode) }
    #expect(error?.kind == .archived)
    #expect(error?.message.contains("being restored") == true)
    #expect(throws: FilesystemError.self) { try fixture.filesystem.openFile(inode) }
    #expect(fixture.store.counters.snapshot.heads == 1)
    #expect(fixture.store.counters.snapshot.gets == 0)
    #expect(try attribute(fixture, inode, "restore") == "in progress")

    // S3 finishes the restore.
    let expiry = Timestamp(seconds: 1_900_000_000)
    fixture.store.setStorage(
      "o/p/b/cold.log", listed: listed,
      actual: ObjectStorage(storageClass: "DEEP_ARCHIVE", restore: .restored(expiry: expiry)))
    #expect(throws: FilesystemError.self) { try fixture.filesystem.openFile(inode) }
    #expect(fixture.store.counters.snapshot.heads == 1)
    clock.advance(61)
    _ = try fixture.names("o/p/b")
    try fixture.filesystem.checkReadable(inode)
    #expect(fixture.store.counters.snapshot.heads == 2)
    #expect(try fixture.readAll("o/p/b/cold.log") == Array("cold".utf8))
    #expect(try !fixture.filesystem.attributes(of: inode).isOffline)
    #expect(try attribute(fixture, inode, "restore") == "restored until 2030-03-17T17:46:40Z")
  }

  /// An object the listing shows as readable (INTELLIGENT_TIERING) whose read S3 refuses (it moved
  /// to an archive tier) fails as `.archived`, and the file shows so from then on.
  @Test func aReadRefusedAsArchivedMarksTheFile() throws {
    let fixture = fixture()
    fixture.store.put("o/p/b/tiered.log", "tiered")
    fixture.store.setStorage(
      "o/p/b/tiered.log", listed: ObjectStorage(storageClass: "INTELLIGENT_TIERING"),
      actual: ObjectStorage(storageClass: "INTELLIGENT_TIERING", archiveTier: "ARCHIVE_ACCESS"))
    let inode = try fixture.resolve("o/p/b/tiered.log").inode
    #expect(try !fixture.filesystem.attributes(of: inode).isOffline)
    let error = #expect(throws: FilesystemError.self) { try fixture.readAll("o/p/b/tiered.log") }
    #expect(error?.kind == .archived)
    #expect(try fixture.filesystem.attributes(of: inode).isOffline)
    #expect(try attribute(fixture, inode, "storage_class") == "INTELLIGENT_TIERING ARCHIVE_ACCESS")
    #expect(try attribute(fixture, inode, "restore") == "not restored")
    #expect(throws: FilesystemError.self) { try fixture.filesystem.checkReadable(inode) }
  }

  /// GLACIER_IR and the other online classes read like STANDARD.
  @Test func onlineClassesReadAsUsual() throws {
    let fixture = fixture()
    fixture.store.put("o/p/b/ir.log", "instant")
    let instant = ObjectStorage(storageClass: "GLACIER_IR")
    fixture.store.setStorage("o/p/b/ir.log", listed: instant, actual: instant)
    let attributes = try fixture.resolve("o/p/b/ir.log")
    #expect(!attributes.isOffline)
    #expect(attributes.isImmutable)
    #expect(try fixture.readAll("o/p/b/ir.log") == Array("instant".utf8))
    #expect(fixture.store.counters.snapshot.heads == 0)
    #expect(try attribute(fixture, attributes.inode, "storage_class") == "GLACIER_IR")
    #expect(try attribute(fixture, attributes.inode, "restore") == nil)
  }

  /// A file's extended attributes: its object's facts, with no request; a store without storage
  /// classes (a local directory) shows none.
  @Test func extendedAttributesGiveTheObjectsFacts() throws {
    let fixture = fixture()
    fixture.store.put("o/p/b/j.log", Array("abc".utf8), etag: "\"0123456789abcdef0123456789abcdef\"")
    let inode = try fixture.resolve("o/p/b/j.log").inode
    let before = fixture.store.counters.snapshot
    let attributes = try fixture.filesystem.extendedAttributes(of: inode)
    #expect(
      attributes.map(\.name) == [
        "user.bklogfs.source", "user.bklogfs.etag", "user.bklogfs.last_modified", "user.bklogfs.storage_class",
      ])
    #expect(
      attributes.map(\.value) == [
        "s3://logs/o/p/b/j.log", "0123456789abcdef0123456789abcdef", "2023-11-14T22:13:20Z", "STANDARD",
      ])
    #expect(fixture.store.counters.snapshot == before)
    #expect(try fixture.filesystem.extendedAttributes(of: try fixture.resolve("o/p").inode).isEmpty)

    let local = Fixture(store: InMemoryObjectClient(identity: "file:///srv/archive"))
    local.store.put("a.log", "a")
    let names = try local.filesystem.extendedAttributes(of: try local.resolve("a.log").inode).map(\.name)
    #expect(names == ["user.bklogfs.source", "user.bklogfs.etag", "user.bklogfs.last_modified"])
  }

  private func attribute(_ fixture: Fixture, _ inode: UInt64, _ name: String) throws -> String? {
    try fixture.filesystem.extendedAttributes(of: inode).first { $0.name == "user.bklogfs." + name }?.value
  }
}

/// Objects a Lifecycle rule expires, or anyone deletes, under the mount.
@Suite struct DeletedObjectTests {
  /// The name leaves its directory at the next listing (after the TTL); a file open on it reads what
  /// was cached, and a block not cached fails with `ESTALE`, as for a replaced object.
  @Test func aDeletedObjectLeavesAtTheNextListingAndItsOpenFileGoesStale() throws {
    let clock = FakeClock()
    let fixture = Fixture(clock: clock)
    let bytes = pattern(3 * Fixture.blockSize)
    fixture.store.put("o/p/b/expired.log", bytes)
    fixture.store.put("o/p/b/kept.log", "kept")
    #expect(try fixture.names("o/p/b") == [".", "..", "expired.log", "kept.log"])
    let inode = try fixture.resolve("o/p/b/expired.log").inode
    let handle = try fixture.filesystem.openFile(inode)
    defer { fixture.filesystem.releaseFile(handle) }
    #expect(try fixture.filesystem.read(handle, offset: 0, count: 100) == Array(bytes[0..<100]))
    fixture.store.remove("o/p/b/expired.log")
    #expect(try fixture.names("o/p/b") == [".", "..", "expired.log", "kept.log"])
    clock.advance(61)
    #expect(try fixture.names("o/p/b") == [".", "..", "kept.log"])
    #expect(try fixture.filesystem.read(handle, offset: 0, count: 100) == Array(bytes[0..<100]))
    let error = #expect(throws: FilesystemError.self) {
      try fixture.filesystem.read(handle, offset: UInt64(2 * Fixture.blockSize), count: 100)
    }
    #expect(error?.kind == .stale)
    #expect(error?.errno == ESTALE)
    #expect(throws: FilesystemError.self) { try fixture.resolve("o/p/b/expired.log") }
  }
}

@Suite struct ArchivedWalkTests {
  /// A walk fetches ahead the next readable files of a directory, never an archived one, whose GET
  /// S3 would only refuse.
  @Test func aWalkFetchesNoArchivedFileAhead() throws {
    let fixture = Fixture(
      store: InMemoryObjectClient(identity: "s3://logs", hasStorageClasses: true),
      readahead: UInt64(Fixture.blockSize), walkAhead: 8)
    let glacier = ArchivedObjectTests.glacier
    for job in 0..<12 {
      let key = "build/job-\(job < 10 ? "0" : "")\(job).log"
      fixture.store.put(key, pattern(3000, seed: UInt8(job)))
      if job % 2 == 1 { fixture.store.setStorage(key, listed: glacier, actual: glacier) }
    }
    _ = try fixture.names("build")
    for job in stride(from: 0, to: 12, by: 2) {
      let name = "build/job-\(job < 10 ? "0" : "")\(job).log"
      #expect(try fixture.readAll(name) == pattern(3000, seed: UInt8(job)))
    }
    for _ in 0..<50 where fixture.store.counters.snapshot.gets < 6 { usleep(10_000) }
    usleep(50_000)
    // One GET per readable file, most of them ahead of the walker; none of an archived file.
    #expect(fixture.store.counters.snapshot.gets == 6)
    #expect(fixture.filesystem.statistics().cache.prefetchedBlocks >= 1)
  }
}
