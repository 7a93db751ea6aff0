import Glibc
import LogFS
import ObjectStore
import Synchronization
import SystemBase
import TestSupport
import Testing

/// The inode table is bounded: names go once neither the kernel, an open directory nor a trusted
/// listing holds them, and past its capacity the least recently used listings go, the kernel being
/// asked to forget the names it holds.
@Suite struct MetadataCacheTests {
  /// 10 directories of 10 files (100 names, 110 with the directories and the root... 111).
  func seeded(capacity: Int = 1_000_000, clock: any MonotonicClock = SystemClock()) -> Fixture {
    let fixture = Fixture(directoryTTL: 60, listingFreshness: 0, metadataCacheNames: capacity, clock: clock)
    for directory in 0..<10 {
      for file in 0..<10 { fixture.store.put("d\(directory)/f\(file).log", "\(directory)-\(file)") }
    }
    return fixture
  }

  /// Every file's inode and size, listing each directory and looking each file up.
  func walk(_ fixture: Fixture) throws -> [String: String] {
    var found: [String: String] = [:]
    for directory in 0..<10 {
      _ = try fixture.names("d\(directory)")
      for file in 0..<10 {
        let attributes = try fixture.resolve("d\(directory)/f\(file).log")
        found["d\(directory)/f\(file).log"] = "\(attributes.inode) \(attributes.size)"
      }
    }
    return found
  }

  @Test func aNameTheKernelForgotGoesOnceItsListingIsNoLongerTrusted() throws {
    let clock = FakeClock()
    let fixture = seeded(clock: clock)
    let directory = try fixture.resolve("d0").inode
    _ = try fixture.names("d0")
    let file = try fixture.filesystem.lookup(parent: directory, name: "f3.log", reference: true).inode
    #expect(fixture.filesystem.cachedNames == 1 + 1 + 10)
    fixture.filesystem.forget(file, count: 1)
    // The trusted listing of d0 still holds it.
    #expect(fixture.filesystem.cachedNames == 12)
    #expect(try fixture.filesystem.attributes(of: file).size == 3)
    _ = try fixture.filesystem.lookup(parent: directory, name: "f3.log", reference: true)
    clock.advance(61)
    fixture.filesystem.forget(file, count: 1)
    #expect(fixture.filesystem.cachedNames == 11)
    #expect(throws: FilesystemError.self) { try fixture.filesystem.attributes(of: file) }
    // Looked up again, it has its number again.
    #expect(try fixture.filesystem.lookup(parent: directory, name: "f3.log").inode == file)
  }

  /// readdirplus gives the kernel files by name only, so no forget of theirs comes: they go with
  /// their directory's expired listing once the kernel forgets the directory.
  @Test func filesTheKernelNeverHeldGoWithTheirDirectoryOnceItsListingExpired() throws {
    let clock = FakeClock()
    let fixture = seeded(clock: clock)
    let directory = try fixture.filesystem.lookup(parent: LogFilesystem.rootInode, name: "d0", reference: true).inode
    _ = try fixture.names("d0")
    let held = try fixture.filesystem.lookup(parent: directory, name: "f3.log", reference: true).inode
    #expect(fixture.filesystem.cachedNames == 1 + 1 + 10)
    // Forgotten while its listing is trusted, the directory keeps its files.
    fixture.filesystem.forget(directory, count: 1)
    #expect(fixture.filesystem.cachedNames == 12)
    _ = try fixture.filesystem.lookup(parent: LogFilesystem.rootInode, name: "d0", reference: true)
    clock.advance(61)
    fixture.filesystem.forget(directory, count: 1)
    // The nine files nothing held went; the one the kernel holds stays, and with it its directory.
    #expect(fixture.filesystem.cachedNames == 1 + 1 + 1)
    #expect(try fixture.filesystem.attributes(of: held).size == 3)
    fixture.filesystem.forget(held, count: 1)
    #expect(fixture.filesystem.cachedNames == 1)
    #expect(try fixture.names("d0").count == 12)
  }

  @Test func pastItsCapacityTheTableKeepsAboutItsCapacityAndShowsTheSameTree() throws {
    let unbounded = seeded()
    let bounded = seeded(capacity: 30)
    let everything = try walk(unbounded)
    var most = 0
    for _ in 0..<3 {
      #expect(try walk(bounded) == everything)
      most = max(most, bounded.filesystem.cachedNames)
    }
    // A directory's listing (10 names and the directory) is added before the oldest go.
    #expect(most <= 30 + 11, "\(most) names held")
    #expect(unbounded.filesystem.cachedNames == 111)
  }

  @Test func namesTheKernelHoldsStayAndAreHandedBackToBeForgotten() throws {
    let fixture = seeded(capacity: 20)
    let dropped = Mutex<[String]>([])
    fixture.filesystem.onNamesDropped { names in dropped.withLock { $0 += names.map(\.name) } }
    let d0 = try fixture.resolve("d0").inode
    _ = try fixture.names("d0")
    let held = try fixture.filesystem.lookup(parent: d0, name: "f1.log", reference: true).inode
    for directory in 1..<10 { _ = try fixture.names("d\(directory)") }
    // d0's listing went long ago; the kernel still holds f1.log (and d0 above it).
    #expect(dropped.withLock { $0.contains("f1.log") })
    #expect(try fixture.filesystem.attributes(of: held).size == 3)
    #expect(fixture.filesystem.cachedNames <= 20 + 11)
    fixture.filesystem.forget(held, count: 1)
    #expect(throws: FilesystemError.self) { try fixture.filesystem.attributes(of: held) }
  }

  @Test func anOpenDirectoryKeepsEveryEntryWhateverTheCapacity() throws {
    let fixture = Fixture(listingFreshness: 0, metadataCacheNames: 5)
    for file in 0..<40 { fixture.store.put("big/f\(file).log", "x") }
    let big = try fixture.resolve("big").inode
    let handle = try fixture.filesystem.openDirectory(big)
    let entries = try fixture.filesystem.readDirectory(handle, from: 0)
    #expect(entries.count == 42)
    // readdirplus gives each entry to the kernel: every one is still there to be taken.
    for entry in entries where entry.name != "." && entry.name != ".." {
      #expect(fixture.filesystem.reference(entry.attributes.inode))
    }
    fixture.filesystem.releaseDirectory(handle)
    for entry in entries where entry.name != "." && entry.name != ".." {
      #expect(try fixture.filesystem.attributes(of: entry.attributes.inode).size == 1)
    }
  }
}
