public import BuildkiteAPI
public import ObjectStore
import Synchronization
public import SystemBase

/// Job logs in Buildkite's own storage, as an object store whose keys are
/// `{org}/{pipeline}/{build number}/{job uuid}`.
///
/// The log endpoint serves only suffix ranges (`Range: bytes=-N`), so the store says so and the
/// read path fetches a log whole, once, except for reads of its end. ETags are made here from the
/// size, so a log whose size changed is never mixed with its cached blocks: `"size-N"` for a
/// finished job's log, which must be exactly N bytes, and `"grow-N"` for a running job's, of which
/// the first N bytes are served however much it has grown since (its end is then not a suffix).
public final class BuildkiteLogStore: GrowingObjectClient {
  public let api: BuildkiteClient
  public let identity: String
  public let isRemote = true
  public let rangeSupport = RangeSupport.suffixOnly
  public let counters = RequestCounters()
  /// Times each call for the counters' latency histograms.
  private let clock: any MonotonicClock

  /// The identity (which names cached blocks) is the same whatever the endpoint: a job's UUID names
  /// its log everywhere, so blocks cached through a proxy serve a direct mount too.
  public init(api: BuildkiteClient, clock: any MonotonicClock = SystemClock()) {
    self.api = api
    self.clock = clock
    self.identity = "buildkite:logs"
  }

  struct LogKey {
    let organization: String
    let pipeline: String
    let number: Int
    let job: String
  }

  static func key(organization: String, pipeline: String, number: Int, job: String) -> String {
    "\(organization)/\(pipeline)/\(number)/\(job)"
  }

  static func etag(size: UInt64) -> String { "\"size-\(size)\"" }
  static func growingETag(size: UInt64) -> String { "\"grow-\(size)\"" }

  private func parse(_ key: String) throws(ObjectStoreError) -> LogKey {
    let parts = key.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 4, let number = Int(parts[2]) else {
      throw ObjectStoreError(.invalidRequest, "\(key) does not name a job log")
    }
    return LogKey(organization: String(parts[0]), pipeline: String(parts[1]), number: number, job: String(parts[3]))
  }

  public func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage {
    throw ObjectStoreError(.invalidRequest, "Buildkite's log storage cannot be listed")
  }

  public func head(key: String) throws(ObjectStoreError) -> ObjectInfo {
    counters.heads.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.headLatency.record(seconds: clock.now() - started) }
    let log = try parse(key)
    let size: Int64?
    do throws(BuildkiteError) {
      size = try api.logSize(organization: log.organization, pipeline: log.pipeline, number: log.number, job: log.job)
    } catch {
      counters.failures.add(1, ordering: .relaxed)
      throw ObjectStoreError(error)
    }
    guard let size, size >= 0 else {
      throw ObjectStoreError(.invalidResponse, "the log of job \(log.job) came without a size")
    }
    return ObjectInfo(
      key: key, size: UInt64(size), lastModified: Timestamp(seconds: 0), etag: Self.etag(size: UInt64(size)))
  }

  /// The log's last `count` bytes (all of it, when it is shorter) and its size, in one suffix
  /// request (`Range: bytes=-count`): what sizes a log when it is opened, and serves its end.
  public func tail(key: String, count: Int) throws(ObjectStoreError) -> (bytes: [UInt8], size: UInt64) {
    counters.gets.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.getLatency.record(seconds: clock.now() - started) }
    let log = try parse(key)
    do throws(BuildkiteError) {
      let (bytes, total) = try api.logTail(
        organization: log.organization, pipeline: log.pipeline, number: log.number, job: log.job, count: count)
      counters.bytesFetched.add(bytes.count, ordering: .relaxed)
      guard total >= Int64(bytes.count) else {
        throw BuildkiteError(.invalidResponse, "the log of job \(log.job) is \(total) bytes, less than its end")
      }
      return (bytes, UInt64(total))
    } catch {
      counters.failures.add(1, ordering: .relaxed)
      throw ObjectStoreError(error)
    }
  }

  public func get(
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    guard version == nil else {
      throw ObjectStoreError(
        .invalidRequest, "\(identity) keeps no versions: it cannot read version \(version!) of \(key)")
    }
    guard !range.isEmpty else { return }
    counters.gets.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.getLatency.record(seconds: clock.now() - started) }
    let log = try parse(key)
    let expectedSize = ifMatch.flatMap(Self.size(fromETag:))
    let growing = ifMatch.flatMap(Self.size(fromGrowingETag:))
    do {
      if let expectedSize, range.upperBound == expectedSize {
        // The end of the log: one suffix request.
        let (bytes, total) = try api.logTail(
          organization: log.organization, pipeline: log.pipeline, number: log.number, job: log.job,
          count: Int(range.count))
        guard UInt64(total) == expectedSize, bytes.count == range.count else {
          throw ObjectStoreError(.preconditionFailed, "the log of job \(log.job) changed size while mounted")
        }
        counters.bytesFetched.add(bytes.count, ordering: .relaxed)
        bytes.withUnsafeBytes { body($0) }
        return
      }
      // Anything else costs the whole log: deliver the part asked for.
      var offset: UInt64 = 0
      try api.log(organization: log.organization, pipeline: log.pipeline, number: log.number, job: log.job) { chunk in
        let start = offset
        offset += UInt64(chunk.count)
        let from = max(range.lowerBound, start)
        let to = min(range.upperBound, offset)
        if from < to {
          body(UnsafeRawBufferPointer(rebasing: chunk[Int(from - start)..<Int(to - start)]))
        }
      }
      counters.bytesFetched.add(Int(offset), ordering: .relaxed)
      if let growing, offset < growing {
        throw ObjectStoreError(.preconditionFailed, "the log of job \(log.job) is shorter than it was")
      }
      if let expectedSize, offset != expectedSize {
        throw ObjectStoreError(.preconditionFailed, "the log of job \(log.job) changed size while mounted")
      }
      if offset < range.upperBound {
        throw ObjectStoreError(.invalidRequest, "range \(range) is past the end of the log of job \(log.job)")
      }
    } catch let error as ObjectStoreError {
      counters.failures.add(1, ordering: .relaxed)
      throw error
    } catch let error as BuildkiteError {
      counters.failures.add(1, ordering: .relaxed)
      throw ObjectStoreError(error)
    } catch {
      counters.failures.add(1, ordering: .relaxed)
      throw ObjectStoreError(.invalidResponse, "reading the log of job \(log.job) failed: \(error)")
    }
  }

  /// A finished job's log never changes; a running job's grows, so its blocks are never shared.
  public func isFixed(etag: String) -> Bool { Self.size(fromETag: etag) != nil }

  /// A running job's log (read with a `"grow-N"` ETag) grows until the job finishes.
  public func mayGrow(etag: String) -> Bool { Self.size(fromGrowingETag: etag) != nil }

  public func etagOfGrowing(size: UInt64) -> String { Self.growingETag(size: size) }

  /// Whether the log's job has finished (one request for the job): its log is then complete.
  public func hasStoppedGrowing(key: String) throws(ObjectStoreError) -> Bool {
    let log = try parse(key)
    do throws(BuildkiteError) {
      let job = try api.job(organization: log.organization, id: log.job)
      return job.finishedAt != nil || Self.finishedStates.contains(job.state ?? "")
    } catch {
      throw ObjectStoreError(error)
    }
  }

  /// Job states after which a job's log no longer grows.
  static let finishedStates: Set<String> = [
    "passed", "failed", "canceled", "timed_out", "skipped", "broken", "expired", "finished", "not_run",
  ]

  static func size(fromETag etag: String) -> UInt64? {
    guard etag.hasPrefix("\"size-"), etag.hasSuffix("\"") else { return nil }
    return UInt64(etag.dropFirst(6).dropLast())
  }

  static func size(fromGrowingETag etag: String) -> UInt64? {
    guard etag.hasPrefix("\"grow-"), etag.hasSuffix("\"") else { return nil }
    return UInt64(etag.dropFirst(6).dropLast())
  }
}

extension ObjectStoreError {
  /// The one place a Buildkite API failure becomes a store failure (and, through it, an errno).
  public init(_ error: BuildkiteError) {
    let kind: Kind =
      switch error.kind {
      case .notFound: .notFound
      case .unauthorized, .missingScope: .accessDenied
      case .rateLimited, .server: .serverError
      case .unreachable: .unreachable
      case .timedOut: .timedOut
      case .badRequest: .invalidRequest
      case .invalidResponse: .invalidResponse
      }
    self.init(kind, error.message)
  }
}
