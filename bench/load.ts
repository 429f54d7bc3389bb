/**
 * The two load generators of the bench, both closed loops of `concurrency`
 * clients run for a warm-up whose figures are dropped, then for the measured
 * seconds: autocannon for plain HTTP steps, and a loop of async operations for
 * the floors and for create → visible. Each step ends in a `Measurement`.
 */
import autocannon from "autocannon"
import { Effect } from "effect"

export interface Measurement {
  /** Operations that succeeded within the measured window. */
  readonly ok: number
  /** Non-2xx answers, errors and timeouts. */
  readonly failed: number
  /** How many failed, by HTTP status or error message. */
  readonly failures: Readonly<Record<string, number>>
  readonly seconds: number
  readonly perSecond: number
  /** Latency of the successful operations, milliseconds. */
  readonly p50: number
  readonly p99: number
  /** Why the step is not what it seems, e.g. it ran out of orders to process. */
  readonly note?: string
}

export interface Window {
  readonly concurrency: number
  readonly warmupSeconds: number
  readonly seconds: number
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 120)

/**
 * The measured part of a run that warms up first, without a pause between
 * the two: a gap would let the server drain its queue, and a new set of
 * clients would find it still busy with the requests the old ones abandoned.
 * Counts what completes within the window; `stop` ends it early.
 */
const measuredWindow = (window: Window) => {
  const latencies: Array<number> = []
  const failures: Record<string, number> = {}
  const from = performance.now() + window.warmupSeconds * 1000
  let until = from + window.seconds * 1000
  const inWindow = () => {
    const now = performance.now()
    return now >= from && now <= until
  }
  return {
    until: () => until,
    succeeded: (latency: number) => {
      if (inWindow()) latencies.push(latency)
    },
    failed: (reason: string) => {
      if (inWindow()) failures[reason] = (failures[reason] ?? 0) + 1
    },
    stop: () => {
      until = Math.min(until, performance.now())
    },
    result: (note?: string): Measurement => {
      const sorted = latencies.sort((a, b) => a - b)
      const seconds = Math.max(0, until - from) / 1000
      return {
        ok: sorted.length,
        failed: Object.values(failures).reduce((sum, count) => sum + count, 0),
        failures,
        seconds,
        perSecond: seconds > 0 ? sorted.length / seconds : 0,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        ...(note === undefined ? {} : { note })
      }
    }
  }
}

/**
 * `concurrency` clients each calling `operation` again as soon as it settles;
 * a rejection is a failure, counted by its message. Plain promises, so that
 * the floors pay for their driver alone. Interruption ends the loop at once.
 */
export const closedLoop = (window: Window, operation: (client: number) => Promise<unknown>) =>
  Effect.promise(async (signal) => {
    const measured = measuredWindow(window)
    await Promise.all(Array.from({ length: window.concurrency }, async (_, client) => {
      while (!signal.aborted && performance.now() < measured.until()) {
        const sent = performance.now()
        await operation(client).then(
          () => measured.succeeded(performance.now() - sent),
          (error: unknown) => measured.failed(describe(error))
        )
      }
    }))
    return measured.result()
  })

export interface HttpLoad {
  readonly url: string
  /** The sequence each connection sends; `stop` ends the run early, e.g. when nothing is left to process. */
  readonly requests: (stop: () => void) => ReadonlyArray<autocannon.Request>
}

/** One autocannon run, for `seconds` or `amount` requests; interruption stops it. */
const autocannonRun = (
  load: HttpLoad,
  connections: number,
  limit: { readonly seconds: number } | { readonly amount: number },
  observe: (instance: autocannon.Instance) => void,
  onStop: () => void
) =>
  Effect.async<autocannon.Result>((resume) => {
    // autocannon may build the first requests before it returns the instance.
    let started = false
    let stopRequested = false
    const stop = () => {
      onStop()
      stopRequested = true
      if (started) instance.stop()
    }
    const instance = autocannon({
      url: load.url,
      connections,
      ...("amount" in limit ? { amount: limit.amount } : { duration: limit.seconds }),
      timeout: 30,
      requests: [...load.requests(stop)]
    }, (error, result) => resume(error ? Effect.die(error) : Effect.succeed(result)))
    observe(instance)
    started = true
    if (stopRequested) instance.stop()
    return Effect.sync(stop)
  })

/**
 * `load` from autocannon for the warm-up and the window in one run; counts
 * the answers that arrive within the window, 2xx as successes. Latencies come
 * from autocannon's `response` events, in fractions of a millisecond: its own
 * histogram counts whole milliseconds, too coarse for answers under one.
 */
export const httpLoad = (window: Window, load: HttpLoad) =>
  Effect.gen(function*() {
    const measured = measuredWindow(window)
    yield* autocannonRun(load, window.concurrency, { seconds: window.warmupSeconds + window.seconds }, (instance) => {
      instance.on("response", (_client, status: number, _bytes, milliseconds: number) => {
        if (status >= 200 && status < 300) measured.succeeded(milliseconds)
        else measured.failed(`HTTP ${status}`)
      })
      instance.on("reqError", (error) => measured.failed(describe(error)))
    }, measured.stop)
    return measured.result()
  })

/** `amount` requests of `load` at `concurrency`, unmeasured: to prepare a step. */
export const httpRequests = (load: HttpLoad, concurrency: number, amount: number) =>
  autocannonRun(load, concurrency, { amount }, () => undefined, () => undefined).pipe(Effect.asVoid)

/** One line for the progress output. */
export const summary = (m: Measurement) =>
  `${m.perSecond.toFixed(0)}/s p50 ${m.p50.toFixed(1)} ms p99 ${m.p99.toFixed(1)} ms` +
  (m.failed > 0 ? `, ${m.failed} failed: ${failureSummary(m)}` : "") + (m.note === undefined ? "" : ` (${m.note})`)

/** The failures, most frequent first. */
export const failureSummary = (m: Measurement) =>
  Object.entries(m.failures).sort(([, a], [, b]) => b - a).map(([reason, count]) => `${count} × ${reason}`).join(", ")
