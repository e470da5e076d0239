import EventLog

/// The web chat's errors (its setup and its requests).
public enum WebErrors: ErrorDomain {
    public static let name = "WebError"
}

/// An error of the web chat's setup or requests.
public typealias WebError = CodedError<WebErrors>

extension CodedError.Code where Domain == WebErrors {
    /// A file or setting the web chat needs is missing or unusable.
    public static let setup = Self("setup")
    /// A request was malformed.
    public static let badRequest = Self("bad_request")
    /// The Todoist OAuth exchange failed.
    public static let oauth = Self("oauth")
}
