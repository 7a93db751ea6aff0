import ObjectStore
import S3Client
import TestSupport
import Testing

/// A ListObjectsV2 page in the shape S3 sends (API reference, ListObjectsV2 "Response Syntax" and
/// examples): prolog, namespace, one line, entity-quoted ETags, extra elements the client ignores.
private let truncatedPage = """
  <?xml version="1.0" encoding="UTF-8"?>
  <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>acme-buildkite-logs</Name>\
  <Prefix>0190f1c2-aaaa/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys><Delimiter>/</Delimiter>\
  <IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\
  <Contents><Key>0190f1c2-aaaa/build-1/job-1.log</Key><LastModified>2023-10-12T17:50:30.000Z</LastModified>\
  <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm>\
  <ChecksumType>FULL_OBJECT</ChecksumType><Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>\
  <Contents><Key>0190f1c2-aaaa/build-1/job-2.log</Key><LastModified>2009-10-12T17:50:30.123456789Z</LastModified>\
  <ETag>"599bab3ed2c697f1d26842727561fd94-2"</ETag><Size>18446744073709551615</Size>\
  <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID></Owner>\
  <StorageClass>STANDARD</StorageClass></Contents>\
  <CommonPrefixes><Prefix>0190f1c2-aaaa/build-2/</Prefix></CommonPrefixes></ListBucketResult>
  """

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func listing(_ inner: String, encodingType: String? = nil) -> [UInt8] {
  let encoding = encodingType.map { "<EncodingType>\($0)</EncodingType>" } ?? ""
  return bytes(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      + "<Name>b</Name>\(encoding)<IsTruncated>false</IsTruncated>\(inner)</ListBucketResult>")
}

private func contents(_ key: String, size: String = "1") -> String {
  "<Contents><Key>\(key)</Key><LastModified>2023-10-12T17:50:30.000Z</LastModified><ETag>&quot;e&quot;</ETag>"
    + "<Size>\(size)</Size></Contents>"
}

private func invalidResponse(_ body: [UInt8], urlEncoded: Bool = false) -> String? {
  do {
    _ = try parseListObjectsV2(body, urlEncoded: urlEncoded)
    return nil
  } catch {
    return error.kind == .invalidResponse ? error.message : "wrong kind \(error.kind): \(error.message)"
  }
}

@Suite struct ListObjectsXMLTests {
  @Test func realisticTruncatedPage() throws {
    let page = try parseListObjectsV2(bytes(truncatedPage), urlEncoded: false)
    #expect(
      page.objects == [
        ObjectInfo(
          key: "0190f1c2-aaaa/build-1/job-1.log", size: 434_234, lastModified: Timestamp(seconds: 1_697_133_030),
          etag: "\"fba9dede5f27731c9771645a39863328\""),
        ObjectInfo(
          key: "0190f1c2-aaaa/build-1/job-2.log", size: UInt64.max,
          lastModified: Timestamp(seconds: 1_255_369_830, nanoseconds: 123_456_789),
          etag: "\"599bab3ed2c697f1d26842727561fd94-2\""),
      ])
    #expect(page.commonPrefixes == ["0190f1c2-aaaa/build-2/"])
    #expect(page.nextContinuationToken == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
  }

  @Test func lastPageAndEmptyListing() throws {
    let last = try parseListObjectsV2(listing(contents("a")), urlEncoded: false)
    #expect(last.nextContinuationToken == nil)
    #expect(last.objects.map(\.key) == ["a"])
    let empty = try parseListObjectsV2(
      bytes(
        "<ListBucketResult><Name>b</Name><Prefix>none/</Prefix><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>"
      ),
      urlEncoded: false)
    #expect(empty == ListPage(objects: [], commonPrefixes: [], nextContinuationToken: nil))
    // Self-closing and whitespace-laden (pretty-printed) forms.
    let pretty = try parseListObjectsV2(
      bytes(
        """
        <?xml version="1.0"?>
        <!-- a comment before -->
        <ListBucketResult xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>
          <Prefix/>
          <IsTruncated>false</IsTruncated>
          <Contents>
            <Key>k</Key>
            <LastModified>2023-10-12T17:50:30Z</LastModified>
            <ETag>"x"</ETag>
            <Size>0</Size>
          </Contents>
        </ListBucketResult>
        <!-- and after -->

        """), urlEncoded: false)
    #expect(pretty.objects.map(\.key) == ["k"])
  }

  @Test func truncatedAtEveryOffsetThrows() {
    let whole = bytes(truncatedPage)
    for length in 0..<whole.count {
      let message = invalidResponse(Array(whole[..<length]))
      #expect(message != nil, "the first \(length) bytes were accepted")
      if let message { #expect(!message.hasPrefix("wrong kind"), "\(length): \(message)") }
    }
    // The last element's close tag cut short is reported as truncation, in plain words.
    let message = invalidResponse(Array(whole.dropLast(3)))
    #expect(message?.contains("ended before it was complete") == true, "\(message ?? "")")
  }

  @Test func entitiesAndCDATA() throws {
    let page = try parseListObjectsV2(
      listing(
        contents("a&amp;b&lt;c&gt;d&apos;e&quot;f") + contents("&#65;&#x42;&#x1F600;&#233;")
          + contents("<![CDATA[x<y>&amp;]]>z") + contents("<![CDATA[]]>e<!-- c -->nd")),
      urlEncoded: false)
    #expect(page.objects.map(\.key) == ["a&b<c>d'e\"f", "AB\u{1F600}é", "x<y>&amp;z", "end"])
    #expect(page.objects[0].etag == "\"e\"")
  }

  @Test func badEntitiesAreRejected() {
    for key in [
      "&nbsp;", "&amp", "a & b", "&#0;", "&#xD800;", "&#x110000;", "&#xFFFE;", "&#1a;", "&#x;", "&#;", "&;",
      "&#99999999999;",
    ] {
      #expect(invalidResponse(listing(contents(key))) != nil, "\(key)")
    }
  }

  @Test func urlEncodedKeys() throws {
    let page = try parseListObjectsV2(
      listing(
        contents("a+b.txt") + contents("a%2Bb.txt") + contents("100%25.csv") + contents("%ED%95%9C%EA%B8%80/x.txt")
          + contents("line%0Abreak%0D") + contents("sp%20ace%3f")
          + "<CommonPrefixes><Prefix>run+books/</Prefix></CommonPrefixes>",
        encodingType: "url"), urlEncoded: true)
    #expect(
      page.objects.map(\.key) == ["a b.txt", "a+b.txt", "100%.csv", "한글/x.txt", "line\nbreak\r", "sp ace?"])
    #expect(page.commonPrefixes == ["run books/"])
    for bad in ["%", "%4", "%zz"] {
      #expect(invalidResponse(listing(contents(bad), encodingType: "url"), urlEncoded: true) != nil, "\(bad)")
    }
  }

  @Test func echoedRequestFieldsDoNotFailThePage() throws {
    // What Ceph's RADOS Gateway sends for prefix "dir 100%/": the keys url-encoded, the echoed
    // Prefix, StartAfter and Delimiter raw, a '%' among them that is no escape; and its token, a raw key.
    let page = try parseListObjectsV2(
      listing(
        "<Prefix>dir 100%/</Prefix><StartAfter>dir 100%/a+b</StartAfter><Delimiter>%</Delimiter><MaxKeys>1</MaxKeys>"
          + contents("dir%20100%25%2Fx.log"), encodingType: "url"), urlEncoded: true)
    #expect(page.objects.map(\.key) == ["dir 100%/x.log"])
    let truncated = try parseListObjectsV2(
      bytes(
        "<ListBucketResult><Prefix>dir 100%/</Prefix><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
          + "<NextContinuationToken>dir 100%/x.log</NextContinuationToken></ListBucketResult>"), urlEncoded: true)
    #expect(truncated.nextContinuationToken == "dir 100%/x.log")
  }

  @Test func keysThatAreNotUTF8AreSetApartAndTheRestOfThePageStands() throws {
    // S3 keys are UTF-8; a buggy or hostile server can still send %FF. Such a key cannot be a
    // String: it is reported as sent, and the other keys are listed.
    let page = try parseListObjectsV2(
      listing(
        contents("ok.log") + contents("bad%FF.log") + contents("half%C3") + contents("nul%00.log")
          + "<CommonPrefixes><Prefix>dir%FE/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes>",
        encodingType: "url"), urlEncoded: true)
    #expect(page.objects.map(\.key) == ["ok.log", "nul\u{0}.log"])
    #expect(page.commonPrefixes == ["d/"])
    #expect(page.undecodableKeys == ["bad%FF.log", "half%C3", "dir%FE/"])
    #expect(invalidResponse(listing(contents("k"), encodingType: "base64"), urlEncoded: true) != nil)
  }

  @Test func withoutEncodingTypeKeysAreRaw() throws {
    // A server that ignores encoding-type=url sends raw keys and no EncodingType: they stay as sent.
    let page = try parseListObjectsV2(listing(contents("a+b%25")), urlEncoded: true)
    #expect(page.objects.map(\.key) == ["a+b%25"])
  }

  @Test func missingOrBadFieldsAreInvalid() {
    let noKey = "<Contents><LastModified>2023-10-12T17:50:30.000Z</LastModified><Size>1</Size></Contents>"
    let noSize = "<Contents><Key>k</Key><LastModified>2023-10-12T17:50:30.000Z</LastModified></Contents>"
    let noDate = "<Contents><Key>k</Key><Size>1</Size></Contents>"
    for inner in [
      noKey, noSize, noDate, contents("k", size: "-1"), contents("k", size: "1.5"), contents("k", size: ""),
      contents("k", size: "18446744073709551616"), contents("k", size: " 1"), contents("k", size: "+1"),
      "<Contents><Key>k</Key><Key>l</Key><LastModified>2023-10-12T17:50:30.000Z</LastModified><Size>1</Size></Contents>",
      "<Contents><Key><b>k</b></Key><LastModified>2023-10-12T17:50:30.000Z</LastModified><Size>1</Size></Contents>",
      "<Contents><Key>k</Key><LastModified>2023-13-12T17:50:30.000Z</LastModified><Size>1</Size></Contents>",
      "<Contents><Key>k</Key><LastModified>yesterday</LastModified><Size>1</Size></Contents>",
      "<CommonPrefixes></CommonPrefixes>",
    ] {
      #expect(invalidResponse(listing(inner)) != nil, "\(inner)")
    }
    // IsTruncated true with no token.
    #expect(invalidResponse(bytes("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")) != nil)
    #expect(invalidResponse(bytes("<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>")) != nil)
    #expect(invalidResponse(bytes("<ListAllMyBucketsResult></ListAllMyBucketsResult>")) != nil)
  }

  @Test func malformedXMLIsRejected() {
    for text in [
      "", "   ", "<ListBucketResult>", "<ListBucketResult></ListBucketresult>", "<ListBucketResult></Other>",
      "<ListBucketResult><a></b></ListBucketResult>", "<ListBucketResult/><ListBucketResult/>",
      "text<ListBucketResult/>", "<ListBucketResult/>text", "<ListBucketResult a=b/>",
      "<ListBucketResult a=\"<\"/>", "<ListBucketResult a=\"1\"b=\"2\"/>", "<1a/>", "< ListBucketResult/>",
      "<ListBucketResult>]]></ListBucketResult>", "<![CDATA[x]]><ListBucketResult/>", "<!ELEMENT x>",
      "<ListBucketResult>\u{01}</ListBucketResult>", "<ListBucketResult>\u{FFFF}</ListBucketResult>",
      "<!-- never closed <ListBucketResult/>", "<?xml version=\"1.0\"",
    ] {
      #expect(invalidResponse(bytes(text)) != nil, "\(text)")
    }
    // Invalid UTF-8 in text.
    #expect(
      invalidResponse(bytes("<ListBucketResult><Name>") + [0xC3, 0x28] + bytes("</Name></ListBucketResult>")) != nil)
    #expect(invalidResponse(listing(contents("a")).map { $0 == 0x61 ? 0xFF : $0 }) != nil)
  }

  @Test func doctypeIsRejected() {
    let xxe = """
      <?xml version="1.0"?>
      <!DOCTYPE ListBucketResult [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
      <ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>&xxe;</Key><Size>1</Size>\
      <LastModified>2023-10-12T17:50:30.000Z</LastModified></Contents></ListBucketResult>
      """
    let message = invalidResponse(bytes(xxe))
    #expect(message?.contains("DOCTYPE") == true, "\(message ?? "accepted")")
    #expect(invalidResponse(bytes("<!DOCTYPE x><ListBucketResult/>")) != nil)
  }

  @Test func deepNestingIsRejected() throws {
    let depth = 10_000
    let deep = String(repeating: "<a>", count: depth) + String(repeating: "</a>", count: depth)
    let message = invalidResponse(bytes("<ListBucketResult>" + deep + "</ListBucketResult>"))
    #expect(message?.contains("nested deeper") == true, "\(message ?? "accepted")")
    // 32 levels are fine, 33 are not.
    let reader = XMLReader()
    #expect(throws: Never.self) {
      _ = try reader.parse(bytes(String(repeating: "<a>", count: 32) + String(repeating: "</a>", count: 32)))
    }
    #expect(throws: ObjectStoreError.self) {
      _ = try reader.parse(bytes(String(repeating: "<a>", count: 33) + String(repeating: "</a>", count: 33)))
    }
  }

  @Test func errorBodyInsteadOfListing() {
    let body = bytes(
      """
      <?xml version="1.0" encoding="UTF-8"?>
      <Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>\
      <BucketName>acme-buildkite-logs</BucketName><RequestId>4442587FB7D0A2F9</RequestId>\
      <HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>
      """)
    #expect {
      _ = try parseListObjectsV2(body, urlEncoded: true)
    } throws: { error in
      let error = error as! ObjectStoreError
      return error.kind == .noSuchBucket
        && error.message == "S3 error NoSuchBucket: The specified bucket does not exist (bucket acme-buildkite-logs)"
    }
  }

  @Test func errorBodies() {
    let redirect = parseS3Error(
      bytes(
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed \
        using the specified endpoint. Please send all future requests to this endpoint.</Message>\
        <Endpoint>b.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>b</Bucket><RequestId>R</RequestId>\
        <HostId>H</HostId></Error>
        """))
    #expect(redirect?.code == "PermanentRedirect")
    #expect(redirect?.bucketName == "b")
    #expect(redirect?.endpoint == "b.s3.eu-west-1.amazonaws.com")
    #expect(redirect?.region == nil)
    #expect(redirect?.requestID == "R")

    let malformed = parseS3Error(
      bytes(
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; \
        the region &apos;us-east-1&apos; is wrong; expecting &apos;eu-west-1&apos;</Message>\
        <Region>eu-west-1</Region><RequestId>R</RequestId><HostId>H</HostId></Error>
        """))
    #expect(malformed?.code == "AuthorizationHeaderMalformed")
    #expect(malformed?.region == "eu-west-1")
    #expect(malformed?.message.contains("region 'us-east-1' is wrong") == true)
    #expect(malformed?.objectStoreError.kind == .invalidResponse)

    let denied = parseS3Error(
      bytes(
        "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match"
          + "</Message><AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256</StringToSign>"
          + "</Error>"))
    #expect(denied?.objectStoreError.kind == .accessDenied)
    #expect(denied?.objectStoreError.message.contains("AKIDEXAMPLE") == false)

    // An archived object is not a refusal of the credentials.
    let archived = parseS3Error(
      bytes(
        "<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object's storage "
          + "class</Message><StorageClass>DEEP_ARCHIVE</StorageClass><RequestId>R</RequestId></Error>"))
    #expect(archived?.storageClass == "DEEP_ARCHIVE")
    #expect(archived?.objectStoreError.kind == .archived)
    #expect(
      archived?.objectStoreError.message.contains("archive storage class (DEEP_ARCHIVE) and not restored") == true)

    // RGW's refusals carry no message: ours names the key to check.
    let rgwSignature = parseS3Error(
      bytes(
        "<Error><Code>SignatureDoesNotMatch</Code><Message></Message><RequestId>tx1</RequestId>"
          + "<HostId>1010-default-default</HostId></Error>"))
    #expect(rgwSignature?.objectStoreError.kind == .accessDenied)
    #expect(rgwSignature?.objectStoreError.message.hasSuffix("the secret access key is probably wrong") == true)
    let rgwKey = parseS3Error(bytes("<Error><Code>InvalidAccessKeyId</Code><Message></Message></Error>"))
    #expect(rgwKey?.explanation?.hasSuffix("the access key is probably wrong") == true)
    #expect(parseS3Error(bytes("<Error><Code>AccessDenied</Code><Message></Message></Error>"))?.explanation == nil)
    #expect(denied?.explanation == "The request signature we calculated does not match")

    #expect(parseS3Error(bytes(truncatedPage)) == nil)
    #expect(parseS3Error(bytes("<Error><Code>X</Code>")) == nil)
    #expect(parseS3Error(bytes("Service Unavailable")) == nil)
    #expect(parseS3Error([]) == nil)
  }
}
