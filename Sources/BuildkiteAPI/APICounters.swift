public import Synchronization
public import SystemBase

/// The kinds of request this client makes, for counters and for naming the scope a 403 lacks.
public enum APIEndpoint: String, Sendable, Hashable, CaseIterable, Codable {
  case organizations, pipelines, builds, build, jobs, job, log, logSize, logTail

  /// The token scope the endpoint needs.
  public var scope: String {
    switch self {
    case .organizations: "read_organizations"
    case .pipelines: "read_pipelines"
    case .builds, .build, .jobs, .job: "read_builds"
    case .log, .logSize, .logTail: "read_build_logs"
    }
  }
}

/// What a client has asked of the API, for `bklogfs stats` and for tests that assert costs. Every
/// HTTP request counts once in `requests`, retries included. Updated from any thread without locks.
public final class APICounters: Sendable {
  private let organizations = Atomic<Int>(0)
  private let pipelines = Atomic<Int>(0)
  private let buildLists = Atomic<Int>(0)
  private let builds = Atomic<Int>(0)
  private let jobLists = Atomic<Int>(0)
  private let jobs = Atomic<Int>(0)
  private let logs = Atomic<Int>(0)
  private let logSizes = Atomic<Int>(0)
  private let logTails = Atomic<Int>(0)
  /// 429 answers received.
  public let throttled = Atomic<Int>(0)
  /// Times a caller blocked on the shared rate-limit budget before sending.
  public let rateLimitWaits = Atomic<Int>(0)
  /// Requests repeated after a 5xx, a connection failure or a timeout (429s are in `throttled`).
  public let retries = Atomic<Int>(0)
  /// Calls that failed after every retry.
  public let failures = Atomic<Int>(0)
  /// Body bytes received (JSON and logs).
  public let bytesFetched = Atomic<Int>(0)
  /// How long each HTTP request took, from sending it to its answer's end or its failure: one
  /// sample per request counted in `requests`, each retry its own (the wait in the rate limiter
  /// before sending is not included; `rateLimitWaits` counts those).
  public let latency = LatencyHistogram()

  public init() {}

  /// HTTP requests sent to `endpoint`.
  public func requests(_ endpoint: APIEndpoint) -> Int {
    switch endpoint {
    case .organizations: organizations.load(ordering: .relaxed)
    case .pipelines: pipelines.load(ordering: .relaxed)
    case .builds: buildLists.load(ordering: .relaxed)
    case .build: builds.load(ordering: .relaxed)
    case .jobs: jobLists.load(ordering: .relaxed)
    case .job: jobs.load(ordering: .relaxed)
    case .log: logs.load(ordering: .relaxed)
    case .logSize: logSizes.load(ordering: .relaxed)
    case .logTail: logTails.load(ordering: .relaxed)
    }
  }

  func countRequest(_ endpoint: APIEndpoint) {
    switch endpoint {
    case .organizations: organizations.add(1, ordering: .relaxed)
    case .pipelines: pipelines.add(1, ordering: .relaxed)
    case .builds: buildLists.add(1, ordering: .relaxed)
    case .build: builds.add(1, ordering: .relaxed)
    case .jobs: jobLists.add(1, ordering: .relaxed)
    case .job: jobs.add(1, ordering: .relaxed)
    case .log: logs.add(1, ordering: .relaxed)
    case .logSize: logSizes.add(1, ordering: .relaxed)
    case .logTail: logTails.add(1, ordering: .relaxed)
    }
  }

  public struct Snapshot: Sendable, Hashable, Codable {
    public var requests: [APIEndpoint: Int]
    public var throttled: Int
    public var rateLimitWaits: Int
    public var retries: Int
    public var failures: Int
    public var bytesFetched: Int
    public var latency: LatencyHistogram.Snapshot

    /// Requests of every kind.
    public var totalRequests: Int { requests.values.reduce(0, +) }
  }

  public var snapshot: Snapshot {
    var requests: [APIEndpoint: Int] = [:]
    for endpoint in APIEndpoint.allCases { requests[endpoint] = self.requests(endpoint) }
    return Snapshot(
      requests: requests, throttled: throttled.load(ordering: .relaxed),
      rateLimitWaits: rateLimitWaits.load(ordering: .relaxed), retries: retries.load(ordering: .relaxed),
      failures: failures.load(ordering: .relaxed), bytesFetched: bytesFetched.load(ordering: .relaxed),
      latency: latency.snapshot)
  }
}
