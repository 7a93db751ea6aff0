import BlockCache
import BuildkiteAPI
import BuildkiteNames
import Catalog
import Foundation
import HTTPTransport
import LogFS
import Logging
import ObjectStore
import TestSupport
import Testing

/// Logs in Buildkite's storage are listed without a request per job and sized by their first open,
/// against the fake API (doc/SEMANTICS.md, "Log sizes").
@Suite(.serialized) final class LogSizeTests {
  let fake: FakeBuildkite
  let directory: String
  let log = CapturedLog()

  init() throws {
    (fake, directory) = try unthrottledFake("sizes")
  }

  deinit {
    fake.stop()
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// A mount's filesystem over the catalog file `catalog` (by default kept across mounts), and the
  /// shared cache `shared`, if any, for its blocks and logs' sizes.
  func mount(catalog: String = "catalog.sqlite", shared: SharedBlockCache? = nil) throws -> LogFilesystem {
    let api = try BuildkiteClient(
      configuration: BuildkiteConfiguration(
        baseURL: fake.baseURL, token: FakeBuildkite.fullToken, timeouts: HTTPTimeouts(connect: 2, stall: 10, total: 60),
        retryBaseDelay: 0.01, retryMaxDelay: 0.05))
    let names = BuildkiteNamespace(
      api: api, catalog: try Catalog(path: "\(directory)/\(catalog)", logger: log.logger),
      logStore: BuildkiteLogStore(api: api), configuration: BuildkiteNamesConfiguration(), sharedSizes: shared,
      logger: log.logger)
    return LogFilesystem(
      namespace: names, configuration: FilesystemConfiguration(fetchThreads: 1),
      memoryCache: MemoryBlockCache(maxBytes: 8 << 20), diskCache: nil, sharedCache: shared, logger: log.logger)
  }

  /// The log requests the fake has answered since the last call: (method, range, status).
  func logRequests() throws -> [(method: String, range: String?, status: Int)] {
    let answered = (try fake.requests()["log_requests"] as? [[String: Any]] ?? []).map {
      (method: $0["method"] as? String ?? "", range: $0["range"] as? String, status: $0["status"] as? Int ?? 0)
    }
    try fake.control("reset-counters")
    return answered
  }

  func scriptJobs(_ number: Int) throws -> [[String: Any]] {
    try fake.storedJobs(org: "acme", pipeline: "tools", number: number).filter { $0["type"] as? String == "script" }
  }

  @Test func aBuildIsListedWithNoLogRequestAndEachLogIsSizedByItsFirstOpenForEveryLaterMount() throws {
    let fs = try mount()
    let build = ["acme", "tools", "2"]
    let jobs = try scriptJobs(2).compactMap { $0["id"] as? String }
    #expect(jobs.count == 5)
    _ = try logRequests()
    let listed = try fs.listing(build)
    for job in jobs {
      let attributes = try #require(listed["\(job).log"])
      #expect(attributes.size == 0 && !attributes.sizeIsKnown)
    }
    #expect(try logRequests().isEmpty, "a listing asks nothing per job")
    for job in jobs {
      let expected = try #require(try fake.logBytes(jobID: job))
      let inode = try fs.resolve(build + ["\(job).log"]).inode
      let opened = try fs.openFile(inode)
      #expect(try fs.read(opened, offset: 0, count: 1 << 20) == expected)
      fs.releaseFile(opened)
      // One suffix request of a block sized it and brought the whole log, shorter than a block.
      #expect(try logRequests().map { "\($0.method) \($0.range ?? "") \($0.status)" } == ["GET bytes=-1048576 206"])
      #expect(try fs.attributes(of: inode).size == UInt64(expected.count))
    }
    fs.shutdown()
    // Another mount over the same catalog shows every size at once, and asks nothing.
    let again = try mount()
    defer { again.shutdown() }
    let relisted = try again.listing(build)
    for job in jobs {
      let attributes = try #require(relisted["\(job).log"])
      let expected = try #require(try fake.logBytes(jobID: job))
      #expect(attributes.sizeIsKnown && attributes.size == UInt64(expected.count))
    }
    #expect(try logRequests().isEmpty)
  }

  @Test func anEmptyLogIsSizedZeroAndADeletedOneLeavesTheBuildOnceOpened() throws {
    let fs = try mount()
    let build = ["acme", "tools", "3"]
    let jobs = try scriptJobs(3)
    let quiet = try #require(jobs.first { $0["step_key"] as? String == "quiet" }?["id"] as? String)
    let purged = try #require(jobs.first { $0["step_key"] as? String == "purged" }?["id"] as? String)
    _ = try logRequests()
    #expect(try fs.listing(build)["\(purged).log"] != nil, "no request tells a deleted log before it is opened")
    #expect(try logRequests().isEmpty)
    let empty = try fs.openFile(try fs.resolve(build + ["\(quiet).log"]).inode)
    #expect(try fs.read(empty, offset: 0, count: 4096).isEmpty)
    fs.releaseFile(empty)
    #expect(try fs.attributes(of: try fs.resolve(build + ["\(quiet).log"]).inode).sizeIsKnown)
    // A second mount over the same catalog that listed the build before the log was found gone.
    let other = try mount()
    defer { other.shutdown() }
    #expect(try other.listing(build)["\(purged).log"] != nil)
    let inode = try fs.resolve(build + ["\(purged).log"]).inode
    let error = #expect(throws: FilesystemError.self) { try fs.openFile(inode) }
    #expect(error?.kind == .notFound)
    #expect(try logRequests().map(\.status) == [416, 404])
    // The catalog tells the other mount, which asks nothing.
    let otherInode = try other.resolve(build + ["\(purged).log"]).inode
    #expect(throws: FilesystemError.self) { try other.openFile(otherInode) }
    #expect(try logRequests().isEmpty)
    #expect(try fs.listing(build)["\(purged).log"] == nil, "gone from this mount's listing")
    fs.shutdown()
    let again = try mount()
    defer { again.shutdown() }
    let relisted = try again.listing(build)
    #expect(relisted["\(purged).log"] == nil && relisted["\(quiet).log"]?.size == 0)
    #expect(relisted["\(quiet).log"]?.sizeIsKnown == true)
    #expect(try logRequests().isEmpty)
    #expect(log.all.contains { $0.contains("left out") && $0.contains(purged) && $0.contains("no log") })
  }

  @Test func aMountWithItsOwnCatalogTakesTheSizeAndBytesAnotherSharedWithoutAsking() throws {
    let bucket = InMemoryObjectClient(identity: "s3://fleet")
    func shared() -> SharedBlockCache {
      SharedBlockCache(client: bucket, prefix: "fleet", blockSize: 1 << 20, maxQueuedBytes: 0, logger: log.logger)
    }
    let build = ["acme", "tools", "2"]
    let job = try #require(try scriptJobs(2).first?["id"] as? String)
    let expected = try #require(try fake.logBytes(jobID: job))
    let first = try mount(catalog: "first.sqlite", shared: shared())
    defer { first.shutdown() }
    let opened = try first.openFile(try first.resolve(build + ["\(job).log"]).inode)
    #expect(try first.read(opened, offset: 0, count: 1 << 20) == expected)
    first.releaseFile(opened)
    #expect(try logRequests().filter { $0.method == "GET" }.count == 1)
    let key = "acme/tools/2/\(job)"
    #expect(shared().size(source: "buildkite:logs", key: key) == UInt64(expected.count))

    // Another machine: its own catalog, the same shared cache. Its open and read ask the API nothing.
    let cache = shared()
    let second = try mount(catalog: "second.sqlite", shared: cache)
    defer { second.shutdown() }
    _ = try second.listing(build)
    _ = try logRequests()
    let inode = try second.resolve(build + ["\(job).log"]).inode
    let handle = try second.openFile(inode)
    #expect(try second.read(handle, offset: 0, count: 1 << 20) == expected)
    second.releaseFile(handle)
    #expect(try logRequests().isEmpty)
    #expect(try second.attributes(of: inode).size == UInt64(expected.count))
    #expect(cache.statistics.sizeHits == 1 && cache.statistics.hits == 1 && cache.statistics.sizeWrites == 0)
    // A size from another machine stays out of the catalog, which holds what the API said.
    let catalog = try Catalog(path: "\(directory)/second.sqlite", logger: log.logger)
    #expect(try catalog.job(id: job)?.logSize == nil)
  }

  @Test func aSharedSizeTheAPIContradictsIsDroppedAndTheLogSizedByTheAPI() throws {
    let bucket = InMemoryObjectClient(identity: "s3://fleet")
    let cache = SharedBlockCache(
      client: bucket, prefix: "", blockSize: 1 << 20, maxQueuedBytes: 0, logger: log.logger)
    let build = ["acme", "tools", "2"]
    let job = try #require(try scriptJobs(2).first?["id"] as? String)
    let expected = try #require(try fake.logBytes(jobID: job))
    let key = "acme/tools/2/\(job)"
    // A sound record of a wrong size, and no block of that size.
    cache.record(source: "buildkite:logs", key: key, size: UInt64(expected.count + 5))
    let fs = try mount(shared: cache)
    defer { fs.shutdown() }
    let inode = try fs.resolve(build + ["\(job).log"]).inode
    _ = try logRequests()
    let opened = try fs.openFile(inode)
    #expect(try logRequests().isEmpty, "the open took the recorded size")
    let error = #expect(throws: FilesystemError.self) { try fs.read(opened, offset: 0, count: 1 << 20) }
    #expect(error?.kind == .stale)
    fs.releaseFile(opened)
    #expect(cache.statistics.staleSizes == 1)
    #expect(log.all.contains { $0.contains("disagrees with the source") })
    // The next open asks the API, and records the right size over the wrong one.
    let again = try fs.openFile(inode)
    #expect(try fs.read(again, offset: 0, count: 1 << 20) == expected)
    fs.releaseFile(again)
    #expect(try logRequests().filter { $0.method == "GET" }.count == 2)
    #expect(cache.size(source: "buildkite:logs", key: key) == UInt64(expected.count))
  }
}
