/// Time limits applied to every request.
public struct HTTPTimeouts: Sendable, Hashable {
  /// Longest wait for the TCP (and TLS) connection, in seconds.
  public var connect: Double
  /// A transfer that receives (or sends) no byte for this many seconds is abandoned with `.timeout`.
  /// Counted from when the connection is made, so it also bounds the wait for the first byte.
  public var stall: Int
  /// Longest time for the whole request, body included, in seconds.
  public var total: Double

  public init(connect: Double = 5, stall: Int = 15, total: Double = 300) {
    self.connect = connect
    self.stall = stall
    self.total = total
  }
}

/// One request. `headers` are sent as given (order kept); libcurl adds `Host` unless it is given.
public struct HTTPRequest: Sendable {
  public var method: String
  public var url: String
  public var headers: [(name: String, value: String)]
  public var body: [UInt8]?
  /// Bodies longer than this fail with `.tooLarge`.
  public var maxBodyBytes: Int?
  /// Overrides the client's timeouts for this request.
  public var timeouts: HTTPTimeouts?

  public init(
    method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil,
    maxBodyBytes: Int? = nil, timeouts: HTTPTimeouts? = nil
  ) {
    self.method = method
    self.url = url
    self.headers = headers
    self.body = body
    self.maxBodyBytes = maxBodyBytes
    self.timeouts = timeouts
  }
}

/// The status line and headers of a response. Header names are lower-cased; repeated headers are
/// joined with ", ".
public struct HTTPResponse: Sendable, Hashable {
  public var status: Int
  public var headers: [String: String]

  public init(status: Int, headers: [String: String]) {
    self.status = status
    self.headers = headers
  }

  public subscript(header name: String) -> String? { headers[name.lowercased()] }
}

/// A request that got no complete response. `message` names the method and host, never a header.
public struct HTTPError: Error, Sendable, CustomStringConvertible {
  public enum Kind: Sendable, Hashable {
    /// The TCP connection was refused or could not be made.
    case connect
    /// The host name did not resolve.
    case resolve
    /// A connect, stall or total timeout expired.
    case timeout
    /// The TLS handshake or certificate verification failed.
    case tls
    /// The connection broke or the server's answer was cut or malformed mid-transfer.
    case transfer
    /// The body handler asked to stop.
    case aborted
    /// The body ran past the request's `maxBodyBytes`.
    case tooLarge
    /// The URL or request could not be used (bad URL, unsupported scheme).
    case invalidRequest
  }

  public var kind: Kind
  /// "GET http://host:port failed: <detail>".
  public var message: String
  /// libcurl's own words, such as "Failed to connect to 127.0.0.1 port 9 after 0 ms: Couldn't connect to server".
  public var detail: String
  /// Body bytes handed to the sink before the failure.
  public var bytesDelivered: Int

  public init(_ kind: Kind, _ message: String, detail: String? = nil, bytesDelivered: Int = 0) {
    self.kind = kind
    self.message = message
    self.detail = detail ?? message
    self.bytesDelivered = bytesDelivered
  }

  public var description: String { message }
}

/// The parts of an absolute `http`/`https` URL this project needs.
public struct HTTPURL: Sendable, Hashable {
  public var scheme: String
  public var host: String
  public var port: Int?
  /// The path, without query; "" when the URL has none.
  public var path: String

  /// Parses `scheme://host[:port][/path][?query]`. Userinfo and IPv6 literals are not supported.
  public init?(_ string: String) {
    guard let colon = string.firstIndex(of: ":"), string[colon...].hasPrefix("://") else { return nil }
    let scheme = string[..<colon].lowercased()
    guard scheme == "http" || scheme == "https" else { return nil }
    var rest = string[string.index(colon, offsetBy: 3)...]
    if let query = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<query] }
    let authority: Substring
    if let slash = rest.firstIndex(of: "/") {
      authority = rest[..<slash]
      path = String(rest[slash...])
    } else {
      authority = rest
      path = ""
    }
    guard !authority.isEmpty, !authority.contains("@") else { return nil }
    if let colon = authority.lastIndex(of: ":") {
      guard let port = Int(authority[authority.index(after: colon)...]), (1...65535).contains(port) else { return nil }
      self.port = port
      host = String(authority[..<colon]).lowercased()
    } else {
      port = nil
      host = String(authority).lowercased()
    }
    guard !host.isEmpty else { return nil }
    self.scheme = scheme
  }

  public var defaultPort: Int { scheme == "https" ? 443 : 80 }

  /// `host` or `host:port` when the port is not the scheme's default: the `Host` header's value.
  public var hostHeader: String {
    if let port, port != defaultPort { return "\(host):\(port)" }
    return host
  }

  /// `scheme://host[:port]`.
  public var origin: String { "\(scheme)://\(hostHeader)" }

  /// Whether the host is this machine: `localhost` (or a name under it) or an address in 127.0.0.0/8.
  public var isLoopback: Bool {
    if host == "localhost" || host.hasSuffix(".localhost") { return true }
    let octets = host.split(separator: ".", omittingEmptySubsequences: false)
    return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
  }
}

/// Decodes `%XX` escapes (and, with `plusAsSpace`, `+` as a space). Nil on a malformed escape or bytes
/// that are not UTF-8.
public func percentDecode(_ string: String, plusAsSpace: Bool = false) -> String? {
  var bytes = [UInt8]()
  bytes.reserveCapacity(string.utf8.count)
  var iterator = string.utf8.makeIterator()
  func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
  }
  while let byte = iterator.next() {
    if byte == UInt8(ascii: "%") {
      guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
        return nil
      }
      bytes.append(high << 4 | low)
    } else if plusAsSpace && byte == UInt8(ascii: "+") {
      bytes.append(UInt8(ascii: " "))
    } else {
      bytes.append(byte)
    }
  }
  return String(validating: bytes, as: UTF8.self)
}
