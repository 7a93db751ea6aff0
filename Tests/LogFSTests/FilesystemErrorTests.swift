import BlockCache
import Glibc
import LogFS
import Logging
import ObjectStore
import TestSupport
import Testing

@Suite struct FilesystemErrorTests {
  /// Every kind of store failure has its errno, from one table.
  @Test(arguments: [
    (ObjectStoreError.Kind.notFound, ENOENT), (.noSuchBucket, ENOENT), (.preconditionFailed, ESTALE),
    (.accessDenied, EACCES), (.archived, EREMOTE), (.customerKeyRequired, ENOKEY), (.timedOut, ETIMEDOUT),
    (.unreachable, EIO), (.serverError, EIO),
    (.invalidResponse, EIO), (.invalidRequest, EIO),
  ])
  func aStoreFailureHasItsErrno(kind: ObjectStoreError.Kind, errno: Int32) {
    let error = FilesystemError(ObjectStoreError(kind, "why"), context: "reading s3://b/k")
    #expect(error.errno == errno)
    #expect(error.message == "reading s3://b/k failed: why")
    #expect((error.cause as? ObjectStoreError)?.kind == kind)
  }

  /// Expected answers stay out of an ordinary log; failures of the store are errors.
  @Test func levelsFollowTheKind() {
    #expect(FilesystemError.Kind.notFound.level == .trace)
    #expect(FilesystemError.Kind.notADirectory.level == .debug)
    for kind: FilesystemError.Kind in [.stale, .denied, .timedOut, .unreachable, .server, .malformed] {
      #expect(kind.level == .error, "\(kind)")
    }
  }

  /// Kinds compare by name, so two with one name are one kind wherever they were made.
  @Test func kindsCompareByName() {
    #expect(FilesystemError.Kind("stale", errno: ESTALE, level: .error) == .stale)
    #expect(FilesystemError.Kind.unreachable != .server)
  }

  /// A failed read keeps the store's error as its cause, and the core itself logs nothing about it
  /// above debug: the FUSE adapter logs each failure once, where it replies.
  @Test func aFailedReadKeepsItsCauseAndIsNotLoggedByTheCore() throws {
    let store = InMemoryObjectClient()
    store.put("org/job.log", Array(repeating: 65, count: 5000))
    let log = CapturedLog()
    let client = FaultInjectingObjectClient(store)
    client.inject(.fail(.serverError), into: .get, times: nil)
    let filesystem = LogFilesystem(
      namespace: ArchiveNamespace(client: client, rootPrefix: ""),
      configuration: FilesystemConfiguration(blockSize: 4096, fetchThreads: 1),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, logger: log.logger)
    defer { filesystem.shutdown() }
    let organization = try filesystem.lookup(parent: LogFilesystem.rootInode, name: "org")
    let file = try filesystem.lookup(parent: organization.inode, name: "job.log")
    let handle = try filesystem.openFile(file.inode)
    let error = #expect(throws: FilesystemError.self) { try filesystem.read(handle, offset: 0, count: 100) }
    #expect(error?.kind == .server)
    #expect(error?.errno == EIO)
    #expect((error?.cause as? ObjectStoreError)?.kind == .serverError)
    #expect(error?.message.contains("org/job.log") == true, "\(error?.message ?? "")")
    #expect(log.all.filter { !$0.hasPrefix("debug ") && !$0.hasPrefix("trace ") } == [])
  }

  @Test func aFailedListingKeepsItsKindAndIsNotLoggedByTheCore() throws {
    let store = InMemoryObjectClient()
    store.put("org/job.log", [1, 2, 3])
    let log = CapturedLog()
    let client = FaultInjectingObjectClient(store)
    client.inject(.fail(.accessDenied), into: .list, times: nil)
    let filesystem = LogFilesystem(
      namespace: ArchiveNamespace(client: client, rootPrefix: ""), configuration: FilesystemConfiguration(),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, logger: log.logger)
    defer { filesystem.shutdown() }
    let error = #expect(throws: FilesystemError.self) { try filesystem.openDirectory(LogFilesystem.rootInode) }
    #expect(error?.kind == .denied)
    #expect(error?.errno == EACCES)
    #expect(log.all.filter { !$0.hasPrefix("debug ") && !$0.hasPrefix("trace ") } == [])
  }
}
