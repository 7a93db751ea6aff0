internal import CFuse
import Dispatch
import Glibc
public import LogFS
public import Logging
import Synchronization

/// How the kernel may cache what the filesystem answers.
public struct KernelCaching: Sendable {
  /// Seconds the kernel keeps a file's attributes and name. Archived logs never change.
  public var fileTTL: Double
  /// Seconds the kernel keeps a directory's attributes and names, and a name found missing.
  public var directoryTTL: Double

  public init(fileTTL: Double, directoryTTL: Double) {
    self.fileTTL = fileTTL
    self.directoryTTL = directoryTTL
  }
}

public struct FuseError: Error, CustomStringConvertible, Sendable {
  public var description: String
}

/// A mounted filesystem: a libfuse low-level session over a `LogFilesystem`.
///
/// libfuse calls the callbacks in `FuseOperations.swift` on its own worker threads; each answers its
/// request on the thread it was called on.
public final class FuseSession {
  let context: FuseContext
  private let session: OpaquePointer
  private let unmanagedContext: Unmanaged<FuseContext>
  private let invalidations: Invalidations
  public let mountpoint: String
  private var mounted = false

  /// Creates the session and mounts it. `options` are `-o` options for libfuse (`ro` and the
  /// filesystem's name are added here).
  public init(
    filesystem: LogFilesystem, mountpoint: String, fsname: String, options: [String], caching: KernelCaching,
    uid: UInt32, gid: UInt32, rootAttributes: [String: [UInt8]] = [:], logger: Logger,
    onReady: @escaping @Sendable () -> Void
  ) throws(FuseError) {
    self.mountpoint = mountpoint
    let notices = NoticeQueue()
    context = FuseContext(
      filesystem: filesystem, caching: caching, uid: uid, gid: gid, rootAttributes: rootAttributes, notices: notices,
      logger: logger, onReady: onReady)
    unmanagedContext = Unmanaged.passRetained(context)

    // No `default_permissions`: every node is readable by all (0444, 0555), and `access` answers
    // for the archived files that are not (FuseOperations.swift).
    let mountOptions =
      ["ro", "fsname=\(fsname.replacingCommas())", "subtype=bklogfs", "max_read=\(1 << 20)"] + options
    let arguments = ["bklogfs", "-o", mountOptions.joined(separator: ",")]
    var cArguments = arguments.map { strdup($0) }
    defer { cArguments.forEach { free($0) } }
    var operations = makeOperations()
    let userdata = unmanagedContext.toOpaque()
    let created = cArguments.withUnsafeMutableBufferPointer { buffer in
      var args = fuse_args(argc: Int32(buffer.count), argv: buffer.baseAddress, allocated: 0)
      defer { fuse_opt_free_args(&args) }
      return cfuse_session_new(&args, &operations, userdata)
    }
    guard let created else {
      unmanagedContext.release()
      throw FuseError(description: "libfuse refused the mount options \(mountOptions.joined(separator: ","))")
    }
    session = created
    invalidations = Invalidations(session: created, notices: notices)
    filesystem.onFileChanged { [invalidations] inode in invalidations.invalidate(inode) }
    filesystem.onNamesDropped { [invalidations] names in invalidations.invalidate(names) }
    guard fuse_session_mount(session, mountpoint) == 0 else {
      // Every stored property is set: throwing now runs deinit, which destroys the session and
      // releases the context (doing it here too freed them twice).
      throw FuseError(
        description:
          "could not mount on \(mountpoint): the kernel or fusermount3 refused (libfuse's reason is in the log)")
    }
    mounted = true
  }

  /// Serves requests until the filesystem is unmounted or, with signal handlers, SIGINT, SIGTERM or
  /// SIGHUP arrives. Returns once the loop has ended; then call `unmount()`.
  public func run(handleSignals: Bool) -> Int32 {
    if handleSignals { fuse_set_signal_handlers(session) }
    defer { if handleSignals { fuse_remove_signal_handlers(session) } }
    return cfuse_session_loop_mt(session, 0, 16)
  }

  public func unmount() {
    invalidations.close()
    guard mounted else { return }
    mounted = false
    fuse_session_unmount(session)
  }

  deinit {
    invalidations.close()
    unmount()
    fuse_session_destroy(session)
    unmanagedContext.release()
  }
}

/// What every callback needs, reached through libfuse's userdata pointer.
final class FuseContext: Sendable {
  let filesystem: LogFilesystem
  let caching: KernelCaching
  let uid: UInt32
  let gid: UInt32
  /// Attributes of the root that are not listed, by name, such as what the mount reads from.
  let rootAttributes: [String: [UInt8]]
  /// The kernel notices not yet sent.
  let notices: NoticeQueue
  let logger: Logger
  /// Called once the kernel and libfuse have agreed on the session's terms: the mount is usable.
  let onReady: @Sendable () -> Void

  init(
    filesystem: LogFilesystem, caching: KernelCaching, uid: UInt32, gid: UInt32, rootAttributes: [String: [UInt8]],
    notices: NoticeQueue, logger: Logger, onReady: @escaping @Sendable () -> Void
  ) {
    self.rootAttributes = rootAttributes
    self.notices = notices
    self.filesystem = filesystem
    self.caching = caching
    self.uid = uid
    self.gid = gid
    self.logger = logger
    self.onReady = onReady
  }
}

extension String {
  /// libfuse splits -o options at commas; a name holding one must not split.
  fileprivate func replacingCommas() -> String {
    String(map { $0 == "," ? "_" : $0 })
  }
}

/// Tells the kernel to drop what it cached of a file whose object changed (its pages and
/// attributes), or of names the inode table let go, from a queue of its own: never from inside a
/// request, where it could deadlock.
/// The one thread kernel notices are sent from (never a request's own thread: a notice about a file
/// waits for the kernel's locks on it, which a request in flight may hold), and how many are queued.
final class NoticeQueue: Sendable {
  let queue = DispatchQueue(label: "bklogfs.invalidations")
  private let pending = Atomic<Int>(0)

  /// Queues a notice; `awaited` ones (a changed file's) are what `drain` waits for. Names dropped
  /// from the table are not: a walk's evictions send them in bursts no reply should wait behind.
  func send(awaited: Bool, _ notice: @escaping @Sendable () -> Void) {
    guard awaited else { return queue.async(execute: notice) }
    pending.add(1, ordering: .relaxed)
    queue.async { [self] in
      notice()
      pending.subtract(1, ordering: .relaxed)
    }
  }

  /// Waits, at most `seconds`, for the changed files' notices queued so far to reach the kernel.
  /// A reply that follows a listing that found files changed waits for them, so that what the
  /// caller does next (a `stat` after `ls`) sees the change; bounded, since the kernel may hold a
  /// notice while a read of the same file is in flight.
  func drain(seconds: Double) {
    guard pending.load(ordering: .relaxed) > 0 else { return }
    let done = DispatchSemaphore(value: 0)
    queue.async { done.signal() }
    _ = done.wait(timeout: .now() + seconds)
  }
}

private final class Invalidations: @unchecked Sendable {
  private let session: OpaquePointer
  private let open = Mutex(true)
  private let notices: NoticeQueue

  init(session: OpaquePointer, notices: NoticeQueue) {
    self.session = session
    self.notices = notices
  }

  func invalidate(_ inode: UInt64) {
    notices.send(awaited: true) { [self] in
      open.withLock { open in
        if open { _ = fuse_lowlevel_notify_inval_inode(session, inode, 0, 0) }
      }
    }
  }

  /// Asks the kernel to drop its entries of these names (`fuse_lowlevel_notify_inval_entry`), so that
  /// it forgets their inodes unless a process is using them: the inode table let them go.
  func invalidate(_ names: [(parent: UInt64, name: String)]) {
    notices.send(awaited: false) { [self] in
      open.withLock { open in
        guard open else { return }
        for (parent, name) in names {
          _ = name.withCString { fuse_lowlevel_notify_inval_entry(session, parent, $0, name.utf8.count) }
        }
      }
    }
  }

  /// No notice is sent after this returns.
  func close() { open.withLock { $0 = false } }
}
