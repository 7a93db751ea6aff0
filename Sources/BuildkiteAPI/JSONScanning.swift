import HTTPTransport
import SystemBase

/// The byte ranges of the elements of a top-level JSON array, each an exact value (objects with their
/// braces, strings with their quotes); nil when `bytes` is not an array. It only finds boundaries: the
/// elements are decoded afterwards, which rejects anything malformed inside them.
func jsonArrayElements(_ bytes: [UInt8]) -> [Range<Int>]? {
  var index = skipSpace(bytes, 0)
  guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { return nil }
  index = skipSpace(bytes, index + 1)
  var ranges: [Range<Int>] = []
  if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
    return skipSpace(bytes, index + 1) == bytes.count ? [] : nil
  }
  while index < bytes.count {
    guard let end = valueEnd(bytes, index) else { return nil }
    ranges.append(index..<end)
    index = skipSpace(bytes, end)
    guard index < bytes.count else { return nil }
    if bytes[index] == UInt8(ascii: ",") {
      index = skipSpace(bytes, index + 1)
      continue
    }
    guard bytes[index] == UInt8(ascii: "]") else { return nil }
    return skipSpace(bytes, index + 1) == bytes.count ? ranges : nil
  }
  return nil
}

/// The most values (objects, arrays, strings, keys and scalars) one JSON answer may hold, the most
/// objects, and the deepest it may nest. Real answers are far from all three: they hold a value per
/// 15 bytes or more and an object per 150 bytes or more (so at most about 4.5 million values and
/// 450,000 objects in the 64 MiB an answer may have), nested about 10 deep. The limits bound what
/// decoding takes: `JSONDecoder` keeps about 25 bytes per value, each object may become a job or a
/// build of a few hundred bytes, and recursion stays shallow.
public let maximumJSONValues = 8_000_000
public let maximumJSONObjects = 1_000_000
public let maximumJSONDepth = 512

/// Why `bytes` is too big or too deep to decode, nil when it is neither. One pass, no recursion; it does
/// not check the syntax (the decoder does that, within these bounds).
func jsonBoundsProblem(_ bytes: ArraySlice<UInt8>) -> String? {
  var values = 0
  var objects = 0
  var depth = 0
  var index = bytes.startIndex
  while index < bytes.endIndex {
    let byte = bytes[index]
    switch byte {
    case UInt8(ascii: "\""):
      values += 1
      index += 1
      while index < bytes.endIndex, bytes[index] != UInt8(ascii: "\"") {
        index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
      }
    case UInt8(ascii: "{"), UInt8(ascii: "["):
      values += 1
      depth += 1
      if depth > maximumJSONDepth { return "it nests deeper than \(maximumJSONDepth) levels" }
      if byte == UInt8(ascii: "{") {
        objects += 1
        if objects > maximumJSONObjects { return "it holds more than \(maximumJSONObjects) objects" }
      }
    case UInt8(ascii: "}"), UInt8(ascii: "]"):
      depth = max(0, depth - 1)
    case UInt8(ascii: ","), UInt8(ascii: ":"):
      break
    default:
      if isSpace(byte) { break }
      values += 1
      while index + 1 < bytes.endIndex, !isScalarEnd(bytes[index + 1]) { index += 1 }
    }
    if values > maximumJSONValues { return "it holds more than \(maximumJSONValues) values" }
    index += 1
  }
  return nil
}

private func isScalarEnd(_ byte: UInt8) -> Bool {
  isSpace(byte) || byte == UInt8(ascii: ",") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "]")
    || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{")
    || byte == UInt8(ascii: "\"")
}

/// `bytes` without leading and trailing JSON whitespace.
func trimmedJSON(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
  var slice = bytes
  while let first = slice.first, isSpace(first) { slice = slice.dropFirst() }
  while let last = slice.last, isSpace(last) { slice = slice.dropLast() }
  return Array(slice)
}

private func isSpace(_ byte: UInt8) -> Bool {
  byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
}

private func skipSpace(_ bytes: [UInt8], _ start: Int) -> Int {
  var index = start
  while index < bytes.count, isSpace(bytes[index]) { index += 1 }
  return index
}

/// The index just past the JSON value starting at `start`; nil when it does not end.
private func valueEnd(_ bytes: [UInt8], _ start: Int) -> Int? {
  guard start < bytes.count else { return nil }
  switch bytes[start] {
  case UInt8(ascii: "\""):
    return stringEnd(bytes, start)
  case UInt8(ascii: "{"), UInt8(ascii: "["):
    var depth = 0
    var index = start
    while index < bytes.count {
      switch bytes[index] {
      case UInt8(ascii: "\""):
        guard let end = stringEnd(bytes, index) else { return nil }
        index = end
        continue
      case UInt8(ascii: "{"), UInt8(ascii: "["):
        depth += 1
      case UInt8(ascii: "}"), UInt8(ascii: "]"):
        depth -= 1
        if depth == 0 { return index + 1 }
      default:
        break
      }
      index += 1
    }
    return nil
  default:
    var index = start
    while index < bytes.count {
      let byte = bytes[index]
      if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") || isSpace(byte) {
        break
      }
      index += 1
    }
    return index > start ? index : nil
  }
}

/// The index just past the string whose opening quote is at `start`.
private func stringEnd(_ bytes: [UInt8], _ start: Int) -> Int? {
  var index = start + 1
  while index < bytes.count {
    switch bytes[index] {
    case UInt8(ascii: "\\"): index += 2
    case UInt8(ascii: "\""): return index + 1
    default: index += 1
    }
  }
  return nil
}

// MARK: - ISO 8601 times

/// Seconds since the Unix epoch of a time in Buildkite's answers, which may be written in any of
/// ISO 8601's lenient spellings (`2024-05-16 00:55:26.401Z`, `2024-02-29T23:59:59-0130`).
func parseBuildkiteTime(_ text: String) -> Double? {
  parseISO8601(text, syntax: .lenient).map { Double($0.seconds) + Double($0.nanoseconds) / 1e9 }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds) for seconds since the Unix epoch.
public func formatISO8601(_ epochSeconds: Double) -> String {
  let total = Int(epochSeconds.rounded(.down))
  let days = total >= 0 ? total / 86_400 : (total - 86_399) / 86_400
  let secondOfDay = total - days * 86_400
  let civil = civilFromDays(Int64(days))
  let (year, month, day) = (Int(civil.year), Int(civil.month), Int(civil.day))
  func pad(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
  }
  return
    "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))Z"
}

/// JSON for the decoder, with text that is not Unicode read as U+FFFD: raw bytes that are not
/// UTF-8, and `\u` escapes of a lone surrogate (`"\udc80"`, or `"\ud800"` not followed by a low
/// one), which the decoder refuses and would take the whole answer with them. A buggy or hostile
/// API's bad label then costs that label's bytes, not the build. Well-formed JSON comes back as it is.
func readableJSON(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
  var out =
    String(validating: bytes, as: UTF8.self) != nil ? Array(bytes) : Array(String(decoding: bytes, as: UTF8.self).utf8)
  func escape(at index: Int) -> UInt32? {
    guard index + 6 <= out.count, out[index] == UInt8(ascii: "\\"), out[index + 1] == UInt8(ascii: "u") else {
      return nil
    }
    var value: UInt32 = 0
    for byte in out[(index + 2)..<(index + 6)] {
      guard let digit = hexDigit(byte) else { return nil }
      value = value << 4 | UInt32(digit)
    }
    return value
  }
  let replacement = Array("\\uFFFD".utf8)
  var index = 0
  var inString = false
  while index < out.count {
    let byte = out[index]
    if !inString {
      if byte == UInt8(ascii: "\"") { inString = true }
      index += 1
    } else if byte == UInt8(ascii: "\"") {
      inString = false
      index += 1
    } else if byte != UInt8(ascii: "\\") {
      index += 1
    } else if let value = escape(at: index), (0xD800...0xDFFF).contains(value) {
      if value <= 0xDBFF, let low = escape(at: index + 6), (0xDC00...0xDFFF).contains(low) {
        index += 12
      } else {
        out.replaceSubrange(index..<(index + 6), with: replacement)
        index += 6
      }
    } else {
      index += 2
    }
  }
  return out
}

private func hexDigit(_ byte: UInt8) -> UInt8? {
  switch byte {
  case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
  case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
  case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
  default: nil
  }
}
