import ArgumentParser
import BlockCache
import BuildkiteAPI
import BuildkiteNames
import FuseAdapter
import Glibc
import HTTPTransport
import LogFS
import LogText
import Logging
import ObjectStore
import S3Client
import SystemBase
import SystemPackage

struct MountCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "mount",
    abstract: "Mounts a log archive read-only at a directory.",
    discussion: """
      The source is an S3 bucket (--bucket NAME, or --bucket s3://NAME/PREFIX) or a local directory with the \
      archive's layout (--archive DIR). Without --foreground the command returns once the filesystem is \
      mounted, or fails with the reason.
      """)

  @Argument(help: "An empty directory to mount on.", completion: .directory)
  var mountpoint: String

  @OptionGroup(title: "Source") var source: SourceOptions
  @OptionGroup(title: "S3") var s3: S3Options
  @OptionGroup(title: "Buildkite") var buildkite: BuildkiteOptions
  @OptionGroup(title: "Cache") var location: CacheLocationOptions
  @OptionGroup(title: "Cache") var cache: CacheOptions
  @OptionGroup(title: "Shared cache") var shared: SharedCacheOptions
  @OptionGroup(title: "Reading") var reading: ReadingOptions
  @OptionGroup(title: "View") var view: ViewOptions
  @OptionGroup(title: "Network") var network: NetworkOptions
  @OptionGroup(title: "Metrics") var metrics: MetricsOptions

  @Option(help: "Seconds a directory listing is trusted before it is listed again.")
  var directoryTTL: Double = 60

  @Option(
    help: ArgumentHelp(
      "Seconds between two requests for the new end of a running job's log that is open (tail -f), across the mount: with N such logs followed, each is asked every N times this.",
      valueName: "seconds"))
  var followInterval: Double = 5

  @Option(
    help: ArgumentHelp(
      "The most key ranges of an archive a walk (find, du, rsync) lists at once, ahead of it; 1 lists one page after another.",
      valueName: "count"))
  var listConcurrency = 8

  @Flag(help: "Stay in the foreground, logging to standard error, until unmounted or interrupted.")
  var foreground = false

  @Option(name: .customShort("o"), help: "A mount option for FUSE, such as allow_other (repeatable).")
  var options: [String] = []

  @Option(help: "Where a background mount writes its log (default: $XDG_STATE_HOME/bklogfs/bklogfs.log).")
  var logFile: String?

  @Option(help: "The least severe messages logged: trace, debug, info, notice, warning, error or critical.")
  var logLevel: String = "notice"

  /// Set by a background mount on the child it starts: where to report "ready" or the error.
  @Option(help: .hidden) var readyFD: Int32?

  /// The source the mount shows in /proc/mounts, when the mount helper gives one (the fstab line's
  /// own source, so that `mount -a` sees the line is mounted).
  @Option(help: .hidden) var fsname: String?

  mutating func validate() throws {
    guard followInterval.isFinite, followInterval >= 0.5, followInterval <= 3600 else {
      throw ValidationError("--follow-interval takes a number of seconds from 0.5 to 3600.")
    }
    if source.bucket == nil && source.archive == nil && buildkite.api.apiTokenFile == nil
      && environmentValue("BUILDKITE_API_TOKEN") == nil
    {
      throw ValidationError(
        "Say what to mount: --bucket NAME (or s3://NAME/PREFIX), --archive DIR, or Buildkite's names with --api-token-file FILE or BUILDKITE_API_TOKEN."
      )
    }
    if buildkite.recentBuilds < 1 { throw ValidationError("--recent-builds must be at least 1.") }
    if source.bucket != nil && source.archive != nil {
      throw ValidationError("Give --bucket or --archive, not both.")
    }
    if try source.asOfTime() != nil && source.bucket == nil {
      throw ValidationError("--as-of shows a bucket's versions: it needs --bucket (a local archive keeps no versions).")
    }
    if source.archive != nil && (source.prefix != nil || s3.region != nil || s3.endpoint != nil || s3.profile != nil) {
      throw ValidationError("--prefix, --region, --endpoint and --profile apply to --bucket only.")
    }
    if Logger.Level(rawValue: logLevel) == nil {
      throw ValidationError("--log-level takes trace, debug, info, notice, warning, error or critical.")
    }
    if directoryTTL < 0 { throw ValidationError("--directory-ttl cannot be negative.") }
    if !(1...64).contains(listConcurrency) {
      throw ValidationError("--list-concurrency takes a count from 1 to 64 (it is \(listConcurrency)).")
    }
    if cache.metadataCacheNames < 1000 {
      throw ValidationError("--metadata-cache-names must be at least 1000 (it is \(cache.metadataCacheNames)).")
    }
    if reading.partSize.bytes < 1 << 20 { throw ValidationError("--part-size must be at least 1M.") }
    if reading.readahead.bytes < 1 << 20 { throw ValidationError("--readahead must be at least 1M.") }
    try network.validate()
    _ = try shared.target()
    for option in options where option.split(separator: ",").contains(where: { $0 == "rw" }) {
      throw ValidationError("bklogfs mounts are read-only; drop the rw option.")
    }
  }

  func run() throws {
    if let problem = mountpointProblem(mountpoint) {
      throw MountFailure(problem)
    }
    if foreground || readyFD != nil {
      // The tunables are read at start-up: a foreground mount starts itself again, once, with them.
      if readyFD == nil && setMallocTunablesForChildren() {
        _ = withCStrings(CommandLine.arguments) { execv("/proc/self/exe", $0) }
      }
      try runInForeground()
    } else {
      _ = setMallocTunablesForChildren()
      try startInBackground()
    }
  }

  // MARK: Background

  /// Starts this same command again in the foreground as a detached child, and waits on a pipe until
  /// it says the filesystem is mounted or why it is not. Forking after threads exist is unsafe; a
  /// fresh process is not.
  private func startInBackground() throws {
    let logPath = absolutePath(logFile ?? defaultLogPath())
    do {
      try FileSystem.makeParentDirectories(of: logPath, permissions: .ownerReadWriteExecute)
    } catch {
      throw MountFailure("cannot create the directory \(error.path ?? logPath): \(error.reason)")
    }
    var pipeEnds: [Int32] = [0, 0]
    guard pipe(&pipeEnds) == 0 else { throw MountFailure("cannot create a pipe: \(lastError())") }
    let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
    // Only the child's descriptor 3, a duplicate, stays open across the spawn.
    _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
    _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

    var arguments = CommandLine.arguments
    arguments[0] = "bklogfs"
    arguments += ["--ready-fd", "3", "--log-file", logPath]
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, writeEnd, 3)
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_APPEND | O_CREAT, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_APPEND | O_CREAT, 0o600)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // POSIX_SPAWN_SETSID (a GNU extension the Glibc module does not export): the child leaves this
    // session, so a terminal's hang-up does not reach the mount.
    posix_spawnattr_setflags(&attributes, 0x80)

    var child: pid_t = 0
    let status = withCStrings(arguments) { argv in
      posix_spawn(&child, "/proc/self/exe", &actions, &attributes, argv, environ)
    }
    close(writeEnd)
    defer { close(readEnd) }
    guard status == 0 else {
      throw MountFailure("cannot start the mount process: \(errorText(status))")
    }

    // The child bounds its own start-up (its first listing of Buildkite's API may spend every
    // attempt of a stalled call); this bound only guards against a child that hangs anyway.
    let message = readFirstLine(from: FileDescriptor(rawValue: readEnd), timeoutSeconds: network.waitLimit.rounded(.up))
    if message == "ready" { return }
    if message == nil {
      kill(child, SIGTERM)
    }
    var childStatus: Int32 = 0
    waitpid(child, &childStatus, WNOHANG)
    throw MountFailure(
      message.map { $0.hasPrefix("error: ") ? String($0.dropFirst(7)) : $0 }
        ?? "the mount process did not report back in time; see \(logPath)")
  }

  // MARK: Foreground

  private func runInForeground() throws {
    let logDescriptor: Int32
    if readyFD != nil, let logFile {
      logDescriptor = open(logFile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    } else {
      logDescriptor = STDERR_FILENO
    }
    let level = Logger.Level(rawValue: logLevel) ?? .notice
    LoggingSystem.bootstrap { label in
      FileLogHandler(label: label, descriptor: logDescriptor >= 0 ? logDescriptor : STDERR_FILENO, logLevel: level)
    }
    let logger = Logger(label: "bklogfs")
    // The daemon holds credentials (in its environment and memory): no core dump of it, and no
    // other process of its user reads its memory or environment (doc/SEMANTICS.md, "Security").
    do {
      try markProcessNotDumpable()
    } catch {
      logger.warning("cannot mark the mount process not dumpable: \(error.reason)")
    }
    do {
      try mountAndServe(logger: logger)
    } catch let failure as MountFailure {
      logger.error("mount of \(mountpoint) failed: \(failure.message)")
      report("error: \(failure.message)")
      throw failure
    }
  }

  private func mountAndServe(logger: Logger) throws {
    let cacheDirectory = location.cacheDirectory
    let insecureHTTP = network.insecureHTTP
    // The archive, if any: a local directory or a bucket, with the key prefix it lives under.
    var archive: (client: any ObjectClient, prefix: String, fsname: String)?
    if let directory = source.archive {
      do throws(ObjectStoreError) {
        let client = try LocalDirectoryClient(root: absolutePath(directory))
        archive = (client, "", client.identity)
      } catch {
        throw MountFailure("cannot use the archive: \(error.message)")
      }
    } else if let bucket = source.bucket {
      let target = try S3Target(bucketArgument: bucket, prefix: source.prefix)
      let s3Client = try makeS3Client(
        target: target, options: s3, timeouts: network.s3Timeouts, insecureHTTP: insecureHTTP, logger: logger)
      do throws(ObjectStoreError) {
        try s3Client.checkBucket()
      } catch {
        throw MountFailure(error.message + bucketCheckRemedy(error))
      }
      archive = (s3Client, target.prefix, "s3://\(target.bucket)/\(target.prefix)")
      if let time = try source.asOfTime() {
        try checkVersioning(s3Client, logger: logger)
        let shown = formatRFC3339(seconds: time.seconds, nanoseconds: time.nanoseconds)
        archive = (
          AsOfObjectClient(s3Client, time: time), target.prefix, "s3://\(target.bucket)/\(target.prefix)@\(shown)"
        )
        logger.notice("showing s3://\(target.bucket)/\(target.prefix) as it was at \(shown)")
      }
    }

    var exports: (client: any ObjectClient, prefix: String)?
    if let location = buildkite.exports {
      let target = try S3Target(bucketArgument: location, prefix: nil)
      let client = try makeS3Client(
        target: target, options: s3, timeouts: network.s3Timeouts, insecureHTTP: insecureHTTP, logger: logger)
      do throws(ObjectStoreError) {
        try client.checkBucket()
      } catch {
        throw MountFailure("cannot use the build exports: \(error.message)")
      }
      exports = (client, target.prefix)
    }

    let blockSize = mountBlockSize
    // Blocks waiting to be written to the shared cache: at most a quarter of the memory cache more.
    // Made before the names, which read and record logs' sizes there.
    let sharedCache = try makeSharedCache(
      shared, s3: s3, connectTimeout: network.connectTimeout, insecureHTTP: insecureHTTP, blockSize: blockSize,
      maxQueuedBytes: max(blockSize, cache.memoryCacheSize.bytes / 4), logger: logger)

    let namespace: any Namespace
    let fsname: String
    if let token = try buildkite.api.token() {
      // With a token, the tree is Buildkite's names; the archive, if given, serves the logs it holds.
      let names = try makeBuildkiteNamespace(
        token: token, options: buildkite, archive: archive.map { ($0.client, $0.prefix) }, exports: exports,
        location: location, directoryTTL: directoryTTL, timeouts: network.apiTimeouts,
        insecureHTTP: insecureHTTP, sharedSizes: sharedCache, asOf: try source.asOfTime(), logger: logger)
      namespace = names
      fsname = "buildkite:" + names.api.baseURL
    } else if buildkite.exports != nil {
      throw MountFailure("--exports gives names to builds past retention: it needs a Buildkite API token too")
    } else if let archive {
      namespace = ArchiveNamespace(
        client: archive.client, rootPrefix: archive.prefix, listingFreshness: directoryTTL,
        listingConcurrency: listConcurrency)
      fsname = archive.fsname
    } else {
      throw MountFailure("no Buildkite API token: give --api-token-file FILE or set BUILDKITE_API_TOKEN")
    }

    var diskCache: DiskBlockCache?
    if namespace.clients.contains(where: \.isRemote) && cache.cacheSize.bytes > 0 {
      let directory = cacheDirectory
      do throws(DiskCacheError) {
        diskCache = try DiskBlockCache(
          directory: directory, maxBytes: cache.cacheSize.bytes, blockSize: blockSize, logger: logger)
      } catch {
        throw MountFailure(error.description)
      }
    }
    let configuration = FilesystemConfiguration(
      blockSize: blockSize, partSize: reading.partSize.bytes, maxReadahead: UInt64(reading.readahead.bytes),
      directoryTTL: directoryTTL, waitLimit: network.waitLimit,
      // Blocks waiting for the disk cache's writer hold memory beside the memory cache: at most half
      // as much again (doc/CONFIGURATION.md).
      diskWriteQueueBytes: max(blockSize, cache.memoryCacheSize.bytes / 2),
      metadataCacheNames: cache.metadataCacheNames, plainText: view.plainText, followInterval: followInterval)
    let filesystem = LogFilesystem(
      namespace: namespace, configuration: configuration,
      memoryCache: MemoryBlockCache(maxBytes: cache.memoryCacheSize.bytes), diskCache: diskCache,
      sharedCache: sharedCache, logger: logger)
    defer { filesystem.shutdown() }
    // Made absolute now: a background mount leaves its directory once mounted.
    let metricsText: @Sendable () -> String = { [mountpoint = absolutePath(mountpoint)] in
      filesystem.statistics().prometheusText(mountpoint: mountpoint)
    }
    let metricsWriter = try metrics.metrics.map { path throws(MountFailure) in
      try MetricsFileWriter(
        path: absolutePath(path), interval: metrics.metricsInterval, logger: logger, render: metricsText)
    }
    // Listening before mounting: an address in use fails the mount with nothing mounted.
    let metricsListener = try metrics.metricsListen.map { address throws(MountFailure) in
      try MetricsListener(address: address, logger: logger, render: metricsText)
    }

    let session: FuseSession
    do throws(FuseError) {
      session = try FuseSession(
        filesystem: filesystem, mountpoint: absolutePath(mountpoint), fsname: self.fsname ?? fsname, options: options,
        caching: KernelCaching(fileTTL: 24 * 3600, directoryTTL: directoryTTL), uid: getuid(), gid: getgid(),
        rootAttributes: [bucketsAttribute: BucketFacts.json(namespace.clients, profile: s3.profile)], logger: logger
      ) { [readyFD, fsname, mountpoint] in
        logger.notice("mounted \(fsname) on \(mountpoint)")
        reportToParent(readyFD, "ready")
        // A foreground mount under systemd (`Type=notify`): ready once the kernel can use it.
        if readyFD == nil {
          notifyServiceManager("READY=1\nSTATUS=serving \(fsname) on \(mountpoint)\nMAINPID=\(currentProcessID)")
        }
      }
    } catch {
      throw MountFailure(error.description)
    }
    metricsWriter?.start()
    metricsListener?.start()
    if readyFD != nil {
      // A background mount must not keep the directory it was started from busy.
      _ = chdir("/")
    }
    _ = session.run(handleSignals: true)
    if readyFD == nil { notifyServiceManager("STOPPING=1") }
    session.unmount()
    logger.notice("unmounted \(session.mountpoint)")
    metricsListener?.stop()
    metricsWriter?.stop()
  }

  private func report(_ message: String) { reportToParent(readyFD, message) }

  /// What to do next when the bucket cannot be used, by why.
  private func bucketCheckRemedy(_ error: ObjectStoreError) -> String {
    switch error.kind {
    case .unreachable, .timedOut:
      return "; check the endpoint (--endpoint, AWS_ENDPOINT_URL, or the region for AWS) and that this machine "
        + "can reach it"
    case .accessDenied:
      // S3 refuses a request to a Requester Pays bucket that does not agree to pay as AccessDenied.
      let payer = s3.requesterPays ? "" : "; if the bucket has Requester Pays on, add --requester-pays"
      // The client says what to check when S3 said why (a key it does not know, a wrong secret).
      let said = error.message.contains("check AWS_") || error.message.contains("policy needs")
      let policy =
        said ? "" : "; the credentials in use (AWS_ACCESS_KEY_ID, AWS_PROFILE or --profile) need s3:ListBucket on it"
      return policy + payer
    case .noSuchBucket:
      return "; check the bucket's name (and, for an S3-compatible server, --endpoint)"
    default:
      return ""
    }
  }

  /// A bucket that never kept versions can show only what it holds now: said once, at warning.
  private func checkVersioning(_ client: S3ObjectClient, logger: Logger) throws {
    let status: String?
    do throws(ObjectStoreError) {
      status = try client.versioningStatus()
    } catch {
      throw MountFailure("cannot read the versioning of s3://\(client.configuration.bucket): \(error.message)")
    }
    if status == nil {
      let bucket = client.configuration.bucket
      logger.warning(
        "s3://\(bucket) has never had versioning on: --as-of shows what it holds now, less what was written after that time; logs deleted or overwritten before now are gone"
      )
    }
  }
}

/// Tells a waiting parent how the mount went; a no-op in a plain foreground mount.
private func reportToParent(_ readyFD: Int32?, _ message: String) {
  guard let readyFD else { return }
  let bytes = Array((message + "\n").utf8)
  _ = bytes.withUnsafeBytes { write(readyFD, $0.baseAddress, $0.count) }
  close(readyFD)
}

struct SourceOptions: ParsableArguments {
  @Option(help: "The S3 bucket holding the log archive: NAME or s3://NAME/PREFIX.")
  var bucket: String?

  @Option(help: "Show only keys under this prefix of the bucket.")
  var prefix: String?

  @Option(help: "A local directory with the archive's layout, instead of a bucket.", completion: .directory)
  var archive: String?

  @Option(
    help: ArgumentHelp(
      "Show the bucket as it was at this time (RFC 3339, UTC when it names no zone, or a date for its start in UTC), from its versions: logs deleted since are there, logs overwritten since show their old bytes.",
      valueName: "time"))
  var asOf: String?

  /// `--as-of` as a time; nil without it. Throws when it is neither a date-time nor a date.
  func asOfTime() throws -> Timestamp? {
    guard let asOf else { return nil }
    guard let time = parseTimeArgument(asOf) else {
      throw ValidationError(
        "--as-of takes an RFC 3339 time, such as 2026-11-01T12:00:00Z, or a date, such as 2026-11-01 (\(asOf) is neither)."
      )
    }
    return time
  }
}

struct CacheOptions: ParsableArguments {
  @Option(help: "The most the disk cache may hold, such as 512M or 10G; 0 turns it off.")
  var cacheSize = ByteSize(bytes: 4 << 30)

  @Option(help: "The most the memory cache may hold.")
  var memoryCacheSize = ByteSize(bytes: 256 << 20)

  @Option(
    help: ArgumentHelp(
      "The most names (files, directories, links) whose attributes and listings are kept in memory once the kernel no longer holds them.",
      valueName: "count"))
  var metadataCacheNames = 250_000
}

struct ReadingOptions: ParsableArguments {
  @Option(help: "The most one ranged GET of readahead asks for.")
  var partSize = ByteSize(bytes: 4 << 20)

  @Option(help: "The most a sequential reader's readahead fetches ahead of it.")
  var readahead = ByteSize(bytes: 64 << 20)
}

struct ViewOptions: ParsableArguments {
  @Flag(
    help: """
      Show each log (a file named *.log) as plain text, as a terminal finally shows it: no colours or \
      Buildkite markers, lines rewritten by \\r or by cursor moves shown in their last state, CRLF made LF. \
      Other files (build.json) are shown as stored. A log is read whole the first time it is looked up, \
      to learn its plain size.
      """)
  var plain = false

  @Flag(
    help:
      "Start each line of a plain log that has a Buildkite time with it, in UTC (2026-12-05T08:58:34Z); implies --plain."
  )
  var timestamps = false

  var plainText: PlainTextOptions? { plain || timestamps ? PlainTextOptions(timestamps: timestamps) : nil }
}

struct NetworkOptions: ParsableArguments {
  @Option(
    name: .customLong("timeout"),
    help: ArgumentHelp(
      "Seconds a request may go without receiving a byte before it is abandoned and tried again (default: 15 for S3, 30 for Buildkite's API).",
      valueName: "seconds"))
  var stallTimeout: Int?

  @Option(help: ArgumentHelp("Seconds a connection (TCP and TLS) may take to open.", valueName: "seconds"))
  var connectTimeout: Double = 5

  @Flag(
    help: """
      Accept plain-http endpoints on other machines (S3, Buildkite's API). Requests, credentials' \
      signatures, the Buildkite token and logs then cross the network unencrypted.
      """)
  var insecureHTTP = false

  static let stallRange = 1...3600

  func validate() throws {
    if let stallTimeout, !Self.stallRange.contains(stallTimeout) {
      throw ValidationError(
        "--timeout takes a whole number of seconds from \(Self.stallRange.lowerBound) to \(Self.stallRange.upperBound)."
      )
    }
    guard connectTimeout.isFinite, connectTimeout > 0, connectTimeout <= 600 else {
      throw ValidationError("--connect-timeout takes a number of seconds above 0 and at most 600.")
    }
  }

  /// The attempts of one call (the clients' default): a stalled call costs this many timeouts.
  static let attempts = 5

  var s3Timeouts: HTTPTimeouts { timeouts(stall: stallTimeout ?? 15, total: 300) }
  var apiTimeouts: HTTPTimeouts { timeouts(stall: stallTimeout ?? 30, total: 900) }

  /// A request also ends after `total` seconds, however steadily its bytes come; never sooner than
  /// a few stalls.
  private func timeouts(stall: Int, total: Double) -> HTTPTimeouts {
    HTTPTimeouts(connect: connectTimeout, stall: stall, total: max(total, 4 * Double(stall)))
  }

  /// The longest a reader waits for a block or a listing that another thread fetches: longer than
  /// every attempt of a stalled call with its backoff, and never less than 300 s.
  var waitLimit: Double {
    let stall = Double(max(s3Timeouts.stall, apiTimeouts.stall))
    return max(300, Double(Self.attempts) * (connectTimeout + stall) + 60)
  }
}

struct MountFailure: Error, CustomStringConvertible {
  let message: String
  init(_ message: String) { self.message = message }
  var description: String { message }
}
