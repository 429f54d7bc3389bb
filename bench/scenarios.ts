/**
 * The calls of the Orders API the bench drives, and the orders they need:
 * creates leave fresh orders behind, which the process steps use up once each
 * (a second process of an order is refused) and the reads cycle through.
 */
import type autocannon from "autocannon"
import { Duration, Effect, Schedule } from "effect"
import type { Measurement, Window } from "./load.js"
import { closedLoop, httpLoad, httpRequests } from "./load.js"

export const SCENARIOS = ["create", "get", "list", "process", "visible"] as const
export type ScenarioName = typeof SCENARIOS[number]

export const scenarioLabels: Record<ScenarioName, string> = {
  create: "POST / create",
  get: "GET /:id",
  list: "GET /?limit=100",
  process: "POST /:id process",
  visible: "create → visible in GET /:id"
}

/** The orders this run created: all of them for the reads, and those not yet processed. */
export class OrderPool {
  private readonly all: Array<string> = []
  private unprocessed: Array<string> = []
  private nextUnprocessed = 0
  private nextRead = 0
  private created = 0
  private lastTaken: string | undefined
  private readonly run = crypto.randomUUID().slice(0, 8)

  /** A new order id, never used before in any run. */
  newId(): string {
    return `bench-${this.run}-${this.created++}`
  }

  /** An order the server created; `toBeProcessed` when its creator processes it, so no step may. */
  add(id: string, toBeProcessed = false): void {
    this.all.push(id)
    if (!toBeProcessed) this.unprocessed.push(id)
  }

  /** An order to read, each in turn. */
  nextToRead(): string | undefined {
    return this.all.length === 0 ? undefined : this.all[this.nextRead++ % this.all.length]
  }

  /** An order not processed yet, or undefined when none is left. */
  takeUnprocessed(): string | undefined {
    const id = this.unprocessed[this.nextUnprocessed]
    if (id !== undefined) {
      this.nextUnprocessed++
      this.lastTaken = id
    }
    // Let go of the ids handed out, now and then, so the array does not keep them all.
    if (this.nextUnprocessed > 100_000) {
      this.unprocessed = this.unprocessed.slice(this.nextUnprocessed)
      this.nextUnprocessed = 0
    }
    return id
  }

  /** How many orders are left to process. */
  get unprocessedCount(): number {
    return this.unprocessed.length - this.nextUnprocessed
  }

  /** How many orders this run created. */
  get size(): number {
    return this.all.length
  }

  get lastCreated(): string | undefined {
    return this.all.at(-1)
  }

  get lastProcessed(): string | undefined {
    return this.lastTaken
  }
}

const json = { "content-type": "application/json" }

/** What autocannon keeps per connection: the order its last create asked for. */
interface ConnectionContext {
  id?: string
}

const createBody = (id: string) => JSON.stringify({ id, name: "bench order" })

/** A create that adds the order to the pool once the server accepted it. */
export const createRequest = (pool: OrderPool, toBeProcessed = false): autocannon.Request => ({
  method: "POST",
  path: "/",
  headers: json,
  setupRequest: (request, context: ConnectionContext) => {
    context.id = pool.newId()
    return { ...request, body: createBody(context.id) }
  },
  onResponse: (status, _body, context: ConnectionContext) => {
    if (status === 201 && context.id !== undefined) pool.add(context.id, toBeProcessed)
  }
})

export const getRequest = (pool: OrderPool): autocannon.Request => ({
  method: "GET",
  setupRequest: (request) => ({ ...request, path: `/${pool.nextToRead() ?? "none"}` })
})

const listRequest: autocannon.Request = { method: "GET", path: "/?limit=100" }

/** Each connection creates an order, reads an older one, then processes the one it created. */
export const mixedRequests = (pool: OrderPool): ReadonlyArray<autocannon.Request> => [
  createRequest(pool, true),
  getRequest(pool),
  {
    method: "POST",
    setupRequest: (request, context: ConnectionContext) => ({ ...request, path: `/${context.id ?? "none"}` })
  }
]

export interface ScenarioContext {
  readonly url: string
  readonly pool: OrderPool
  readonly pollMillis: number
}

/** Each order processed costs one created before; a process step needs this many more than it is expected to use. */
const processMargin = 1.5

/**
 * Processes fresh orders until the time is up or none is left; then the step
 * ends early, and says so. Creates the orders it expects to lack first
 * (unmeasured), from the rate it is expected to reach.
 */
const processStep = (context: ScenarioContext, window: Window, expectedPerSecond: number) =>
  Effect.gen(function*() {
    const needed = Math.ceil(expectedPerSecond * (window.warmupSeconds + window.seconds) * processMargin)
    const missing = needed - context.pool.unprocessedCount
    if (missing > 0) {
      yield* httpRequests(
        { url: context.url, requests: () => [createRequest(context.pool)] },
        window.concurrency,
        Math.max(missing, window.concurrency)
      )
    }
    let ranOut = false
    const measurement = yield* httpLoad(window, {
      url: context.url,
      requests: (stop) => [{
        method: "POST",
        setupRequest: (request) => {
          const id = context.pool.takeUnprocessed()
          if (id === undefined) {
            ranOut = true
            stop()
          }
          // Connections still running until the stop lands ask for an order that does not exist (404).
          return { ...request, path: `/${id ?? "none"}` }
        }
      }]
    })
    return ranOut ? { ...measurement, note: "ran out of unprocessed orders" } : measurement
  })

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/**
 * One create, then `GET /:id` every `pollMillis` until it answers 200: the
 * latency is from sending the create to that answer. A create refused, or an
 * order not visible within 30 seconds, is a failure.
 */
const createThenSee = async (context: ScenarioContext): Promise<void> => {
  const id = context.pool.newId()
  const created = await fetch(`${context.url}/`, { method: "POST", headers: json, body: createBody(id) })
  await created.arrayBuffer()
  if (created.status !== 201) throw new Error(`create: HTTP ${created.status}`)
  context.pool.add(id)
  const giveUp = performance.now() + 30_000
  while (performance.now() < giveUp) {
    const read = await fetch(`${context.url}/${id}`)
    await read.arrayBuffer()
    if (read.status === 200) return
    await sleep(context.pollMillis)
  }
  throw new Error("not visible within 30 s")
}

/**
 * One step of `name`. `expectedPerSecond` sizes the supply of fresh orders of
 * a process step: the best rate seen so far of a create or a process step.
 */
export const runScenario = (
  name: ScenarioName,
  context: ScenarioContext,
  window: Window,
  expectedPerSecond = 0
): Effect.Effect<Measurement> => {
  switch (name) {
    case "create":
      return httpLoad(window, { url: context.url, requests: () => [createRequest(context.pool)] })
    case "get":
      return httpLoad(window, { url: context.url, requests: () => [getRequest(context.pool)] })
    case "list":
      return httpLoad(window, { url: context.url, requests: () => [listRequest] })
    case "process":
      return processStep(context, window, expectedPerSecond)
    case "visible":
      return closedLoop(window, () => createThenSee(context))
  }
}

/** An order as the API shows it, or undefined while it is unknown. */
const statusOf = (url: string, id: string) =>
  Effect.promise(() =>
    fetch(`${url}/${id}`).then(
      async (response) => response.status === 200 ? ((await response.json()) as { status: string }).status : undefined,
      () => undefined
    )
  )

/**
 * Waits (at most a minute) until the last order the step touched has settled
 * in the read model, so that the projector's and the processor's catching up
 * is not billed to the next step. Returns how long that took, in seconds.
 */
export const settle = (name: ScenarioName, context: ScenarioContext) =>
  Effect.gen(function*() {
    const id = name === "process" ? context.pool.lastProcessed : context.pool.lastCreated
    if (id === undefined || name === "get" || name === "list") return 0
    const settled = (status: string | undefined) =>
      name === "process" ? status === "processed" || status === "failed" : status !== undefined
    const started = performance.now()
    yield* statusOf(context.url, id).pipe(
      Effect.repeat({ until: settled, schedule: Schedule.spaced(Duration.millis(50)) }),
      Effect.timeout(Duration.minutes(1)),
      Effect.ignore
    )
    return (performance.now() - started) / 1000
  })
