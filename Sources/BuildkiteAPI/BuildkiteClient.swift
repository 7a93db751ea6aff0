public import HTTPTransport
public import Logging
import Synchronization
public import SystemBase

/// Filters for one page of a pipeline's builds. Times are seconds since the Unix epoch.
public struct BuildQuery: Sendable, Hashable {
  public var branch: String?
  /// A build state (`passed`, `failed`, `running`, … or `finished`).
  public var state: String?
  public var createdFrom: Double?
  public var createdTo: Double?
  public var finishedFrom: Double?
  /// Every attempt of a retried job, not only the latest.
  public var includeRetriedJobs: Bool
  /// Builds without their jobs (cheaper for the API; the jobs endpoint then lists them).
  public var excludeJobs: Bool
  /// 1-based page number.
  public var page: Int
  /// Builds per page; the client's configured `perPage` when nil.
  public var perPage: Int?

  public init(
    branch: String? = nil, state: String? = nil, createdFrom: Double? = nil, createdTo: Double? = nil,
    finishedFrom: Double? = nil, includeRetriedJobs: Bool = true, excludeJobs: Bool = false, page: Int = 1,
    perPage: Int? = nil
  ) {
    self.branch = branch
    self.state = state
    self.createdFrom = createdFrom
    self.createdTo = createdTo
    self.finishedFrom = finishedFrom
    self.includeRetriedJobs = includeRetriedJobs
    self.excludeJobs = excludeJobs
    self.page = page
    self.perPage = perPage
  }
}

/// One page of a builds listing.
public struct BuildsPage: Sendable {
  public var builds: [Build]
  /// The next page's number, when the answer links one.
  public var nextPage: Int?
  /// The last page's number, when the answer links one past this page: how many pages the listing holds.
  public var lastPage: Int?
}

/// A synchronous client for the Buildkite REST API (v2), for plain threads.
///
/// Every request goes through one `RateLimiter` shared by all threads using the client, so that in
/// normal use no request is answered 429; a 429 still waits for the reset and retries. 5xx answers,
/// connection failures and timeouts are retried with exponential backoff and full jitter. The token
/// appears only in the `Authorization` header: never in a URL, a log line or an error.
public final class BuildkiteClient: Sendable {
  public let counters = APICounters()
  public let rateLimiter: RateLimiter
  private let configuration: BuildkiteConfiguration
  private let http: HTTPClient
  private let logger: Logger
  private let retries: RetryEngine<BuildkiteError>
  /// Times each request for the counters' latency histogram.
  private let clock: any MonotonicClock
  /// `scheme://host[:port]` of the base URL.
  private let origin: String
  /// The base URL's path, without a trailing slash ("/v2").
  private let basePath: String

  /// Throws `.badRequest` when the base URL is not `http(s)://host[:port][/path]`, and `.unauthorized`
  /// when the token is empty or could not be sent in a header.
  public init(
    configuration: BuildkiteConfiguration, httpClient: HTTPClient? = nil, clock: any MonotonicClock = SystemClock(),
    logger: Logger = Logger(label: "bklogfs.buildkite")
  ) throws(BuildkiteError) {
    guard let url = HTTPURL(configuration.baseURL) else {
      throw BuildkiteError(
        .badRequest, "the Buildkite API endpoint \(configuration.baseURL) is not an http:// or https:// URL")
    }
    guard !configuration.token.isEmpty else {
      throw BuildkiteError(.unauthorized, "the Buildkite API token is empty")
    }
    guard configuration.token.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
      throw BuildkiteError(
        .unauthorized, "the Buildkite API token holds spaces, line breaks or other characters a token cannot have")
    }
    origin = url.origin
    var path = url.path
    while path.hasSuffix("/") { path.removeLast() }
    basePath = path
    self.configuration = configuration
    http = httpClient ?? HTTPClient(timeouts: configuration.timeouts)
    self.logger = logger
    self.clock = clock
    rateLimiter = RateLimiter(
      reserve: configuration.rateLimitReserve, maxWait: configuration.maxRateLimitWait, clock: clock)
    let counters = counters
    let token = configuration.token
    retries = RetryEngine(
      clock: clock, logger: logger, message: { $0.message },
      rewrite: { error, message in
        var rewritten = error
        rewritten.message = removingToken(token, from: message)
        return rewritten
      },
      count: { event in
        switch event {
        case .retry: counters.retries.add(1, ordering: .relaxed)
        case .throttled: counters.throttled.add(1, ordering: .relaxed)
        case .failure: counters.failures.add(1, ordering: .relaxed)
        }
      })
  }

  /// The API root requests go to (never holds the token).
  public var baseURL: String { origin + basePath }

  // MARK: - Organizations and pipelines

  /// Every organization the token can see (all pages).
  public func organizations() throws(BuildkiteError) -> [Organization] {
    try allPages(Call(.organizations, path: "/organizations"), of: Organization.self, what: "organizations")
  }

  /// Every pipeline of an organization (all pages).
  public func pipelines(organization: String) throws(BuildkiteError) -> [Pipeline] {
    let path = "/organizations/\(pathSegment(organization))/pipelines"
    return try allPages(Call(.pipelines, path: path), of: Pipeline.self, what: "pipelines")
  }

  // MARK: - Builds and jobs

  /// One page of a pipeline's builds (newest first), and the next page's number when the `Link`
  /// header has a `next` link.
  public func builds(
    organization: String, pipeline: String, query: BuildQuery
  ) throws(BuildkiteError) -> (builds: [Build], nextPage: Int?) {
    let page = try buildsPage(organization: organization, pipeline: pipeline, query: query)
    return (page.builds, page.nextPage)
  }

  /// One page of a pipeline's builds (newest first), with the next and last pages' numbers from the
  /// `Link` header (`next`, `last`) when it names them.
  public func buildsPage(
    organization: String, pipeline: String, query: BuildQuery
  ) throws(BuildkiteError) -> BuildsPage {
    var parameters: [(String, String)] = []
    if let branch = query.branch { parameters.append(("branch", branch)) }
    if let state = query.state { parameters.append(("state", state)) }
    if let time = query.createdFrom { parameters.append(("created_from", formatISO8601(time))) }
    if let time = query.createdTo { parameters.append(("created_to", formatISO8601(time))) }
    if let time = query.finishedFrom { parameters.append(("finished_from", formatISO8601(time))) }
    if query.includeRetriedJobs { parameters.append(("include_retried_jobs", "true")) }
    if query.excludeJobs { parameters.append(("exclude_jobs", "true")) }
    parameters.append(("page", String(max(1, query.page))))
    parameters.append(("per_page", String(query.perPage ?? configuration.perPage)))
    let call = Call(.builds, path: "\(pipelinePath(organization, pipeline))/builds", query: parameters)
    let (response, body) = try getJSON(call)
    let builds: [Build]
    do {
      builds = try Build.list(json: body)
    } catch {
      throw failure(call, error)
    }
    func page(_ relation: String) -> Int? {
      linkTarget(response.headers["link"], relation: relation).flatMap { queryParameter($0, "page") }
        .flatMap { Int($0) }.flatMap { $0 > query.page ? $0 : nil }
    }
    return BuildsPage(builds: builds, nextPage: page("next"), lastPage: page("last"))
  }

  /// One build by number, with its jobs (every attempt of retried jobs when `includeRetriedJobs`).
  public func build(
    organization: String, pipeline: String, number: Int, includeRetriedJobs: Bool = true
  ) throws(BuildkiteError) -> Build {
    let call = Call(
      .build, path: "\(pipelinePath(organization, pipeline))/builds/\(number)",
      query: includeRetriedJobs ? [("include_retried_jobs", "true")] : [])
    let (_, body) = try getJSON(call)
    do {
      return try Build(json: body)
    } catch {
      throw failure(call, error)
    }
  }

  /// A page of builds for builds whose jobs make it too large for one answer
  /// (`BuildkiteError.isAnswerTooLarge`): listed without their jobs (`exclude_jobs`), each build's
  /// jobs then listed through the jobs endpoint, as Buildkite advises for large builds.
  public func buildsPageWithJobsApart(
    organization: String, pipeline: String, query: BuildQuery
  ) throws(BuildkiteError) -> BuildsPage {
    var query = query
    query.excludeJobs = true
    var page = try buildsPage(organization: organization, pipeline: pipeline, query: query)
    for index in page.builds.indices {
      page.builds[index].jobs = try jobs(
        organization: organization, pipeline: pipeline, number: page.builds[index].number,
        includeRetriedJobs: query.includeRetriedJobs)
    }
    return page
  }

  /// Every job of a build, following the jobs endpoint's cursor (`links.next`) page by page.
  public func jobs(
    organization: String, pipeline: String, number: Int, includeRetriedJobs: Bool = true
  ) throws(BuildkiteError) -> [Job] {
    var call = Call(
      .jobs, path: "\(pipelinePath(organization, pipeline))/builds/\(number)/jobs",
      query: [
        ("include_retried_jobs", includeRetriedJobs ? "true" : "false"), ("per_page", String(configuration.perPage)),
      ])
    var jobs: [Job] = []
    var seen: Set<String> = []
    for _ in 0..<10_000 {
      let (response, body) = try getJSON(call)
      let page: JobsPage
      do {
        page = try decodeJSON(JobsPage.self, body, what: "jobs")
      } catch {
        throw failure(call, error)
      }
      jobs.append(contentsOf: page.items)
      // The body's cursor link; a `Link` header's `next` is accepted too.
      guard let next = page.next ?? linkTarget(response.headers["link"], relation: "next") else { return jobs }
      guard !page.items.isEmpty, seen.insert(next).inserted else {
        throw failure(call, BuildkiteError(.invalidResponse, "the jobs cursor did not advance"))
      }
      call = follow(next, from: call)
    }
    throw failure(call, BuildkiteError(.invalidResponse, "the jobs listing ran past 10000 pages"))
  }

  /// One job by UUID.
  public func job(organization: String, id: String) throws(BuildkiteError) -> Job {
    let call = Call(.job, path: "/organizations/\(pathSegment(organization))/jobs/\(pathSegment(id))")
    let (_, body) = try getJSON(call)
    do {
      return try decodeJSON(Job.self, body, what: "job")
    } catch {
      throw failure(call, error)
    }
  }

  // MARK: - Logs

  /// The raw log's size in bytes (`HEAD` with `Accept: text/plain`), nil when the answer has no
  /// `Content-Length`. Throws `.notFound` when the job has no log.
  public func logSize(organization: String, pipeline: String, number: Int, job: String) throws(BuildkiteError) -> Int64?
  {
    let call = Call(.logSize, method: "HEAD", path: logPath(organization, pipeline, number, job), accept: "text/plain")
    return try retries.run(call.summary, policy) { () throws(Outcome) -> Int64? in
      let (response, errorBody) = try send(call, onBody: { _ in true })
      guard (200..<300).contains(response.status) else { throw classify(response, body: errorBody, call) }
      return response.headers["content-length"].flatMap { Int64($0.trimmingSpaces()) }
    }
  }

  /// The whole raw log (`Accept: text/plain`), streamed to `body` in order. A transfer that breaks is
  /// retried and resumes where it stopped by skipping the bytes already delivered (logs only grow).
  public func log(
    organization: String, pipeline: String, number: Int, job: String, body: (UnsafeRawBufferPointer) -> Void
  ) throws(BuildkiteError) {
    let call = Call(.log, path: logPath(organization, pipeline, number, job), accept: "text/plain")
    var delivered = 0
    try retries.run(call.summary, policy) { () throws(Outcome) in
      var skip = delivered
      let (response, errorBody) = try send(
        call,
        onBody: { chunk in
          var chunk = chunk
          if skip > 0 {
            let dropped = min(skip, chunk.count)
            skip -= dropped
            chunk = UnsafeRawBufferPointer(rebasing: chunk[dropped...])
          }
          if !chunk.isEmpty {
            body(chunk)
            delivered += chunk.count
          }
          return true
        })
      guard (200..<300).contains(response.status) else { throw classify(response, body: errorBody, call) }
      if skip > 0 {
        throw Outcome.fail(
          BuildkiteError(.invalidResponse, "the log is shorter than the \(delivered) bytes already read"))
      }
    }
  }

  /// The last `count` bytes of the raw log via a suffix range (`Range: bytes=-count`), and the log's
  /// total size from `Content-Range`. An empty log (416) gives no bytes and size 0. A server that
  /// ignores the range and sends the whole log is read through, keeping only the tail.
  public func logTail(
    organization: String, pipeline: String, number: Int, job: String, count: Int
  ) throws(BuildkiteError) -> (bytes: [UInt8], totalSize: Int64) {
    guard count > 0 else {
      let size = try logSize(organization: organization, pipeline: pipeline, number: number, job: job)
      return ([], size ?? 0)
    }
    let call = Call(
      .logTail, path: logPath(organization, pipeline, number, job), accept: "text/plain",
      headers: [(name: "Range", value: "bytes=-\(count)")])
    return try retries.run(call.summary, policy) { () throws(Outcome) -> (bytes: [UInt8], totalSize: Int64) in
      var status = 0
      var bytes: [UInt8] = []
      var seen: Int64 = 0
      var problem: BuildkiteError?
      let (response, errorBody) = try send(
        call,
        onResponse: { head in
          status = head.status
          return true
        },
        onBody: { chunk in
          seen += Int64(chunk.count)
          switch status {
          case 206:
            guard bytes.count + chunk.count <= count else {
              problem = BuildkiteError(.invalidResponse, "the answer to a \(count)-byte suffix range is longer")
              return false
            }
            bytes.append(contentsOf: chunk)
          case 200:
            // The whole log: keep a bounded window of its end.
            bytes.append(contentsOf: chunk)
            if bytes.count > 2 * count + (1 << 20) { bytes.removeFirst(bytes.count - count) }
          default:
            // Another 2xx, refused below by its status.
            break
          }
          return true
        },
        problem: { problem })
      switch response.status {
      case 206:
        guard let range = response.headers["content-range"], parseContentRange(range) != nil else {
          throw Outcome.fail(BuildkiteError(.invalidResponse, "a 206 answer has no usable Content-Range"))
        }
        guard let total = suffixRangeTotal(contentRange: range, byteCount: bytes.count) else {
          throw Outcome.fail(
            BuildkiteError(
              .invalidResponse, "the Content-Range \(range) does not match \(bytes.count) bytes at the end"))
        }
        return (bytes, total)
      case 200:
        if bytes.count > count { bytes.removeFirst(bytes.count - count) }
        return (bytes, seen)
      case 416:
        // An empty log: nothing satisfies a suffix range.
        if let range = response.headers["content-range"], let total = parseContentRange(range)?.total, total > 0 {
          throw Outcome.fail(BuildkiteError(.invalidResponse, "a suffix range was refused for a \(total)-byte log"))
        }
        return ([], 0)
      default:
        throw classify(response, body: errorBody, call)
      }
    }
  }

  // MARK: - Calls

  /// One API request: its endpoint kind, method, path under the base URL (segments encoded) and query.
  struct Call {
    var endpoint: APIEndpoint
    var method = "GET"
    /// Under the base path, starting with "/"; or, with `absolutePath`, under the origin.
    var path: String
    var query: [(String, String)] = []
    var accept = "application/json"
    var headers: [(name: String, value: String)] = []
    var absolutePath = false

    init(
      _ endpoint: APIEndpoint, method: String = "GET", path: String, query: [(String, String)] = [],
      accept: String = "application/json", headers: [(name: String, value: String)] = []
    ) {
      self.endpoint = endpoint
      self.method = method
      self.path = path
      self.query = query
      self.accept = accept
      self.headers = headers
    }

    /// "GET /organizations/acme/pipelines": for messages (no query, no host, no token).
    var summary: String { "\(method) \(path)" }
  }

  private func pipelinePath(_ organization: String, _ pipeline: String) -> String {
    "/organizations/\(pathSegment(organization))/pipelines/\(pathSegment(pipeline))"
  }

  private func logPath(_ organization: String, _ pipeline: String, _ number: Int, _ job: String) -> String {
    "\(pipelinePath(organization, pipeline))/builds/\(number)/jobs/\(pathSegment(job))/log"
  }

  private func url(_ call: Call) -> String {
    var url = origin + (call.absolutePath ? "" : basePath) + call.path
    if !call.query.isEmpty {
      url +=
        (call.path.contains("?") ? "&" : "?")
        + call.query.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
    }
    return url
  }

  /// The call for a `next` link: an absolute URL or an absolute path is rebased onto this client's
  /// origin (the token never goes to another host); a bare value is taken as a `cursor` parameter.
  private func follow(_ next: String, from call: Call) -> Call {
    var followed = call
    var target = Substring(next)
    if let scheme = target.firstRange(of: "://") {
      let rest = target[scheme.upperBound...]
      target = rest.firstIndex(of: "/").map { rest[$0...] } ?? "/"
    }
    if target.hasPrefix("/") {
      followed.path = String(target)
      followed.absolutePath = true
      followed.query = []
    } else if target.hasPrefix("?") {
      followed.path = call.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? call.path
      followed.path += target
      followed.query = []
    } else {
      followed.query.removeAll { $0.0 == "cursor" }
      followed.query.append(("cursor", String(target)))
    }
    return followed
  }

  // MARK: - Requests, outcomes and retries

  private typealias Outcome = RetryOutcome<BuildkiteError>

  /// Every call's policy. A 429 waits in the rate limiter, not in the engine, for as many as
  /// `max429Retries`; a 503's `Retry-After` is honoured as long as a rate-limit wait may last.
  private var policy: RetryPolicy {
    RetryPolicy(
      maxAttempts: configuration.maxAttempts, baseDelay: configuration.retryBaseDelay,
      maxDelay: configuration.retryMaxDelay, maxThrottles: configuration.max429Retries,
      maxServerWait: configuration.maxRateLimitWait)
  }

  /// Sends one request through the rate limiter and reports its answer back to it. `onResponse`
  /// sees every head, `onBody` only a successful (2xx) answer's body; of an error answer, the first
  /// `HTTPClient.errorBodyLimit` bytes are returned.
  private func send(
    _ call: Call, onResponse: (HTTPResponse) -> Bool = { _ in true }, onBody: (UnsafeRawBufferPointer) -> Bool,
    problem: () -> BuildkiteError? = { nil }
  ) throws(Outcome) -> (response: HTTPResponse, errorBody: [UInt8]) {
    do {
      if try rateLimiter.acquire() { counters.rateLimitWaits.add(1, ordering: .relaxed) }
    } catch {
      throw .fail(
        BuildkiteError(
          .rateLimited,
          "the Buildkite API rate limit resets in \(Int(error.seconds.rounded(.up))) s, longer than the \(Int(configuration.maxRateLimitWait)) s a call may wait"
        ))
    }
    counters.countRequest(call.endpoint)
    let started = clock.now()
    defer { counters.latency.record(seconds: clock.now() - started) }
    var headers: [(name: String, value: String)] = [
      (name: "Authorization", value: "Bearer \(configuration.token)"),
      (name: "Accept", value: call.accept),
      (name: "User-Agent", value: "bklogfs"),
    ]
    headers += call.headers
    var head: HTTPResponse?
    do {
      let (response, errorBody) = try http.performJudgingErrors(
        HTTPRequest(method: call.method, url: url(call), headers: headers),
        onResponse: { response in
          head = response
          return onResponse(response)
        },
        onSuccessBody: { chunk in
          counters.bytesFetched.add(chunk.count, ordering: .relaxed)
          return onBody(chunk)
        })
      rateLimiter.complete(RateLimitHeaders(headers: response.headers), throttled: response.status == 429)
      return (response, errorBody)
    } catch {
      rateLimiter.complete(head.map { RateLimitHeaders(headers: $0.headers) } ?? RateLimitHeaders())
      if let problem = problem() { throw .fail(problem) }
      throw transportOutcome(error)
    }
  }

  /// A GET whose 2xx body is collected (up to `maxAnswerBytes`, 64 MiB unless configured).
  private func getJSON(_ call: Call) throws(BuildkiteError) -> (HTTPResponse, [UInt8]) {
    let limit = configuration.maxAnswerBytes
    return try retries.run(call.summary, policy) { () throws(Outcome) -> (HTTPResponse, [UInt8]) in
      var body: [UInt8] = []
      var problem: BuildkiteError?
      let (response, errorBody) = try send(
        call,
        onBody: { chunk in
          guard body.count + chunk.count <= limit else {
            var tooLarge = BuildkiteError(.invalidResponse, "the answer is larger than \(describeBytes(limit))")
            tooLarge.isAnswerTooLarge = true
            problem = tooLarge
            return false
          }
          body.append(contentsOf: chunk)
          return true
        }, problem: { problem })
      guard (200..<300).contains(response.status) else { throw classify(response, body: errorBody, call) }
      return (response, body)
    }
  }

  /// Every page of a listing, following the `Link` header's `next` link.
  private func allPages<T: Decodable>(_ first: Call, of: T.Type, what: String) throws(BuildkiteError) -> [T] {
    var call = first
    call.query.append(("per_page", String(configuration.perPage)))
    var items: [T] = []
    var seen: Set<String> = []
    for _ in 0..<10_000 {
      let (response, body) = try getJSON(call)
      do {
        items += try decodeJSON([T].self, body, what: what)
      } catch {
        throw failure(call, error)
      }
      guard let next = linkTarget(response.headers["link"], relation: "next") else { return items }
      guard seen.insert(next).inserted else {
        throw failure(call, BuildkiteError(.invalidResponse, "the \(what) listing's next link repeats"))
      }
      call = follow(next, from: call)
    }
    throw failure(call, BuildkiteError(.invalidResponse, "the \(what) listing ran past 10000 pages"))
  }

  /// `error` with the call named: "GET /organizations/acme/pipelines failed: …", with no token.
  private func failure(_ call: Call, _ error: BuildkiteError) -> BuildkiteError {
    var named = error
    named.message = scrub("\(call.summary) failed: \(error.message)")
    return named
  }

  private func scrub(_ text: String) -> String { removingToken(configuration.token, from: text) }

  /// What a non-2xx answer means.
  private func classify(_ response: HTTPResponse, body: [UInt8], _ call: Call) -> Outcome {
    let status = response.status
    let apiMessage = (try? decodeJSON(ErrorBody.self, body, what: "error"))?.message.map {
      scrub(String($0.prefix(300)))
    }
    let said = apiMessage.map { ": \($0)" } ?? ""
    switch status {
    case 401:
      return .fail(
        BuildkiteError(
          .unauthorized,
          "the Buildkite API token was refused (HTTP 401\(said)): check the token given (--api-token-file or "
            + "BUILDKITE_API_TOKEN) is current; Buildkite lists yours under Personal Settings, API Access Tokens"))
    case 403:
      let scope = apiMessage.flatMap(scopeName) ?? call.endpoint.scope
      let remedy = "; give a token that has it (Personal Settings, API Access Tokens, then Edit the token's scopes)"
      if apiMessage.flatMap(scopeName) != nil {
        return .fail(
          BuildkiteError(
            .missingScope(scope), "the Buildkite API token lacks the \(scope) scope (HTTP 403\(said))" + remedy))
      }
      return .fail(
        BuildkiteError(
          .missingScope(nil),
          "access was refused (HTTP 403\(said)); this request needs a token with the \(scope) scope" + remedy))
    case 404:
      return .fail(BuildkiteError(.notFound, "not found (HTTP 404\(said))"))
    case 429:
      return .throttled(BuildkiteError(.rateLimited, "the Buildkite API rate limit was exceeded (HTTP 429)"))
    case 500...599:
      // An overloaded API may say how long to back off.
      return .retry(
        BuildkiteError(.server, "the Buildkite API failed (HTTP \(status)\(said))"),
        serverWait: status == 503 ? response.retryAfter : nil)
    case 300...399:
      return .fail(
        BuildkiteError(.invalidResponse, "the API answered with a redirect (HTTP \(status)), which is not followed"))
    case 400...499:
      return .fail(BuildkiteError(.badRequest, "the Buildkite API refused the request (HTTP \(status)\(said))"))
    default:
      return .fail(BuildkiteError(.invalidResponse, "unexpected HTTP status \(status)"))
    }
  }

  private func transportOutcome(_ error: HTTPError) -> Outcome {
    let reason = scrub(error.detail)
    return .transport(error) { cause in
      switch cause {
      case .unreachable, .tls: BuildkiteError(.unreachable, "\(reason) (\(origin))")
      case .timedOut: BuildkiteError(.timedOut, "\(reason) (\(origin))")
      case .badAnswer: BuildkiteError(.invalidResponse, reason)
      case .invalidRequest: BuildkiteError(.badRequest, reason)
      }
    }
  }
}

/// "64 MiB", "256 KiB" or "1000 bytes".
func describeBytes(_ count: Int) -> String {
  if count >= 1 << 20 && count % (1 << 20) == 0 { return "\(count >> 20) MiB" }
  if count >= 1 << 10 && count % (1 << 10) == 0 { return "\(count >> 10) KiB" }
  return "\(count) bytes"
}

/// Removes the token from text that came from elsewhere (an API message, libcurl's words).
private func removingToken(_ token: String, from text: String) -> String {
  guard token.count >= 4, text.contains(token) else { return text }
  return text.replacing(token, with: "<token>")
}

/// The first scope name (`read_…` or `write_…`) in an API message, such as "Your access token does
/// not have the read_builds scope".
func scopeName(in message: String) -> String? {
  let words = message.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") })
  return words.first { word in
    (word.hasPrefix("read_") || word.hasPrefix("write_")) && word.count > 5
      && word.allSatisfy { $0.isASCII && ($0.isLowercase || $0 == "_") }
  }.map(String.init)
}

/// `bytes first-last/total` (total may be `*`), or `bytes */total` (first and last then -1).
func parseContentRange(_ value: String) -> (first: Int64, last: Int64, total: Int64?)? {
  let trimmed = value.trimmingSpaces()
  guard trimmed.lowercased().hasPrefix("bytes ") else { return nil }
  let spec = trimmed.dropFirst(6).trimmingSpaces()
  let parts = spec.split(separator: "/", maxSplits: 1)
  guard parts.count == 2 else { return nil }
  let total = parts[1] == "*" ? nil : Int64(parts[1])
  if parts[1] != "*" && total == nil { return nil }
  if parts[0] == "*" { return (-1, -1, total) }
  let bounds = parts[0].split(separator: "-", maxSplits: 1)
  guard bounds.count == 2, let first = Int64(bounds[0]), let last = Int64(bounds[1]), first <= last else { return nil }
  return (first, last, total)
}

/// The log's total size from the `Content-Range` of a 206 answer that brought `byteCount` bytes for a
/// suffix range: nil unless the range is exactly those bytes, at the log's end. Any numbers a server
/// sends are checked without overflow.
func suffixRangeTotal(contentRange: String, byteCount: Int) -> Int64? {
  guard let parsed = parseContentRange(contentRange), let total = parsed.total, parsed.first >= 0,
    parsed.last < total, parsed.last + 1 == total, parsed.last - parsed.first == Int64(byteCount) - 1
  else { return nil }
  return total
}

extension StringProtocol {
  fileprivate func trimmingSpaces() -> String {
    var result = Substring(self)
    while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
    while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
    return String(result)
  }
}
