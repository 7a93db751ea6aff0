public import HTTPTransport

/// Where and how the Buildkite REST API is reached.
///
/// `description` never shows the token, so a configuration may be logged.
public struct BuildkiteConfiguration: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
  /// The API root, `https://api.buildkite.com/v2` unless a test or a proxy says otherwise. Every
  /// path is appended to it, so it keeps its own path (`/v2`).
  public var baseURL: String
  /// A Buildkite API access token, sent as `Authorization: Bearer …` and nowhere else.
  public var token: String
  public var timeouts: HTTPTimeouts
  /// Attempts per call for 5xx answers, connection failures and timeouts (429s do not count).
  public var maxAttempts: Int
  /// `per_page` for paginated listings (Buildkite's maximum is 100).
  public var perPage: Int
  /// Backoff before retry n is uniform in 0...min(retryMaxDelay, retryBaseDelay * 2^(n-1)) (full jitter).
  public var retryBaseDelay: Double
  public var retryMaxDelay: Double
  /// Requests of each rate-limit window kept back: callers block when `RateLimit-Remaining` (less the
  /// requests in flight) would fall to this. It also covers the probe sent after a window resets.
  public var rateLimitReserve: Int
  /// The longest a caller blocks for one rate-limit wait; a longer one fails with `.rateLimited`.
  public var maxRateLimitWait: Double
  /// 429 answers tolerated in one call before it fails with `.rateLimited`.
  public var max429Retries: Int
  /// The longest answer read (JSON is read whole): a longer one fails as `.invalidResponse` with
  /// `isAnswerTooLarge`.
  public var maxAnswerBytes: Int

  public init(
    baseURL: String = "https://api.buildkite.com/v2", token: String,
    timeouts: HTTPTimeouts = HTTPTimeouts(connect: 5, stall: 30, total: 900), maxAttempts: Int = 5,
    perPage: Int = 100, retryBaseDelay: Double = 0.25, retryMaxDelay: Double = 10, rateLimitReserve: Int = 2,
    maxRateLimitWait: Double = 90, max429Retries: Int = 5, maxAnswerBytes: Int = 64 << 20
  ) {
    self.baseURL = baseURL
    self.token = token
    self.timeouts = timeouts
    self.maxAttempts = maxAttempts
    self.perPage = perPage
    self.retryBaseDelay = retryBaseDelay
    self.retryMaxDelay = retryMaxDelay
    self.rateLimitReserve = rateLimitReserve
    self.maxRateLimitWait = maxRateLimitWait
    self.max429Retries = max429Retries
    self.maxAnswerBytes = maxAnswerBytes
  }

  public var description: String {
    "BuildkiteConfiguration(baseURL: \(baseURL), token: <redacted>, maxAttempts: \(maxAttempts), perPage: \(perPage))"
  }

  public var debugDescription: String { description }
}
