import FoundationEssentials

/// An organization the token can see.
public struct Organization: Sendable, Hashable, Decodable {
  public var id: String
  public var slug: String
  public var name: String

  public init(id: String, slug: String, name: String) {
    self.id = id
    self.slug = slug
    self.name = name
  }

  enum CodingKeys: String, CodingKey { case id, slug, name }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    id = try container.decode(String.self, forKey: .id)
    slug = try container.decode(String.self, forKey: .slug)
    name = try container.decodeIfPresent(String.self, forKey: .name) ?? slug
  }
}

/// A pipeline of an organization.
public struct Pipeline: Sendable, Hashable, Decodable {
  public var id: String
  public var slug: String
  public var name: String

  public init(id: String, slug: String, name: String) {
    self.id = id
    self.slug = slug
    self.name = name
  }

  enum CodingKeys: String, CodingKey { case id, slug, name }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    id = try container.decode(String.self, forKey: .id)
    slug = try container.decode(String.self, forKey: .slug)
    name = try container.decodeIfPresent(String.self, forKey: .name) ?? slug
  }
}

/// A job of a build. Only `script` jobs run commands and have logs; `waiter`, `manual` (block)
/// and `trigger` jobs have none. Times are seconds since the Unix epoch (UTC), with milliseconds.
public struct Job: Sendable, Hashable, Decodable {
  /// The job's UUID: also the name of its log object in a private archive.
  public var id: String
  /// `script`, `waiter`, `manual`, `trigger` (or a type this client does not know); "" when absent.
  public var type: String
  public var name: String?
  public var stepKey: String?
  public var state: String?
  public var parallelGroupIndex: Int?
  public var parallelGroupTotal: Int?
  /// Whether a later attempt replaced this one.
  public var retried: Bool
  /// The attempt that replaced this one.
  public var retriedInJobID: String?
  public var retriesCount: Int?
  public var createdAt: Double?
  public var startedAt: Double?
  public var finishedAt: Double?
  public var logURL: String?
  public var rawLogURL: String?

  public init(
    id: String, type: String, name: String? = nil, stepKey: String? = nil, state: String? = nil,
    parallelGroupIndex: Int? = nil, parallelGroupTotal: Int? = nil, retried: Bool = false,
    retriedInJobID: String? = nil, retriesCount: Int? = nil, createdAt: Double? = nil, startedAt: Double? = nil,
    finishedAt: Double? = nil, logURL: String? = nil, rawLogURL: String? = nil
  ) {
    self.id = id
    self.type = type
    self.name = name
    self.stepKey = stepKey
    self.state = state
    self.parallelGroupIndex = parallelGroupIndex
    self.parallelGroupTotal = parallelGroupTotal
    self.retried = retried
    self.retriedInJobID = retriedInJobID
    self.retriesCount = retriesCount
    self.createdAt = createdAt
    self.startedAt = startedAt
    self.finishedAt = finishedAt
    self.logURL = logURL
    self.rawLogURL = rawLogURL
  }

  /// Whether the job runs a command, and so may have a log.
  public var hasLog: Bool { type == "script" }

  enum CodingKeys: String, CodingKey {
    case id, type, name, state, retried
    case stepKey = "step_key"
    case parallelGroupIndex = "parallel_group_index"
    case parallelGroupTotal = "parallel_group_total"
    case retriedInJobID = "retried_in_job_id"
    case retriesCount = "retries_count"
    case createdAt = "created_at"
    case startedAt = "started_at"
    case finishedAt = "finished_at"
    case logURL = "log_url"
    case rawLogURL = "raw_log_url"
  }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    id = try container.decode(String.self, forKey: .id)
    type = container.lenientString(.type) ?? ""
    name = container.lenientString(.name)
    stepKey = container.lenientString(.stepKey)
    state = container.lenientString(.state)
    parallelGroupIndex = container.lenientInt(.parallelGroupIndex)
    parallelGroupTotal = container.lenientInt(.parallelGroupTotal)
    retried = (try? container.decodeIfPresent(Bool.self, forKey: .retried)) ?? false
    retriedInJobID = container.lenientString(.retriedInJobID)
    retriesCount = container.lenientInt(.retriesCount)
    createdAt = container.lenientString(.createdAt).flatMap(parseBuildkiteTime)
    startedAt = container.lenientString(.startedAt).flatMap(parseBuildkiteTime)
    finishedAt = container.lenientString(.finishedAt).flatMap(parseBuildkiteTime)
    logURL = container.lenientString(.logURL)
    rawLogURL = container.lenientString(.rawLogURL)
  }
}

extension Job {
  /// Decodes one job object (an API answer, or a build export's `jobs/job-{uuid}.json`).
  public init(json: [UInt8]) throws(BuildkiteError) {
    self = try decodeJSON(Job.self, json, what: "job")
  }
}

/// A build with its jobs, and the JSON object the API gave for it (`raw`), byte for byte.
public struct Build: Sendable, Hashable {
  public var id: String
  public var number: Int
  /// `scheduled`, `running`, `passed`, `failed`, `blocked`, `canceled`, `canceling`, `skipped`,
  /// `not_run`, `waiting`, `waiting_failed`, …
  public var state: String
  public var branch: String?
  public var commit: String?
  public var message: String?
  public var createdAt: Double?
  public var startedAt: Double?
  public var finishedAt: Double?
  /// The pipeline's UUID and slug, from the build's embedded pipeline object.
  public var pipelineID: String?
  public var pipelineSlug: String?
  /// The jobs embedded in the build (empty when listed with `exclude_jobs`).
  public var jobs: [Job]
  /// This build's JSON object as the API sent it.
  public var raw: [UInt8]

  public init(
    id: String, number: Int, state: String, branch: String? = nil, commit: String? = nil, message: String? = nil,
    createdAt: Double? = nil, startedAt: Double? = nil, finishedAt: Double? = nil, pipelineID: String? = nil,
    pipelineSlug: String? = nil, jobs: [Job] = [], raw: [UInt8] = []
  ) {
    self.id = id
    self.number = number
    self.state = state
    self.branch = branch
    self.commit = commit
    self.message = message
    self.createdAt = createdAt
    self.startedAt = startedAt
    self.finishedAt = finishedAt
    self.pipelineID = pipelineID
    self.pipelineSlug = pipelineSlug
    self.jobs = jobs
    self.raw = raw
  }

  /// States after which a build no longer changes (though a retry of one of its jobs may still add a job).
  public static let finishedStates: Set<String> = ["passed", "failed", "canceled", "skipped", "not_run"]

  /// Whether the build is over: a finished state, or a `finished_at` time.
  public var isFinished: Bool { Self.finishedStates.contains(state) || finishedAt != nil }

  /// Decodes one build object (an API answer, or a build export's `build.json`).
  public init(json: [UInt8]) throws(BuildkiteError) {
    try checkJSONBounds(json[...], what: "build")
    self = try Self.decode(json[...])
  }

  /// Decodes a JSON array of builds (a listing), keeping each build's own bytes in `raw`.
  public static func list(json: [UInt8]) throws(BuildkiteError) -> [Build] {
    try checkJSONBounds(json[...], what: "builds")
    guard let ranges = jsonArrayElements(json) else {
      throw BuildkiteError(.invalidResponse, "the builds listing is not a JSON array")
    }
    var builds: [Build] = []
    builds.reserveCapacity(ranges.count)
    for range in ranges { builds.append(try decode(json[range])) }
    return builds
  }

  static func decode(_ bytes: ArraySlice<UInt8>) throws(BuildkiteError) -> Build {
    let fields: BuildFields
    do {
      fields = try JSONDecoder().decode(BuildFields.self, from: Data(readableJSON(bytes)))
    } catch {
      throw BuildkiteError(.invalidResponse, "a build in the answer could not be read: \(describe(error))")
    }
    return Build(
      id: fields.id, number: fields.number, state: fields.state ?? "", branch: fields.branch, commit: fields.commit,
      message: fields.message, createdAt: fields.createdAt, startedAt: fields.startedAt,
      finishedAt: fields.finishedAt, pipelineID: fields.pipeline?.id, pipelineSlug: fields.pipeline?.slug,
      jobs: fields.jobs, raw: trimmedJSON(bytes))
  }
}

/// The decoded part of a build object.
struct BuildFields: Decodable {
  var id: String
  var number: Int
  var state: String?
  var branch: String?
  var commit: String?
  var message: String?
  var createdAt: Double?
  var startedAt: Double?
  var finishedAt: Double?
  var pipeline: PipelineRef?
  var jobs: [Job]

  struct PipelineRef: Decodable {
    var id: String?
    var slug: String?

    enum CodingKeys: String, CodingKey { case id, slug }

    init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      id = container.lenientString(.id)
      slug = container.lenientString(.slug)
    }
  }

  enum CodingKeys: String, CodingKey {
    case id, number, state, branch, commit, message, pipeline, jobs
    case createdAt = "created_at"
    case startedAt = "started_at"
    case finishedAt = "finished_at"
  }

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    id = try container.decode(String.self, forKey: .id)
    number = try container.decode(Int.self, forKey: .number)
    state = container.lenientString(.state)
    branch = container.lenientString(.branch)
    commit = container.lenientString(.commit)
    message = container.lenientString(.message)
    createdAt = container.lenientString(.createdAt).flatMap(parseBuildkiteTime)
    startedAt = container.lenientString(.startedAt).flatMap(parseBuildkiteTime)
    finishedAt = container.lenientString(.finishedAt).flatMap(parseBuildkiteTime)
    pipeline = try? container.decodeIfPresent(PipelineRef.self, forKey: .pipeline)
    // Jobs are the point of a build: a malformed one is an error, a missing or null list is none.
    jobs = try container.decodeIfPresent([Job].self, forKey: .jobs) ?? []
  }
}

/// The jobs endpoint's page: `{"items": [...], "links": {"next": ...}}`.
struct JobsPage: Decodable {
  var items: [Job]
  var next: String?

  enum CodingKeys: String, CodingKey { case items, links }
  enum LinkKeys: String, CodingKey { case next }

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    items = try container.decodeIfPresent([Job].self, forKey: .items) ?? []
    if let links = try? container.nestedContainer(keyedBy: LinkKeys.self, forKey: .links) {
      next = links.lenientString(.next).flatMap { $0.isEmpty ? nil : $0 }
    }
  }
}

/// `{"message": "..."}`, Buildkite's error body.
struct ErrorBody: Decodable {
  var message: String?
  enum CodingKeys: String, CodingKey { case message }
  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    message = container.lenientString(.message)
  }
}

extension KeyedDecodingContainer {
  /// The string at `key`; nil when absent, null or not a string.
  fileprivate func lenientString(_ key: Key) -> String? {
    (try? decodeIfPresent(String.self, forKey: key)) ?? nil
  }

  /// The integer at `key`; nil when absent, null or not an integer (a numeric string is accepted).
  fileprivate func lenientInt(_ key: Key) -> Int? {
    if let value = (try? decodeIfPresent(Int.self, forKey: key)) ?? nil { return value }
    return lenientString(key).flatMap { Int($0) }
  }
}

/// A short, token-free account of a decoding failure.
func describe(_ error: any Error) -> String {
  if let error = error as? DecodingError {
    switch error {
    case .keyNotFound(let key, let context):
      return "\(path(context.codingPath + [key])) is missing"
    case .typeMismatch(_, let context), .valueNotFound(_, let context):
      return "\(path(context.codingPath)) has an unexpected type"
    case .dataCorrupted(let context):
      return context.codingPath.isEmpty ? "it is not valid JSON" : "\(path(context.codingPath)) is malformed"
    @unknown default:
      return "it is malformed"
    }
  }
  return "it is malformed"
}

private func path(_ keys: [any CodingKey]) -> String {
  let joined = keys.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
  return joined.isEmpty ? "the value" : "field \(joined.hasPrefix(".") ? String(joined.dropFirst()) : joined)"
}

/// Throws `.invalidResponse` when `bytes` exceeds `maximumJSONValues` or `maximumJSONDepth`.
func checkJSONBounds(_ bytes: ArraySlice<UInt8>, what: String) throws(BuildkiteError) {
  if let problem = jsonBoundsProblem(bytes) {
    throw BuildkiteError(.invalidResponse, "the \(what) answer could not be read: \(problem)")
  }
}

func decodeJSON<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String) throws(BuildkiteError) -> T {
  try checkJSONBounds(bytes[...], what: what)
  do {
    return try JSONDecoder().decode(type, from: Data(readableJSON(bytes[...])))
  } catch {
    throw BuildkiteError(.invalidResponse, "the \(what) answer could not be read: \(describe(error))")
  }
}
