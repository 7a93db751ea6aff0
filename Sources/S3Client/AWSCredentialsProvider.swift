import Glibc
import SystemBase

/// What the standard AWS environment variables and shared files say.
public struct AWSSettings: Sendable, Hashable {
  /// Nil when neither the environment nor the profile holds static keys.
  public var credentials: AWSCredentials?
  public var region: String?
  public var endpoint: String?
  /// The profile that was consulted.
  public var profile: String
  /// Where the credentials came from, for logs: "environment", "profile dev in /root/.aws/credentials", or nil.
  public var credentialsSource: String?
}

/// A configuration the user must fix, in one sentence.
public struct AWSConfigurationError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// Resolves credentials, region and endpoint the way the AWS CLI does, for static credentials.
public enum AWSEnvironment {
  /// - Credentials: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` first (unless
  ///   `profile` is given, as with `--profile`), then the profile (`profile`, else `AWS_PROFILE`, else
  ///   `default`) in `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials` (section `[name]`), then in
  ///   `AWS_CONFIG_FILE` or `~/.aws/config` (`[profile name]`, or `[default]`).
  /// - Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region`.
  /// - Endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, then the profile's `s3 = endpoint_url`
  ///   or `endpoint_url`.
  ///
  /// Throws when a profile named explicitly (argument or `AWS_PROFILE`) is in neither file, when a
  /// file cannot be parsed, or when the profile holds only one half of a key pair or relies on a
  /// credential source this tool does not implement (SSO, roles, `credential_process`).
  public static func resolve(
    profile: String?, environment: [String: String], homeDirectory: String
  ) throws(AWSConfigurationError) -> AWSSettings {
    func variable(_ name: String) -> String? {
      guard let value = environment[name], !value.isEmpty else { return nil }
      return value
    }
    let profileName = profile ?? variable("AWS_PROFILE") ?? variable("AWS_DEFAULT_PROFILE") ?? "default"
    let profileExplicit = profile != nil || variable("AWS_PROFILE") != nil || variable("AWS_DEFAULT_PROFILE") != nil
    let home = homeDirectory.hasSuffix("/") ? String(homeDirectory.dropLast()) : homeDirectory
    let credentialsPath = expandHome(variable("AWS_SHARED_CREDENTIALS_FILE") ?? "~/.aws/credentials", home)
    let configPath = expandHome(variable("AWS_CONFIG_FILE") ?? "~/.aws/config", home)

    let credentialsFile = try readINI(credentialsPath)
    let configFile = try readINI(configPath)
    let fromCredentials = credentialsFile?[profileName]
    let fromConfig =
      configFile?[profileName == "default" ? "default" : "profile \(profileName)"]
      ?? (profileName == "default" ? configFile?["profile default"] : nil)
    if profileExplicit && fromCredentials == nil && fromConfig == nil {
      throw AWSConfigurationError(
        "the AWS profile \"\(profileName)\" is in neither \(credentialsPath) nor \(configPath)")
    }

    var settings = AWSSettings(credentials: nil, region: nil, endpoint: nil, profile: profileName)
    if profile == nil, let keyID = variable("AWS_ACCESS_KEY_ID"), let secret = variable("AWS_SECRET_ACCESS_KEY") {
      settings.credentials = AWSCredentials(
        accessKeyID: keyID, secretAccessKey: secret, sessionToken: variable("AWS_SESSION_TOKEN"))
      settings.credentialsSource = "environment"
    } else {
      for (section, path) in [(fromCredentials, credentialsPath), (fromConfig, configPath)] {
        guard let section else { continue }
        let keyID = section["aws_access_key_id"].flatMap { $0.isEmpty ? nil : $0 }
        let secret = section["aws_secret_access_key"].flatMap { $0.isEmpty ? nil : $0 }
        if let keyID, let secret {
          let token = section["aws_session_token"] ?? section["aws_security_token"]
          settings.credentials = AWSCredentials(
            accessKeyID: keyID, secretAccessKey: secret, sessionToken: token.flatMap { $0.isEmpty ? nil : $0 })
          settings.credentialsSource = "profile \(profileName) in \(path)"
          break
        }
        if (keyID == nil) != (secret == nil) {
          throw AWSConfigurationError(
            "the AWS profile \"\(profileName)\" in \(path) has only one of aws_access_key_id and aws_secret_access_key")
        }
      }
      if settings.credentials == nil {
        let unsupported = ["sso_session", "sso_start_url", "role_arn", "credential_process", "web_identity_token_file"]
        for section in [fromCredentials, fromConfig] {
          if let name = unsupported.first(where: { section?[$0] != nil }) {
            throw AWSConfigurationError(
              "the AWS profile \"\(profileName)\" uses \(name), which bklogfs does not support: "
                + "export AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN instead")
          }
        }
      }
    }
    settings.region =
      variable("AWS_REGION") ?? variable("AWS_DEFAULT_REGION") ?? fromConfig?["region"] ?? fromCredentials?["region"]
    settings.endpoint =
      variable("AWS_ENDPOINT_URL_S3") ?? variable("AWS_ENDPOINT_URL") ?? fromConfig?["s3.endpoint_url"]
      ?? fromConfig?["endpoint_url"] ?? fromCredentials?["endpoint_url"]
    return settings
  }

  /// The process's environment, for `resolve`.
  public static var processEnvironment: [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
      let text = String(cString: entry)
      if let equals = text.firstIndex(of: "=") {
        result[String(text[..<equals])] = String(text[text.index(after: equals)...])
      }
      pointer += 1
    }
    return result
  }

  private static func expandHome(_ path: String, _ home: String) -> String {
    if path == "~" { return home }
    if path.hasPrefix("~/") { return home + path.dropFirst() }
    return path
  }

  /// Nil when the file does not exist.
  private static func readINI(_ path: String) throws(AWSConfigurationError) -> [String: [String: String]]? {
    guard let file = fopen(path, "r") else {
      if errno == ENOENT || errno == ENOTDIR { return nil }
      throw AWSConfigurationError("cannot read \(path): \(lastError())")
    }
    defer { fclose(file) }
    var bytes = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let count = fread(&buffer, 1, buffer.count, file)
      if count <= 0 { break }
      bytes += buffer[..<count]
      if bytes.count > 4 << 20 { throw AWSConfigurationError("\(path) is larger than 4 MiB") }
    }
    do {
      return try parseAWSINI(String(decoding: bytes, as: UTF8.self))
    } catch {
      throw AWSConfigurationError("cannot parse \(path): \(error.message)")
    }
  }
}

/// Parses an AWS shared config or credentials file: `[section]` headers, `key = value` lines,
/// full-line `#` and `;` comments, and nested sub-sections (a `key =` line followed by indented
/// `subkey = value` lines, stored as `key.subkey`). Section names and keys are kept as written
/// (keys lower-cased); later duplicates win.
public func parseAWSINI(_ text: String) throws(AWSConfigurationError) -> [String: [String: String]] {
  var sections: [String: [String: String]] = [:]
  var current: String?
  var nestedParent: String?
  for (number, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
    let indented = rawLine.first == " " || rawLine.first == "\t"
    let line = rawLine.trimmingWhitespace()
    if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
    if line.hasPrefix("[") {
      guard line.hasSuffix("]") else { throw AWSConfigurationError("line \(number + 1) is a broken section header") }
      let name = line.dropFirst().dropLast().trimmingWhitespace()
      let words = name.split(whereSeparator: { $0 == " " || $0 == "\t" })
      current = words.joined(separator: " ")
      nestedParent = nil
      if sections[current!] == nil { sections[current!] = [:] }
      continue
    }
    guard let section = current else {
      throw AWSConfigurationError("line \(number + 1) is outside any [section]")
    }
    guard let equals = line.firstIndex(of: "=") else {
      throw AWSConfigurationError("line \(number + 1) is not key = value")
    }
    let key = line[..<equals].trimmingWhitespace().lowercased()
    let value = String(line[line.index(after: equals)...].trimmingWhitespace())
    if indented, let parent = nestedParent {
      sections[section]![parent + "." + key] = value
    } else {
      sections[section]![key] = value
      nestedParent = value.isEmpty ? key : nil
    }
  }
  return sections
}

extension StringProtocol {
  fileprivate func trimmingWhitespace() -> Substring {
    var result = self[...]
    while let first = result.first, first == " " || first == "\t" || first == "\r" { result = result.dropFirst() }
    while let last = result.last, last == " " || last == "\t" || last == "\r" { result = result.dropLast() }
    return Substring(result)
  }
}
