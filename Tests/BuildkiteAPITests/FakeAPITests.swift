import BuildkiteAPI
import Foundation
import HTTPTransport
import Synchronization
import SystemBase
import TestSupport
import Testing

/// One fake for the tests that do not count the fake's own requests or tune its rate limits: with
/// budgets large enough that tests running in parallel (each with its own client) never meet them.
enum SharedFake {
  static let server: FakeBuildkite? = FakeBuildkite.start(serverOptions: [
    "--org-rate-limit", "1000000", "--user-rate-limit", "1000000",
  ])

  static func client(
    token: String = FakeBuildkite.fullToken, perPage: Int = 100, maxAttempts: Int = 5, fake: FakeBuildkite? = nil
  ) throws -> BuildkiteClient? {
    guard let fake = fake ?? server else { return nil }
    return try BuildkiteClient(
      configuration: BuildkiteConfiguration(
        baseURL: fake.baseURL, token: token, timeouts: HTTPTimeouts(connect: 2, stall: 10, total: 60),
        maxAttempts: maxAttempts, perPage: perPage, retryBaseDelay: 0.01, retryMaxDelay: 0.05))
  }
}

@Suite struct FakeAPIListingTests {
  @Test func organizationsAndPipelinesAcrossPages() throws {
    guard let client = try SharedFake.client(perPage: 2) else { return }
    let organizations = try client.organizations()
    #expect(organizations.map(\.slug) == ["acme", "buildkite", "empty-org"])
    #expect(organizations.allSatisfy { !$0.id.isEmpty && !$0.name.isEmpty })
    #expect(client.counters.requests(.organizations) == 2)
    let pipelines = try client.pipelines(organization: "acme")
    #expect(pipelines.map(\.slug) == ["web-app", "tools"])
    #expect(client.counters.requests(.pipelines) == 1)
    #expect(try client.pipelines(organization: "empty-org").isEmpty)
  }

  @Test func buildsPageByPageNewestFirst() throws {
    guard let client = try SharedFake.client() else { return }
    var numbers: [Int] = []
    var page: Int? = 1
    var pages = 0
    while let current = page {
      let (builds, next) = try client.builds(
        organization: "acme", pipeline: "web-app", query: BuildQuery(page: current))
      #expect(builds.allSatisfy { $0.jobs.count == 3 && $0.isFinished && !$0.raw.isEmpty })
      numbers += builds.map(\.number)
      page = next
      pages += 1
    }
    #expect(pages == 3)
    #expect(numbers.count == 300)
    #expect(numbers == numbers.sorted(by: >))
    #expect(client.counters.requests(.builds) == 3)
    // Each build's raw JSON is its own object.
    let (first, _) = try client.builds(
      organization: "acme", pipeline: "web-app", query: BuildQuery(excludeJobs: true, perPage: 2))
    #expect(first.count == 2 && first.allSatisfy { $0.jobs.isEmpty })
    let raw = try JSONSerialization.jsonObject(with: Data(first[1].raw)) as? [String: Any]
    #expect(raw?["number"] as? Int == first[1].number)
    #expect(raw?["jobs"] == nil)
  }

  @Test func filtersAndTooDeepListings() throws {
    guard let client = try SharedFake.client() else { return }
    let (failed, _) = try client.builds(
      organization: "acme", pipeline: "web-app", query: BuildQuery(branch: "main", state: "failed"))
    #expect(!failed.isEmpty && failed.allSatisfy { $0.state == "failed" && $0.branch == "main" })
    let newest = try client.builds(organization: "acme", pipeline: "web-app", query: BuildQuery(perPage: 1)).builds[0]
    let since = try #require(newest.createdAt)
    let (recent, next) = try client.builds(
      organization: "acme", pipeline: "web-app", query: BuildQuery(createdFrom: since - 3600))
    #expect(recent.map(\.number) == [newest.number, newest.number - 1, newest.number - 2])
    #expect(next == nil)
    do {
      _ = try client.builds(organization: "acme", pipeline: "web-app", query: BuildQuery(page: 11))
      Issue.record("a listing 1000 builds deep succeeded")
    } catch {
      #expect(error.kind == .badRequest)
      #expect(error.message.contains("filters"))
      #expect(error.message.hasPrefix("GET /organizations/acme/pipelines/web-app/builds failed: "))
    }
  }

  @Test func oneBuildWithAndWithoutRetriedJobs() throws {
    guard let fake = SharedFake.server, let client = try SharedFake.client() else { return }
    let stored = try fake.storedJobs(org: "acme", pipeline: "tools", number: 2)
    let retried = stored.filter { $0["retried"] as? Bool == true }
    #expect(retried.count == 3)
    let all = try client.build(organization: "acme", pipeline: "tools", number: 2, includeRetriedJobs: true)
    #expect(all.jobs.map(\.id) == stored.map { $0["id"] as? String })
    let latest = try client.build(organization: "acme", pipeline: "tools", number: 2, includeRetriedJobs: false)
    #expect(latest.jobs.count == stored.count - retried.count)
    #expect(latest.jobs.allSatisfy { !$0.retried })
    let attempt = try #require(all.jobs.first { $0.retried })
    #expect(attempt.retriedInJobID.map { id in all.jobs.contains { $0.id == id } } == true)
    // The real build from build.json comes back as it was stored.
    let real = try client.build(organization: "buildkite", pipeline: "buildkite-cli", number: 584)
    #expect(real.id == "018f7ee5-xxxx-429f-83ad-89e3b6c6c3ef")
    #expect(real.pipelineSlug == "buildkite-cli")
    #expect(real.isFinished)
  }

  @Test func jobsByCursorAndByID() throws {
    guard let fake = SharedFake.server, let client = try SharedFake.client(perPage: 2) else { return }
    let stored = try fake.storedJobs(org: "acme", pipeline: "tools", number: 1)
    #expect(stored.count > 4)
    let jobs = try client.jobs(organization: "acme", pipeline: "tools", number: 1)
    #expect(jobs.map(\.id) == stored.map { $0["id"] as? String })
    #expect(client.counters.requests(.jobs) == (stored.count + 1) / 2)
    #expect(Set(jobs.map(\.type)).isSuperset(of: ["script", "waiter", "manual", "trigger"]))
    let parallel = jobs.filter { $0.parallelGroupTotal == 3 }
    #expect(parallel.map(\.parallelGroupIndex) == [0, 1, 2])
    let script = try #require(jobs.first { $0.hasLog })
    #expect(script.rawLogURL?.hasSuffix("/jobs/\(script.id)/log.txt") == true)
    let again = try client.job(organization: "acme", id: script.id)
    #expect(again == script)
    let retried = try client.jobs(organization: "acme", pipeline: "tools", number: 2, includeRetriedJobs: false)
    #expect(retried.allSatisfy { !$0.retried })
  }

  @Test func unknownNamesAreNotFound() throws {
    guard let client = try SharedFake.client() else { return }
    let calls: [() throws -> Void] = [
      { _ = try client.pipelines(organization: "nope") },
      { _ = try client.build(organization: "acme", pipeline: "nope", number: 1) },
      { _ = try client.build(organization: "acme", pipeline: "tools", number: 999) },
      { _ = try client.job(organization: "acme", id: "00000000-0000-0000-0000-000000000000") },
      { _ = try client.pipelines(organization: "../acme") },
    ]
    for call in calls {
      do {
        try call()
        Issue.record("succeeded")
      } catch {
        #expect((error as? BuildkiteError)?.kind == .notFound, "\(error)")
      }
    }
  }
}

@Suite struct FakeAPILogTests {
  /// The first script job with a log of build `number` of acme/tools, and its bytes.
  func scriptJob(_ number: Int) throws -> (id: String, bytes: [UInt8])? {
    guard let fake = SharedFake.server else { return nil }
    for job in try fake.storedJobs(org: "acme", pipeline: "tools", number: number)
    where job["type"] as? String == "script" {
      if let id = job["id"] as? String, let bytes = try fake.logBytes(jobID: id), !bytes.isEmpty { return (id, bytes) }
    }
    return nil
  }

  @Test func fullLogSizeAndTail() throws {
    guard let client = try SharedFake.client(), let (job, expected) = try scriptJob(6) else { return }
    #expect(expected.count > 100_000)
    let size = try client.logSize(organization: "acme", pipeline: "tools", number: 6, job: job)
    #expect(size == Int64(expected.count))
    var bytes: [UInt8] = []
    try client.log(organization: "acme", pipeline: "tools", number: 6, job: job) { bytes.append(contentsOf: $0) }
    #expect(bytes == expected)
    let tail = try client.logTail(organization: "acme", pipeline: "tools", number: 6, job: job, count: 4096)
    #expect(tail.totalSize == Int64(expected.count))
    #expect(tail.bytes == Array(expected.suffix(4096)))
    let whole = try client.logTail(
      organization: "acme", pipeline: "tools", number: 6, job: job, count: expected.count + 10)
    #expect(whole.bytes == expected && whole.totalSize == Int64(expected.count))
    #expect(client.counters.requests(.logTail) == 2)
    #expect(client.counters.requests(.logSize) == 1)
    #expect(client.counters.requests(.log) == 1)
    #expect(client.counters.bytesFetched.load(ordering: .relaxed) >= 2 * expected.count + 4096)
  }

  @Test func emptyAndDeletedLogs() throws {
    guard let fake = SharedFake.server, let client = try SharedFake.client() else { return }
    let scripts = try fake.storedJobs(org: "acme", pipeline: "tools", number: 3).filter {
      $0["type"] as? String == "script"
    }
    var empty: String?
    var deleted: String?
    for job in scripts {
      let id = try #require(job["id"] as? String)
      switch try fake.logBytes(jobID: id) {
      case nil: deleted = id
      case let bytes? where bytes.isEmpty: empty = id
      default: break
      }
    }
    let emptyID = try #require(empty)
    let deletedID = try #require(deleted)
    let tail = try client.logTail(organization: "acme", pipeline: "tools", number: 3, job: emptyID, count: 100)
    #expect(tail.bytes.isEmpty && tail.totalSize == 0)
    #expect(try client.logSize(organization: "acme", pipeline: "tools", number: 3, job: emptyID) == 0)
    var chunks = 0
    try client.log(organization: "acme", pipeline: "tools", number: 3, job: emptyID) { _ in chunks += 1 }
    #expect(chunks == 0)
    let calls: [() throws -> Void] = [
      { _ = try client.logSize(organization: "acme", pipeline: "tools", number: 3, job: deletedID) },
      { try client.log(organization: "acme", pipeline: "tools", number: 3, job: deletedID) { _ in } },
      {
        _ = try client.logTail(organization: "acme", pipeline: "tools", number: 3, job: deletedID, count: 10)
      },
    ]
    for call in calls {
      do {
        try call()
        Issue.record("a deleted log was read")
      } catch {
        #expect((error as? BuildkiteError)?.kind == .notFound, "\(error)")
      }
    }
  }
}

@Suite struct FakeAPIAuthTests {
  @Test func refusedTokenIsUnauthorizedAndNeverQuoted() throws {
    let token = "bkua_not_a_real_token_123"
    guard let client = try SharedFake.client(token: token) else { return }
    do {
      _ = try client.organizations()
      Issue.record("a refused token listed organizations")
    } catch {
      #expect(error.kind == .unauthorized)
      #expect(error.message.contains("the Buildkite API token was refused"))
      #expect(!error.message.contains(token))
      #expect(!"\(error)".contains(token))
    }
    #expect(client.counters.requests(.organizations) == 1)  // not retried
    #expect(!client.baseURL.contains(token))
  }

  @Test func missingScopesAreNamed() throws {
    guard let noLogs = try SharedFake.client(token: FakeBuildkite.noLogsToken),
      let orgsOnly = try SharedFake.client(token: FakeBuildkite.orgsOnlyToken),
      let noBuilds = try SharedFake.client(token: FakeBuildkite.noBuildsToken),
      let full = try SharedFake.client()
    else { return }
    let job = try #require(
      try full.build(organization: "acme", pipeline: "tools", number: 6).jobs.first { $0.hasLog })
    let cases: [(String, () throws -> Void)] = [
      ("read_build_logs", { try noLogs.log(organization: "acme", pipeline: "tools", number: 6, job: job.id) { _ in } }),
      ("read_build_logs", { _ = try noLogs.logSize(organization: "acme", pipeline: "tools", number: 6, job: job.id) }),
      ("read_pipelines", { _ = try orgsOnly.pipelines(organization: "acme") }),
      ("read_builds", { _ = try noBuilds.builds(organization: "acme", pipeline: "tools", query: BuildQuery()) }),
    ]
    for (scope, call) in cases {
      do {
        try call()
        Issue.record("succeeded without \(scope)")
      } catch {
        let error = try #require(error as? BuildkiteError)
        // HEAD answers have no body: the scope then comes from the endpoint, with kind `missingScope(nil)`.
        #expect(error.kind == .missingScope(scope) || error.kind == .missingScope(nil), "\(error)")
        #expect(error.message.contains(scope), "\(error)")
        #expect(!error.message.contains("bkua_fake"), "\(error)")
      }
    }
  }

  @Test func badConfigurationsAreRefusedUpFront() {
    #expect(throws: BuildkiteError.self) { try BuildkiteClient(configuration: BuildkiteConfiguration(token: "")) }
    #expect(throws: BuildkiteError.self) {
      try BuildkiteClient(configuration: BuildkiteConfiguration(token: "abc\r\nX-Evil: 1"))
    }
    #expect(throws: BuildkiteError.self) {
      try BuildkiteClient(configuration: BuildkiteConfiguration(baseURL: "ftp://x", token: "abc"))
    }
  }
}

/// Tests that count the fake's requests or change its limits: each has its own fake.
@Suite struct FakeAPIFaultTests {
  @Test func serverErrorsAreRetriedAndCounted() throws {
    guard let fake = FakeBuildkite.start(worldOptions: ["--big-builds", "5"]),
      let client = try SharedFake.client(fake: fake)
    else { return }
    defer { fake.stop() }
    try fake.control("fail-next", ["status": 500, "count": 1])
    try fake.control("fail-next", ["status": 502, "count": 1])
    #expect(try client.pipelines(organization: "acme").count == 2)
    #expect(client.counters.retries.load(ordering: .relaxed) == 2)
    #expect(client.counters.requests(.pipelines) == 3)
    // The API's histogram has a sample per HTTP request, each retry its own.
    #expect(client.counters.snapshot.latency.count == 3)
    try fake.control("fail-next", ["status": 503, "count": 10])
    do {
      _ = try client.organizations()
      Issue.record("succeeded through 10 failures")
    } catch {
      #expect(error.kind == .server)
      #expect(error.message.contains("after 5 attempts"))
    }
    #expect(client.counters.failures.load(ordering: .relaxed) == 1)
  }

  /// A 503's `Retry-After` is the wait before the retry, on the client's clock (a manual one here).
  @Test func aServiceUnavailableWaitsAsRetryAfterSays() throws {
    guard let fake = FakeBuildkite.start(worldOptions: ["--big-builds", "5"]) else { return }
    defer { fake.stop() }
    let clock = FakeClock()
    let client = try BuildkiteClient(
      configuration: BuildkiteConfiguration(
        baseURL: fake.baseURL, token: FakeBuildkite.fullToken, timeouts: HTTPTimeouts(connect: 2, stall: 10, total: 60),
        retryBaseDelay: 0.01, retryMaxDelay: 0.05),
      clock: clock)
    try fake.control("fail-next", ["status": 503, "count": 2, "retry_after": 4])
    #expect(try client.pipelines(organization: "acme").count == 2)
    #expect(clock.sleeps == [4, 4])
    #expect(client.counters.retries.load(ordering: .relaxed) == 2)
  }

  @Test func aThrottledRequestWaitsForTheResetAndSucceeds() throws {
    guard let fake = FakeBuildkite.start(worldOptions: ["--big-builds", "5"]),
      let client = try SharedFake.client(fake: fake)
    else { return }
    defer { fake.stop() }
    try fake.control("fail-next", ["status": 429, "count": 1, "reset": 1])
    let started = Date()
    #expect(try client.organizations().count == 3)
    #expect(Date().timeIntervalSince(started) >= 0.9)
    #expect(client.counters.throttled.load(ordering: .relaxed) == 1)
    #expect(client.counters.requests(.organizations) == 2)
    #expect(try fake.count(status: 429) == 1)
  }

  @Test func eightThreadsShareOneBudgetWithoutA429() throws {
    // 12 requests a second per user, 200 per org: 8 threads × 5 requests need about 4 windows.
    guard
      let fake = FakeBuildkite.start(
        worldOptions: ["--big-builds", "5"], serverOptions: ["--user-rate-limit", "12", "--rate-window", "1"]),
      let client = try SharedFake.client(fake: fake)
    else { return }
    defer { fake.stop() }
    let failures = Mutex<[String]>([])
    let done = DispatchGroup()
    for index in 0..<8 {
      done.enter()
      Thread.detachNewThread {
        defer { done.leave() }
        for round in 0..<5 {
          do {
            if (index + round) % 2 == 0 {
              _ = try client.pipelines(organization: "acme")
            } else {
              _ = try client.build(organization: "acme", pipeline: "tools", number: 1 + round % 5)
            }
          } catch {
            failures.withLock { $0.append("\(error)") }
          }
        }
      }
    }
    #expect(done.wait(timeout: .now() + 60) == .success)
    #expect(failures.withLock { $0 }.isEmpty)
    #expect(try fake.count(status: 429) == 0)
    #expect(client.counters.throttled.load(ordering: .relaxed) == 0)
    #expect(client.counters.snapshot.totalRequests == 40)
    #expect(client.counters.rateLimitWaits.load(ordering: .relaxed) > 0)
  }
}
