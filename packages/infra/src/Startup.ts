/**
 * What every adapter does when it connects at start-up: a bounded number of
 * attempts, then one line that names the service and its address.
 */
import { Data, Duration, Effect, Schedule } from "effect"

/** A backing server could not be reached at start-up. The program exits non-zero with this message. */
export class StartupError extends Data.TaggedError("StartupError")<{
  readonly service: string
  readonly address: string
  readonly cause: unknown
}> {
  override get message() {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `cannot reach ${this.service} at ${this.address}: ${reason}`
  }
}

/**
 * At most 10 retries within about 20 seconds: long enough for a server that is
 * still starting, short enough to fail clearly (a driver that waits seconds per
 * attempt gets fewer attempts).
 */
export const startupRetry = Schedule.exponential(Duration.millis(200), 1.5).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(3))),
  Schedule.intersect(Schedule.recurs(10)),
  Schedule.upTo(Duration.seconds(20))
)

/** Runs `connect` with the start-up retry policy, turning the last failure into a `StartupError`. */
export const connectWithRetry = <A>(
  service: string,
  address: string,
  connect: () => Promise<A>
): Effect.Effect<A, StartupError> =>
  Effect.tryPromise({ try: connect, catch: (cause) => new StartupError({ service, address, cause }) }).pipe(
    Effect.tapError((error) => Effect.logDebug(error.message)),
    Effect.retry(startupRetry)
  )

/** Hides the password of a connection string, for logs and error messages. */
export const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return "<invalid url>"
  }
}
