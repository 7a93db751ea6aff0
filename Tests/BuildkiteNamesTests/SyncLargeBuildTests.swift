import BuildkiteAPI
import BuildkiteNames
import Catalog
import Foundation
import HTTPTransport
import TestSupport
import Testing

/// A build whose jobs make a page of builds larger than the client takes (`maxAnswerBytes`; 64 MiB in use,
/// 256 KiB here): the sync asks for fewer builds a page, and for such a build alone lists it without jobs and
/// its jobs through the jobs endpoint, so it still stores every job.
@Suite struct SyncLargeBuildTests {
  @Test func aBuildTooLargeForOneAnswerIsStoredWithEveryJob() throws {
    let fake = try FakeBuildkite(
      worldOptions: [
        "--big-builds", "3", "--generated-builds", "40", "--generated-pipelines", "1", "--generated-jobs", "3",
        "--generated-many-jobs", "400",
      ], serverOptions: ["--no-rate-limit"])
    defer { fake.stop() }
    try withTemporaryDirectory { directory in
      let log = CapturedLog()
      func client(maxAnswerBytes: Int) throws -> BuildkiteClient {
        try BuildkiteClient(
          configuration: BuildkiteConfiguration(
            baseURL: fake.baseURL, token: FakeBuildkite.fullToken,
            timeouts: HTTPTimeouts(connect: 2, stall: 10, total: 60), retryBaseDelay: 0.01, retryMaxDelay: 0.05,
            maxAnswerBytes: maxAnswerBytes))
      }
      let small = try client(maxAnswerBytes: 256 << 10)
      #expect(throws: BuildkiteError.self) {
        try small.build(organization: "scale", pipeline: "pipeline-0001", number: 1)
      }
      let catalog = try Catalog(path: directory + "/catalog.sqlite", logger: log.logger)
      let sync = OrganizationSync(api: small, catalog: catalog, organization: "scale", logger: log.logger)
      try sync.run { _ in }
      let expected = try client(maxAnswerBytes: 64 << 20).jobs(
        organization: "scale", pipeline: "pipeline-0001", number: 1)
      #expect(expected.count == 400)
      let big = try #require(try catalog.build(organizationSlug: "scale", pipelineSlug: "pipeline-0001", number: 1))
      #expect(try catalog.jobs(buildID: big.id).map(\.id) == expected.map(\.id))
      var jobs = 0
      for number in 1...40 {
        let build = try #require(
          try catalog.build(organizationSlug: "scale", pipelineSlug: "pipeline-0001", number: number))
        jobs += try catalog.jobs(buildID: build.id).count
      }
      #expect(jobs == 39 * 3 + 400)
      #expect(log.all.contains { $0.contains("without jobs") })
      #expect(log.all.contains { $0.contains("asking for 50 builds a page") })
    }
  }
}
