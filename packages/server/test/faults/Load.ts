/**
 * A bounded load of concurrent commands over loopback: each order is created
 * by several writers at once, then processing is requested by several writers
 * at once, each writer through another server. Every request carries its own
 * `x-correlation-id`, which every event it causes carries too: the accounting
 * finds a command's events in the store by it.
 */
import { Clock, Duration, Effect, Option, Random } from "effect"

export type CommandKind = "create" | "process"

export interface Sent {
  readonly kind: CommandKind
  readonly orderId: string
  readonly correlationId: string
  /** When it was sent and answered (or given up), in epoch milliseconds. */
  readonly sentAt: number
  readonly answeredAt: number
  /** The HTTP status, or why there was none: the server was gone, the client hung up, or no answer within a minute. */
  readonly status: number | "refused" | "reset" | "aborted" | "timeout"
  /** The `_tag` of an error answer. */
  readonly tag?: string
  /** The order's version in a 2xx answer. */
  readonly version?: number
  /** The body of a 5xx answer, as evidence. */
  readonly body?: string
}

export interface LoadPlan {
  readonly orders: number
  /** The orders start one after the other, evenly over this time. */
  readonly spreadOver: Duration.DurationInput
  /** Concurrent creates of each order. */
  readonly creators: number
  /** Concurrent processing requests of each order, sent once its creates are answered. */
  readonly requesters: number
  /** Waves of processing requests per order (default 1), `pause` apart: a failed order may be processed again. */
  readonly requestWaves?: { readonly count: number; readonly pause: Duration.DurationInput }
  /** Clients that hang up: this share of the requests is aborted after a random delay up to `within`. */
  readonly hangUps?: { readonly share: number; readonly within: Duration.DurationInput }
}

const requestTimeout = Duration.minutes(1)

/** Why fetch gave no answer: the server refused the connection, dropped it, the client aborted, or the time ran out. */
const noAnswer = (error: unknown): Sent["status"] => {
  if (error instanceof DOMException) return error.name === "TimeoutError" ? "timeout" : "aborted"
  const code = (error as { cause?: { code?: string } }).cause?.code
  return code === "ECONNREFUSED" ? "refused" : "reset"
}

interface AnswerBody {
  readonly _tag?: unknown
  readonly version?: unknown
}

const parse = (text: string): AnswerBody => {
  try {
    return JSON.parse(text) as AnswerBody
  } catch {
    return {}
  }
}

const send = (
  baseUrl: string,
  kind: CommandKind,
  orderId: string,
  hangUpAfter: Option.Option<Duration.Duration>
) =>
  Effect.gen(function*() {
    const correlationId = `${kind}-${orderId}-${crypto.randomUUID()}`
    const sentAt = yield* Clock.currentTimeMillis
    const answer = yield* Effect.promise(() => {
      const hangUp = new AbortController()
      const timer = Option.map(hangUpAfter, (delay) => setTimeout(() => hangUp.abort(), Duration.toMillis(delay)))
      return fetch(kind === "create" ? `${baseUrl}/` : `${baseUrl}/${orderId}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-correlation-id": correlationId },
        ...(kind === "create" ? { body: JSON.stringify({ id: orderId, name: `order ${orderId}` }) } : {}),
        signal: AbortSignal.any([hangUp.signal, AbortSignal.timeout(Duration.toMillis(requestTimeout))])
      })
        .then(async (response) => ({ status: response.status, text: await response.text() }))
        .catch((error: unknown) => ({ status: noAnswer(error), text: "" }))
        .finally(() => Option.map(timer, clearTimeout))
    })
    const answeredAt = yield* Clock.currentTimeMillis
    const { _tag, version } = parse(answer.text)
    return {
      kind,
      orderId,
      correlationId,
      sentAt,
      answeredAt,
      status: answer.status,
      ...(typeof _tag === "string" ? { tag: _tag } : {}),
      ...(typeof version === "number" ? { version } : {}),
      ...(typeof answer.status === "number" && answer.status >= 500 ? { body: answer.text.slice(0, 500) } : {})
    } satisfies Sent
  })

/**
 * Runs the plan against the servers `urls` gives at the time of each request
 * (they may be restarted on the same ports); returns every request sent.
 */
export const runLoad = (prefix: string, urls: ReadonlyArray<string>, plan: LoadPlan) =>
  Effect.gen(function*() {
    const spacing = Duration.toMillis(plan.spreadOver) / plan.orders
    const hangUpAfter = Effect.gen(function*() {
      if (plan.hangUps === undefined || (yield* Random.next) >= plan.hangUps.share) return Option.none()
      return Option.some(Duration.millis(yield* Random.nextIntBetween(0, Duration.toMillis(plan.hangUps.within))))
    })
    const writers = (i: number, kind: CommandKind, count: number, orderId: string) =>
      Effect.forEach(
        Array.from({ length: count }, (_, k) => urls[(i + k + (kind === "process" ? 1 : 0)) % urls.length]!),
        (url) => Effect.flatMap(hangUpAfter, (after) => send(url, kind, orderId, after)),
        { concurrency: "unbounded" }
      )
    const perOrder = yield* Effect.forEach(
      Array.from({ length: plan.orders }, (_, i) => i),
      (i) =>
        Effect.gen(function*() {
          yield* Effect.sleep(Duration.millis(i * spacing))
          const orderId = `${prefix}-${i}`
          const creates = yield* writers(i, "create", plan.creators, orderId)
          const waves = plan.requestWaves ?? { count: 1, pause: Duration.zero }
          const requests = yield* Effect.forEach(
            Array.from({ length: waves.count }, (_, wave) => wave),
            (wave) =>
              Effect.zipRight(
                Effect.sleep(wave === 0 ? Duration.zero : waves.pause),
                writers(i, "process", plan.requesters, orderId)
              )
          )
          return [...creates, ...requests.flat()]
        }),
      { concurrency: "unbounded" }
    )
    return perOrder.flat()
  })
