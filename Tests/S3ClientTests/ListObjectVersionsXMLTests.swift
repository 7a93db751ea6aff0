import Foundation
import ObjectStore
import S3Client
import Testing

/// A ListObjectVersions page in the shape S3 sends (API reference, ListObjectVersions "Response
/// Syntax" and its example): versions and delete markers interleaved, newest first per key.
private let page = """
  <?xml version="1.0" encoding="UTF-8"?>
  <ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><Prefix>o/</Prefix>\
  <KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker><NextKeyMarker>o/b%2Bc.log</NextKeyMarker>\
  <NextVersionIdMarker>3/L4kqtJl40Nr8X8gdRQBpUMLUo</NextVersionIdMarker><MaxKeys>3</MaxKeys>\
  <EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>\
  <DeleteMarker><Key>o/a.log</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>\
  <LastModified>2026-11-10T17:50:30.000Z</LastModified><Owner><ID>1</ID></Owner></DeleteMarker>\
  <Version><Key>o/a.log</Key><VersionId>UIORUnfndfiufdisojhr398493jfdkjFJjkndnqUifhnw89493jJFJ</VersionId>\
  <IsLatest>false</IsLatest><LastModified>2026-11-01T17:50:30.000Z</LastModified>\
  <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>\
  <StorageClass>GLACIER</StorageClass><Owner><ID>1</ID></Owner></Version>\
  <Version><Key>o/b%2Bc.log</Key><VersionId>3/L4kqtJl40Nr8X8gdRQBpUMLUo</VersionId><IsLatest>true</IsLatest>\
  <LastModified>2026-11-02T00:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>5</Size>\
  <StorageClass>STANDARD</StorageClass></Version>\
  <CommonPrefixes><Prefix>o/dir/</Prefix></CommonPrefixes></ListVersionsResult>
  """

@Suite struct ListObjectVersionsXMLTests {
  @Test func aRealisticPage() throws {
    let parsed = try parseListObjectVersions(Array(page.utf8))
    #expect(parsed.versions.map(\.key) == ["o/a.log", "o/a.log", "o/b+c.log"])
    #expect(parsed.versions.map(\.isDeleteMarker) == [true, false, false])
    #expect(parsed.versions.map(\.isLatest) == [true, false, true])
    #expect(parsed.versions[0].versionID == "null")
    #expect(parsed.versions[1].size == 434_234)
    #expect(parsed.versions[1].etag == "\"fba9dede5f27731c9771645a39863328\"")
    #expect(parsed.versions[1].storage == ObjectStorage(storageClass: "GLACIER"))
    #expect(parsed.versions[2].storage == nil)
    #expect(parsed.versions[2].lastModified == Timestamp(seconds: 1_793_577_600))
    #expect(parsed.commonPrefixes == ["o/dir/"])
    #expect(parsed.nextKeyMarker == "o/b+c.log")
    #expect(parsed.nextVersionIDMarker == "3/L4kqtJl40Nr8X8gdRQBpUMLUo")
  }

  @Test func brokenPagesAreInvalid() {
    let broken = [
      page.replacingOccurrences(of: "<Size>5</Size>", with: ""),
      page.replacingOccurrences(of: "<VersionId>null</VersionId>", with: ""),
      page.replacingOccurrences(of: "<NextKeyMarker>o/b%2Bc.log</NextKeyMarker>", with: ""),
      page.replacingOccurrences(of: "<IsLatest>false</IsLatest>", with: "<IsLatest>maybe</IsLatest>"),
      page.replacingOccurrences(of: "ListVersionsResult", with: "ListBucketResult"),
    ]
    for body in broken {
      #expect(throws: ObjectStoreError.self) { try parseListObjectVersions(Array(body.utf8)) }
    }
  }
}
