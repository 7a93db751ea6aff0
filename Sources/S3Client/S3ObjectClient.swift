import Digests
public import HTTPTransport
public import Logging
public import ObjectStore
import Synchronization
public import SystemBase

/// An S3 bucket (or an S3-compatible endpoint) as an `ObjectClient`: ListObjectsV2, HEAD and ranged
/// GET, signed with SigV4 (or unsigned), retried with backoff and full jitter, following the bucket
/// to its region. Calls block the calling thread and are safe from any number of threads.
public final class S3ObjectClient: WritableObjectClient, VersionedObjectClient {
  public let configuration: S3Configuration
  public let identity: String
  public var isRemote: Bool { true }
  public var hasStorageClasses: Bool { true }
  public let counters = RequestCounters()
  private let http: HTTPClient
  private let logger: Logger
  private let endpointURL: HTTPURL?
  private let currentRegion: Mutex<String>
  private let retries: RetryEngine<ObjectStoreError>
  /// Times each call for the counters' latency histograms.
  private let clock: any MonotonicClock

  /// Throws `.invalidRequest` when the endpoint is not an `http(s)://host[:port][/path]` URL.
  /// - Parameter clock: times the backoff and the retry budget.
  public init(
    configuration: S3Configuration, httpClient: HTTPClient? = nil, clock: any MonotonicClock = SystemClock(),
    logger: Logger = Logger(label: "bklogfs.s3")
  ) throws(ObjectStoreError) {
    if let endpoint = configuration.endpoint {
      guard let url = HTTPURL(endpoint) else {
        throw ObjectStoreError(.invalidRequest, "the S3 endpoint \(endpoint) is not an http:// or https:// URL")
      }
      endpointURL = url
    } else {
      endpointURL = nil
    }
    guard !configuration.bucket.isEmpty, !configuration.bucket.contains("/") else {
      throw ObjectStoreError(.invalidRequest, "\"\(configuration.bucket)\" is not a bucket name")
    }
    self.configuration = configuration
    identity = "s3://\(configuration.bucket)"
    http = httpClient ?? HTTPClient(timeouts: configuration.timeouts)
    self.logger = logger
    currentRegion = Mutex(configuration.region)
    self.clock = clock
    let counters = counters
    retries = RetryEngine(
      clock: clock, logger: logger, message: { $0.message }, rewrite: { ObjectStoreError($0.kind, $1) },
      count: { event in
        switch event {
        case .retry: counters.retries.add(1, ordering: .relaxed)
        case .failure: counters.failures.add(1, ordering: .relaxed)
        case .throttled: break
        }
      })
  }

  /// The region requests are signed for and sent to: the configured one until S3 names another.
  public var region: String { currentRegion.withLock { $0 } }

  // MARK: - ObjectClient

  public func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage {
    counters.lists.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.listLatency.record(seconds: clock.now() - started) }
    return try list(request, policy: policy())
  }

  public func head(key: String) throws(ObjectStoreError) -> ObjectInfo {
    counters.heads.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.headLatency.record(seconds: clock.now() - started) }
    return try retries.run("HEAD \(display(key))", policy()) { () throws(Outcome) -> ObjectInfo in
      let (response, _) = try exchange(method: "HEAD", key: key, query: [], headers: [], collectLimit: 0)
      guard (200..<300).contains(response.status) else { throw classify(response, body: []) }
      guard let length = response.headers["content-length"].flatMap({ UInt64($0) }) else {
        throw .retry(ObjectStoreError(.invalidResponse, "the response has no Content-Length"))
      }
      let modified = response.headers["last-modified"].flatMap(parseHTTPDate) ?? Timestamp(seconds: 0)
      return ObjectInfo(
        key: key, size: length, lastModified: modified, etag: response.headers["etag"] ?? "",
        storage: headStorage(response.headers), versionID: response.headers["x-amz-version-id"])
    }
  }

  // MARK: - Versions

  public func listVersionsPage(_ request: VersionListRequest) throws(ObjectStoreError) -> VersionPage {
    counters.lists.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.listLatency.record(seconds: clock.now() - started) }
    var query: [(String, String)] = [("versions", ""), ("prefix", request.prefix), ("encoding-type", "url")]
    if let delimiter = request.delimiter, !delimiter.isEmpty { query.append(("delimiter", delimiter)) }
    if let keyMarker = request.keyMarker { query.append(("key-marker", keyMarker)) }
    if let versionIDMarker = request.versionIDMarker { query.append(("version-id-marker", versionIDMarker)) }
    if let maxKeys = request.maxKeys { query.append(("max-keys", String(maxKeys))) }
    return try retries.run("LIST VERSIONS s3://\(configuration.bucket)/\(request.prefix)", policy()) {
      () throws(Outcome) -> VersionPage in
      let (response, body) = try exchange(
        method: "GET", key: nil, query: query, headers: [], collectLimit: configuration.maxListBodyBytes)
      guard response.status == 200 else { throw classify(response, body: body) }
      noteRegion(response)
      do throws(ObjectStoreError) {
        return try parseListObjectVersions(body)
      } catch {
        throw error.kind == .invalidResponse ? .retry(error) : .fail(error)
      }
    }
  }

  /// Whether the bucket keeps versions: "Enabled", "Suspended" (it kept some), or nil (never on).
  public func versioningStatus() throws(ObjectStoreError) -> String? {
    counters.lists.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.listLatency.record(seconds: clock.now() - started) }
    return try retries.run("GET VERSIONING s3://\(configuration.bucket)", policy()) { () throws(Outcome) -> String? in
      let (response, body) = try exchange(
        method: "GET", key: nil, query: [("versioning", "")], headers: [], collectLimit: 1 << 16)
      guard response.status == 200 else { throw classify(response, body: body) }
      do throws(ObjectStoreError) {
        // S3 answers <VersioningConfiguration>, moto <GetBucketVersioningResponse>: the Status is what counts.
        let root = try XMLReader().parse(body)
        guard root.name != "Error" else { throw S3ErrorBody(root).objectStoreError }
        return try root.childText("Status")
      } catch {
        throw .fail(error)
      }
    }
  }

  // MARK: - Restore

  /// What S3 made of a RestoreObject.
  public enum RestoreOutcome: Sendable, Hashable {
    /// A restore was started (202 Accepted).
    case requested
    /// A restore of the object is already under way (409 `RestoreAlreadyInProgress`).
    case alreadyInProgress
    /// The object is already restored; S3 extended the restored copy's life to the days asked (200).
    case alreadyRestored
  }

  /// Asks S3 to restore an archived object for `days` days (nil for an INTELLIGENT_TIERING archive
  /// tier, which takes no days: the object moves back to its frequent tier), at `tier` speed
  /// ("Standard", "Bulk" or "Expedited"). Fails with `.invalidRequest` for an object S3 cannot
  /// restore (not in an archive class: S3 `InvalidObjectState`).
  public func restore(key: String, days: Int?, tier: String) throws(ObjectStoreError) -> RestoreOutcome {
    var request = #"<RestoreRequest xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#
    if let days { request += "<Days>\(days)</Days>" }
    request += "<GlacierJobParameters><Tier>\(tier)</Tier></GlacierJobParameters></RestoreRequest>"
    let body = Array(request.utf8)
    let digest = SHA256.hexHash(body)
    return try retries.run("RESTORE \(display(key))", policy()) { () throws(Outcome) -> RestoreOutcome in
      let (response, answer) = try exchange(
        method: "POST", key: key, query: [("restore", "")], headers: [], collectLimit: 0, body: body,
        payloadSHA256: digest)
      switch response.status {
      case 202: return .requested
      case 200: return .alreadyRestored
      case 409 where parseS3Error(answer)?.code == "RestoreAlreadyInProgress": return .alreadyInProgress
      default:
        if let s3 = parseS3Error(answer), s3.code == "InvalidObjectState" {
          throw .fail(
            ObjectStoreError(
              .invalidRequest, "S3 cannot restore \(display(key)): \(s3.message.isEmpty ? s3.code : s3.message)"))
        }
        throw classify(response, body: answer)
      }
    }
  }

  public func get(
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    counters.gets.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.getLatency.record(seconds: clock.now() - started) }
    guard !range.isEmpty else { return }
    var delivered: UInt64 = 0
    // The ETag of the first answer: a resumed transfer must read the same object version.
    var firstETag: String?
    let versionNote = version.map { " version \($0)" } ?? ""
    try retries.run("GET \(display(key))\(versionNote) bytes \(range.lowerBound)-\(range.upperBound - 1)", policy()) {
      () throws(Outcome) in
      let first = range.lowerBound + delivered
      let last = range.upperBound - 1
      var headers = [(name: "Range", value: "bytes=\(first)-\(last)")]
      if let condition = ifMatch ?? (delivered > 0 ? firstETag : nil) {
        headers.append((name: "If-Match", value: condition))
      }
      var streaming = false
      var problem: ObjectStoreError?
      let address = address(key: key, query: version.map { [("versionId", $0)] } ?? [], region: region)
      let (response, errorBody): (HTTPResponse, [UInt8])
      do throws(HTTPError) {
        (response, errorBody) = try http.performJudgingErrors(
          HTTPRequest(method: "GET", url: address.url, headers: signedHeaders("GET", address, headers)),
          onResponse: { head in
            guard (200..<300).contains(head.status) else { return true }
            if let mismatch = rangeMismatch(head, first: first, last: last) {
              problem = mismatch
              return false
            }
            if firstETag == nil { firstETag = head.headers["etag"] }
            streaming = true
            return true
          },
          onSuccessBody: { chunk in
            guard UInt64(chunk.count) <= UInt64(range.count) - delivered else {
              problem = ObjectStoreError(.invalidResponse, "the body is longer than the \(range.count) bytes asked for")
              return false
            }
            body(chunk)
            delivered += UInt64(chunk.count)
            counters.bytesFetched.add(chunk.count, ordering: .relaxed)
            return true
          })
      } catch {
        // A range past the end of the object is the caller's mistake; anything else may be transient.
        if let problem { throw problem.kind == .invalidRequest ? .fail(problem) : .retry(problem) }
        throw transportOutcome(error)
      }
      guard streaming else { throw classify(response, body: errorBody) }
      noteRegion(response)
      if delivered < UInt64(range.count) {
        throw .retry(ObjectStoreError(.unreachable, "the body ended after \(delivered) of \(range.count) bytes"))
      }
    }
  }

  // MARK: - WritableObjectClient (the shared block cache's bucket)

  public func getObject(key: String, limit: Int) throws(ObjectStoreError) -> [UInt8]? {
    counters.gets.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.getLatency.record(seconds: clock.now() - started) }
    do throws(ObjectStoreError) {
      return try retries.run("GET \(display(key))", policy()) { () throws(Outcome) -> [UInt8] in
        let (response, body) = try exchange(method: "GET", key: key, query: [], headers: [], collectLimit: limit)
        guard (200..<300).contains(response.status) else { throw classify(response, body: body) }
        noteRegion(response)
        counters.bytesFetched.add(body.count, ordering: .relaxed)
        return body
      }
    } catch {
      if error.kind == .notFound { return nil }
      throw error
    }
  }

  public func put(key: String, bytes: [UInt8]) throws(ObjectStoreError) {
    // Signed over the body's digest, so a body changed on the way is refused by S3.
    let digest = SHA256.hexHash(bytes)
    try retries.run("PUT \(display(key))", policy()) { () throws(Outcome) in
      let (response, body) = try exchange(
        method: "PUT", key: key, query: [], headers: [], collectLimit: 0, body: bytes, payloadSHA256: digest)
      guard (200..<300).contains(response.status) else { throw classify(response, body: body) }
      noteRegion(response)
    }
  }

  // MARK: - Mount-time check

  /// One ListObjectsV2 (max-keys 1) under the prefix, with a short retry budget (2 attempts, about
  /// 10 s), so that a missing bucket, refused credentials or an unreachable endpoint fail fast with
  /// one clear sentence.
  public func checkBucket() throws(ObjectStoreError) {
    counters.lists.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.listLatency.record(seconds: clock.now() - started) }
    let quick = HTTPTimeouts(
      connect: min(configuration.timeouts.connect, 3), stall: min(configuration.timeouts.stall, 5),
      total: min(configuration.timeouts.total, 8))
    let request = ListRequest(prefix: configuration.prefix, delimiter: "/", maxKeys: 1)
    var check = policy()
    check.maxAttempts = 2
    check.budget = 10
    check.timeouts = quick
    _ = try list(request, policy: check)
  }

  // MARK: - Listing

  private func list(_ request: ListRequest, policy: RetryPolicy) throws(ObjectStoreError) -> ListPage {
    var query: [(String, String)] = [("list-type", "2"), ("prefix", request.prefix), ("encoding-type", "url")]
    if let delimiter = request.delimiter, !delimiter.isEmpty { query.append(("delimiter", delimiter)) }
    if let token = request.continuationToken { query.append(("continuation-token", token)) }
    if let startAfter = request.startAfter { query.append(("start-after", startAfter)) }
    if let maxKeys = request.maxKeys { query.append(("max-keys", String(maxKeys))) }
    let what = "LIST s3://\(configuration.bucket)/\(request.prefix)"
    // Each archived object's restore state, in the listing (S3, since 2023); other servers ignore it.
    let asking = asksRestoreStatus.load(ordering: .relaxed)
    let asked = asking ? [(name: "x-amz-optional-object-attributes", value: "RestoreStatus")] : []
    do throws(ObjectStoreError) {
      return try retries.run(what, policy) { () throws(Outcome) -> ListPage in
        let (response, body) = try exchange(
          method: "GET", key: nil, query: query, headers: [], signed: asked,
          collectLimit: configuration.maxListBodyBytes, timeouts: policy.timeouts)
        guard response.status == 200 else { throw classify(response, body: body) }
        noteRegion(response)
        do throws(ObjectStoreError) {
          return try parseListObjectsV2(
            body, urlEncoded: true, restoreStatusIsReliable: asking && restoreStatusIsReliable)
        } catch {
          // A cut or garbled body: worth another attempt.
          throw error.kind == .invalidResponse ? .retry(error) : .fail(error)
        }
      }
    } catch  where asking && error.kind == .accessDenied {
      // A policy that refuses the optional attributes must not cost the listing: asked again
      // without them, and if that is allowed, never asked again (HEADs at open tell instead).
      asksRestoreStatus.store(false, ordering: .relaxed)
      do throws(ObjectStoreError) {
        let page = try list(request, policy: policy)
        logger.notice("s3://\(configuration.bucket) refuses to list restore states; an archived log's is asked at open")
        return page
      } catch {
        asksRestoreStatus.store(true, ordering: .relaxed)
        throw error
      }
    }
  }

  /// Whether listings ask for each object's restore state: until a listing that asks is refused
  /// and one that does not is allowed.
  private let asksRestoreStatus = Atomic<Bool>(true)

  // MARK: - Requests

  private struct Address {
    var url: String
    var host: String
    /// Encoded once, as sent and signed.
    var path: String
    /// Encoded, sorted, as sent and signed; "" for none.
    var query: String
  }

  private var pathStyle: Bool {
    configuration.forcePathStyle || (endpointURL == nil && configuration.bucket.contains("."))
  }

  private func address(key: String?, query: [(String, String)], region: String) -> Address {
    let scheme: String
    let host: String
    var path: String
    if let endpointURL {
      scheme = endpointURL.scheme
      host = pathStyle ? endpointURL.hostHeader : "\(configuration.bucket).\(endpointURL.hostHeader)"
      path = endpointURL.path
      while path.hasSuffix("/") { path.removeLast() }
    } else {
      scheme = "https"
      host = pathStyle ? "s3.\(region).amazonaws.com" : "\(configuration.bucket).s3.\(region).amazonaws.com"
      path = ""
    }
    if pathStyle { path += "/" + awsURIEncode(configuration.bucket, encodeSlash: true) }
    if let key {
      path += "/" + awsURIEncode(key, encodeSlash: false)
    } else if path.isEmpty {
      path = "/"
    }
    var pieces: [(name: String, value: String)] = query.map { pair in
      (name: awsURIEncode(pair.0, encodeSlash: true), value: awsURIEncode(pair.1, encodeSlash: true))
    }
    pieces.sort { lhs, rhs in lhs.name == rhs.name ? lhs.value < rhs.value : lhs.name < rhs.name }
    let encodedQuery = pieces.map { piece in piece.name + "=" + piece.value }.joined(separator: "&")
    let url = "\(scheme)://\(host)\(path)" + (encodedQuery.isEmpty ? "" : "?\(encodedQuery)")
    return Address(url: url, host: host, path: path, query: encodedQuery)
  }

  /// The headers to send: Host and `signed` (signed, as S3 requires of every `x-amz-` header), the
  /// signature's (when signing), then `extra` (not signed).
  private func signedHeaders(
    _ method: String, _ address: Address, _ extra: [(name: String, value: String)],
    signed: [(name: String, value: String)] = [], payloadSHA256: String = emptyPayloadSHA256
  ) -> [(name: String, value: String)] {
    let signed = (configuration.requesterPays ? [(name: "x-amz-request-payer", value: "requester")] : []) + signed
    let host = [(name: "Host", value: address.host)] + signed
    guard let credentials = configuration.credentials else { return host + extra }
    let signer = SigV4Signer(credentials: credentials, region: region, service: "s3")
    let request = SignableRequest(
      method: method, path: address.path, query: address.query,
      headers: [(name: "host", value: address.host)] + signed, payloadSHA256: payloadSHA256)
    return host
      + signer.signatureHeaders(for: request, epochSeconds: signingTime(), addContentSHA256: true) + extra
  }

  /// Whether a listing's `RestoreStatus` can be trusted to be there for every restored object: S3
  /// itself honours `x-amz-optional-object-attributes`; other servers (moto, Ceph) ignore it.
  private var restoreStatusIsReliable: Bool {
    guard let endpointURL else { return true }
    let host = endpointURL.hostHeader.split(separator: ":").first.map(String.init) ?? ""
    return host.hasSuffix(".amazonaws.com")
  }

  /// One request whose body (error or listing) is collected, up to `collectLimit` bytes; of an
  /// error (not 2xx), only what `HTTPClient.errorBodyLimit` allows.
  private func exchange(
    method: String, key: String?, query: [(String, String)], headers: [(name: String, value: String)],
    signed: [(name: String, value: String)] = [], collectLimit: Int, timeouts: HTTPTimeouts? = nil,
    body requestBody: [UInt8]? = nil, payloadSHA256: String = emptyPayloadSHA256
  ) throws(Outcome) -> (HTTPResponse, [UInt8]) {
    let address = address(key: key, query: query, region: region)
    var body = [UInt8]()
    do throws(HTTPError) {
      let (response, errorBody) = try http.performJudgingErrors(
        HTTPRequest(
          method: method, url: address.url,
          headers: signedHeaders(method, address, headers, signed: signed, payloadSHA256: payloadSHA256),
          body: requestBody,
          maxBodyBytes: max(collectLimit, HTTPClient.errorBodyLimit), timeouts: timeouts),
        onSuccessBody: { chunk in
          body.append(contentsOf: chunk)
          return true
        })
      return (response, (200..<300).contains(response.status) ? body : errorBody)
    } catch {
      if error.kind == .tooLarge {
        throw .fail(ObjectStoreError(.invalidResponse, "the response is larger than \(collectLimit) bytes"))
      }
      throw transportOutcome(error)
    }
  }

  // MARK: - Outcomes and retries

  private typealias Outcome = RetryOutcome<ObjectStoreError>

  /// Every call's policy but `checkBucket`'s.
  private func policy() -> RetryPolicy {
    RetryPolicy(
      maxAttempts: configuration.maxAttempts, baseDelay: configuration.retryBaseDelay,
      maxDelay: configuration.retryMaxDelay)
  }

  /// What a non-2xx answer means.
  private func classify(_ response: HTTPResponse, body: [UInt8]) -> Outcome {
    let status = response.status
    let s3 = parseS3Error(body)
    let code = s3?.code ?? ""
    var reason = code.isEmpty ? "HTTP \(status)" : "\(code) (\(status))"
    if let explanation = s3?.explanation { reason += ": \(explanation)" }
    let current = region
    let hinted = response.headers["x-amz-bucket-region"] ?? s3?.region
    if let hinted, !hinted.isEmpty, hinted != current {
      return .redirect(ObjectStoreError(.invalidResponse, "\(reason) (the bucket is in region \(hinted))")) {
        self.follow(region: hinted)
      }
    }
    if status == 400, let s3, s3.message.lowercased().contains("server side encryption") {
      // S3 (InvalidRequest) and Ceph (InvalidArgument) say so of an SSE-C object read without its key.
      return .fail(
        ObjectStoreError(
          .customerKeyRequired,
          "\(reason): the object is encrypted with a customer-provided key (SSE-C), which only its writer "
            + "holds; bklogfs cannot read it"))
    }
    switch status {
    case 301, 307, 308:
      let endpoint = s3?.endpoint.map { ", use endpoint \($0)" } ?? ""
      return .fail(ObjectStoreError(.invalidResponse, "\(reason): the bucket is elsewhere\(endpoint)"))
    case 404:
      return .fail(ObjectStoreError(code == "NoSuchBucket" ? .noSuchBucket : .notFound, reason))
    case 403:
      if let s3, code == "InvalidObjectState" {
        // Not the credentials: the object is archived (GLACIER, DEEP_ARCHIVE) and not restored.
        return .fail(
          ObjectStoreError(.archived, "\(code) (\(status)): \(s3.archivedExplanation)", storage: s3.archivedStorage))
      }
      return .fail(ObjectStoreError(.accessDenied, reason + Self.credentialsRemedy(code)))
    case 412:
      return .fail(ObjectStoreError(.preconditionFailed, reason))
    case 416:
      return .fail(ObjectStoreError(.invalidRequest, reason))
    case 429, 500...599:
      // Throttled or overloaded (429, 503 `SlowDown`): the server may say how long to back off.
      let throttled = status == 429 || status == 503
      return .retry(
        ObjectStoreError(code == "RequestTimeout" ? .timedOut : .serverError, reason),
        serverWait: throttled ? response.retryAfter : nil)
    default:
      switch code {
      case "RequestTimeout": return .retry(ObjectStoreError(.timedOut, reason))
      case "SlowDown", "InternalError", "ServiceUnavailable", "OperationAborted":
        return .retry(ObjectStoreError(.serverError, reason))
      default:
        return .fail(
          ObjectStoreError(s3?.objectStoreError.kind ?? .invalidResponse, reason + Self.credentialsRemedy(code)))
      }
    }
  }

  /// What to do when S3 refuses the credentials, by its error code: said with the refusal, at the
  /// mount and in the log of a read refused later.
  static func credentialsRemedy(_ code: String) -> String {
    switch code {
    case "InvalidAccessKeyId":
      "; S3 does not know the access key: check AWS_ACCESS_KEY_ID, or the aws_access_key_id of the profile in use"
    case "SignatureDoesNotMatch":
      "; the secret key is not the access key's: check AWS_SECRET_ACCESS_KEY, or the aws_secret_access_key of the "
        + "profile in use"
    case "ExpiredToken", "TokenRefreshRequired", "InvalidToken":
      "; the temporary credentials (session token) have expired: renew them (aws sso login, or new keys for the "
        + "role) and mount again"
    case "AccessDenied", "AllAccessDisabled":
      "; the credentials are valid but may not do this: their policy needs s3:ListBucket and s3:GetObject on the "
        + "bucket (and kms:Decrypt for SSE-KMS objects)"
    default:
      ""
    }
  }

  private func transportOutcome(_ error: HTTPError) -> Outcome {
    let reason = "\(error.detail) (\(endpointURL?.origin ?? "S3"))"
    return .transport(error) { cause in
      switch cause {
      case .unreachable, .tls: ObjectStoreError(.unreachable, reason)
      case .timedOut: ObjectStoreError(.timedOut, reason)
      case .badAnswer: ObjectStoreError(.invalidResponse, reason)
      case .invalidRequest: ObjectStoreError(.invalidRequest, reason)
      }
    }
  }

  /// A successful answer may still say the bucket is elsewhere: follow it for later requests.
  private func noteRegion(_ response: HTTPResponse) {
    guard let hinted = response.headers["x-amz-bucket-region"], !hinted.isEmpty else { return }
    follow(region: hinted)
  }

  /// Sends later requests to `region`, saying so once.
  private func follow(region hinted: String) {
    let old = currentRegion.withLock { region -> String? in
      guard region != hinted else { return nil }
      defer { region = hinted }
      return region
    }
    if let old {
      logger.notice("s3://\(configuration.bucket) is in region \(hinted), not \(old): using \(hinted) from now on")
    }
  }

  private func display(_ key: String) -> String { "s3://\(configuration.bucket)/\(key)" }
}

/// The storage a HEAD answer gives: `x-amz-storage-class` (absent for STANDARD), `x-amz-restore`
/// (absent for an object neither restored nor being restored) and, for INTELLIGENT_TIERING,
/// `x-amz-archive-status`. A HEAD always says: an archived object without `x-amz-restore` is not
/// restored.
public func headStorage(_ headers: [String: String]) -> ObjectStorage? {
  let archiveTier = headers["x-amz-archive-status"].flatMap { $0.isEmpty ? nil : $0 }
  var restore = headers["x-amz-restore"].flatMap(parseRestoreHeader)
  var storage = ObjectStorage.reported(storageClass: headers["x-amz-storage-class"], archiveTier: archiveTier)
  if restore == nil, storage?.isArchiveClass == true { restore = .notRestored }
  storage?.restore = restore
  return storage
}

/// `ongoing-request="true"`, or `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`.
public func parseRestoreHeader(_ value: String) -> RestoreState? {
  var fields: [String: String] = [:]
  var rest = Substring(value)
  while let equals = rest.firstIndex(of: "=") {
    let name = String(rest[..<equals].drop { $0 == " " || $0 == "," })
    rest = rest[rest.index(after: equals)...]
    guard rest.first == "\"", let close = rest.dropFirst().firstIndex(of: "\"") else { return nil }
    fields[name.lowercased().trimmingTrailingSpaces] = String(rest[rest.index(after: rest.startIndex)..<close])
    rest = rest[rest.index(after: close)...]
  }
  switch fields["ongoing-request"]?.lowercased() {
  case "true": return .inProgress
  case "false": return .restored(expiry: fields["expiry-date"].flatMap(parseHTTPDate))
  default: return nil
  }
}

extension String {
  fileprivate var trimmingTrailingSpaces: String {
    var text = Substring(self)
    while text.last == " " { text = text.dropLast() }
    return String(text)
  }
}

/// Why a 2xx answer to `Range: bytes=first-last` is not that range; nil when it is. `.invalidRequest`
/// when the object ends before `last` (the caller asked past the end), `.invalidResponse` otherwise.
private func rangeMismatch(_ response: HTTPResponse, first: UInt64, last: UInt64) -> ObjectStoreError? {
  let expectedLength = last - first + 1
  func pastEnd(_ size: UInt64) -> ObjectStoreError {
    ObjectStoreError(.invalidRequest, "bytes \(first)-\(last) run past the end of the object (\(size) bytes)")
  }
  if response.status == 206 {
    guard let contentRange = response.headers["content-range"] else {
      return ObjectStoreError(.invalidResponse, "a 206 answer has no Content-Range")
    }
    // "bytes a-b/total" (total may be "*").
    let parts = contentRange.split(whereSeparator: { $0 == " " || $0 == "-" || $0 == "/" })
    guard parts.count == 4, parts[0] == "bytes", UInt64(parts[1]) == first, let answeredLast = UInt64(parts[2]) else {
      return ObjectStoreError(.invalidResponse, "asked for bytes \(first)-\(last), got Content-Range \(contentRange)")
    }
    if answeredLast < last, let total = UInt64(parts[3]), total == answeredLast + 1 { return pastEnd(total) }
    guard answeredLast == last else {
      return ObjectStoreError(.invalidResponse, "asked for bytes \(first)-\(last), got Content-Range \(contentRange)")
    }
    if let length = response.headers["content-length"].flatMap({ UInt64($0) }), length != expectedLength {
      return ObjectStoreError(.invalidResponse, "asked for \(expectedLength) bytes, got Content-Length \(length)")
    }
    return nil
  }
  if response.status == 200 {
    // The whole object: acceptable when that is exactly the range asked for.
    let length = response.headers["content-length"].flatMap { UInt64($0) }
    if first == 0 && length == expectedLength { return nil }
    if first == 0, let length, length < expectedLength { return pastEnd(length) }
    return ObjectStoreError(
      .invalidResponse,
      "asked for bytes \(first)-\(last), got the whole object (\(length.map(String.init) ?? "unknown") bytes)")
  }
  return ObjectStoreError(.invalidResponse, "asked for bytes \(first)-\(last), got HTTP \(response.status)")
}

private let emptyPayloadSHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/// The time a signature carries: always the system's wall clock, never an injected clock, since the
/// server compares it with its own.
private func signingTime() -> Int64 { Int64(SystemClock().secondsSinceEpoch()) }
