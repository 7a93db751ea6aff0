import Digests

/// An AWS access key, with the session token of temporary credentials.
public struct AWSCredentials: Sendable, Hashable {
  public var accessKeyID: String
  public var secretAccessKey: String
  public var sessionToken: String?

  public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
    self.accessKeyID = accessKeyID
    self.secretAccessKey = secretAccessKey
    self.sessionToken = sessionToken
  }
}

/// A request as it will go on the wire, for signing.
public struct SignableRequest: Sendable {
  /// "GET", "HEAD".
  public var method: String
  /// The path as sent on the wire, already percent-encoded, such as "/bucket/a%20b.log". Signed as is.
  public var path: String
  /// The query string as sent (already encoded), without '?'; may be "".
  public var query: String
  /// Must include "host"; may include others. Every header given is signed.
  public var headers: [(name: String, value: String)]
  /// Hex SHA-256 of the body; for S3 GET/HEAD the hash of "" (or "UNSIGNED-PAYLOAD").
  public var payloadSHA256: String

  public init(
    method: String, path: String, query: String, headers: [(name: String, value: String)], payloadSHA256: String
  ) {
    self.method = method
    self.path = path
    self.query = query
    self.headers = headers
    self.payloadSHA256 = payloadSHA256
  }
}

/// The steps of one signature, for tests and for debugging a `SignatureDoesNotMatch`
/// (S3 returns its own canonical request and string to sign in that error).
public struct SigV4Signature: Sendable {
  public var canonicalRequest: String
  public var stringToSign: String
  /// Lower-case hex.
  public var signature: String
  /// "host;x-amz-date", …
  public var signedHeaders: String
  /// The headers to add to the request, "authorization" last.
  public var headersToAdd: [(name: String, value: String)]
}

/// AWS Signature Version 4 in the `Authorization` header, with S3's rules: the path is signed as
/// sent (encoded once by the caller, never normalized), the query pieces as sent, sorted.
public struct SigV4Signer: Sendable {
  public var credentials: AWSCredentials
  public var region: String
  public var service: String
  /// Whether `x-amz-security-token` is part of the signature (true for S3). A few services want
  /// it added after signing; AWS's suite checks both.
  public var signsSessionToken: Bool

  public init(credentials: AWSCredentials, region: String, service: String) {
    self.init(credentials: credentials, region: region, service: service, signsSessionToken: true)
  }

  public init(credentials: AWSCredentials, region: String, service: String, signsSessionToken: Bool) {
    self.credentials = credentials
    self.region = region
    self.service = service
    self.signsSessionToken = signsSessionToken
  }

  /// The headers to add to the request: "x-amz-date", "x-amz-security-token" when there is a
  /// session token, "x-amz-content-sha256" when `addContentSHA256` (S3 wants it), and
  /// "authorization". A header among the first three that the request already has is not added
  /// again, and its value is the one signed.
  public func signatureHeaders(for request: SignableRequest, epochSeconds: Int64, addContentSHA256: Bool)
    -> [(name: String, value: String)]
  {
    sign(request, epochSeconds: epochSeconds, addContentSHA256: addContentSHA256).headersToAdd
  }

  /// Every step of the signature of `request` at `epochSeconds`.
  public func sign(_ request: SignableRequest, epochSeconds: Int64, addContentSHA256: Bool) -> SigV4Signature {
    func has(_ name: String) -> String? {
      request.headers.first { asciiLowercased($0.name) == name }?.value
    }
    var added: [(name: String, value: String)] = []
    var unsignedAdded: [(name: String, value: String)] = []
    let timestamp: String
    if let existing = has("x-amz-date") {
      timestamp = collapseHeaderValue(existing)
    } else {
      timestamp = amzDate(epochSeconds: epochSeconds)
      added.append(("x-amz-date", timestamp))
    }
    if let token = credentials.sessionToken, has("x-amz-security-token") == nil {
      if signsSessionToken {
        added.append(("x-amz-security-token", token))
      } else {
        unsignedAdded.append(("x-amz-security-token", token))
      }
    }
    if addContentSHA256, has("x-amz-content-sha256") == nil {
      added.append(("x-amz-content-sha256", request.payloadSHA256))
    }
    var signedRequest = request
    signedRequest.headers += added
    let (canonical, signedHeaders) = Self.canonicalRequest(signedRequest)
    let date = String(timestamp.prefix(8))
    let scope = "\(date)/\(region)/\(service)/aws4_request"
    let toSign = Self.stringToSign(timestamp: timestamp, scope: scope, canonicalRequest: canonical)
    let signature = hex(HMACSHA256.authenticationCode(key: signingKey(date: date), message: toSign))
    let authorization =
      "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
    return SigV4Signature(
      canonicalRequest: canonical, stringToSign: toSign, signature: signature, signedHeaders: signedHeaders,
      headersToAdd: added + unsignedAdded + [("authorization", authorization)])
  }

  /// The key for one day, region and service ("AWS4" + secret, HMAC'd down the scope).
  public func signingKey(date: String) -> [UInt8] {
    var key = HMACSHA256.authenticationCode(key: Array(("AWS4" + credentials.secretAccessKey).utf8), message: date)
    for part in [region, service, "aws4_request"] {
      key = HMACSHA256.authenticationCode(key: key, message: part)
    }
    return key
  }

  public static func stringToSign(timestamp: String, scope: String, canonicalRequest: String) -> String {
    "AWS4-HMAC-SHA256\n\(timestamp)\n\(scope)\n\(SHA256.hexHash(canonicalRequest))"
  }

  /// The canonical request of `request`, whose headers are all signed, and the signed-headers list.
  public static func canonicalRequest(_ request: SignableRequest) -> (canonicalRequest: String, signedHeaders: String) {
    // Headers: lower-case names, values trimmed and folded, duplicates joined in the order given.
    var names: [String] = []
    var values: [String: String] = [:]
    for header in request.headers {
      let name = asciiLowercased(header.name)
      let value = collapseHeaderValue(header.value)
      if let previous = values[name] {
        values[name] = previous + "," + value
      } else {
        names.append(name)
        values[name] = value
      }
    }
    names.sort(by: utf8Precedes)
    let headerLines = names.map { "\($0):\(values[$0]!)\n" }.joined()
    let signedHeaders = names.joined(separator: ";")
    let canonical = [
      request.method, request.path, canonicalQuery(request.query), headerLines, signedHeaders, request.payloadSHA256,
    ].joined(separator: "\n")
    return (canonical, signedHeaders)
  }

  /// The as-sent query split on '&' then the first '=', sorted by name then value (byte order);
  /// a piece without '=' has an empty value. Empty pieces ("a=1&&b=2") are dropped.
  public static func canonicalQuery(_ query: String) -> String {
    var pairs: [(name: Substring, value: Substring)] = []
    for piece in query.split(separator: "&", omittingEmptySubsequences: true) {
      if let equals = piece.firstIndex(of: "=") {
        pairs.append((piece[..<equals], piece[piece.index(after: equals)...]))
      } else {
        pairs.append((piece, ""))
      }
    }
    pairs.sort { a, b in
      if a.name.utf8.elementsEqual(b.name.utf8) { return a.value.utf8.lexicographicallyPrecedes(b.value.utf8) }
      return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
    }
    return pairs.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
  }
}

private func utf8Precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

func asciiLowercased(_ string: String) -> String {
  String(decoding: string.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
}

/// A header value as SigV4 signs it: leading and trailing whitespace removed, every inner run of
/// whitespace (spaces, tabs, and the line breaks of a folded multi-line value) made one space.
func collapseHeaderValue(_ value: String) -> String {
  var out: [UInt8] = []
  out.reserveCapacity(value.utf8.count)
  var pendingSpace = false
  for byte in value.utf8 {
    if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
      pendingSpace = !out.isEmpty
    } else {
      if pendingSpace { out.append(0x20) }
      pendingSpace = false
      out.append(byte)
    }
  }
  return String(decoding: out, as: UTF8.self)
}

/// RFC 3986 percent-encoding as AWS wants it: the unreserved A-Z a-z 0-9 - . _ ~ kept, every other
/// byte of the UTF-8 as %XX upper-case; "/" kept when `encodeSlash` is false.
public func awsURIEncode(_ string: String, encodeSlash: Bool) -> String {
  let hexDigits = Array("0123456789ABCDEF".utf8)
  var out: [UInt8] = []
  out.reserveCapacity(string.utf8.count)
  for byte in string.utf8 {
    switch byte {
    case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x2D, 0x2E, 0x5F, 0x7E:
      out.append(byte)
    case 0x2F where !encodeSlash:
      out.append(byte)
    default:
      out += [0x25, hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]]
    }
  }
  return String(decoding: out, as: UTF8.self)
}
