internal import CCurl
import Glibc
public import Logging
import Synchronization
import SystemBase

/// A synchronous HTTP/1.1 client over libcurl, for plain threads (FUSE workers, prefetchers).
///
/// Easy handles are pooled: each keeps its own connections alive, so sequential requests to one host
/// reuse a connection. `perform` blocks the calling thread until the response is complete, failed,
/// or timed out; never call it from Swift's cooperative pool.
public final class HTTPClient: Sendable {
  /// An easy handle, moved between the pool and one request at a time.
  fileprivate struct Handle: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
  }

  private let idle = Mutex<[Handle]>([])
  private let maxIdleHandles: Int
  private let connectionCount = Atomic<Int>(0)
  private let requestCount = Atomic<Int>(0)
  private let caBundle: String?
  public let timeouts: HTTPTimeouts
  private let logger: Logger

  /// - Parameters:
  ///   - timeouts: defaults for every request.
  ///   - maxIdleHandles: handles (each with its live connections) kept between requests.
  ///   - environment: where `AWS_CA_BUNDLE`, `CURL_CA_BUNDLE` and `SSL_CERT_FILE` are read; the
  ///     process environment when nil.
  public init(
    timeouts: HTTPTimeouts = HTTPTimeouts(), maxIdleHandles: Int = 32, environment: [String: String]? = nil,
    logger: Logger = Logger(label: "bklogfs.http")
  ) {
    globalInit
    self.timeouts = timeouts
    self.maxIdleHandles = maxIdleHandles
    self.logger = logger
    func variable(_ name: String) -> String? {
      if let environment { return environment[name] }
      return getenv(name).map { String(cString: $0) }
    }
    caBundle = ["AWS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"].lazy.compactMap(variable).first {
      !$0.isEmpty
    }
  }

  deinit {
    for handle in idle.withLock({ $0 }) { curl_easy_cleanup(handle.pointer) }
  }

  /// TCP connections opened so far (sum of `CURLINFO_NUM_CONNECTS`): lets tests check reuse.
  public var connectionsOpened: Int { connectionCount.load(ordering: .relaxed) }

  /// Requests performed so far.
  public var requestsPerformed: Int { requestCount.load(ordering: .relaxed) }

  /// Performs `request`. `onResponse` gets the status and headers once, before any body byte (or at
  /// the end when there is no body); `onBody` gets the body in chunks, in order. Either returning false
  /// aborts the transfer with `.aborted`. Returns the response head.
  @discardableResult
  public func perform(
    _ request: HTTPRequest,
    onResponse: (HTTPResponse) -> Bool = { _ in true },
    onBody: (UnsafeRawBufferPointer) -> Bool
  ) throws(HTTPError) -> HTTPResponse {
    let result: Result<HTTPResponse, HTTPError> = withoutActuallyEscaping(onResponse) { onResponse in
      withoutActuallyEscaping(onBody) { onBody in
        let transfer = Transfer(
          maxBodyBytes: request.maxBodyBytes, timeouts: request.timeouts ?? timeouts, onResponse: onResponse,
          onBody: onBody)
        return run(request, transfer)
      }
    }
    return try result.get()
  }

  /// Performs `request` and collects the body (bounded by `maxBodyBytes`, or 64 MiB when unset).
  public func fetch(_ request: HTTPRequest) throws(HTTPError) -> (response: HTTPResponse, body: [UInt8]) {
    var request = request
    if request.maxBodyBytes == nil { request.maxBodyBytes = 64 << 20 }
    var body = [UInt8]()
    let response = try perform(request) { chunk in
      body.append(contentsOf: chunk)
      return true
    }
    return (response, body)
  }

  // MARK: - Internals

  private func checkout() -> Handle? {
    if let handle = idle.withLock({ $0.popLast() }) {
      curl_easy_reset(handle.pointer)
      return handle
    }
    return curl_easy_init().map { Handle(pointer: $0) }
  }

  private func checkin(_ handle: Handle) {
    let kept = idle.withLock { pool -> Bool in
      guard pool.count < maxIdleHandles else { return false }
      pool.append(handle)
      return true
    }
    if !kept { curl_easy_cleanup(handle.pointer) }
  }

  private func run(_ request: HTTPRequest, _ transfer: Transfer) -> Result<HTTPResponse, HTTPError> {
    let target = describe(request)
    guard let handle = checkout() else {
      return .failure(HTTPError(.invalidRequest, "\(target) failed: libcurl could not create a handle"))
    }
    defer { checkin(handle) }
    let curl = handle.pointer
    let timeouts = request.timeouts ?? self.timeouts
    var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    var headerList: UnsafeMutablePointer<curl_slist>? = nil
    defer { curl_slist_free_all(headerList) }
    for (name, value) in request.headers {
      headerList = curl_slist_append(headerList, "\(name): \(value)")
    }
    // libcurl would otherwise add these to bodies it sends.
    if request.body != nil {
      if !request.headers.contains(where: { $0.name.lowercased() == "expect" }) {
        headerList = curl_slist_append(headerList, "Expect:")
      }
      if !request.headers.contains(where: { $0.name.lowercased() == "content-type" }) {
        headerList = curl_slist_append(headerList, "Content-Type:")
      }
    }

    transfer.curl = curl
    let context = Unmanaged.passUnretained(transfer).toOpaque()
    let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorBuffer in
      _ = ccurl_setopt_string(curl, CURLOPT_URL, request.url)
      _ = ccurl_setopt_long(curl, CURLOPT_NOSIGNAL, 1)
      _ = ccurl_setopt_long(curl, CURLOPT_FOLLOWLOCATION, 0)
      _ = ccurl_setopt_string(curl, CURLOPT_PROTOCOLS_STR, "http,https")
      _ = ccurl_setopt_long(curl, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(timeouts.connect))
      _ = ccurl_setopt_long(curl, CURLOPT_TIMEOUT_MS, milliseconds(timeouts.total))
      // libcurl's own low-speed check averages over a window of several seconds, so a transfer that
      // stops after a burst would only be abandoned seconds late: the stall is timed here instead,
      // from the last byte seen, by the progress callback libcurl calls about once a second.
      _ = ccurl_setopt_long(curl, CURLOPT_NOPROGRESS, 0)
      _ = ccurl_setopt_xferinfo_callback(curl, progressCallback)
      _ = ccurl_setopt_pointer(curl, CURLOPT_XFERINFODATA, context)
      _ = ccurl_setopt_long(curl, CURLOPT_SSL_VERIFYPEER, 1)
      _ = ccurl_setopt_long(curl, CURLOPT_SSL_VERIFYHOST, 2)
      _ = ccurl_setopt_long(curl, CURLOPT_TCP_KEEPALIVE, 1)
      // Bodies arrive in pieces of up to this size: fewer, larger reads of the socket and calls of
      // the body callback than libcurl's default of 16 KiB.
      _ = ccurl_setopt_long(curl, CURLOPT_BUFFERSIZE, 512 * 1024)
      if let caBundle { _ = ccurl_setopt_string(curl, CURLOPT_CAINFO, caBundle) }
      _ = ccurl_setopt_pointer(curl, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer.baseAddress))
      _ = ccurl_setopt_slist(curl, CURLOPT_HTTPHEADER, headerList)
      _ = ccurl_setopt_data_callback(curl, CURLOPT_HEADERFUNCTION, headerCallback)
      _ = ccurl_setopt_pointer(curl, CURLOPT_HEADERDATA, context)
      _ = ccurl_setopt_data_callback(curl, CURLOPT_WRITEFUNCTION, writeCallback)
      _ = ccurl_setopt_pointer(curl, CURLOPT_WRITEDATA, context)
      switch request.method {
      case "GET": _ = ccurl_setopt_long(curl, CURLOPT_HTTPGET, 1)
      case "HEAD": _ = ccurl_setopt_long(curl, CURLOPT_NOBODY, 1)
      default: _ = ccurl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, request.method)
      }
      if let body = request.body {
        _ = ccurl_setopt_offset(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
        body.withUnsafeBytes { bytes in
          // COPYPOSTFIELDS copies now; an empty body still needs a valid pointer.
          let empty: CChar = 0
          withUnsafePointer(to: empty) { emptyPointer in
            _ = ccurl_setopt_pointer(
              curl, CURLOPT_COPYPOSTFIELDS,
              UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(emptyPointer)))
          }
        }
        if request.method != "POST" { _ = ccurl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, request.method) }
      }
      return curl_easy_perform(curl)
    }
    requestCount.add(1, ordering: .relaxed)
    var connects = 0
    _ = ccurl_getinfo_long(curl, CURLINFO_NUM_CONNECTS, &connects)
    connectionCount.add(connects, ordering: .relaxed)

    if code == CURLE_OK {
      let response = transfer.response ?? HTTPResponse(status: 0, headers: [:])
      if !transfer.headDelivered {
        transfer.headDelivered = true
        if !transfer.onResponse(response) {
          return .failure(HTTPError(.aborted, "\(target) was aborted by its handler"))
        }
      }
      logger.trace("HTTP \(request.method) \(target) -> \(response.status), \(transfer.delivered) body bytes")
      return .success(response)
    }
    let curlDetail = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    let reason = curlDetail.isEmpty ? String(cString: curl_easy_strerror(code)) : curlDetail
    let kind: HTTPError.Kind
    switch code {
    case CURLE_WRITE_ERROR where transfer.tooLarge: kind = .tooLarge
    case CURLE_WRITE_ERROR where transfer.aborted: kind = .aborted
    case CURLE_COULDNT_CONNECT: kind = .connect
    case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .resolve
    case CURLE_OPERATION_TIMEDOUT: kind = .timeout
    case CURLE_ABORTED_BY_CALLBACK where transfer.stalled: kind = .timeout
    case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM,
      CURLE_SSL_CIPHER, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_CRL_BADFILE,
      CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_USE_SSL_FAILED:
      kind = .tls
    case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_FUNCTION_ARGUMENT: kind = .invalidRequest
    default: kind = .transfer
    }
    let detail: String
    switch kind {
    case .tooLarge: detail = "the response body is larger than \(request.maxBodyBytes ?? 0) bytes"
    case .aborted: detail = "aborted by its handler"
    case .timeout where transfer.stalled: detail = "no byte received for \(transfer.stallSeconds) s"
    default: detail = reason
    }
    let message = "\(target) failed: \(detail)"
    logger.debug("HTTP \(message)")
    return .failure(HTTPError(kind, message, detail: detail, bytesDelivered: transfer.delivered))
  }

  /// "GET https://host:port": method and origin only, never the query or a header.
  private func describe(_ request: HTTPRequest) -> String {
    if let url = HTTPURL(request.url) { return "\(request.method) \(url.origin)" }
    return "\(request.method) (an unparsable URL)"
  }
}

private func milliseconds(_ seconds: Double) -> Int {
  Int(max(1, (seconds * 1000).rounded(.up)))
}

/// `curl_global_init` runs once, before the first handle.
private let globalInit: Void = {
  _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT))
}()

/// Times transfers' stalls.
private let clock = SystemClock()

/// State shared with libcurl's callbacks during one `curl_easy_perform`.
private final class Transfer {
  let maxBodyBytes: Int?
  let stallSeconds: Int
  let started = clock.now()
  /// The easy handle, to ask whether the connection is made yet.
  var curl: UnsafeMutableRawPointer?
  var connected = false
  var lastActivity = clock.now()
  var uploaded = 0
  var stalled = false
  let onResponse: (HTTPResponse) -> Bool
  let onBody: (UnsafeRawBufferPointer) -> Bool
  var status = 0
  var headers: [String: String] = [:]
  var response: HTTPResponse?
  var headDelivered = false
  var delivered = 0
  var aborted = false
  var tooLarge = false

  init(
    maxBodyBytes: Int?, timeouts: HTTPTimeouts, onResponse: @escaping (HTTPResponse) -> Bool,
    onBody: @escaping (UnsafeRawBufferPointer) -> Bool
  ) {
    self.maxBodyBytes = maxBodyBytes
    stallSeconds = max(1, timeouts.stall)
    self.onResponse = onResponse
    self.onBody = onBody
  }

  /// Notes that bytes moved.
  func active() { lastActivity = clock.now() }

  /// Whether the transfer should go on: false once no byte has moved for `stallSeconds` since the
  /// connection was made (the connect timeout bounds the time before).
  func progress(uploaded: Int) -> Bool {
    if !connected {
      var pretransfer: curl_off_t = 0
      if let curl { _ = ccurl_getinfo_offset(curl, CURLINFO_PRETRANSFER_TIME_T, &pretransfer) }
      guard pretransfer > 0 else { return true }
      connected = true
      lastActivity = max(lastActivity, started + Double(pretransfer) / 1e6)
    }
    if uploaded != self.uploaded {
      self.uploaded = uploaded
      active()
    }
    if clock.now() - lastActivity >= Double(stallSeconds) {
      stalled = true
      return false
    }
    return true
  }

  func header(_ line: UnsafeRawBufferPointer) {
    active()
    var bytes = Substring(decoding: line, as: UTF8.self)
    while let last = bytes.last, last == "\r\n" || last == "\n" || last == "\r" { bytes = bytes.dropLast() }
    if bytes.hasPrefix("HTTP/") {
      // A new response (after 100 Continue or a proxy's CONNECT): start over.
      let parts = bytes.split(separator: " ", maxSplits: 2)
      status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
      headers = [:]
      response = nil
      return
    }
    if bytes.isEmpty {
      response = HTTPResponse(status: status, headers: headers)
      return
    }
    guard let colon = bytes.firstIndex(of: ":") else { return }
    let name = bytes[..<colon].trimmingSpaces().lowercased()
    let value = String(bytes[bytes.index(after: colon)...].trimmingSpaces())
    if let existing = headers[name] {
      headers[name] = existing + ", " + value
    } else {
      headers[name] = value
    }
  }

  func body(_ chunk: UnsafeRawBufferPointer) -> Bool {
    active()
    if !headDelivered {
      headDelivered = true
      if !onResponse(response ?? HTTPResponse(status: status, headers: headers)) {
        aborted = true
        return false
      }
    }
    if let maxBodyBytes, delivered + chunk.count > maxBodyBytes {
      tooLarge = true
      return false
    }
    guard onBody(chunk) else {
      aborted = true
      return false
    }
    delivered += chunk.count
    return true
  }
}

extension Substring {
  fileprivate func trimmingSpaces() -> Substring {
    var result = self
    while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
    while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
    return result
  }
}

private let headerCallback: ccurl_data_callback = { buffer, size, count, userdata in
  let transfer = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
  let length = size * count
  transfer.header(UnsafeRawBufferPointer(start: buffer, count: length))
  return length
}

private let progressCallback: ccurl_xferinfo_callback = { userdata, _, _, _, uploaded in
  let transfer = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
  return transfer.progress(uploaded: uploaded) ? 0 : 1
}

private let writeCallback: ccurl_data_callback = { buffer, size, count, userdata in
  let transfer = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
  let length = size * count
  return transfer.body(UnsafeRawBufferPointer(start: buffer, count: length)) ? length : 0
}
