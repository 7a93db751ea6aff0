import Foundation
import Glibc
import ObjectStore
import TestSupport
import Testing

/// What only the local-directory store promises: nothing outside its root is reachable through a
/// symbolic link, and its ETag changes whenever the file is replaced or rewritten.
@Suite struct LocalDirectoryTests {
  @Test func aSymbolicLinkIsNeitherListedNorFollowed() throws {
    try withTemporaryDirectory { outside in
      try withTemporaryDirectory { root in
        try FileManager.default.createDirectory(atPath: root + "/dir", withIntermediateDirectories: false)
        #expect(FileManager.default.createFile(atPath: root + "/dir/real.log", contents: Data("inside".utf8)))
        #expect(FileManager.default.createFile(atPath: outside + "/secret.log", contents: Data("secret".utf8)))
        let links = [
          ("dir/to-file.log", "real.log"), ("dir/to-outside.log", outside + "/secret.log"),
          ("to-dir", "dir"), ("to-outside-dir", outside),
        ]
        for (link, target) in links { #expect(symlink(target, root + "/" + link) == 0, "\(link)") }
        let client = try LocalDirectoryClient(root: root)

        let top = try client.listAll(prefix: "", delimiter: "/")
        #expect(top.commonPrefixes == ["dir/"])
        #expect(top.objects.isEmpty)
        #expect(try client.listAll(prefix: "", delimiter: nil).objects.map(\.key) == ["dir/real.log"])

        for (link, _) in links {
          let headError = #expect(throws: ObjectStoreError.self) { try client.head(key: link) }
          #expect(headError?.kind == .notFound, "\(link)")
        }
        // open's O_NOFOLLOW refuses a link (ELOOP), which is no missing file.
        for link in ["dir/to-file.log", "dir/to-outside.log"] {
          let getError = #expect(throws: ObjectStoreError.self) { try client.getBytes(key: link, range: 0..<6) }
          #expect(getError?.kind == .accessDenied, "\(link)")
          #expect(getError?.message == "cannot open \(link) in \(root): errno \(ELOOP)")
        }

        let rootLink = outside + "/root-link"
        #expect(symlink(root, rootLink) == 0)
        let rootError = #expect(throws: ObjectStoreError.self) { try LocalDirectoryClient(root: rootLink) }
        #expect(rootError?.kind == .notFound)
        #expect(rootError?.message == "\(rootLink) is not a directory")
      }
    }
  }

  /// The ETag is made of the device, inode, size and modification time, so a cache keyed by it
  /// stays valid across versions only while this formula does.
  @Test func theETagIsTheFilesIdentitySizeAndModificationTime() throws {
    try withTemporaryDirectory { root in
      #expect(FileManager.default.createFile(atPath: root + "/a.log", contents: Data("twelve bytes".utf8)))
      var times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 0), timespec(tv_sec: 1_700_000_123, tv_nsec: 456_789)]
      #expect(utimensat(AT_FDCWD, root + "/a.log", &times, 0) == 0)
      var status = stat()
      #expect(lstat(root + "/a.log", &status) == 0)
      let client = try LocalDirectoryClient(root: root)
      let info = try client.head(key: "a.log")
      #expect(info.etag == "\"\(status.st_dev)-\(status.st_ino)-12-1700000123.456789\"")
      #expect(info.size == 12)
      #expect(info.lastModified == Timestamp(seconds: 1_700_000_123, nanoseconds: 456_789))
      #expect(try client.listAll(prefix: "", delimiter: nil).objects.map(\.etag) == [info.etag])
    }
  }
}
