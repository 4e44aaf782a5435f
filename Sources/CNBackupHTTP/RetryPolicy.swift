import Foundation
import CNBackupCore

/// How every network caller of cnbackup retries: S3 requests and reads, the OAuth token and
/// identities fetch, the Pushgateway, and the store decorator `RetryingStore`. One value says how
/// many attempts, how long to wait between them (full jitter: a random wait between 0 and
/// base × 2^(attempt-1), capped), and how long all of them together may take. Which failures
/// are worth another attempt is the caller's answer, given per attempt (`Attempt.retry`), with the
/// transport's own classification in `isRetryable(_:)`.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included (1: no retry).
    public var maxAttempts: Int
    /// The first retry waits up to this long.
    public var baseDelay: TimeInterval
    /// No wait is longer than this.
    public var maxDelay: TimeInterval
    /// All attempts and waits together end within this many seconds of the first; nil: no limit.
    public var deadline: TimeInterval?

    public init(maxAttempts: Int, baseDelay: TimeInterval, maxDelay: TimeInterval, deadline: TimeInterval? = nil) {
        self.maxAttempts = max(1, maxAttempts); self.baseDelay = baseDelay; self.maxDelay = maxDelay; self.deadline = deadline
    }

    /// S3 requests (five attempts, 0.2 s doubling to 20 s: rides out a SlowDown burst).
    public static let storage = RetryPolicy(maxAttempts: 5, baseDelay: 0.2, maxDelay: 20)
    /// A Pushgateway push: three attempts, a failed push is only a warning for `run`.
    public static let metrics = RetryPolicy(maxAttempts: 3, baseDelay: 1, maxDelay: 4)
    /// An HTTP capture within its overall timeout (four attempts).
    public static func capture(deadline: TimeInterval) -> RetryPolicy {
        RetryPolicy(maxAttempts: 4, baseDelay: 0.5, maxDelay: 8, deadline: deadline)
    }

    /// What one attempt came to.
    package enum Attempt<Value> {
        case success(Value)
        /// Worth another attempt; `error` is thrown if none is left.
        case retry(Error)
    }

    /// The wait after failed attempt `attempt` (1-based): full jitter under the cap.
    package func delay(after attempt: Int) -> TimeInterval {
        let cap = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: 0...max(0, cap))
    }

    /// Runs `body` until it succeeds, throws (not retryable), or attempts or time run out.
    /// - Parameter body: given the attempt's number (1-based) and the seconds left before the
    ///   deadline (nil without one), so that each attempt can bound itself by what is left.
    /// - Throws: what `body` threw, or the last `.retry` error when nothing is left; a
    ///   `CNBackupError(.cancelled)` is never retried.
    package func run<Value>(_ body: (_ attempt: Int, _ timeLeft: TimeInterval?) throws -> Attempt<Value>) throws -> Value {
        let start = Date()
        func timeLeft() -> TimeInterval? { deadline.map { $0 - Date().timeIntervalSince(start) } }
        var attempt = 1
        while true {
            switch try body(attempt, timeLeft()) {
            case .success(let value):
                return value
            case .retry(let error):
                if let error = error as? CNBackupError, error.code == .cancelled { throw error }
                guard attempt < maxAttempts else { throw error }
                var wait = delay(after: attempt)
                if let left = timeLeft() {
                    guard left > 0 else { throw error }
                    wait = min(wait, left)
                }
                Thread.sleep(forTimeInterval: wait)
                if let left = timeLeft(), left <= 0 { throw error }
                attempt += 1
            }
        }
    }

    /// Transport failures a later attempt may not meet (name resolution, connection, timeouts,
    /// resets) and HTTP answers that say "try again" (429, 5xx).
    package static func isRetryable(_ error: Error) -> Bool {
        if let transport = error as? HTTPTransportError { return transport.isRetryable }
        if let error = error as? CNBackupError { return error.isTransient }
        return false
    }

    package static func isRetryable(status: Int) -> Bool { [429, 500, 502, 503, 504].contains(status) }
}

extension RetryPolicy {
    /// One HTTP exchange under this policy, for the callers that fetch a small answer (the OAuth
    /// token and identities dump, a Kubernetes Secret, Scan's serial): each attempt gets a fresh
    /// client bounded by the time left; transport failures that may pass and 429/5xx answers are
    /// retried; any other answer is returned for the caller to judge.
    /// - Parameters:
    ///   - request: made anew per attempt (a body stream is consumed by each).
    ///   - what: names the exchange in errors, e.g. "GET https://…".
    ///   - timedOut: the error when the deadline passes before an attempt could start.
    package func fetch(_ request: () -> HTTPRequest, caFile: String?, limit: Int, what: String,
                       timedOut: @autoclosure () -> CNBackupError) throws -> HTTPResponse {
        try run { _, left -> Attempt<HTTPResponse> in
            let seconds = left.map { Int($0.rounded(.up)) } ?? 0
            if left != nil && seconds <= 0 { throw timedOut() }
            let client = HTTPClient(options: HTTPClientOptions(caFile: caFile, totalTimeoutSeconds: seconds))
            do {
                let response = try client.perform(request(), limit: limit)
                if Self.isRetryable(status: response.status) {
                    return .retry(CNBackupError(.capture, "\(what) answered HTTP \(response.status)"))
                }
                return .success(response)
            } catch let error as HTTPTransportError {
                let failure = CNBackupError(.capture, "\(what) failed: \(error.message)", cause: "curl error \(error.curlCode)")
                if error.isRetryable { return .retry(left.map { $0 > 0 } ?? true ? failure : timedOut()) }
                throw failure
            }
        }
    }
}
