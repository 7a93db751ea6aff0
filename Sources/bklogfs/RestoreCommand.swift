import ArgumentParser
import Dispatch
import Foundation
import FuseAdapter
import Glibc
import HTTPTransport
import LogFS
import Logging
import ObjectStore
import S3Client
import Synchronization
import SystemBase
import SystemPackage

/// What a mount tells of a bucket it reads, on its root (`bucketsAttribute`), so that
/// `bklogfs restore` reaches the same bucket the same way. Never a secret: the credentials are the
/// restoring user's own (the environment, or the profile named here).
struct BucketFacts: Codable, Equatable {
  var bucket: String
  var region: String
  var endpoint: String?
  var pathStyle: Bool
  var profile: String?
  var unsigned: Bool
  var requesterPays: Bool?

  /// The buckets among a mount's stores, as JSON.
  static func json(_ clients: [any ObjectClient], profile: String?) -> [UInt8] {
    let facts = clients.compactMap { $0 as? S3ObjectClient }.map { client in
      BucketFacts(
        bucket: client.configuration.bucket, region: client.region, endpoint: client.configuration.endpoint,
        pathStyle: client.configuration.forcePathStyle, profile: profile,
        unsigned: client.configuration.credentials == nil, requesterPays: client.configuration.requesterPays)
    }
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding strings and booleans cannot fail.
    return Array((try? encoder.encode(facts)) ?? Data("[]".utf8))
  }
}

enum RestoreTier: String, ExpressibleByArgument, CaseIterable {
  case standard = "Standard"
  case bulk = "Bulk"
  case expedited = "Expedited"

  init?(argument: String) {
    guard let tier = Self.allCases.first(where: { $0.rawValue.lowercased() == argument.lowercased() }) else {
      return nil
    }
    self = tier
  }
}

struct RestoreCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "restore",
    abstract: "Asks S3 to restore the archived logs under paths of a mount, or shows where their restores are.",
    discussion: """
      Every file under the paths (files, or directories walked whole; links are not followed) whose object \
      is in GLACIER or DEEP_ARCHIVE, or in an archive tier of INTELLIGENT_TIERING, gets one RestoreObject. \
      Running it again is harmless: S3 answers that a restore is under way, or extends a restored copy. \
      Once S3 has restored an object, the mount reads it within its directory TTL, without a remount. \
      The bucket, region and endpoint are the mount's; the credentials are yours (the environment or \
      --profile). With --status, nothing is restored: one HEAD per archived file tells its state.
      """)

  @Argument(help: "Files or directories of a bklogfs mount.", completion: .file())
  var paths: [String]

  @Option(help: "Days the restored copies stay readable (not for INTELLIGENT_TIERING, which takes none).")
  var days = 7

  @Option(help: "How fast and at what cost S3 restores: Standard, Bulk or Expedited (not for DEEP_ARCHIVE).")
  var tier: RestoreTier = .standard

  @Flag(help: "Restore nothing: show how many archived files are not restored, being restored, and restored.")
  var status = false

  @Flag(help: "Print each archived file with its state (with --status) or what S3 answered.")
  var list = false

  @Option(help: ArgumentHelp("Requests to S3 at once.", valueName: "count"))
  var jobs = 8

  @Option(help: "The profile in ~/.aws/credentials to take credentials from (default: the mount's, then AWS_PROFILE).")
  var profile: String?

  func validate() throws {
    guard (1...3650).contains(days) else { throw ValidationError("--days takes a whole number from 1 to 3650.") }
    guard (1...64).contains(jobs) else { throw ValidationError("--jobs takes a whole number from 1 to 64.") }
  }

  func run() throws {
    let logger = Logger(label: "bklogfs.restore")
    let found = try ArchivedFiles.find(paths)
    let clients = try found.buckets.mapValues { facts in try restoreClient(facts, logger: logger) }
    let work = found.files
    var summary = "\(work.count) archived file\(work.count == 1 ? "" : "s")"
    if found.online > 0 { summary += " (and \(found.online) not archived, left alone)" }
    if found.notInS3 > 0 { summary += " (and \(found.notInS3) not from an S3 bucket)" }
    print(summary)
    guard !work.isEmpty else { return }

    let progress = RestoreProgress(total: work.count, verb: status ? "checked" : "asked")
    let outcomes = Mutex([String: Int]())
    let failures = Mutex([String]())
    let lines = Mutex([String]())
    let next = Atomic<Int>(0)
    let days = days
    let tier = tier.rawValue
    let status = status
    let list = list
    DispatchQueue.concurrentPerform(iterations: min(jobs, work.count)) { _ in
      while true {
        let index = next.add(1, ordering: .relaxed).oldValue
        guard index < work.count else { return }
        let file = work[index]
        let client = clients[file.bucket]!
        let answer: String
        do throws(ObjectStoreError) {
          if status {
            answer = Self.state(try client.head(key: file.key).storage)
          } else {
            // An INTELLIGENT_TIERING archive tier takes no days: the object returns to its frequent tier.
            let restoreDays = file.storage.archiveTier == nil ? days : nil
            answer =
              switch try client.restore(key: file.key, days: restoreDays, tier: tier) {
              case .requested: "requested"
              case .alreadyInProgress: "already in progress"
              case .alreadyRestored: "already restored (kept for \(days) days from now)"
              }
          }
        } catch {
          failures.withLock { $0.append("\(file.path): \(error.message)") }
          progress.advance(failed: true)
          continue
        }
        let counted = answer.hasPrefix("restored until") ? "restored" : answer
        outcomes.withLock { $0[counted, default: 0] += 1 }
        if list { lines.withLock { $0.append("\(answer)\t\(file.path)") } }
        progress.advance(failed: false)
      }
    }
    progress.finish()
    for line in lines.withLock({ $0 }).sorted() { print(line) }
    let failed = failures.withLock { $0 }
    for failure in failed.sorted().prefix(20) { printError("bklogfs restore: failed: \(failure)") }
    if failed.count > 20 { printError("bklogfs restore: and \(failed.count - 20) more failures") }
    let order =
      status
      ? ["not restored", "in progress", "restored", "not archived"]
      : ["requested", "already in progress", "already restored (kept for \(days) days from now)"]
    let counts = outcomes.withLock { $0 }
    var parts = order.map { "\($0): \(counts[$0] ?? 0)" }
    parts += counts.keys.filter { !order.contains($0) }.sorted().map { "\($0): \(counts[$0]!)" }
    parts.append("failed: \(failed.count)")
    print(parts.joined(separator: ", "))
    if !failed.isEmpty { throw ExitCode(1) }
  }

  /// A HEAD's storage as `--status` shows it.
  private static func state(_ storage: ObjectStorage?) -> String {
    guard let storage, storage.isArchiveClass else { return "not archived" }
    switch storage.restore {
    case .restored(let expiry?): return "restored until \(formatRFC3339(seconds: expiry.seconds))"
    case .restored(nil): return "restored"
    case .inProgress: return "in progress"
    case .notRestored, nil: return "not restored"
    }
  }

  private func restoreClient(_ facts: BucketFacts, logger: Logger) throws -> S3ObjectClient {
    let settings: AWSSettings
    do throws(AWSConfigurationError) {
      settings = try AWSEnvironment.resolve(
        profile: profile ?? facts.profile, environment: AWSEnvironment.processEnvironment,
        homeDirectory: homeDirectory())
    } catch {
      throw MountFailure(error.message)
    }
    guard let credentials = settings.credentials else {
      throw MountFailure(
        "no AWS credentials found to restore objects of s3://\(facts.bucket): set AWS_ACCESS_KEY_ID and "
          + "AWS_SECRET_ACCESS_KEY, or name a profile with --profile")
    }
    var configuration = S3Configuration(
      bucket: facts.bucket, region: facts.region, endpoint: facts.endpoint, forcePathStyle: facts.pathStyle,
      credentials: credentials, timeouts: HTTPTimeouts(connect: 5, stall: 15, total: 120), maxAttempts: 8,
      retryMaxDelay: 20)
    configuration.requesterPays = facts.requesterPays ?? false
    do throws(ObjectStoreError) {
      return try S3ObjectClient(configuration: configuration, logger: logger)
    } catch {
      throw MountFailure(error.message)
    }
  }
}

/// The archived files under some paths of mounts, each object once.
struct ArchivedFiles {
  struct File {
    var path: String
    var bucket: String
    var key: String
    var storage: ObjectStorage
  }

  var files: [File] = []
  var buckets: [String: BucketFacts] = [:]
  /// Files whose objects are not archived (STANDARD, GLACIER_IR, ...).
  var online = 0
  /// Files whose bytes are not an S3 object (a local archive, Buildkite's API, build metadata).
  var notInS3 = 0
  private var seen: Set<String> = []

  static func find(_ paths: [String]) throws -> ArchivedFiles {
    var found = ArchivedFiles()
    try MountWalk.walk(paths) { root in
      guard let raw = try? FileSystem.extendedAttribute(root, bucketsAttribute) else {
        throw MountFailure("\(root) is a bklogfs mount that names no bucket: it reads no S3 archive")
      }
      let decoder = JSONDecoder()
      decoder.keyDecodingStrategy = .convertFromSnakeCase
      guard let facts = try? decoder.decode([BucketFacts].self, from: Data(raw)) else {
        throw MountFailure("\(root) describes its buckets in a form this bklogfs does not read")
      }
      for bucket in facts { found.buckets[bucket.bucket] = bucket }
    } file: { path, _, _ in
      found.add(path)
    }
    return found
  }

  private mutating func add(_ path: String) {
    func attribute(_ name: String) -> String? {
      ((try? FileSystem.extendedAttribute(path, LogFilesystem.attributePrefix + name)) ?? nil).map {
        String(decoding: $0, as: UTF8.self)
      }
    }
    guard let source = attribute("source"), source.hasPrefix("s3://") else {
      notInS3 += 1
      return
    }
    let location = source.dropFirst(5)
    guard let slash = location.firstIndex(of: "/") else {
      notInS3 += 1
      return
    }
    let bucket = String(location[..<slash])
    let key = String(location[location.index(after: slash)...])
    let storage = ObjectStorage(attributeValue: attribute("storage_class") ?? "STANDARD")
    guard storage.isArchiveClass, buckets[bucket] != nil else {
      online += 1
      return
    }
    guard seen.insert(bucket + "/" + key).inserted else { return }
    files.append(File(path: path, bucket: bucket, key: key, storage: storage))
  }
}

/// Progress on standard error while a terminal watches: one line redrawn in place.
final class RestoreProgress: Sendable {
  private let total: Int
  private let verb: String
  private let line = ProgressLine()
  private let state = Mutex((done: 0, failed: 0))

  init(total: Int, verb: String) {
    self.total = total
    self.verb = verb
  }

  func advance(failed: Bool) {
    let (done, failures) = state.withLock { state in
      state.done += 1
      if failed { state.failed += 1 }
      return (state.done, state.failed)
    }
    line.update(force: done == total) {
      "\(ProgressLine.bar(done, of: total)) \(done)/\(total) \(verb), \(failures) failed"
    }
  }

  func finish() { line.finish() }
}
