import Foundation
import TestSupport
import Testing

@testable import BuildkiteAPI

@Suite struct LinkHeaderTests {
  @Test func buildkiteStyleHeader() {
    let header =
      #"<https://api.buildkite.com/v2/organizations/acme/pipelines?page=3&per_page=2>; rel="next", "#
      + #"<https://api.buildkite.com/v2/organizations/acme/pipelines?page=5&per_page=2>; rel="last""#
    let links = parseLinkHeader(header)
    #expect(links.count == 2)
    #expect(linkTarget(header, relation: "next")?.hasSuffix("page=3&per_page=2") == true)
    #expect(linkTarget(header, relation: "LAST").flatMap { queryParameter($0, "page") } == "5")
    #expect(linkTarget(header, relation: "prev") == nil)
  }

  @Test func unquotedSeveralRelationsAndOtherParameters() {
    let header = #"</a?page=1>;rel=first , </a?page=2> ; title="x, y; z" ; rel="next  last", </a?page=9>; rel=prev"#
    let links = parseLinkHeader(header)
    #expect(links.map(\.target) == ["/a?page=1", "/a?page=2", "/a?page=9"])
    #expect(links[0].relations == ["first"])
    #expect(links[1].relations == ["next", "last"])
    #expect(linkTarget(header, relation: "last") == "/a?page=2")
  }

  @Test func commasInsideTargetsAndGarbageDoNotTrap() {
    let header = #"<https://h/x?a=1,2&page=4>; rel="next", junk, <unterminated; rel="last""#
    #expect(linkTarget(header, relation: "next") == "https://h/x?a=1,2&page=4")
    #expect(queryParameter("https://h/x?a=1,2&page=4", "page") == "4")
    for text in ["", ",", "<", ">", ";;;", "<a>;rel=", "<a>; rel=\"", "\"\"\"", "<a>;=;rel", ",,<b>; rel=next,,"] {
      _ = parseLinkHeader(text)
    }
    #expect(linkTarget(",,<b>; rel=next,,", relation: "next") == "b")
    #expect(linkTarget(nil, relation: "next") == nil)
  }

  @Test func queryParameters() {
    #expect(queryParameter("/x?after=abc%3D%3D&per_page=2#frag", "after") == "abc==")
    #expect(queryParameter("/x?flag&b=1", "flag") == "")
    #expect(queryParameter("/x", "page") == nil)
  }

  @Test func percentEncodingKeepsSegmentsWhole() {
    #expect(percentEncode("web-app_1.x~") == "web-app_1.x~")
    #expect(percentEncode("a/b c?d#e%") == "a%2Fb%20c%3Fd%23e%25")
    #expect(percentEncode("é") == "%C3%A9")
  }
}

@Suite struct TimeTests {
  @Test func formatsWholeSecondsInUTC() {
    #expect(formatISO8601(0) == "1970-01-01T00:00:00Z")
    #expect(formatISO8601(1_715_820_926.9) == "2024-05-16T00:55:26Z")
    #expect(formatISO8601(951_782_400) == "2000-02-29T00:00:00Z")
    #expect(parseBuildkiteTime(formatISO8601(1_234_567_890)) == 1_234_567_890)
  }
}

@Suite struct ModelTests {
  @Test func realBuildFromTestData() throws {
    guard let directory = TestData.require("buildkite") else { return }
    let bytes = [UInt8](try Data(contentsOf: directory.appendingPathComponent("build.json")))
    let builds = try Build.list(json: bytes)
    #expect(builds.count == 1)
    let build = try #require(builds.first)
    #expect(build.number == 584)
    #expect(build.state == "passed")
    #expect(build.isFinished)
    #expect(build.branch == "")
    #expect(build.pipelineSlug == "buildkite-cli")
    #expect(build.pipelineID == "26e6a5b3-xxxx-4be3-8f2a-db21faf06597")
    #expect(build.createdAt == parseBuildkiteTime("2024-05-16T00:55:26.401Z"))
    #expect(build.finishedAt == parseBuildkiteTime("2024-05-16T00:58:58.887Z"))
    #expect(build.jobs.isEmpty)
    // `raw` is exactly the array's element: the same JSON object, byte for byte a slice of the file.
    #expect(build.raw.first == UInt8(ascii: "{") && build.raw.last == UInt8(ascii: "}"))
    let original = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [Any])
    let raw = try #require(try JSONSerialization.jsonObject(with: Data(build.raw)) as? NSDictionary)
    #expect((original[0] as? NSDictionary)?.isEqual(raw) == true)
    #expect(String(decoding: bytes, as: UTF8.self).contains(String(decoding: build.raw, as: UTF8.self)))
    // A single object decodes the same way.
    #expect(try Build(json: build.raw).id == build.id)
  }

  @Test func jobsTolerateNullsUnknownFieldsAndOddTypes() throws {
    let json = #"""
      [ {"id": "b1", "number": 7, "state": "running", "finished_at": null, "new_field": {"x": [1, "]", "}"]},
         "jobs": [
          {"id": "j1", "type": "script", "name": "Test \"quoted\" ]", "step_key": null, "state": "passed",
           "parallel_group_index": 1, "parallel_group_total": "3", "retried": null, "retried_in_job_id": null,
           "retries_count": 2, "created_at": "2024-05-16T00:55:26.401Z", "started_at": "not a time",
           "finished_at": 12, "raw_log_url": "https://x/log.txt", "future": true},
          {"id": "j2", "type": "waiter"},
          {"id": "j3"}
        ]},
        {"id": "b2", "number": 6, "state": "passed", "jobs": null, "pipeline": null} ]
      """#
    let builds = try Build.list(json: Array(json.utf8))
    #expect(builds.map(\.number) == [7, 6])
    #expect(!builds[0].isFinished)
    #expect(builds[1].isFinished)
    #expect(builds[1].jobs.isEmpty)
    let job = builds[0].jobs[0]
    #expect(job.name == "Test \"quoted\" ]")
    #expect(job.stepKey == nil)
    #expect(job.parallelGroupIndex == 1 && job.parallelGroupTotal == 3)
    #expect(job.retried == false && job.retriesCount == 2)
    #expect(job.createdAt != nil && job.startedAt == nil && job.finishedAt == nil)
    #expect(job.hasLog && !builds[0].jobs[1].hasLog)
    #expect(builds[0].jobs[2].type == "")
    let first = try JSONSerialization.jsonObject(with: Data(builds[0].raw)) as? [String: Any]
    #expect(first?["id"] as? String == "b1")
  }

  @Test func malformedListingsAreInvalidResponses() {
    for bad in ["{}", "[", "[{\"id\": \"x\"}]", "[1,]", "[{\"id\":\"a\",\"number\":1}] x", "nope"] {
      #expect(throws: BuildkiteError.self, "\(bad)") { try Build.list(json: Array(bad.utf8)) }
    }
    #expect((try? Build.list(json: Array(" [ ] ".utf8)))?.isEmpty == true)
    do {
      _ = try Build.list(json: Array("[{\"id\": \"x\"}]".utf8))
    } catch {
      #expect(error.kind == .invalidResponse)
      #expect(error.message.contains("number"))
    }
  }

  @Test func configurationNeverPrintsTheToken() {
    let configuration = BuildkiteConfiguration(token: "bkua_secret_value")
    #expect(!"\(configuration)".contains("bkua_secret_value"))
    #expect(!String(reflecting: configuration).contains("bkua_secret_value"))
  }

  @Test func rateLimitHeadersTakeTheBindingBudget() {
    let org = RateLimitHeaders(headers: [
      "ratelimit-remaining": "180", "ratelimit-limit": "200", "ratelimit-reset": "42",
    ])
    #expect(org == RateLimitHeaders(remaining: 180, limit: 200, reset: 42))
    let both = RateLimitHeaders(headers: [
      "ratelimit-remaining": "180", "ratelimit-limit": "200", "ratelimit-reset": "42",
      "ratelimit-user-remaining": "3", "ratelimit-user-limit": "50", "ratelimit-user-reset": "17",
    ])
    #expect(both == RateLimitHeaders(remaining: 3, limit: 50, reset: 17))
    #expect(RateLimitHeaders(headers: ["retry-after": "5"]) == RateLimitHeaders(reset: 5))
    #expect(RateLimitHeaders(headers: ["ratelimit-remaining": "x"]).isEmpty)
  }
}
