import ObjectStore
import S3Client
import Testing

private func listing(_ contents: String) -> [UInt8] {
  Array(
    ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      + "<Name>b</Name><IsTruncated>false</IsTruncated>\(contents)</ListBucketResult>").utf8)
}

/// A `<Contents>` as S3 sends it with `x-amz-optional-object-attributes: RestoreStatus` (API
/// reference, ListObjectsV2 "Response Syntax": `StorageClass`, then `RestoreStatus`).
private func contents(_ key: String, storageClass: String?, restoreStatus: String? = nil) -> String {
  "<Contents><Key>\(key)</Key><LastModified>2023-10-12T17:50:30.000Z</LastModified><ETag>&quot;e&quot;</ETag>"
    + "<Size>5</Size>" + (storageClass.map { "<StorageClass>\($0)</StorageClass>" } ?? "")
    + (restoreStatus.map { "<RestoreStatus>\($0)</RestoreStatus>" } ?? "") + "</Contents>"
}

@Suite struct StorageClassTests {
  /// Each class and restore state a listing can give, as S3 writes them; STANDARD (or none said)
  /// costs nothing (nil).
  @Test func listingsCarryStorageClassAndRestoreStatus() throws {
    let body = listing(
      contents("a", storageClass: "STANDARD") + contents("b", storageClass: nil)
        + contents("c", storageClass: "GLACIER")
        + contents("d", storageClass: "DEEP_ARCHIVE", restoreStatus: "<IsRestoreInProgress>true</IsRestoreInProgress>")
        + contents(
          "e", storageClass: "GLACIER",
          restoreStatus:
            "<IsRestoreInProgress>false</IsRestoreInProgress><RestoreExpiryDate>2012-12-21T00:00:00.000Z</RestoreExpiryDate>"
        ) + contents("f", storageClass: "GLACIER_IR") + contents("g", storageClass: "INTELLIGENT_TIERING"))
    for reliable in [false, true] {
      let objects = try parseListObjectsV2(body, urlEncoded: false, restoreStatusIsReliable: reliable).objects
      #expect(objects.map(\.key) == ["a", "b", "c", "d", "e", "f", "g"])
      #expect(objects[0].storage == nil)
      #expect(objects[1].storage == nil)
      // Without a RestoreStatus, an archived object is not restored only where the server honours
      // the header; elsewhere its state is unknown (a HEAD decides).
      #expect(objects[2].storage == ObjectStorage(storageClass: "GLACIER", restore: reliable ? .notRestored : nil))
      #expect(objects[2].storage?.isReadable == (reliable ? false : nil))
      #expect(objects[3].storage == ObjectStorage(storageClass: "DEEP_ARCHIVE", restore: .inProgress))
      #expect(objects[3].storage?.isReadable == false)
      #expect(
        objects[4].storage
          == ObjectStorage(storageClass: "GLACIER", restore: .restored(expiry: Timestamp(seconds: 1_356_048_000))))
      #expect(objects[4].storage?.isReadable == true)
      #expect(objects[5].storage?.isReadable == true)
      #expect(objects[5].storage?.isArchiveClass == false)
      // An INTELLIGENT_TIERING object reads until S3 says it moved to an archive tier.
      #expect(objects[6].storage == ObjectStorage(storageClass: "INTELLIGENT_TIERING"))
      #expect(objects[6].storage?.isReadable == true)
    }
  }

  /// A storage class and a version cost an object of a listing one word when it has neither, as most
  /// have: listings and the runs of keys a mount keeps hold hundreds of thousands.
  @Test func anObjectWithoutThemCostsOneWordMore() {
    #expect(MemoryLayout<ObjectInfo>.size <= 8 * 8)
    var object = ObjectInfo(key: "k", size: 1, lastModified: Timestamp(seconds: 1), etag: "e")
    #expect(object.storage == nil && object.versionID == nil)
    object.versionID = "v1"
    let copy = object
    object.storage = ObjectStorage(storageClass: "GLACIER")
    #expect(copy.storage == nil && copy.versionID == "v1")
    #expect(object.storage?.storageClass == "GLACIER" && object.versionID == "v1")
    object.storage = nil
    object.versionID = nil
    #expect(object == ObjectInfo(key: "k", size: 1, lastModified: Timestamp(seconds: 1), etag: "e"))
  }

  /// The storage_class attribute reads back as the storage it shows (bklogfs restore reads it).
  @Test func theAttributeValueReadsBack() {
    for storage in [
      ObjectStorage(storageClass: "STANDARD"), ObjectStorage(storageClass: "GLACIER"),
      ObjectStorage(storageClass: "INTELLIGENT_TIERING", archiveTier: "DEEP_ARCHIVE_ACCESS"),
    ] {
      let read = ObjectStorage(attributeValue: storage.attributeValue)
      #expect(read == storage)
      #expect(read.isArchiveClass == storage.isArchiveClass)
    }
    #expect(
      ObjectStorage(storageClass: "INTELLIGENT_TIERING", archiveTier: "ARCHIVE_ACCESS").attributeValue
        == "INTELLIGENT_TIERING ARCHIVE_ACCESS")
  }

  @Test func malformedRestoreStatusIsInvalid() {
    for status in [
      "<IsRestoreInProgress>maybe</IsRestoreInProgress>",
      "<IsRestoreInProgress>false</IsRestoreInProgress><RestoreExpiryDate>soon</RestoreExpiryDate>",
    ] {
      #expect(throws: ObjectStoreError.self) {
        try parseListObjectsV2(
          listing(contents("k", storageClass: "GLACIER", restoreStatus: status)), urlEncoded: false)
      }
    }
  }

  /// HEAD's headers, as S3 documents them (HeadObject: `x-amz-storage-class`, `x-amz-restore`,
  /// `x-amz-archive-status`); a HEAD always tells, so no `x-amz-restore` is "not restored".
  @Test func headAnswersGiveStorage() {
    #expect(headStorage([:]) == nil)
    #expect(headStorage(["x-amz-storage-class": "STANDARD_IA"]) == ObjectStorage(storageClass: "STANDARD_IA"))
    #expect(
      headStorage(["x-amz-storage-class": "GLACIER"]) == ObjectStorage(storageClass: "GLACIER", restore: .notRestored))
    #expect(
      headStorage(["x-amz-storage-class": "DEEP_ARCHIVE", "x-amz-restore": "ongoing-request=\"true\""])
        == ObjectStorage(storageClass: "DEEP_ARCHIVE", restore: .inProgress))
    #expect(
      headStorage([
        "x-amz-storage-class": "GLACIER",
        "x-amz-restore": "ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\"",
      ]) == ObjectStorage(storageClass: "GLACIER", restore: .restored(expiry: Timestamp(seconds: 1_356_048_000))))
    let tiered = headStorage([
      "x-amz-storage-class": "INTELLIGENT_TIERING", "x-amz-archive-status": "DEEP_ARCHIVE_ACCESS",
    ])
    #expect(tiered?.archiveTier == "DEEP_ARCHIVE_ACCESS")
    #expect(tiered?.isReadable == false)
    #expect(parseRestoreHeader("garbage") == nil)
    #expect(parseRestoreHeader("ongoing-request=\"false\"") == .restored(expiry: nil))
  }

  /// A read refused as `InvalidObjectState` says what S3 said of the object, for the file to show.
  @Test func refusalsCarryTheStorage() {
    let glacier = parseS3Error(
      Array(
        ("<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object's storage class"
          + "</Message><StorageClass>GLACIER</StorageClass></Error>").utf8))
    #expect(glacier?.objectStoreError.storage == ObjectStorage(storageClass: "GLACIER", restore: .notRestored))
    let tiered = parseS3Error(
      Array(
        ("<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object's access tier"
          + "</Message><StorageClass>INTELLIGENT_TIERING</StorageClass><AccessTier>ARCHIVE_ACCESS</AccessTier></Error>")
          .utf8))
    #expect(
      tiered?.objectStoreError.storage
        == ObjectStorage(storageClass: "INTELLIGENT_TIERING", restore: .notRestored, archiveTier: "ARCHIVE_ACCESS"))
    #expect(tiered?.objectStoreError.message.contains("ARCHIVE_ACCESS") == true)
  }
}
