import HTTPTransport
public import ObjectStore

/// Parses an HTTP date as S3 sends `Last-Modified` (the forms `parseHTTPDateSeconds` reads). Nil when
/// malformed.
public func parseHTTPDate(_ text: String) -> Timestamp? {
  parseHTTPDateSeconds(text).map { Timestamp(seconds: $0) }
}
