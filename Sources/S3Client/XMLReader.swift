public import ObjectStore

/// One element of a parsed XML document: its local name (any `prefix:` dropped), its child
/// elements in order, and the character data directly inside it (text and CDATA, entities decoded).
/// Attributes are checked for well-formedness and dropped.
public struct XMLElement: Sendable, Hashable {
  public var name: String
  public var children: [XMLElement]
  public var text: String

  public init(name: String, children: [XMLElement] = [], text: String = "") {
    self.name = name
    self.children = children
    self.text = text
  }

  /// The only child named `name`, nil when there is none; more than one is an invalid response.
  public func child(_ name: String) throws(ObjectStoreError) -> XMLElement? {
    var found: XMLElement?
    for child in children where child.name == name {
      guard found == nil else { throw invalidXML("<\(self.name)> holds more than one <\(name)>") }
      found = child
    }
    return found
  }

  /// The text of the only child named `name`, which must hold no elements; nil when absent.
  public func childText(_ name: String) throws(ObjectStoreError) -> String? {
    guard let child = try child(name) else { return nil }
    guard child.children.isEmpty else { throw invalidXML("<\(name)> in <\(self.name)> holds elements, not text") }
    return child.text
  }

  public func children(named name: String) -> [XMLElement] { children.filter { $0.name == name } }
}

func invalidXML(_ message: String) -> ObjectStoreError {
  ObjectStoreError(.invalidResponse, "S3 sent malformed XML: \(message)")
}

/// A strict, bounded reader of the XML S3 sends: UTF-8 only; a `<?xml …?>` prolog, processing
/// instructions and comments skipped; CDATA; the five predefined entities and character references;
/// no DOCTYPE (so never an external or custom entity); at most `maxDepth` nested elements and
/// `maxElements` in all. Anything else, including a document cut short, is `.invalidResponse`.
public struct XMLReader: Sendable {
  public var maxDepth: Int
  public var maxElements: Int
  public var maxBytes: Int

  public init(maxDepth: Int = 32, maxElements: Int = 1_000_000, maxBytes: Int = 64 << 20) {
    self.maxDepth = maxDepth
    self.maxElements = maxElements
    self.maxBytes = maxBytes
  }

  /// The root element of `bytes`.
  public func parse(_ bytes: [UInt8]) throws(ObjectStoreError) -> XMLElement {
    guard bytes.count <= maxBytes else { throw invalidXML("the document is larger than \(maxBytes) bytes") }
    try checkCharacters(bytes)
    var parser = Parser(bytes: bytes, reader: self)
    return try parser.document()
  }

  /// UTF-8 throughout, and no character XML 1.0 forbids (C0 controls other than tab, line feed and
  /// carriage return; U+FFFE, U+FFFF). Surrogates and overlong forms are caught by the UTF-8 check.
  private func checkCharacters(_ bytes: [UInt8]) throws(ObjectStoreError) {
    for (offset, byte) in bytes.enumerated() where byte < 0x20 && byte != 0x09 && byte != 0x0A && byte != 0x0D {
      throw invalidXML("control character 0x\(String(byte, radix: 16)) at byte \(offset)")
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
      // A document cut inside a character is a truncation more often than bad encoding.
      throw invalidXML("the document is not valid UTF-8 (or was cut off inside a character)")
    }
    for scalar in text.unicodeScalars where scalar.value == 0xFFFE || scalar.value == 0xFFFF {
      throw invalidXML("character U+\(String(scalar.value, radix: 16, uppercase: true)) is not allowed in XML")
    }
  }
}

private let truncatedMessage = "the document ended before it was complete (truncated response?)"

private struct Parser {
  let bytes: [UInt8]
  let reader: XMLReader
  var index = 0
  var elementCount = 0

  init(bytes: [UInt8], reader: XMLReader) {
    self.bytes = bytes
    self.reader = reader
  }

  private struct Open {
    var name: String
    var children: [XMLElement] = []
    var text: [UInt8] = []
  }

  mutating func document() throws(ObjectStoreError) -> XMLElement {
    // A UTF-8 byte order mark is allowed before everything.
    if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
    var stack: [Open] = []
    var root: XMLElement?
    while index < bytes.count {
      if bytes[index] != 0x3C {  // not '<': character data
        if stack.isEmpty {
          guard isWhitespace(bytes[index]) else {
            throw invalidXML(root == nil ? "text before the root element" : "text after the root element")
          }
          index += 1
        } else {
          try characterData(into: &stack[stack.count - 1].text)
        }
        continue
      }
      if has("<?") {
        index += 2
        try skip(past: "?>")
      } else if has("<!--") {
        index += 4
        try skip(past: "-->")
      } else if has("<![CDATA[") {
        guard !stack.isEmpty else { throw invalidXML("CDATA outside the root element") }
        index += 9
        let start = index
        try skip(past: "]]>")
        stack[stack.count - 1].text += bytes[start..<index - 3]
      } else if has("<!") {
        if hasPrefixOrTruncated("<!DOCTYPE") { throw invalidXML("a DOCTYPE is not allowed") }
        if index + 9 >= bytes.count { throw invalidXML(truncatedMessage) }
        throw invalidXML("unexpected markup <!")
      } else if has("</") {
        index += 2
        let name = try name()
        skipWhitespace()
        try expect(0x3E)
        guard let open = stack.popLast() else { throw invalidXML("close tag </\(name)> with no open element") }
        guard open.name == name else { throw invalidXML("close tag </\(name)> does not match <\(open.name)>") }
        let element = XMLElement(
          name: localName(open.name), children: open.children, text: String(decoding: open.text, as: UTF8.self))
        if stack.isEmpty {
          root = element
        } else {
          stack[stack.count - 1].children.append(element)
        }
      } else {
        index += 1
        guard root == nil else { throw invalidXML("a second root element") }
        let name = try name()
        elementCount += 1
        guard elementCount <= reader.maxElements else {
          throw invalidXML("more than \(reader.maxElements) elements")
        }
        guard stack.count < reader.maxDepth else {
          throw invalidXML("elements nested deeper than \(reader.maxDepth)")
        }
        // Attributes: checked, then ignored.
        var selfClosing = false
        while true {
          let hadSpace = skipWhitespace()
          guard index < bytes.count else { throw invalidXML(truncatedMessage) }
          if bytes[index] == 0x3E {
            index += 1
            break
          }
          if has("/>") {
            index += 2
            selfClosing = true
            break
          }
          guard hadSpace else { throw invalidXML("malformed tag <\(name)>") }
          _ = try self.name()
          skipWhitespace()
          try expect(0x3D)
          skipWhitespace()
          guard index < bytes.count else { throw invalidXML(truncatedMessage) }
          let quote = bytes[index]
          guard quote == 0x22 || quote == 0x27 else { throw invalidXML("unquoted attribute value in <\(name)>") }
          index += 1
          var ignored: [UInt8] = []
          while true {
            guard index < bytes.count else { throw invalidXML(truncatedMessage) }
            let byte = bytes[index]
            if byte == quote {
              index += 1
              break
            }
            guard byte != 0x3C else { throw invalidXML("'<' in an attribute value of <\(name)>") }
            if byte == 0x26 {
              try entity(into: &ignored)
            } else {
              index += 1
            }
          }
        }
        if selfClosing {
          let element = XMLElement(name: localName(name))
          if stack.isEmpty {
            root = element
          } else {
            stack[stack.count - 1].children.append(element)
          }
        } else {
          stack.append(Open(name: name))
        }
      }
    }
    guard let root, stack.isEmpty else { throw invalidXML(truncatedMessage) }
    return root
  }

  /// Text up to the next '<', entities decoded.
  private mutating func characterData(into text: inout [UInt8]) throws(ObjectStoreError) {
    while index < bytes.count, bytes[index] != 0x3C {
      if bytes[index] == 0x26 {
        try entity(into: &text)
      } else {
        if bytes[index] == 0x3E, index >= 2, bytes[index - 1] == 0x5D, bytes[index - 2] == 0x5D {
          throw invalidXML("']]>' in text")
        }
        text.append(bytes[index])
        index += 1
      }
    }
  }

  /// `&name;` or `&#N;` / `&#xN;` at `index`, appended as UTF-8.
  private mutating func entity(into text: inout [UInt8]) throws(ObjectStoreError) {
    let start = index + 1
    var end = start
    while end < bytes.count, bytes[end] != 0x3B {
      guard end - start < 12, bytes[end] != 0x3C, bytes[end] != 0x26, !isWhitespace(bytes[end]) else {
        throw invalidXML("an '&' that starts no entity")
      }
      end += 1
    }
    guard end < bytes.count else { throw invalidXML(truncatedMessage) }
    let name = Array(bytes[start..<end])
    index = end + 1
    switch name {
    case Array("lt".utf8): text.append(0x3C)
    case Array("gt".utf8): text.append(0x3E)
    case Array("amp".utf8): text.append(0x26)
    case Array("apos".utf8): text.append(0x27)
    case Array("quot".utf8): text.append(0x22)
    default:
      guard name.first == 0x23 else {
        throw invalidXML("unknown entity &\(String(decoding: name, as: UTF8.self));")
      }
      let hexadecimal = name.count > 1 && name[1] == 0x78
      let digits = name.dropFirst(hexadecimal ? 2 : 1)
      guard !digits.isEmpty, digits.count <= 8,
        let value = UInt32(String(decoding: digits, as: UTF8.self), radix: hexadecimal ? 16 : 10),
        digits.allSatisfy({ isHexDigit($0) && (hexadecimal || $0 <= 0x39) }),
        isXMLCharacter(value), let scalar = Unicode.Scalar(value)
      else {
        throw invalidXML("invalid character reference &\(String(decoding: name, as: UTF8.self));")
      }
      text += Array(String(Character(scalar)).utf8)
    }
  }

  private mutating func name() throws(ObjectStoreError) -> String {
    let start = index
    while index < bytes.count, isNameByte(bytes[index]) { index += 1 }
    guard index < bytes.count else { throw invalidXML(truncatedMessage) }
    guard index > start else { throw invalidXML("a tag or attribute without a name") }
    let first = bytes[start]
    guard !(first >= 0x30 && first <= 0x39), first != 0x2D, first != 0x2E else {
      throw invalidXML("a name starting with a digit, '-' or '.'")
    }
    // A prefixed name is `prefix:local`, both parts non-empty (Namespaces in XML, QName): `<:a>`,
    // `<a:>` or `<a:b:c>` would leave an element without a local name.
    let colons = bytes[start..<index].lazy.filter { $0 == 0x3A }.count
    guard colons == 0 || (colons == 1 && first != 0x3A && bytes[index - 1] != 0x3A) else {
      throw invalidXML("a malformed prefixed name")
    }
    return String(decoding: bytes[start..<index], as: UTF8.self)
  }

  private func has(_ literal: StaticString) -> Bool {
    let count = literal.utf8CodeUnitCount
    guard index + count <= bytes.count else { return false }
    return literal.withUTF8Buffer { bytes[index..<index + count].elementsEqual($0) }
  }

  /// Whether the input at `index` starts with `literal`, or with a prefix of it that runs to the end.
  private func hasPrefixOrTruncated(_ literal: StaticString) -> Bool {
    literal.withUTF8Buffer { literalBytes in
      let available = min(literalBytes.count, bytes.count - index)
      return bytes[index..<index + available].elementsEqual(literalBytes.prefix(available))
    }
  }

  /// Moves past the next `literal`, from `index` on.
  private mutating func skip(past literal: StaticString) throws(ObjectStoreError) {
    while index < bytes.count {
      if has(literal) {
        index += literal.utf8CodeUnitCount
        return
      }
      index += 1
    }
    throw invalidXML(truncatedMessage)
  }

  @discardableResult
  private mutating func skipWhitespace() -> Bool {
    let start = index
    while index < bytes.count, isWhitespace(bytes[index]) { index += 1 }
    return index > start
  }

  private mutating func expect(_ byte: UInt8) throws(ObjectStoreError) {
    guard index < bytes.count else { throw invalidXML(truncatedMessage) }
    guard bytes[index] == byte else {
      throw invalidXML("expected '\(Character(Unicode.Scalar(byte)))' at byte \(index)")
    }
    index += 1
  }
}

private func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

private func isHexDigit(_ byte: UInt8) -> Bool {
  (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)
}

/// Letters, digits, '_', ':', '-', '.', and any non-ASCII byte (names are checked as UTF-8 with the rest).
private func isNameByte(_ byte: UInt8) -> Bool {
  (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
    || byte == 0x5F || byte == 0x3A || byte == 0x2D || byte == 0x2E || byte >= 0x80
}

/// XML 1.0 `Char`: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
private func isXMLCharacter(_ value: UInt32) -> Bool {
  value == 0x9 || value == 0xA || value == 0xD || (0x20...0xD7FF).contains(value)
    || (0xE000...0xFFFD).contains(value) || (0x10000...0x10FFFF).contains(value)
}

private func localName(_ name: String) -> String {
  guard let colon = name.lastIndex(of: ":") else { return name }
  return String(name[name.index(after: colon)...])
}
