import Dispatch
import Glibc
import SystemBase
import SystemPackage
import Testing

@Suite struct ProcessTests {
  @Test func processesThatExist() {
    #expect(processExists(currentProcessID))
    #expect(!processExists(0))
    #expect(!processExists(-1))
  }

  @Test func environmentValuesTreatEmptyAsUnset() {
    setenv("BKLOGFS_SYSTEMBASE_TEST", "value", 1)
    #expect(environmentValue("BKLOGFS_SYSTEMBASE_TEST") == "value")
    setenv("BKLOGFS_SYSTEMBASE_TEST", "", 1)
    #expect(environmentValue("BKLOGFS_SYSTEMBASE_TEST") == nil)
    unsetenv("BKLOGFS_SYSTEMBASE_TEST")
    #expect(environmentValue("BKLOGFS_SYSTEMBASE_TEST") == nil)
  }

  @Test func relativePathsAreTakenFromTheWorkingDirectory() throws {
    #expect(absolutePath("/etc/hosts") == "/etc/hosts")
    let cwd = try #require(getcwd(nil, 0))
    defer { free(cwd) }
    #expect(absolutePath("cache") == String(cString: cwd) + "/cache")
  }

  @Test func aDetachedThreadRunsItsBody() {
    let done = DispatchSemaphore(value: 0)
    startDetachedThread { done.signal() }
    #expect(done.wait(timeout: .now() + 10) == .success)
  }
}

@Suite struct FirstLineTests {
  private func withPipe(_ body: (FileDescriptor, FileDescriptor) throws -> Void) throws {
    let ends = try FileDescriptor.pipe()
    defer {
      try? ends.readEnd.close()
      try? ends.writeEnd.close()
    }
    try body(ends.readEnd, ends.writeEnd)
  }

  @Test func readsTheFirstLine() throws {
    try withPipe { reader, writer in
      _ = try writer.writeAll(Array("ready\nmore\n".utf8))
      #expect(readFirstLine(from: reader, timeoutSeconds: 5) == "ready")
    }
  }

  @Test func aWriterThatClosesWithoutAWordGivesNil() throws {
    let ends = try FileDescriptor.pipe()
    defer { try? ends.readEnd.close() }
    try ends.writeEnd.close()
    #expect(readFirstLine(from: ends.readEnd, timeoutSeconds: 5) == nil)
  }

  @Test func aLastLineWithoutItsNewlineCounts() throws {
    let ends = try FileDescriptor.pipe()
    defer { try? ends.readEnd.close() }
    _ = try ends.writeEnd.writeAll(Array("error: no such bucket".utf8))
    try ends.writeEnd.close()
    #expect(readFirstLine(from: ends.readEnd, timeoutSeconds: 5) == "error: no such bucket")
  }

  @Test func silenceTimesOut() throws {
    try withPipe { reader, _ in
      let clock = SystemClock()
      let started = clock.now()
      #expect(readFirstLine(from: reader, timeoutSeconds: 0.2) == nil)
      let waited = clock.now() - started
      #expect(waited >= 0.19 && waited < 5, "\(waited)")
    }
  }
}

@Suite struct ClockTests {
  @Test func sleepingFiftyMillisecondsTakesAtLeastThat() {
    let clock = SystemClock()
    let started = clock.now()
    clock.sleep(seconds: 0.05)
    #expect(clock.now() - started >= 0.05)
  }

  @Test func theWallClockIsTheSystems() {
    let seconds = SystemClock().secondsSinceEpoch()
    #expect(abs(seconds - Double(time(nil))) < 2)
  }
}
