// The part every fuzz target shares: libFuzzer's driver, and the check that turns a broken invariant
// into a crash libFuzzer records.
//
// SwiftPM links an executable's own entry point as `main` (it renames it and passes
// `--defsym main=<Target>_main`), which hides the `main` of libclang_rt.fuzzer; so each target's
// main.swift calls `runFuzzer`, which hands the command line to `LLVMFuzzerRunDriver`, the entry point
// libFuzzer provides for programs that keep their own `main`.

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
  _ argc: UnsafeMutablePointer<CInt>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_silgen_name("exit")
private func exitProcess(_ status: CInt) -> Never

/// The test of the running target; set once, before libFuzzer starts, and only read after.
nonisolated(unsafe) private var currentTest: (@Sendable (UnsafeRawBufferPointer) -> Void)?

/// Runs libFuzzer with this process's arguments (`-max_total_time=20 corpus/`, …) over `test`,
/// which gets each input and must return normally unless it found a bug.
public func runFuzzer(_ test: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) -> Never {
  currentTest = test
  var argc = CommandLine.argc
  var argv = CommandLine.unsafeArgv
  let status = LLVMFuzzerRunDriver(&argc, &argv) { data, count in LLVMFuzzerTestOneInput(data, count) }
  exitProcess(status)
}

/// libFuzzer's usual entry point, defined too because libclang_rt.fuzzer's own `main` refers to it
/// (a build without dead-code stripping keeps that `main`, even though ours is the one that runs).
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
  guard let currentTest else { fatalError("a fuzz target must start libFuzzer through runFuzzer") }
  currentTest(UnsafeRawBufferPointer(start: data, count: count))
  return 0
}

/// Stops the process, so that libFuzzer records the input, when an invariant does not hold.
public func require(
  _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID,
  line: UInt = #line
) {
  if !condition() { fatalError("invariant broken: \(message())", file: file, line: line) }
}
