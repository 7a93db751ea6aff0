import BuildkiteNames
import Testing

@Suite struct JobAliasesTests {
  func job(
    _ id: String, name: String? = nil, key: String? = nil, index: Int? = nil, total: Int? = nil,
    retriedIn: String? = nil
  ) -> JobAliasInput {
    JobAliasInput(
      id: id, name: name, stepKey: key, parallelGroupIndex: index, parallelGroupTotal: total,
      retriedInJobID: retriedIn)
  }

  @Test func stepKeysWinAndLabelsAreMadeSafe() {
    let aliases = jobAliases(
      [
        job("0190a1b2-0000-4000-8000-000000000001", name: ":rspec: RSpec", key: "rspec"),
        job("0190a1b2-0000-4000-8000-000000000002", name: ":docker: Build / push image :k8s:"),
        job("0190a1b2-0000-4000-8000-000000000003", name: "Lint (eslint) — src/**"),
        job("0190a1b2-0000-4000-8000-000000000004", name: "日本語だけ"),
        job("0190a1b2-0000-4000-8000-000000000005", name: "ratio 1:2 test"),
      ], reserved: [])
    #expect(aliases["0190a1b2-0000-4000-8000-000000000001"] == "rspec.log")
    #expect(aliases["0190a1b2-0000-4000-8000-000000000002"] == "Build-push-image.log")
    #expect(aliases["0190a1b2-0000-4000-8000-000000000003"] == "Lint-eslint-src.log")
    #expect(aliases["0190a1b2-0000-4000-8000-000000000004"] == "job.log")
    #expect(aliases["0190a1b2-0000-4000-8000-000000000005"] == "ratio-1-2-test.log")
  }

  @Test func parallelShardsAndRetriedAttempts() {
    let aliases = jobAliases(
      [
        job("a0000001", name: "Tests", index: 0, total: 3),
        job("a0000002", name: "Tests", index: 1, total: 3, retriedIn: "a0000004"),
        job("a0000003", name: "Tests", index: 2, total: 3),
        job("a0000004", name: "Tests", index: 1, total: 3, retriedIn: "a0000005"),
        job("a0000005", name: "Tests", index: 1, total: 3),
      ], reserved: [])
    #expect(aliases["a0000001"] == "Tests-1.log")
    #expect(aliases["a0000002"] == "Tests-2.attempt1.log")
    #expect(aliases["a0000004"] == "Tests-2.attempt2.log")
    #expect(aliases["a0000005"] == "Tests-2.log")
    #expect(aliases["a0000003"] == "Tests-3.log")
  }

  @Test func clashesGetThePrefixOfTheUUID() {
    let aliases = jobAliases(
      [
        job("11111111-aaaa-4000-8000-000000000000", name: "deploy"),
        job("22222222-bbbb-4000-8000-000000000000", name: "deploy"),
        job("33333333-cccc-4000-8000-000000000000", name: "build"),
        job("44444444-dddd-4000-8000-000000000000", key: "0190f1c2-0000-4000-8000-00000000abcd"),
      ], reserved: ["build.log"])
    // These two share their last 8 characters too: the whole UUID tells them apart.
    #expect(aliases["11111111-aaaa-4000-8000-000000000000"] == "deploy-11111111-aaaa-4000-8000-000000000000.log")
    #expect(aliases["22222222-bbbb-4000-8000-000000000000"] == "deploy-22222222-bbbb-4000-8000-000000000000.log")
    // Time-ordered UUIDs share their start: the random end tells jobs apart.
    let sameStart = jobAliases(
      [
        job("0190f1c2-7d9f-7e5a-a17b-80ed31276810", name: "deploy"),
        job("0190f1c2-7d9f-7e5a-a17b-80ed3127aa11", name: "deploy"),
      ], reserved: [])
    #expect(sameStart["0190f1c2-7d9f-7e5a-a17b-80ed31276810"] == "deploy-31276810.log")
    #expect(sameStart["0190f1c2-7d9f-7e5a-a17b-80ed3127aa11"] == "deploy-3127aa11.log")
    #expect(aliases["33333333-cccc-4000-8000-000000000000"] == "build-00000000.log")
    #expect(aliases["44444444-dddd-4000-8000-000000000000"] == "0190f1c2-0000-4000-8000-00000000abcd-00000000.log")
  }

  @Test func everyAliasIsASafeUniqueName() {
    let hostile = [
      "../../etc/passwd", "..", ".", "a/b", "nul\u{0}byte", "new\nline", String(repeating: "x", count: 1000),
      String(repeating: "é", count: 300), "", ":only-emoji:", "   ", "-.-",
    ]
    var jobs = hostile.enumerated().map { job("f000000\($0.offset)", name: $0.element) }
    jobs += hostile.enumerated().map { job("e000000\($0.offset)", key: $0.element) }
    let aliases = jobAliases(jobs, reserved: ["build.json"])
    #expect(Set(aliases.values).count == jobs.count)
    for alias in aliases.values {
      #expect(alias.hasSuffix(".log"))
      #expect(alias.utf8.count <= 255)
      #expect(!alias.contains("/") && !alias.utf8.contains(0) && !alias.contains("\n"))
      #expect(alias != "." && alias != ".." && !alias.hasPrefix("."))
    }
  }

  @Test func idsThatAreNotUUIDsAddOnlySafeBytesAndClashesAreNumbered() {
    // Every job is "tests"; their IDs, which the suffixes come from, are hostile too. IDs that are
    // the same once made safe ("a/b", "a b", "a\nb") clash in every round and are numbered.
    let ids = ["x/../../y", "a/b", "a b", "a\nb", "nul\u{0}id", String(repeating: "i", count: 300), "lint", "..", ""]
    let aliases = jobAliases(ids.map { job($0, key: "tests") }, reserved: ["build.json", "lint.log", "tests.log"])
    #expect(aliases.count == ids.count)
    #expect(Set(aliases.values).count == ids.count)
    for (id, alias) in aliases {
      #expect(alias.hasSuffix(".log") && alias.utf8.count <= 255, "\(id)")
      #expect(alias.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }, "\(id): \(alias)")
      #expect(!["build.json", "lint.log", "tests.log", ".", ".."].contains(alias), "\(id)")
      #expect(!alias.hasPrefix("."), "\(id)")
    }
    #expect(aliases["x/../../y"] == "tests-y.log")
    #expect(aliases["lint"] == "tests-lint.log")
    let numbered = ["a/b", "a b", "a\nb"].compactMap { aliases[$0] }.sorted()
    #expect(numbered == ["tests-a-b-2.log", "tests-a-b-3.log", "tests-a-b-4.log"])
  }

  @Test func anAliasNeverTakesAReservedNameOrPassesForAUUID() {
    let aliases = jobAliases(
      [
        job("0190a1b2-0000-4000-8000-00000000000a", key: "lint"),
        job("0190a1b2-0000-4000-8000-00000000000b", name: "0190a1b2-0000-4000-8000-00000000000a"),
        job("0190a1b2-0000-4000-8000-00000000000c", key: "build"),
      ], reserved: ["lint.log", "build.json", "0190a1b2-0000-4000-8000-00000000000a.log"])
    #expect(aliases["0190a1b2-0000-4000-8000-00000000000a"] == "lint-0000000a.log")
    #expect(aliases["0190a1b2-0000-4000-8000-00000000000b"] == "0190a1b2-0000-4000-8000-00000000000a-0000000b.log")
    #expect(aliases["0190a1b2-0000-4000-8000-00000000000c"] == "build.log")
  }

  @Test func aRetryCycleInBadDataDoesNotHang() {
    let aliases = jobAliases(
      [job("c1", name: "x", retriedIn: "c2"), job("c2", name: "x", retriedIn: "c1")], reserved: [])
    #expect(aliases.count == 2)
    #expect(Set(aliases.values).count == 2)
  }
}
