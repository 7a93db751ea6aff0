import HTTPTransport

/// One link of an RFC 8288 (RFC 5988) `Link` header: a target and its relation types.
public struct WebLink: Sendable, Hashable {
  public var target: String
  /// Relation types, lower-cased (`rel="next last"` gives two).
  public var relations: [String]

  public init(target: String, relations: [String]) {
    self.target = target
    self.relations = relations
  }
}

/// Parses a `Link` header value: `<url>; rel="next", <url>; rel=last`. Tolerates unquoted and quoted
/// parameters, several relation types in one `rel`, other parameters, extra spaces, empty elements,
/// and commas inside the `<…>` target or a quoted string. Garbage between links is skipped; it never traps.
public func parseLinkHeader(_ value: String) -> [WebLink] {
  let chars = Array(value.unicodeScalars)
  var links: [WebLink] = []
  var index = 0
  func skipSpace() {
    while index < chars.count, chars[index] == " " || chars[index] == "\t" { index += 1 }
  }
  /// Skips to the start of the next link element (past a comma at the top level).
  func skipToNextElement() {
    var quoted = false
    while index < chars.count {
      let char = chars[index]
      index += 1
      if quoted {
        if char == "\\" { index += 1 } else if char == "\"" { quoted = false }
      } else if char == "\"" {
        quoted = true
      } else if char == "," {
        return
      }
    }
  }
  while index < chars.count {
    skipSpace()
    guard index < chars.count else { break }
    guard chars[index] == "<" else {
      skipToNextElement()
      continue
    }
    index += 1
    var target = ""
    while index < chars.count, chars[index] != ">" {
      target.unicodeScalars.append(chars[index])
      index += 1
    }
    guard index < chars.count else { break }  // no closing '>'
    index += 1
    var relations: [String] = []
    // Parameters: ; name[=value]
    while true {
      skipSpace()
      guard index < chars.count, chars[index] == ";" else { break }
      index += 1
      skipSpace()
      var name = ""
      while index < chars.count, !"=;, \t".unicodeScalars.contains(chars[index]) {
        name.unicodeScalars.append(chars[index])
        index += 1
      }
      skipSpace()
      var parameter: String?
      if index < chars.count, chars[index] == "=" {
        index += 1
        skipSpace()
        var text = ""
        if index < chars.count, chars[index] == "\"" {
          index += 1
          while index < chars.count, chars[index] != "\"" {
            if chars[index] == "\\", index + 1 < chars.count { index += 1 }
            text.unicodeScalars.append(chars[index])
            index += 1
          }
          if index < chars.count { index += 1 }
        } else {
          while index < chars.count, !";, \t".unicodeScalars.contains(chars[index]) {
            text.unicodeScalars.append(chars[index])
            index += 1
          }
        }
        parameter = text
      }
      // Only the first rel counts (RFC 8288 §3).
      if name.lowercased() == "rel", relations.isEmpty, let parameter {
        relations = parameter.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { $0.lowercased() }
      }
    }
    links.append(WebLink(target: target, relations: relations))
    skipToNextElement()
  }
  return links
}

/// The target of the first link with relation `relation` in a `Link` header value.
public func linkTarget(_ header: String?, relation: String) -> String? {
  guard let header else { return nil }
  return parseLinkHeader(header).first { $0.relations.contains(relation.lowercased()) }?.target
}

/// The decoded value of query parameter `name` in a URL (absolute or relative); nil when absent.
public func queryParameter(_ url: String, _ name: String) -> String? {
  guard let question = url.firstIndex(of: "?") else { return nil }
  var query = url[url.index(after: question)...]
  if let hash = query.firstIndex(of: "#") { query = query[..<hash] }
  for pair in query.split(separator: "&") {
    let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
    guard let key = percentDecode(String(parts[0]), plusAsSpace: true), key == name else { continue }
    return parts.count > 1 ? percentDecode(String(parts[1]), plusAsSpace: true) : ""
  }
  return nil
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so that a slug, a UUID or a
/// query value is one path segment or one value, whatever it holds.
public func percentEncode(_ text: String) -> String {
  var result = ""
  result.reserveCapacity(text.utf8.count)
  let hex = Array("0123456789ABCDEF".unicodeScalars)
  for byte in text.utf8 {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
      UInt8(ascii: "~"):
      result.unicodeScalars.append(Unicode.Scalar(byte))
    default:
      result.unicodeScalars.append("%")
      result.unicodeScalars.append(hex[Int(byte >> 4)])
      result.unicodeScalars.append(hex[Int(byte & 0xF)])
    }
  }
  return result
}

/// `text` as one path segment: percent-encoded, with `.` and `..` encoded too so that they cannot
/// climb the path.
func pathSegment(_ text: String) -> String {
  if text == "." || text == ".." { return String(repeating: "%2E", count: text.count) }
  return percentEncode(text)
}
