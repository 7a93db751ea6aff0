import ArgumentParser
import BuildkiteAPI
import BuildkiteNames
import Catalog
import Glibc
import Logging
import ObjectStore
import SystemBase

struct SyncCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sync",
    abstract: "Fills the catalog with an organization's pipelines and builds, ahead of any mount.",
    discussion: """
      Lists the organization's pipelines, then each pipeline's builds with their jobs, newest first, at \
      the pace the API's rate limits allow, and keeps them in the catalog that mounts read: `ls` of the \
      organization, a pipeline or a build then asks the API nothing. Interrupted, it loses nothing; run \
      again, it goes on where it stopped, and later runs fetch only builds created since.
      """)

  @Argument(help: "The organization's slug.")
  var organization: String

  @Option(name: .customLong("pipeline"), help: "Only this pipeline (its slug; repeatable).")
  var pipelines: [String] = []

  @Option(
    help: ArgumentHelp(
      "Only builds created on or after this time: an ISO 8601 date (2024-06-01, UTC) or date-time (2024-06-01T12:00:00Z).",
      valueName: "date"))
  var since: String?

  @Option(
    help: ArgumentHelp(
      "Seconds between progress lines when standard error is not a terminal.", valueName: "seconds"))
  var progressInterval: Double = 10

  @OptionGroup(title: "Buildkite") var api: BuildkiteAPIOptions
  @OptionGroup(title: "Catalog") var location: CacheLocationOptions
  @OptionGroup(title: "Network") var network: NetworkOptions

  mutating func validate() throws {
    if let since, parseSinceDate(since) == nil {
      throw ValidationError("--since takes an ISO 8601 date (2024-06-01) or date-time (2024-06-01T12:00:00Z).")
    }
    guard progressInterval.isFinite, progressInterval > 0 else {
      throw ValidationError("--progress-interval takes a number of seconds above 0.")
    }
    try network.validate()
  }

  func run() throws {
    LoggingSystem.bootstrap { label in FileLogHandler(label: label, descriptor: STDERR_FILENO, logLevel: .notice) }
    let logger = Logger(label: "bklogfs")
    guard let token = try api.token() else {
      throw MountFailure("no Buildkite API token: give --api-token-file FILE or set BUILDKITE_API_TOKEN")
    }
    let client = try makeBuildkiteClient(
      token: token, options: api, timeouts: network.apiTimeouts, insecureHTTP: network.insecureHTTP, logger: logger)
    let catalog = try openCatalog(location, logger: logger)
    let sync = OrganizationSync(
      api: client, catalog: catalog, organization: organization, pipelines: pipelines,
      since: since.flatMap(parseSinceDate), logger: logger)
    // Ctrl-C ends the sync at once: every page stored so far was committed with how far it went.
    signal(SIGINT) { _ in
      let message: StaticString = "\nbklogfs sync: interrupted; what was synced is kept, run it again to go on\n"
      _ = write(STDERR_FILENO, message.utf8Start, message.utf8CodeUnitCount)
      _exit(130)
    }
    let display = SyncProgressDisplay(
      organization: organization, api: client, terminal: isatty(STDERR_FILENO) == 1, interval: progressInterval)
    do throws(SyncError) {
      try sync.run { display.update($0) }
    } catch {
      display.finish(sync.status, stopped: true)
      throw MountFailure(syncFailureMessage(error))
    }
    display.finish(sync.status, stopped: false)
  }
}

/// One line for why a sync stopped; what it stored stays, and the next run goes on from there.
private func syncFailureMessage(_ error: SyncError) -> String {
  let resume = "what was synced is kept; run bklogfs sync again to go on"
  switch error.kind {
  case .unauthorized: return "the Buildkite API token was refused (\(error.message))"
  case .unreachable, .timedOut:
    return "the Buildkite API cannot be reached: \(error.message); \(resume)"
  case .notFound, nil, .missingScope, .badRequest: return error.message
  case .rateLimited, .server, .invalidResponse: return "\(error.message); \(resume)"
  }
}

/// Seconds since the epoch of `--since`: see `parseTimeArgument`.
func parseSinceDate(_ text: String) -> Int64? { parseTimeArgument(text)?.seconds }

/// A time given on the command line (`sync --since`, `mount --as-of`): an ISO 8601 date-time (UTC
/// when it names no zone) or a date (its midnight, UTC).
func parseTimeArgument(_ text: String) -> Timestamp? {
  for candidate in [text, text + "Z", text + "T00:00:00Z"] {
    if let time = parseISO8601(candidate, syntax: .lenient) {
      return Timestamp(seconds: time.seconds, nanoseconds: time.nanoseconds)
    }
  }
  return nil
}

/// The sync's progress on standard error: on a terminal one line redrawn in place, otherwise a
/// line per pipeline synced and one every `interval` seconds; then a summary on standard output.
final class SyncProgressDisplay {
  let organization: String
  let api: BuildkiteClient
  let terminal: Bool
  let interval: Double
  let clock = SystemClock()
  let started: Double
  private var lastLine: Double
  private var pipelinesDone = 0
  private var drawn = false

  init(organization: String, api: BuildkiteClient, terminal: Bool, interval: Double) {
    self.organization = organization
    self.api = api
    self.terminal = terminal
    self.interval = interval
    started = clock.now()
    lastLine = started
  }

  func update(_ status: SyncStatus) {
    let now = clock.now()
    if terminal {
      // Redrawn at most five times a second: the line is for eyes.
      guard now - lastLine >= 0.2 || status.pipelinesDone != pipelinesDone else { return }
      pipelinesDone = status.pipelinesDone
      lastLine = now
      write("\r\u{1B}[2K" + String(line(status, now: now).prefix(terminalColumns() - 1)))
      drawn = true
      return
    }
    if status.pipelinesDone != pipelinesDone {
      pipelinesDone = status.pipelinesDone
      lastLine = now
      write("bklogfs sync: " + line(status, now: now) + "\n")
    } else if now - lastLine >= interval {
      lastLine = now
      write("bklogfs sync: " + line(status, now: now) + "\n")
    }
  }

  func finish(_ status: SyncStatus, stopped: Bool) {
    if terminal && drawn { write("\r\u{1B}[2K") }
    // A sync that stopped before its first pipeline has only its error to say.
    if stopped && status.pipelines == 0 { return }
    let seconds = Int((clock.now() - started).rounded())
    let verb = stopped ? "stopped after syncing" : "synced"
    let summary =
      "\(verb) \(organization): \(status.pipelinesDone) of \(status.pipelines) pipelines, \(status.builds) builds, \(status.jobs) jobs in \(humanDuration(seconds)), \(requests()) API requests, \(budget())"
    if stopped {
      write(summary + "\n")
    } else {
      print(summary)
    }
  }

  private func line(_ status: SyncStatus, now: Double) -> String {
    var text =
      "\(organization): pipelines \(status.pipelinesDone)/\(status.pipelines), \(status.builds) builds, \(status.jobs) jobs, \(requests()) API requests, \(budget())"
    if let eta = eta(status, now: now) { text += ", ETA \(humanDuration(eta))" }
    if let pipeline = status.pipeline, status.pipelinesDone < status.pipelines { text += " (\(pipeline))" }
    return text
  }

  private func requests() -> Int { APIEndpoint.allCases.reduce(0) { $0 + api.counters.requests($1) } }

  /// What the client knows of the rate-limit budget: requests left in this window, of its limit.
  private func budget() -> String {
    let state = api.rateLimiter.snapshot
    return apiBudgetText(remaining: state.remaining, limit: state.limit)
  }

  /// Seconds left, from the requests still to make at the pace so far: the current walk's pages
  /// (the API's `last` link), and for each pipeline not begun as many as those begun took.
  private func eta(_ status: SyncStatus, now: Double) -> Int? {
    let elapsed = now - started
    let spent = api.counters.requests(.builds) + api.counters.requests(.build)
    guard elapsed > 0, spent > 0, let pagesLeft = status.pagesLeft ?? (status.pipeline == nil ? 0 : nil) else {
      return nil
    }
    let begun = status.pipelinesDone + (status.pipelinesDone < status.pipelines && status.pipeline != nil ? 1 : 0)
    let perPipeline = Double(spent + pagesLeft) / Double(max(1, begun))
    let left = Double(pagesLeft) + perPipeline * Double(max(0, status.pipelines - begun))
    let rate = Double(requests()) / elapsed
    return Int((left / rate).rounded(.up))
  }

  private func write(_ text: String) { writeToStandardError(text) }
}
