import Glibc
import LogFS
import ObjectStore
import SystemBase
import TestSupport
import Testing

/// Scripts that read the paths they were given (`sha256sum -c`, `rsync --files-from`, `tar -T`) in
/// directories nobody listed: names looked up one by one cost about one LIST per page of keys.
@Suite struct ReadByPathTests {
  static func key(_ build: Int, _ job: Int) -> String {
    "org/pipe/b\(build < 10 ? "0" : "")\(build)/job-\(job < 10 ? "0" : "")\(job).log"
  }

  /// 20 builds of 30 logs (600 keys) under one pipeline, and a sibling pipeline.
  func seeded(pageSize: Int, listingFreshness: Double = 60, walkAhead: Int = 0) -> Fixture {
    let fixture = Fixture(
      readahead: walkAhead > 0 ? UInt64(Fixture.blockSize) : 0, listingFreshness: listingFreshness,
      walkAhead: walkAhead)
    fixture.store.setPageSize(pageSize)
    for build in 0..<20 {
      for job in 0..<30 { fixture.store.put(Self.key(build, job), "\(build)-\(job)") }
    }
    fixture.store.put("org/zzz/b00/job-00.log", "z")
    return fixture
  }

  /// Looks each path up as the kernel does: a directory once (it keeps the entry), then each name in it.
  final class Resolver {
    let fixture: Fixture
    var directories: [String: UInt64] = ["": LogFilesystem.rootInode]

    init(_ fixture: Fixture) { self.fixture = fixture }

    func read(_ path: String) throws -> [UInt8] {
      let handle = try fixture.filesystem.openFile(try resolve(path).inode)
      defer { fixture.filesystem.releaseFile(handle) }
      return try fixture.filesystem.read(handle, offset: 0, count: 1 << 16)
    }

    func resolve(_ path: String) throws -> Attributes {
      let parts = path.split(separator: "/").map(String.init)
      var parent = ""
      var attributes = try fixture.filesystem.attributes(of: LogFilesystem.rootInode)
      for (index, name) in parts.enumerated() {
        let here = parent.isEmpty ? name : parent + "/" + name
        if index < parts.count - 1, let known = directories[here] {
          attributes = try fixture.filesystem.attributes(of: known)
        } else {
          attributes = try fixture.filesystem.lookup(parent: directories[parent]!, name: name)
          // A file too: the kernel then finds it is no directory, as the filesystem says.
          directories[here] = attributes.inode
        }
        parent = here
      }
      return attributes
    }

    /// The attributes of the path, or the errno its lookup failed with.
    func outcome(_ path: String) -> String {
      do {
        let found = try resolve(path)
        return "\(found.kind) \(found.size) \(found.inode)"
      } catch {
        return "errno \((error as? FilesystemError)?.kind.errno ?? -1)"
      }
    }
  }

  @Test(arguments: [50, 100, 1000])
  func readingPathsInOrderCostsAboutOneListPerPageOfKeys(pageSize: Int) throws {
    let fixture = seeded(pageSize: pageSize)
    let resolver = Resolver(fixture)
    for build in 0..<20 {
      for job in 0..<30 { #expect(try resolver.resolve(Self.key(build, job)).size == UInt64("\(build)-\(job)".count)) }
    }
    // Each name alone costs one LIST (620 here). A page per pageSize keys, plus the first, targeted
    // lookup of the root, the org, the pipeline and the first build, plus at most one page to finish
    // each build a page stopped inside.
    let pages = (600 + pageSize - 1) / pageSize
    let lists = fixture.store.counters.snapshot.lists
    #expect(lists <= 2 * pages + 6, "\(lists) LISTs")
  }

  @Test(arguments: [7, 50, 1000], [1, 2, 3])
  func namesLookedUpInAnyOrderAreWhatADelimiterListingShows(pageSize: Int, seed: UInt64) throws {
    var paths = (0..<20).flatMap { build in (0..<30).map { Self.key(build, $0) } }
    // Names that are not there: before, between and after the keys, and a file's name as a directory.
    paths += [
      "org/pipe/a00/job-00.log", "org/pipe/b05/job-99.log", "org/pipe/b05/job-0", "org/pipe/b19x/job-00.log",
      "org/pipe/b05/job-00.log/x", "org/pipe/zz/job.log", "org/zzz/b00/job-00.log", "org/yyy", "org/pipe/b0",
    ]
    var random = SeededGenerator(seed: seed)
    // Mostly in order with jumps back and forth, as scripts read manifests.
    for index in paths.indices.dropFirst() where random.next() % 5 == 0 {
      paths.swapAt(index, Int(random.next() % UInt64(paths.count)))
    }
    let byPage = Resolver(seeded(pageSize: pageSize))
    let plain = Resolver(seeded(pageSize: pageSize, listingFreshness: 0))
    for path in paths {
      #expect(byPage.outcome(path) == plain.outcome(path), "\(path)")
    }
    #expect(byPage.fixture.store.counters.snapshot.lists < plain.fixture.store.counters.snapshot.lists)
  }

  @Test func aDirectoryReadByPathIsListedFromTheStoreAgainOnceItsPagesAreStale() throws {
    let clock = FakeClock()
    let fixture = Fixture(directoryTTL: 60, listingFreshness: 60, clock: clock)
    for job in 0..<5 { fixture.store.put("b/job-\(job).log", "x") }
    let resolver = Resolver(fixture)
    _ = try resolver.resolve("b/job-0.log")
    _ = try resolver.resolve("b/job-1.log")
    fixture.store.put("b/job-7.log", "new")
    // Within the TTL the page holds: job-7 was not there when it was listed.
    #expect(resolver.outcome("b/job-7.log") == "errno \(ENOENT)")
    clock.advance(61)
    #expect(try resolver.resolve("b/job-7.log").size == 3)
  }

  @Test func filesReadByPathInOrderAreFetchedAheadAsInAWalk() throws {
    let fixture = seeded(pageSize: 1000, walkAhead: 8)
    let resolver = Resolver(fixture)
    // The first names of the pipeline: the second build is then known whole from the page of keys
    // the second lookup in the pipeline listed.
    _ = try resolver.resolve(Self.key(0, 0))
    for job in 0..<30 { #expect(try resolver.read(Self.key(1, job)) == Array("1-\(job)".utf8)) }
    // Opened in order, the build's files were fetched ahead of the reader, as a walk's are.
    #expect(fixture.filesystem.statistics().cache.prefetchedBlocks >= 20)
  }

  @Test func aReaderGoingByPathFromOneBuildToTheNextFindsItsFirstFilesFetched() throws {
    let fixture = seeded(pageSize: 1000, walkAhead: 8)
    let resolver = Resolver(fixture)
    _ = try resolver.resolve(Self.key(0, 0))
    for job in 0..<30 { _ = try resolver.read(Self.key(1, job)) }
    // At the end of build 1 the walk goes on into build 2, which only the page of keys names: its
    // first files (the first window, 2) are fetched before the reader opens them.
    for _ in 0..<200 where fixture.store.counters.snapshot.gets < 32 { usleep(10_000) }
    usleep(50_000)
    #expect(fixture.store.counters.snapshot.gets == 30 + 2)
    let hits = fixture.filesystem.statistics().cache.memoryHits
    #expect(try resolver.read(Self.key(2, 0)) == Array("2-0".utf8))
    #expect(fixture.filesystem.statistics().cache.memoryHits == hits + 1, "build 2's first file was in memory")
  }
}
