import BlockCache
import Glibc
import LogFS
import Logging
import ObjectStore
import SystemBase
import TestSupport
import Testing

/// Walks of a tree (`find`, `du`, `grep -r`): directories listed a subtree at a time, and the next
/// files of a directory fetched ahead of the walker.
@Suite struct SubtreeListingTests {
  /// 12 builds of 10 logs (120 keys) under one pipeline, plus a sibling pipeline.
  func seeded(pageSize: Int, listingFreshness: Double = 60, clock: any MonotonicClock = SystemClock()) -> Fixture {
    let fixture = Fixture(listingFreshness: listingFreshness, clock: clock)
    fixture.store.setPageSize(pageSize)
    for build in 0..<12 {
      for job in 0..<10 { fixture.store.put("org/pipe/b\(build < 10 ? "0" : "")\(build)/job-\(job).log", "x") }
    }
    fixture.store.put("org/zzz/b00/job.log", "y")
    return fixture
  }

  func walk(_ fixture: Fixture, _ path: String) throws -> [String] {
    var found: [String] = []
    for name in try fixture.names(path) where name != "." && name != ".." {
      let child = path.isEmpty ? name : path + "/" + name
      found.append(child)
      if try fixture.resolve(child).kind == .directory { found += try walk(fixture, child) }
    }
    return found
  }

  @Test func aWalkCostsAboutOneListPerPageOfKeys() throws {
    let fixture = seeded(pageSize: 50)
    let files = try walk(fixture, "").filter { $0.hasSuffix(".log") }
    #expect(files.count == 121)
    #expect(files.contains("org/pipe/b07/job-3.log") && files.contains("org/zzz/b00/job.log"))
    // By delimiter this walk costs 16 LISTs (root, org, 2 pipelines, 13 builds). Subtree pages of 50
    // keys cover the builds: the root, org and the pipelines (bigger than a page) cost one more each.
    let lists = fixture.store.counters.snapshot.lists
    #expect(lists <= 9, "\(lists) LISTs")
  }

  @Test(arguments: [3, 7, 50, 1000]) func aWalkSeesTheSameTreeAsDelimiterListings(pageSize: Int) throws {
    let subtree = seeded(pageSize: pageSize)
    let plain = seeded(pageSize: pageSize, listingFreshness: 0)
    #expect(try walk(subtree, "") == walk(plain, ""))
    // Never more than one extra page per directory with subdirectories (root, org, 2 pipelines).
    #expect(subtree.store.counters.snapshot.lists <= plain.store.counters.snapshot.lists + 4)
  }

  @Test(arguments: [10, 25, 45]) func pagesGoOnWhereTheLastStopped(pageSize: Int) throws {
    let fixture = seeded(pageSize: pageSize)
    let files = try walk(fixture, "").filter { $0.hasSuffix(".log") }
    #expect(files.count == 121)
    // Each key is listed about once: a page per pageSize keys, plus one delimiter listing for each
    // directory whose subtree is bigger than a page (root, org, pipe), and the last partial page.
    let bound = (121 + pageSize - 1) / pageSize + 3 + 1
    let lists = fixture.store.counters.snapshot.lists
    #expect(lists <= bound, "\(lists) LISTs for 121 keys in pages of \(pageSize)")
  }

  @Test func directoriesAPageCoveredCostNothing() throws {
    let fixture = seeded(pageSize: 1000)
    _ = try fixture.names("")
    let before = fixture.store.counters.snapshot.lists
    // One page from the organization on covers it, its pipelines and all their builds.
    #expect(try fixture.names("org").count == 4)
    #expect(try fixture.names("org/pipe").count == 14)
    #expect(try fixture.names("org/pipe/b03").count == 12)
    #expect(try fixture.names("org/pipe/b11").count == 12)
    #expect(fixture.store.counters.snapshot.lists == before + 1)
  }

  @Test func aDirectoryOfFilesIsPagedToItsEnd() throws {
    let fixture = seeded(pageSize: 4)
    for path in ["", "org", "org/pipe"] { _ = try fixture.names(path) }
    let before = fixture.store.counters.snapshot.lists
    // 10 files in pages of 4: 3 pages, as by delimiter; the third also covers most of b04.
    #expect(try fixture.names("org/pipe/b03").count == 12)
    #expect(fixture.store.counters.snapshot.lists == before + 3)
  }

  @Test func learnedListingsExpire() throws {
    let clock = FakeClock()
    let fixture = seeded(pageSize: 1000, listingFreshness: 0.05, clock: clock)
    for path in ["", "org", "org/pipe", "org/pipe/b03"] { _ = try fixture.names(path) }
    let before = fixture.store.counters.snapshot.lists
    fixture.store.put("org/pipe/b11/new.log", "n")
    clock.advance(0.1)
    #expect(try fixture.names("org/pipe/b11").contains("new.log"))
    #expect(fixture.store.counters.snapshot.lists == before + 1)
  }
}

@Suite struct WalkPrefetchTests {
  func seeded() -> Fixture {
    let fixture = Fixture(readahead: UInt64(Fixture.blockSize), walkAhead: 8)
    for job in 0..<20 {
      fixture.store.put("build/job-\(job < 10 ? "0" : "")\(job).log", pattern(3000, seed: UInt8(job)))
    }
    return fixture
  }

  func waitForGets(_ fixture: Fixture, atLeast count: Int) {
    for _ in 0..<200 where fixture.store.counters.snapshot.gets < count { usleep(10_000) }
  }

  @Test func openingFilesInOrderFetchesTheNextOnesAhead() throws {
    let fixture = seeded()
    _ = try fixture.names("build")
    for job in 0..<20 {
      let name = "build/job-\(job < 10 ? "0" : "")\(job).log"
      #expect(try fixture.readAll(name) == pattern(3000, seed: UInt8(job)))
    }
    // Every file was fetched once, all but the first ahead of the walker.
    #expect(fixture.store.counters.snapshot.gets == 20)
    #expect(fixture.filesystem.statistics().cache.prefetchedBlocks == 19)
  }

  @Test func aWalkGoesOnIntoTheNextDirectory() throws {
    let fixture = Fixture(readahead: UInt64(Fixture.blockSize), walkAhead: 8)
    for build in ["b1", "b2"] {
      for job in 0..<3 { fixture.store.put("\(build)/job-\(job).log", pattern(3000, seed: UInt8(job))) }
    }
    _ = try fixture.names("")
    _ = try fixture.names("b1")
    for job in 0..<3 { _ = try fixture.readAll("b1/job-\(job).log") }
    // The walk reached the end of b1: b2 is listed and its first files (the first window, 2) fetched.
    waitForGets(fixture, atLeast: 5)
    #expect(fixture.store.counters.snapshot.gets == 5)
    for job in 0..<3 { #expect(try fixture.readAll("b2/job-\(job).log") == pattern(3000, seed: UInt8(job))) }
    #expect(fixture.store.counters.snapshot.gets == 6)
  }

  @Test func aSingleOpenFetchesLittleAndAJumpNothing() throws {
    let fixture = seeded()
    _ = try fixture.names("build")
    _ = try fixture.readAll("build/job-07.log")
    usleep(50_000)
    #expect(fixture.store.counters.snapshot.gets == 1)
    // The first file of a directory may start a walk: only the first window (2 files) comes ahead.
    _ = try fixture.readAll("build/job-00.log")
    waitForGets(fixture, atLeast: 4)
    usleep(50_000)
    #expect(fixture.store.counters.snapshot.gets == 4)
  }
}

@Suite struct ConsumedBlocksLeaveMemoryTests {
  @Test func aSequentialReaderLeavesLittleInMemoryAndRereadsComeFromDisk() throws {
    try withTemporaryDirectory { directory in
      let disk = try DiskBlockCache(
        directory: directory, maxBytes: 1 << 24, blockSize: Fixture.blockSize, logger: Logger(label: "test"))
      let fixture = Fixture(disk: disk, readahead: UInt64(2 * Fixture.blockSize))
      let bytes = pattern(64 * Fixture.blockSize)
      fixture.store.put("seq.log", bytes)
      #expect(try fixture.readAll("seq.log", chunk: 1024) == bytes)
      let gets = fixture.store.counters.snapshot.gets
      // The window (8 blocks at most) and the 2 blocks kept behind the reader, not all 64.
      let memory = fixture.filesystem.memoryBytes
      #expect(memory <= 12 * Fixture.blockSize, "\(memory) bytes left in memory")
      #expect(try fixture.readAll("seq.log", chunk: 4096) == bytes)
      #expect(fixture.store.counters.snapshot.gets == gets)
    }
  }

  @Test func withoutADiskCacheBlocksStayInMemory() throws {
    let fixture = Fixture(readahead: UInt64(2 * Fixture.blockSize))
    let bytes = pattern(64 * Fixture.blockSize)
    fixture.store.put("seq.log", bytes)
    #expect(try fixture.readAll("seq.log", chunk: 1024) == bytes)
    #expect(fixture.filesystem.memoryBytes == bytes.count)
  }
}
