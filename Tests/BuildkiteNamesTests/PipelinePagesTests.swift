import BlockCache
import BuildkiteAPI
import BuildkiteNames
import Catalog
import Foundation
import HTTPTransport
import LogFS
import TestSupport
import Testing

/// A mount lists a pipeline's newest builds in pages of builds with their jobs, against the fake API.
@Suite struct PipelinePagesTests {
  static func mount(
    _ fake: FakeBuildkite, _ directory: String, recentBuilds: Int, maxAnswerBytes: Int, _ log: CapturedLog
  ) throws -> LogFilesystem {
    let api = try BuildkiteClient(
      configuration: BuildkiteConfiguration(
        baseURL: fake.baseURL, token: FakeBuildkite.fullToken, timeouts: HTTPTimeouts(connect: 2, stall: 10, total: 60),
        retryBaseDelay: 0.01, retryMaxDelay: 0.05, maxAnswerBytes: maxAnswerBytes))
    let names = BuildkiteNamespace(
      api: api, catalog: try Catalog(path: "\(directory)/catalog.sqlite", logger: log.logger),
      logStore: BuildkiteLogStore(api: api), configuration: BuildkiteNamesConfiguration(recentBuilds: recentBuilds),
      logger: log.logger)
    return LogFilesystem(
      namespace: names, configuration: FilesystemConfiguration(fetchThreads: 1),
      memoryCache: MemoryBlockCache(maxBytes: 8 << 20), diskCache: nil, logger: log.logger)
  }

  static func withFake(_ options: [String], _ body: (FakeBuildkite, String) throws -> Void) throws {
    let fake = try FakeBuildkite(worldOptions: ["--big-builds", "3"] + options, serverOptions: ["--no-rate-limit"])
    defer { fake.stop() }
    try withTemporaryDirectory { directory in try body(fake, directory) }
  }

  /// A build whose jobs make any page that holds it larger than the client takes (`maxAnswerBytes`;
  /// 64 MiB in use, 256 KiB here): the pipeline is listed in smaller pages, that build alone without
  /// its jobs and its jobs through the jobs endpoint, and every build and job shows.
  @Test func aBuildTooLargeForOneAnswerIsListedInParts() throws {
    try Self.withFake([
      "--generated-builds", "40", "--generated-pipelines", "1", "--generated-jobs", "3", "--generated-many-jobs", "400",
    ]) { fake, directory in
      let log = CapturedLog()
      // Looked up by number alone, its answer is too large, and the API has no build without its jobs.
      try FileManager.default.createDirectory(atPath: directory + "/alone", withIntermediateDirectories: true)
      let alone = try Self.mount(fake, directory + "/alone", recentBuilds: 100, maxAnswerBytes: 256 << 10, log)
      let error = #expect(throws: FilesystemError.self) { try alone.resolve(["scale", "pipeline-0001", "1"]) }
      #expect(error?.message.contains("listing its pipeline, or `bklogfs sync`, takes it in parts") == true)
      let filesystem = try Self.mount(fake, directory, recentBuilds: 100, maxAnswerBytes: 256 << 10, log)
      let builds = try filesystem.listing(["scale", "pipeline-0001"]).keys.filter { $0 != "." && $0 != ".." }
      #expect(Set(builds) == Set((1...40).map(String.init)))
      let expected = try BuildkiteClient(
        configuration: BuildkiteConfiguration(baseURL: fake.baseURL, token: FakeBuildkite.fullToken)
      ).jobs(organization: "scale", pipeline: "pipeline-0001", number: 1)
      #expect(expected.count == 400)
      // Listed with its pipeline, it is in the catalog: looked up by number, it is served from there.
      _ = try filesystem.resolve(["scale", "pipeline-0001", "1"])
      let logs = try filesystem.listing(["scale", "pipeline-0001", "1"]).keys
      for job in expected where job.type == "script" { #expect(logs.contains("\(job.id).log"), "\(job.id)") }
      #expect(try filesystem.listing(["scale", "pipeline-0001", "2"]).keys.filter { $0.hasSuffix(".log") }.count >= 3)
      #expect(log.all.contains { $0.contains("asking for 50 builds a page") })
      #expect(log.all.contains { $0.contains("listing the build without jobs and its jobs apart") })
    }
  }

  /// `--recent-builds` that is not a whole number of pages: the newest builds, each once.
  @Test func recentBuildsNotAWholeNumberOfPagesAreTheNewest() throws {
    try Self.withFake(["--generated-builds", "230", "--generated-pipelines", "1", "--generated-jobs", "1"]) {
      fake, directory in
      let filesystem = try Self.mount(fake, directory, recentBuilds: 150, maxAnswerBytes: 64 << 20, CapturedLog())
      let builds = try filesystem.listing(["scale", "pipeline-0001"]).keys.filter { $0 != "." && $0 != ".." }
      #expect(Set(builds) == Set((81...230).map(String.init)))
    }
  }
}
