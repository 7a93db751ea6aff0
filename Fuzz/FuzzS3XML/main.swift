// Fuzzes what S3 sends back: the XML reader, ListObjectsV2 pages, `<Error>` bodies and HTTP dates.
// Any input gives a value or an `.invalidResponse` error; a tree is never deeper than the reader's
// limit; and a page that parses is written back as XML (keys url-encoded) and parses to the same page,
// the keys it set apart as not UTF-8 included.
import FuzzDriver
import ObjectStore
import S3Client

let reader = XMLReader()

runFuzzer { input in
  let bytes = Array(input)
  do throws(ObjectStoreError) {
    let root = try reader.parse(bytes)
    checkTree(root, depth: 1)
  } catch {
    requireInvalidResponse(error)
  }

  do throws(ObjectStoreError) {
    let page = try parseListObjectsV2(bytes, urlEncoded: true)
    require(page.nextContinuationToken.map { !$0.isEmpty } ?? true, "an empty continuation token")
    let again: ListPage
    do throws(ObjectStoreError) {
      again = try parseListObjectsV2(listingXML(page), urlEncoded: true)
    } catch {
      require(false, "the page written back does not parse: \(error.message)")
      return
    }
    require(again.objects.count == page.objects.count, "the page written back has other objects")
    for (first, second) in zip(page.objects, again.objects) {
      require(
        first.key == second.key && first.size == second.size && first.etag == second.etag, "\(first) != \(second)")
      if isoText(first.lastModified) != nil {
        require(first.lastModified == second.lastModified, "\(first.lastModified) != \(second.lastModified)")
      }
    }
    require(again.commonPrefixes == page.commonPrefixes, "the page written back has other prefixes")
    require(again.nextContinuationToken == page.nextContinuationToken, "the page written back has another token")
    require(again.undecodableKeys == page.undecodableKeys, "the page written back has other undecodable keys")
  } catch {
    // An `<Error>` body throws S3's own error, of whatever kind its code says; anything else is invalid.
    if parseS3Error(bytes) == nil { requireInvalidResponse(error) }
  }

  if let body = parseS3Error(bytes) {
    require(!body.objectStoreError.message.isEmpty, "an S3 error without a message")
  }
  _ = parseHTTPDate(String(decoding: bytes, as: UTF8.self))
}

func requireInvalidResponse(_ error: ObjectStoreError) {
  require(error.kind == .invalidResponse, "a malformed body gave \(error.kind), not .invalidResponse")
  require(error.message.hasPrefix("S3 sent "), "an unclear error: \(error.message)")
}

func checkTree(_ element: XMLElement, depth: Int) {
  require(depth <= reader.maxDepth, "an element at depth \(depth)")
  require(!element.name.isEmpty && !element.name.contains(":"), "element name \(element.name)")
  for child in element.children { checkTree(child, depth: depth + 1) }
}

// MARK: - Writing a page back

func escaped(_ text: String) -> String {
  var out = ""
  for scalar in text.unicodeScalars {
    switch scalar {
    case "&": out += "&amp;"
    case "<": out += "&lt;"
    case ">": out += "&gt;"
    case "\r": out += "&#13;"
    default: out.unicodeScalars.append(scalar)
    }
  }
  return out
}

/// `encoding-type=url` as S3 writes it: every byte but the unreserved ones as %XX.
func urlEncoded(_ text: String) -> String {
  let hex = Array("0123456789ABCDEF".unicodeScalars)
  var out = ""
  for byte in text.utf8 {
    if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
      || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E || byte == 0x2F
    {
      out.unicodeScalars.append(Unicode.Scalar(byte))
    } else {
      out += "%"
      out.unicodeScalars.append(hex[Int(byte >> 4)])
      out.unicodeScalars.append(hex[Int(byte & 0xF)])
    }
  }
  return out
}

/// `2023-10-12T17:50:30.123456789Z`; nil for a year outside 0000–9999.
func isoText(_ time: Timestamp) -> String? {
  let compact = Array(amzDate(epochSeconds: time.seconds))  // 20231012T175030Z
  guard compact.count == 16, time.seconds >= -62_167_219_200, time.seconds < 253_402_300_800 else { return nil }
  let nanoseconds = String(time.nanoseconds)
  let fraction = String(repeating: "0", count: 9 - nanoseconds.count) + nanoseconds
  return String(compact[0..<4]) + "-" + String(compact[4..<6]) + "-" + String(compact[6..<8]) + "T"
    + String(compact[9..<11]) + ":" + String(compact[11..<13]) + ":" + String(compact[13..<15]) + "." + fraction + "Z"
}

func listingXML(_ page: ListPage) -> [UInt8] {
  var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>b</Name>"
  xml += "<EncodingType>url</EncodingType><IsTruncated>\(page.nextContinuationToken != nil)</IsTruncated>"
  if let token = page.nextContinuationToken {
    xml += "<NextContinuationToken>\(escaped(token))</NextContinuationToken>"
  }
  for object in page.objects {
    xml += "<Contents><Key>\(urlEncoded(object.key))</Key>"
    xml += "<LastModified>\(isoText(object.lastModified) ?? "2000-01-01T00:00:00Z")</LastModified>"
    xml += "<ETag>\(escaped(object.etag))</ETag><Size>\(object.size)</Size></Contents>"
  }
  // Set apart as sent (still url-encoded): written back as sent.
  for raw in page.undecodableKeys {
    xml +=
      "<Contents><Key>\(escaped(raw))</Key><LastModified>2000-01-01T00:00:00Z</LastModified><Size>0</Size></Contents>"
  }
  for prefix in page.commonPrefixes { xml += "<CommonPrefixes><Prefix>\(urlEncoded(prefix))</Prefix></CommonPrefixes>" }
  return Array((xml + "</ListBucketResult>").utf8)
}
