import Foundation
import S3Client
import TestSupport
import Testing

@Suite struct AWSEnvironmentTests {
  /// A temporary home with `.aws/credentials` and `.aws/config`.
  final class Home {
    let url: URL
    init(credentials: String?, config: String?) throws {
      url = FileManager.default.temporaryDirectory.appendingPathComponent("bklogfs-aws-\(UUID().uuidString)")
      let aws = url.appendingPathComponent(".aws")
      try FileManager.default.createDirectory(at: aws, withIntermediateDirectories: true)
      if let credentials {
        try credentials.write(to: aws.appendingPathComponent("credentials"), atomically: true, encoding: .utf8)
      }
      if let config { try config.write(to: aws.appendingPathComponent("config"), atomically: true, encoding: .utf8) }
    }
    var path: String { url.path }
    deinit { try? FileManager.default.removeItem(at: url) }
  }

  static let credentialsFile = """
    # comment
    [default]
    aws_access_key_id = AKIDDEFAULT
    aws_secret_access_key = secretdefault

    [dev]
    aws_access_key_id=AKIDDEV
    aws_secret_access_key=secretdev
    aws_session_token = tokendev
    ; another comment
    [half]
    aws_access_key_id = AKIDHALF
    """

  static let configFile = """
    [default]
    region = us-west-2

    [profile dev]
    region = eu-central-1
    s3 =
      endpoint_url = http://127.0.0.1:9000
      addressing_style = path

    [profile onlyconfig]
    aws_access_key_id = AKIDCONFIG
    aws_secret_access_key = secretconfig
    endpoint_url = http://minio:9000

    [profile sso]
    sso_session = corp
    """

  @Test func environmentFirst() throws {
    let home = try Home(credentials: Self.credentialsFile, config: Self.configFile)
    let settings = try AWSEnvironment.resolve(
      profile: nil,
      environment: [
        "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "secretenv", "AWS_SESSION_TOKEN": "tokenenv",
        "AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "ignored", "AWS_ENDPOINT_URL": "http://generic:1",
        "AWS_ENDPOINT_URL_S3": "http://s3only:2",
      ], homeDirectory: home.path)
    #expect(
      settings.credentials
        == AWSCredentials(accessKeyID: "AKIDENV", secretAccessKey: "secretenv", sessionToken: "tokenenv"))
    #expect(settings.credentialsSource == "environment")
    #expect(settings.region == "ap-south-1")
    #expect(settings.endpoint == "http://s3only:2")
  }

  @Test func defaultProfileFromFiles() throws {
    let home = try Home(credentials: Self.credentialsFile, config: Self.configFile)
    let settings = try AWSEnvironment.resolve(
      profile: nil, environment: ["AWS_DEFAULT_REGION": "sa-east-1"], homeDirectory: home.path)
    #expect(settings.credentials == AWSCredentials(accessKeyID: "AKIDDEFAULT", secretAccessKey: "secretdefault"))
    #expect(settings.profile == "default")
    #expect(settings.region == "sa-east-1")
    #expect(settings.endpoint == nil)
    let noRegionEnv = try AWSEnvironment.resolve(profile: nil, environment: [:], homeDirectory: home.path)
    #expect(noRegionEnv.region == "us-west-2")
  }

  @Test func explicitProfileBeatsEnvironmentKeys() throws {
    let home = try Home(credentials: Self.credentialsFile, config: Self.configFile)
    let settings = try AWSEnvironment.resolve(
      profile: "dev", environment: ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "secretenv"],
      homeDirectory: home.path)
    #expect(
      settings.credentials
        == AWSCredentials(accessKeyID: "AKIDDEV", secretAccessKey: "secretdev", sessionToken: "tokendev"))
    #expect(settings.region == "eu-central-1")
    #expect(settings.endpoint == "http://127.0.0.1:9000")
    // AWS_PROFILE picks the profile but environment keys still come first (as the AWS CLI does).
    let viaVariable = try AWSEnvironment.resolve(
      profile: nil,
      environment: ["AWS_PROFILE": "dev", "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "secretenv"],
      homeDirectory: home.path)
    #expect(viaVariable.credentials?.accessKeyID == "AKIDENV")
    #expect(viaVariable.region == "eu-central-1")
  }

  @Test func configOnlyProfileAndCustomPaths() throws {
    let home = try Home(credentials: nil, config: nil)
    let config = home.url.appendingPathComponent("elsewhere.ini")
    try Self.configFile.write(to: config, atomically: true, encoding: .utf8)
    let settings = try AWSEnvironment.resolve(
      profile: "onlyconfig", environment: ["AWS_CONFIG_FILE": config.path], homeDirectory: home.path)
    #expect(settings.credentials == AWSCredentials(accessKeyID: "AKIDCONFIG", secretAccessKey: "secretconfig"))
    #expect(settings.endpoint == "http://minio:9000")
    #expect(settings.credentialsSource == "profile onlyconfig in \(config.path)")
  }

  @Test func errors() throws {
    let home = try Home(credentials: Self.credentialsFile, config: Self.configFile)
    let missing = #expect(throws: AWSConfigurationError.self) {
      try AWSEnvironment.resolve(profile: "nosuch", environment: [:], homeDirectory: home.path)
    }
    #expect(missing?.message.contains("\"nosuch\"") == true)
    #expect(throws: AWSConfigurationError.self) {
      try AWSEnvironment.resolve(profile: nil, environment: ["AWS_PROFILE": "nosuch"], homeDirectory: home.path)
    }
    let half = #expect(throws: AWSConfigurationError.self) {
      try AWSEnvironment.resolve(profile: "half", environment: [:], homeDirectory: home.path)
    }
    #expect(half?.message.contains("only one of") == true)
    let sso = #expect(throws: AWSConfigurationError.self) {
      try AWSEnvironment.resolve(profile: "sso", environment: [:], homeDirectory: home.path)
    }
    #expect(sso?.message.contains("sso_session") == true)
    // No files and no variables: no credentials, not an error (the caller decides).
    let empty = try Home(credentials: nil, config: nil)
    let none = try AWSEnvironment.resolve(profile: nil, environment: [:], homeDirectory: empty.path)
    #expect(none.credentials == nil && none.region == nil && none.endpoint == nil)
  }

  @Test func iniParsing() throws {
    let parsed = try parseAWSINI("[a]\nx = 1\r\n[ profile   b ]\nY=two words = yes\ns3 =\n  k = v\nz = 3\n")
    #expect(parsed["a"] == ["x": "1"])
    #expect(parsed["profile b"] == ["y": "two words = yes", "s3": "", "s3.k": "v", "z": "3"])
    #expect(throws: AWSConfigurationError.self) { try parseAWSINI("x = 1\n") }
    #expect(throws: AWSConfigurationError.self) { try parseAWSINI("[a\n") }
    #expect(throws: AWSConfigurationError.self) { try parseAWSINI("[a]\njunk\n") }
  }
}
