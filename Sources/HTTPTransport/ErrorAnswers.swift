extension HTTPClient {
  /// The most of an error answer's body that is read: enough for what it says (an S3 `<Error>`
  /// document, an API's JSON message).
  public static let errorBodyLimit = 64 << 10

  /// Performs `request`, handing only a successful (2xx) answer's body to `onBody`. Of any other
  /// answer, the first `errorBodyLimit` bytes are kept and returned, and the transfer then stops: the
  /// answer is judged by its status and those bytes, so an error with an endless body costs neither
  /// time nor memory, and is still the error its status says. `onResponse` sees every head.
  public func performJudgingErrors(
    _ request: HTTPRequest, onResponse: (HTTPResponse) -> Bool = { _ in true },
    onSuccessBody: (UnsafeRawBufferPointer) -> Bool
  ) throws(HTTPError) -> (response: HTTPResponse, errorBody: [UInt8]) {
    var errorHead: HTTPResponse?
    var errorBody: [UInt8] = []
    do {
      let response = try perform(
        request,
        onResponse: { head in
          if !(200..<300).contains(head.status) { errorHead = head }
          return onResponse(head)
        },
        onBody: { chunk in
          guard errorHead != nil else { return onSuccessBody(chunk) }
          errorBody.append(contentsOf: chunk.prefix(Self.errorBodyLimit - errorBody.count))
          return errorBody.count < Self.errorBodyLimit
        })
      return (response, errorBody)
    } catch {
      // An error answer stopped here (or by its handler, or at the request's size limit) is still an
      // answer.
      if let errorHead, error.kind == .aborted || error.kind == .tooLarge { return (errorHead, errorBody) }
      throw error
    }
  }
}
