import BuildkiteAPI
import BuildkiteNames
import Testing

/// Which of Buildkite's logs the shared cache may hold: a finished job's, whose ETag says its size
/// and which never changes, and never a running job's, which grows.
@Suite struct LogStoreSharingTests {
  @Test func onlyAFinishedJobsLogIsFixed() throws {
    let api = try BuildkiteClient(
      configuration: BuildkiteConfiguration(baseURL: "http://127.0.0.1:9/v2", token: "bkua_unused"))
    let store = BuildkiteLogStore(api: api)
    #expect(store.isFixed(etag: "\"size-1048577\""))
    #expect(!store.isFixed(etag: "\"grow-1048577\""))
    #expect(!store.isFixed(etag: "\"size-\""))
    #expect(!store.isFixed(etag: "anything else"))
  }
}
