import Glibc
import SystemBase
import SystemPackage
import TestSupport
import Testing

@Suite struct MakeDirectoriesTests {
  @Test func createsEveryMissingLevelPrivateToTheUser() throws {
    try withTemporaryDirectory { (directory: String) throws in
      let previous = umask(0o022)
      defer { umask(previous) }
      let path = directory + "/a/b/c"
      try FileSystem.makeDirectories(path, permissions: .ownerReadWriteExecute)
      for level in [directory + "/a", directory + "/a/b", path] {
        let info = try #require(try FileSystem.stat(level))
        #expect(info.type == .directory, "\(level)")
        #expect(info.permissions == .ownerReadWriteExecute, "\(level)")
      }
    }
  }

  @Test func isIdempotentAndLeavesExistingDirectoriesAsTheyAre() throws {
    try withTemporaryDirectory { (directory: String) throws in
      #expect(mkdir(directory + "/shared", 0o755) == 0)
      #expect(chmod(directory + "/shared", 0o755) == 0)
      let path = directory + "/shared/private/"
      try FileSystem.makeDirectories(path, permissions: .ownerReadWriteExecute)
      try FileSystem.makeDirectories(path, permissions: .ownerReadWriteExecute)
      #expect(try FileSystem.stat(directory + "/shared")?.permissions.rawValue == 0o755)
      #expect(try FileSystem.stat(directory + "/shared/private")?.type == .directory)
    }
  }

  @Test func aFileInTheWayIsNamed() throws {
    try withTemporaryDirectory { (directory: String) throws in
      let file = directory + "/file"
      #expect(FileManagerless.createFile(file))
      for path in [file + "/below/deeper", file] {
        let error = #expect(throws: SystemCallError.self) {
          try FileSystem.makeDirectories(path, permissions: .ownerReadWriteExecute)
        }
        #expect(error?.function == "mkdir")
        #expect(error?.path == file)
        #expect(error?.errno == .notDirectory)
        #expect(error?.description == "mkdir(\(file)): Not a directory (errno 20)")
      }
    }
  }

  @Test func makesTheParentsOfAFileButNotTheFile() throws {
    try withTemporaryDirectory { (directory: String) throws in
      try FileSystem.makeParentDirectories(
        of: directory + "/logs/today/bklogfs.log", permissions: .ownerReadWriteExecute)
      #expect(try FileSystem.stat(directory + "/logs/today")?.type == .directory)
      #expect(try FileSystem.stat(directory + "/logs/today/bklogfs.log") == nil)
      // A bare name has no parent to make.
      try FileSystem.makeParentDirectories(of: "bklogfs.log", permissions: .ownerReadWriteExecute)
    }
  }
}

@Suite struct FileSystemTests {
  @Test func listsADirectoryWithoutDotAndDotDot() throws {
    try withTemporaryDirectory { (directory: String) throws in
      #expect(try FileSystem.listDirectory(directory).isEmpty)
      #expect(FileManagerless.createFile(directory + "/a"))
      #expect(FileManagerless.createFile(directory + "/b c"))
      #expect(mkdir(directory + "/d", 0o700) == 0)
      #expect(try FileSystem.listDirectory(directory).sorted() == ["a", "b c", "d"])

      let missing = #expect(throws: SystemCallError.self) { try FileSystem.listDirectory(directory + "/none") }
      #expect(missing?.function == "opendir")
      #expect(missing?.path == directory + "/none")
      #expect(missing?.errno == .noSuchFileOrDirectory)
      let notDirectory = #expect(throws: SystemCallError.self) { try FileSystem.listDirectory(directory + "/a") }
      #expect(notDirectory?.errno == .notDirectory)
    }
  }

  /// A name that is not UTF-8 comes back as its bytes, so it can be told apart and named.
  @Test func listsNamesAsTheirBytes() throws {
    try withTemporaryDirectory { (directory: String) throws in
      let bad: [UInt8] = Array("bad".utf8) + [0xFF] + Array("name.log".utf8)
      let path = Array(directory.utf8) + [UInt8(ascii: "/")] + bad + [0]
      let descriptor = path.withUnsafeBufferPointer { buffer in
        buffer.withMemoryRebound(to: CChar.self) {
          open($0.baseAddress!, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        }
      }
      #expect(descriptor >= 0)
      close(descriptor)
      #expect(FileManagerless.createFile(directory + "/é.log"))
      let names = try FileSystem.listDirectoryBytes(directory)
      #expect(Set(names) == [bad, Array("é.log".utf8)])
      // The String listing cannot keep the byte: it is replaced.
      #expect(try FileSystem.listDirectory(directory).sorted() == ["bad\u{FFFD}name.log", "é.log"])

      let missing = #expect(throws: SystemCallError.self) { try FileSystem.listDirectoryBytes(directory + "/none") }
      #expect(missing?.function == "opendir")
      #expect(missing?.errno == .noSuchFileOrDirectory)
    }
  }

  @Test func lstatDescribesASymbolicLinkAndStatWhatItPointsAt() throws {
    try withTemporaryDirectory { (directory: String) throws in
      let target = directory + "/target"
      #expect(FileManagerless.createFile(target))
      #expect(symlink("target", directory + "/link") == 0)
      #expect(symlink("gone", directory + "/dangling") == 0)
      #expect(try FileSystem.stat(directory + "/link", followingSymlinks: false)?.type == .symbolicLink)
      #expect(try FileSystem.stat(directory + "/link")?.type == .regular)
      #expect(try FileSystem.stat(directory + "/dangling", followingSymlinks: false)?.type == .symbolicLink)
      #expect(try FileSystem.stat(directory + "/dangling") == nil)
      #expect(try FileSystem.stat(directory + "/none", followingSymlinks: false) == nil)

      let error = #expect(throws: SystemCallError.self) {
        try FileSystem.stat(target + "/below", followingSymlinks: false)
      }
      #expect(error?.function == "lstat")
      #expect(error?.path == target + "/below")
      #expect(error?.errno == .notDirectory)
    }
  }

  @Test func theModificationTimeIsSecondsAndNanoseconds() throws {
    try withTemporaryDirectory { (directory: String) throws in
      let path = directory + "/file"
      #expect(FileManagerless.createFile(path))
      var times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 123_456_789), timespec(tv_sec: 1_700_000_001, tv_nsec: 5)]
      #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
      let modified = try #require(try FileSystem.stat(path)).modifiedSinceEpoch
      #expect(modified.seconds == 1_700_000_001)
      #expect(modified.nanoseconds == 5)
    }
  }

  @Test func aDirectoryCanBeReadOnlyWithReadAndSearchPermission() throws {
    try withTemporaryDirectory { (directory: String) throws in
      #expect(FileSystem.canRead(directory))
      #expect(!FileSystem.canRead(directory + "/none"))
      // Root passes every permission check, so only another user sees the refusal.
      if geteuid() != 0 {
        let locked = directory + "/locked"
        #expect(mkdir(locked, 0o300) == 0)
        defer { chmod(locked, 0o700) }
        #expect(!FileSystem.canRead(locked))
      }
    }
  }

  @Test func writesAndReadsAtOffsetsAndNamesThePathOnFailure() throws {
    try withTemporaryDirectory { (directory: String) throws in
      let path = directory + "/block"
      let writer = try FileSystem.open(
        path, .writeOnly, options: [.create, .exclusiveCreate], permissions: .ownerReadWrite)
      try writer.write(Array("header".utf8), at: 0)
      try writer.write(Array("data".utf8), at: 6)
      try writer.close()
      // Opened close-on-exec, so no descriptor leaks into a process the daemon starts.
      let reader = try FileSystem.open(path, .readOnly)
      defer { reader.closeIgnoringErrors() }
      #expect(fcntl(reader.descriptor.rawValue, F_GETFD) & FD_CLOEXEC != 0)
      #expect(try reader.stat().size == 10)
      #expect(try reader.read(count: 4, at: 6) == Array("data".utf8))
      #expect(try reader.read(count: 100, at: 8) == Array("ta".utf8))

      let again = #expect(throws: SystemCallError.self) {
        try FileSystem.open(path, .writeOnly, options: [.create, .exclusiveCreate], permissions: .ownerReadWrite)
      }
      #expect(again?.description == "open(\(path)): File exists (errno 17)")
      #expect(again?.reason == "File exists")
    }
  }

  @Test func renamesStatsAndUnlinks() throws {
    try withTemporaryDirectory { (directory: String) throws in
      let from = directory + "/from"
      let to = directory + "/to"
      #expect(FileManagerless.createFile(from))
      try FileSystem.rename(from, to: to)
      #expect(try FileSystem.stat(from) == nil)
      #expect(try FileSystem.stat(to)?.type == .regular)
      try FileSystem.unlink(to)
      try FileSystem.unlink(to)  // already gone: no error
      let error = #expect(throws: SystemCallError.self) { try FileSystem.rename(from, to: to) }
      #expect(error?.function == "rename")
      #expect(error?.path == to)
      #expect(FileSystem.canWrite(directory))
    }
  }
}

@Suite struct SystemCallTests {
  @Test func aFailureCarriesTheFunctionThePathAndTheErrno() {
    let path = "/nonexistent-bklogfs-test/file"
    let error = #expect(throws: SystemCallError.self) {
      _ = try systemCall("unlink", path: path) { unlink(path) }
    }
    #expect(error?.function == "unlink")
    #expect(error?.path == path)
    #expect(error?.errno == .noSuchFileOrDirectory)
    #expect(error?.description == "unlink(\(path)): No such file or directory (errno 2)")

    let pathless = #expect(throws: SystemCallError.self) { _ = try systemCall("close") { close(-1) } }
    #expect(pathless?.description == "close: Bad file descriptor (errno 9)")
  }

  @Test func anInterruptedCallIsMadeAgain() throws {
    var calls = 0
    let result = try systemCall("read") { () -> Int in
      calls += 1
      if calls < 3 {
        errno = EINTR
        return -1
      }
      return 7
    }
    #expect(result == 7)
    #expect(calls == 3)
  }

  @Test func errorTextsAreStrerrors() {
    #expect(errorText(ENOENT) == "No such file or directory")
    errno = EACCES
    #expect(lastError() == "Permission denied")
  }
}

/// Creates an empty file, without Foundation.
enum FileManagerless {
  static func createFile(_ path: String) -> Bool {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { return false }
    return close(descriptor) == 0
  }
}

@Suite struct ExtendedAttributeTests {
  @Test func aFileWithoutTheAttributeHasNone() throws {
    try withTemporaryDirectory { (directory: String) throws in
      #expect(try FileSystem.extendedAttribute(directory, "user.bklogfs.none") == nil)
    }
  }

  @Test func aMissingFileIsAnErrorNamingTheCallAndThePath() throws {
    try withTemporaryDirectory { (directory: String) throws in
      let error = #expect(throws: SystemCallError.self) {
        try FileSystem.extendedAttribute(directory + "/gone", "user.bklogfs.stats")
      }
      #expect(error?.function == "getxattr")
      #expect(error?.path == directory + "/gone")
      #expect(error?.errno == .noSuchFileOrDirectory)
    }
  }
}
